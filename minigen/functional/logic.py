"""Boolean results without gradient: isnan/isinf/isfinite and the any/all reductions."""
from minigen import backend
from minigen.functional import ops
from minigen.functional.dims import either
from minigen.tensor import Tensor, as_tensor


def isnan(x):
    """True where x is NaN (a bool tensor)."""
    x = as_tensor(x)
    return Tensor(backend.xp_of(x.data).isnan(x.data))


def isinf(x):
    """True where x is +inf or -inf."""
    x = as_tensor(x)
    return Tensor(backend.xp_of(x.data).isinf(x.data))


def isfinite(x):
    """True where x is neither NaN nor infinite."""
    x = as_tensor(x)
    return Tensor(backend.xp_of(x.data).isfinite(x.data))


def _truth(reduce, x, dim, keepdim, axis, keepdims):
    x = as_tensor(x)
    axes = ops.normalize_axis(either(reduce, "dim", dim, "axis", axis), x.ndim, reduce)
    keep = either(reduce, "keepdim", keepdim, "keepdims", keepdims, default=False)
    return Tensor(getattr(x.data.astype(bool), reduce)(axis=axes, keepdims=keep))


def any(x, dim=None, keepdim=None, *, axis=None, keepdims=None):
    """True where some element along ``dim`` (all dims when None) is nonzero."""
    return _truth("any", x, dim, keepdim, axis, keepdims)


def all(x, dim=None, keepdim=None, *, axis=None, keepdims=None):
    """True where every element along ``dim`` (all dims when None) is nonzero."""
    return _truth("all", x, dim, keepdim, axis, keepdims)
