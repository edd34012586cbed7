"""Hypothesis strategies for engine tests: shapes, broadcastable pairs, bounded float arrays,
non-contiguous views."""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

SMALL = dict(min_dims=1, max_dims=4, min_side=1, max_side=3)


def shapes(**kw):
    return hnp.array_shapes(**{**SMALL, **kw})


def arrays(shape, lo=-2.0, hi=2.0, noncontiguous=None):
    """float64 arrays with entries in [lo, hi]; optionally a non-contiguous view of the same
    values (a transposed copy transposed back), drawn by hypothesis."""
    elements = st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=64)
    base = hnp.arrays(np.float64, shape, elements=elements)
    if noncontiguous is False:
        return base

    @st.composite
    def maybe_view(draw):
        a = draw(base)
        if a.ndim >= 2 and draw(st.booleans()):
            a = np.ascontiguousarray(a.T).T  # same values, Fortran-ordered strides
        return a

    return maybe_view()


def broadcastable_pair(**kw):
    return hnp.mutually_broadcastable_shapes(num_shapes=2, **{**SMALL, **kw}).map(
        lambda r: r.input_shapes
    )


def distinct_arrays(shape):
    """float64 arrays whose entries are all different (spaced >= 4/size apart), in a
    hypothesis-chosen order: inputs for max-type ops without ties."""
    n = int(np.prod(shape))
    values = np.linspace(-2.0, 2.0, n)
    return st.permutations(list(range(n))).map(lambda p: values[np.array(p, dtype=int)].reshape(shape))


def away_from(a, points, margin):
    """True when no entry of ``a`` is within ``margin`` of any of ``points`` (to ``assume``
    away kinks such as relu at 0)."""
    return all(np.all(np.abs(a - p) > margin) for p in points)
