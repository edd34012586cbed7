"""Sorting and selection: sort, argsort, topk. The indices come from the array module (no
gradient); the values are ``gather(x, dim, indices)``, so their gradient scatters back to
the positions the values came from."""
from collections import namedtuple

from minigen import backend
from minigen.functional import ops
from minigen.tensor import Tensor, as_tensor

SortResult = namedtuple("SortResult", ["values", "indices"])


def _order(x, axis, descending):
    """Stable argsort along ``axis`` (equal elements keep their order, in both directions)."""
    xp = backend.xp_of(x.data)
    data = x.data.astype(int) if x.dtype.kind == "b" else x.data
    if descending:
        data = -data if x.dtype.kind in "fi" else xp.iinfo(data.dtype).max - data
    return xp.argsort(data, axis=axis, kind="stable")


def _axis(op, x, dim):
    return ops.normalize_axis(dim, x.ndim, op)[0] if x.ndim else 0


def argsort(x, dim=-1, descending=False, stable=False):
    """Indices that sort x along ``dim`` (an int64 tensor); the sort is always stable."""
    x = as_tensor(x)
    if x.ndim == 0:
        return Tensor(backend.xp_of(x.data).zeros((), dtype="int64"))
    return Tensor(_order(x, _axis("argsort", x, dim), descending))


def sort(x, dim=-1, descending=False, stable=False):
    """(values, indices) of x sorted along ``dim``; the values are differentiable."""
    x = as_tensor(x)
    if x.ndim == 0:
        return SortResult(x, argsort(x))
    axis = _axis("sort", x, dim)
    index = _order(x, axis, descending)
    return SortResult(ops.gather(x, axis, index), Tensor(index))


def topk(x, k, dim=-1, largest=True, sorted=True):
    """(values, indices) of the ``k`` largest (``largest=False``: smallest) elements along
    ``dim``, in sorted order."""
    x = as_tensor(x)
    axis = _axis("topk", x, dim)
    n = x.shape[axis] if x.ndim else 1
    if not 0 <= k <= n:
        raise ValueError(f"topk: k={k} is out of range for a dim of size {n}")
    if x.ndim == 0:
        return SortResult(x, argsort(x))
    index = _order(x, axis, largest)[(slice(None),) * axis + (slice(0, k),)]
    return SortResult(ops.gather(x, axis, index), Tensor(index))
