"""Stacks of small matrix products on Numba's threads: out[i] = a[i] @ b[i].

The 1x1 convolutions and attention's products are stacks of GEMMs with 32-256 rows. A
threaded BLAS does not speed those up, and splitting the stack over Python threads cost
as much in hand-offs as it saved. Here the stack is cut into one
share per thread inside one Numba parallel region, and each product is ``numpy.dot`` on
single-threaded BLAS (SciPy's, which Numba calls). Measurements:
docs/history.md#what-was-tried.

Operands are passed as a flat buffer, the distance between consecutive matrices (0 for a
broadcast stack) and a transpose flag, so that the usual views (a slice of a larger array,
a transposed stack, a broadcast weight) reach BLAS without a copy: Numba copies any array
it cannot type as contiguous before calling BLAS.
"""
import numpy
from numba import njit, prange
from numpy.lib.stride_tricks import as_strided


@njit(cache=True)
def _matrix(flat, step, i, rows, cols):
    start = i * step
    return flat[start:start + rows * cols].reshape(rows, cols)


@njit(parallel=True, cache=True)
def _products(a, a_step, a_shape, a_t, b, b_step, b_shape, b_t, shares, out):
    """out[i] = op(A_i) @ op(B_i), A_i matrix i of (a, a_step, a_shape) and op the transpose
    where flagged."""
    n = out.shape[0]
    for share in prange(shares):
        for i in range(n * share // shares, n * (share + 1) // shares):
            ai = _matrix(a, a_step, i, a_shape[0], a_shape[1])
            bi = _matrix(b, b_step, i, b_shape[0], b_shape[1])
            if a_t and b_t:
                numpy.dot(ai.T, bi.T, out[i])
            elif a_t:
                numpy.dot(ai.T, bi, out[i])
            elif b_t:
                numpy.dot(ai, bi.T, out[i])
            else:
                numpy.dot(ai, bi, out[i])


def _operand(x):
    """(flat, step, matrix shape, transposed) with matrix i of x equal to
    flat[i step : i step + size] reshaped (and transposed when flagged): a view of x when its
    matrices, or their transposes, are C-contiguous and equally spaced, else of a copy."""
    for m, transposed in ((x, False), (x.transpose(0, 2, 1), True)):
        step, item = m.strides[0], m.itemsize
        if m[0].flags.c_contiguous and step >= 0 and step % item == 0:
            step = step // item if m.shape[0] > 1 else 0
            span = step * (m.shape[0] - 1) + m.shape[1] * m.shape[2]
            return as_strided(m, shape=(span,), strides=(item,)), step, m.shape[1:], transposed
    return _operand(numpy.ascontiguousarray(x))


def matmul(a, b, shares):
    """numpy.matmul of two non-empty 3-D float stacks of one dtype with equal stack lengths
    (or one of length 1), in ``shares`` parallel shares; BLAS must be single-threaded (the
    caller's ``threads.single_threaded_blas``)."""
    out = numpy.empty((max(a.shape[0], b.shape[0]), a.shape[1], b.shape[2]), dtype=a.dtype)
    _products(*_operand(a), *_operand(b), shares, out)
    return out
