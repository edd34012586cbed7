"""Masked and scattered writes, triangles and diagonals (PyTorch's meaning): masked_fill,
scatter, scatter_add, tril, triu, diag. Each is a ``where`` or a scatter into zeros
(``GetItemGrad``, the adjoint of indexing), so gradients of any order follow from the core
ops: a scattered source gets its gradient gathered back from the same positions."""
import numpy as np

from minigen import backend
from minigen.functional import ops
from minigen.tensor import Tensor, as_tensor


def _mask(mask, xp):
    return xp.asarray(mask.data if isinstance(mask, Tensor) else mask, dtype=bool)


def _broadcast_shape(*shapes):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        return None


def masked_fill(x, mask, value):
    """x with ``value`` where ``mask`` (broadcast to x) is True; x keeps its dtype, and a
    0-d tensor ``value`` gets the sum of the gradient over the filled positions."""
    x = as_tensor(x)
    xp = backend.xp_of(x.data)
    mask = _mask(mask, xp)
    if _broadcast_shape(mask.shape, x.shape) != x.shape:
        raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast to {x.shape}")
    value = ops.cast(value, x.dtype) if isinstance(value, Tensor) else Tensor(xp.asarray(value, x.dtype))
    return ops.where(xp.broadcast_to(mask, x.shape), value, x)


def _scattered(op, x, dim, index, src):
    """(hit mask, src placed at the index positions in zeros of x's shape)."""
    axis, grid = ops.index_grid(op, x, dim, index)
    xp = backend.xp_of(x.data)
    shape = grid[axis].shape
    if isinstance(src, Tensor):
        if src.ndim != x.ndim or any(m > n for m, n in zip(shape, src.shape)):
            raise ValueError(f"{op}: src of shape {src.shape} is smaller than index {shape}")
        src = ops.getitem(ops.cast(src, x.dtype), tuple(slice(0, n) for n in shape))
    else:
        src = Tensor(xp.full(shape, src, dtype=x.dtype))
    hit = xp.zeros(x.shape, dtype=bool)
    hit[grid] = True
    return hit, ops.GetItemGrad(grid, x.shape)(src)


def scatter(x, dim, index, src=None, *, value=None):
    """out = x, then out[..., index[i, j], ...] = src[i, j] along ``dim`` (PyTorch's
    ``scatter``; ``value`` instead of ``src`` writes one number). Indices must not repeat
    (PyTorch leaves which write wins undefined)."""
    if (src is None) == (value is None):
        raise TypeError("scatter: give exactly one of src and value")
    x = as_tensor(x)
    hit, placed = _scattered("scatter", x, dim, index, value if src is None else src)
    return ops.where(hit, placed, x)


def scatter_add(x, dim, index, src):
    """out = x, then out[..., index[i, j], ...] += src[i, j] along ``dim`` (repeated indices
    accumulate)."""
    x = as_tensor(x)
    return x + _scattered("scatter_add", x, dim, index, as_tensor(src))[1]


def _triangle(op, keep, x, diagonal):
    x = as_tensor(x)
    if x.ndim < 2:
        raise ValueError(f"{op}: expects a tensor with at least 2 dims, got {x.shape}")
    xp = backend.xp_of(x.data)
    rows, cols = x.shape[-2:]
    mask = keep(xp.ones((rows, cols), dtype=bool), diagonal)
    return ops.where(mask, x, Tensor(xp.zeros((), dtype=x.dtype)))


def tril(x, diagonal=0):
    """The lower triangle of the last two dims (on and below ``diagonal``), zeros above."""
    return _triangle("tril", lambda m, k: backend.xp_of(m).tril(m, k), x, diagonal)


def triu(x, diagonal=0):
    """The upper triangle of the last two dims (on and above ``diagonal``), zeros below."""
    return _triangle("triu", lambda m, k: backend.xp_of(m).triu(m, k), x, diagonal)


def diag(x, diagonal=0):
    """A 1-D x becomes a square matrix with x on diagonal ``diagonal``; a 2-D x gives that
    diagonal as a 1-D tensor (PyTorch's ``diag``)."""
    x = as_tensor(x)
    xp = backend.xp_of(x.data)
    row, col = (0, diagonal) if diagonal >= 0 else (-diagonal, 0)
    if x.ndim == 1:
        n = x.shape[0] + abs(diagonal)
        i = xp.arange(x.shape[0])
        return ops.GetItemGrad((i + row, i + col), (n, n))(x)
    if x.ndim == 2:
        i = xp.arange(max(0, min(x.shape[0] - row, x.shape[1] - col)))
        return ops.getitem(x, (i + row, i + col))
    raise ValueError(f"diag: expects a 1-D or 2-D tensor, got {x.shape}")
