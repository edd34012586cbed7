"""PyTorch's keyword names beside NumPy's: ``dim`` (or ``dims``) for ``axis`` and ``keepdim``
for ``keepdims``, wherever PyTorch takes them.

Called with PyTorch's ``dim``, a name means what PyTorch means by it, so a ported line never
computes something else silently: ``max``/``min`` return ``(values, indices)``, ``var``/``std``
are unbiased unless ``correction`` (or ``unbiased``) says otherwise, ``squeeze`` leaves an axis
longer than 1 alone. With ``axis`` (or positionally) the NumPy meaning stays, as
docs/semantics.md states.
"""
import collections
import functools

_UNSET = object()

#: ``x.max(dim=...)``'s result, as PyTorch's ``torch.return_types.max``.
ValuesIndices = collections.namedtuple("ValuesIndices", ["values", "indices"])


def accept_dim(fn, pytorch=None):
    """``fn`` also taking ``dim``/``dims``/``keepdim``; when ``dim`` is given and ``pytorch``
    is, the call goes to ``pytorch(*args, dim=..., keepdim=..., **kwargs)`` instead."""

    @functools.wraps(fn)
    def wrapper(*args, dim=_UNSET, dims=_UNSET, keepdim=_UNSET, **kwargs):
        if dim is _UNSET and dims is _UNSET and keepdim is _UNSET:
            return fn(*args, **kwargs)
        dim = dims if dim is _UNSET else dim
        if dim is not _UNSET and "axis" in kwargs:
            raise TypeError(f"{fn.__name__}: give dim or axis, not both")
        if keepdim is not _UNSET and "keepdims" in kwargs:
            raise TypeError(f"{fn.__name__}: give keepdim or keepdims, not both")
        if dim is not _UNSET and pytorch is not None:
            return pytorch(*args, dim=dim, keepdim=keepdim is not _UNSET and keepdim, **kwargs)
        if dim is not _UNSET:
            kwargs["axis"] = dim
        if keepdim is not _UNSET:
            kwargs["keepdims"] = keepdim
        return fn(*args, **kwargs)

    return wrapper


def with_indices(values, indices):
    """PyTorch's ``max(dim)``/``min(dim)``: the values and the indices along ``dim``."""
    def reduce(x, dim, keepdim):
        return ValuesIndices(values(x, axis=dim, keepdims=keepdim),
                             indices(x, axis=dim, keepdims=keepdim))
    return reduce


def unbiased(spread):
    """PyTorch's ``var(dim)``/``std(dim)``: Bessel's correction unless told otherwise."""
    def reduce(x, dim, keepdim, correction=None, unbiased=True, ddof=None):
        if ddof is None:
            ddof = (1 if unbiased else 0) if correction is None else correction
        return spread(x, axis=dim, keepdims=keepdim, ddof=ddof)
    return reduce


def squeeze_if_one(squeeze):
    """PyTorch's ``squeeze(dim)``: removes the listed axes of length 1, leaves the others."""
    def reduce(x, dim, keepdim):
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        ones = tuple(d for d in dims if x.shape[d] == 1)
        return squeeze(x, axis=ones) if ones else x
    return reduce
