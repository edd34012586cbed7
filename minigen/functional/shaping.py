"""Shape ops with PyTorch's meaning, each a composition of the core ops (so their
gradients, of any order, come from reshape, broadcast_to, getitem and cat): repeat,
repeat_interleave, split, chunk, roll, unflatten, meshgrid."""
import builtins
import math

import numpy as np

from minigen import backend
from minigen.functional import ops
from minigen.functional.dims import either
from minigen.tensor import Tensor, as_tensor


def _sizes(args):
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


def repeat(x, *sizes):
    """Tile x: ``sizes[i]`` copies along dim i (PyTorch's ``Tensor.repeat``, NumPy's
    ``tile``); extra leading sizes add dims. Each dim of size n becomes (r, n) by
    broadcasting, then one reshape merges the pairs."""
    x = as_tensor(x)
    sizes = tuple(int(r) for r in _sizes(sizes))
    if len(sizes) < x.ndim or builtins.min(sizes, default=0) < 0:
        raise ValueError(f"repeat: needs at least {x.ndim} non-negative sizes, got {sizes}")
    shape = (1,) * (len(sizes) - x.ndim) + x.shape
    paired = ops.reshape(x, tuple(v for n in shape for v in (1, n)))
    tiled = ops.broadcast_to(paired, tuple(v for r, n in zip(sizes, shape) for v in (r, n)))
    return ops.reshape(tiled, tuple(r * n for r, n in zip(sizes, shape)))


def repeat_interleave(x, repeats, dim=None, *, axis=None):
    """Repeat each element ``repeats`` times along ``dim`` (an int, or one count per
    element); dim None flattens first (PyTorch's and NumPy's ``repeat``)."""
    x = as_tensor(x)
    dim = either("repeat_interleave", "dim", dim, "axis", axis)
    if dim is None:
        x, dim = ops.reshape(x, (-1,)), 0
    (dim,) = ops.normalize_axis(dim, x.ndim, "repeat_interleave")
    if isinstance(repeats, (int, np.integer)) and repeats >= 0:  # (n,) -> (n, r) by broadcasting
        r, shape = int(repeats), x.shape
        paired = ops.broadcast_to(ops.unsqueeze(x, dim + 1), shape[:dim + 1] + (r,) + shape[dim + 1:])
        return ops.reshape(paired, shape[:dim] + (shape[dim] * r,) + shape[dim + 1:])
    counts = backend.to_numpy(repeats) if isinstance(repeats, Tensor) else np.asarray(repeats)
    if counts.dtype.kind not in "iu" or counts.ndim > 1 or (counts < 0).any():
        raise ValueError(f"repeat_interleave: repeats must be non-negative integers, got {repeats!r}")
    index = np.repeat(np.arange(x.shape[dim]), counts)  # built on the host (CuPy's repeat takes no array)
    return ops.getitem(x, (slice(None),) * dim + (backend.xp_of(x.data).asarray(index),))


def _slices(x, dim, sizes):
    head, start, parts = (slice(None),) * dim, 0, []
    for n in sizes:
        parts.append(ops.getitem(x, head + (slice(start, start + n),)))
        start += n
    return tuple(parts)


def split(x, split_size_or_sections, dim=0):
    """Pieces of x along ``dim``: of ``split_size`` each (the last may be shorter), or of
    the listed sizes, which must add up to the dim's length (PyTorch's ``split``)."""
    x = as_tensor(x)
    (dim,) = ops.normalize_axis(dim, x.ndim, "split")
    n = x.shape[dim]
    if isinstance(split_size_or_sections, (tuple, list)):
        sizes = [int(s) for s in split_size_or_sections]
        if builtins.sum(sizes) != n or builtins.min(sizes, default=0) < 0:
            raise ValueError(f"split: sizes {sizes} do not add up to the dim's length {n}")
    else:
        size = int(split_size_or_sections)
        if size < 1:
            raise ValueError(f"split: split_size must be >= 1, got {size}")
        sizes = [builtins.min(size, n - s) for s in range(0, n, size)] or [0]
    return _slices(x, dim, sizes)


def chunk(x, chunks, dim=0):
    """x split into at most ``chunks`` pieces of ceil(n / chunks) along ``dim`` (PyTorch's
    ``chunk``: fewer pieces when the sizes run out)."""
    if int(chunks) < 1:
        raise ValueError(f"chunk: chunks must be >= 1, got {chunks}")
    x = as_tensor(x)
    (axis,) = ops.normalize_axis(dim, x.ndim, "chunk")
    return split(x, builtins.max(1, math.ceil(x.shape[axis] / int(chunks))), axis)


def roll(x, shifts, dims=None):
    """Shift elements along ``dims`` by ``shifts``, wrapping around (dims None: the
    flattened tensor, reshaped back); each roll is a cat of two slices."""
    x = as_tensor(x)
    if dims is None:
        return ops.reshape(roll(ops.reshape(x, (-1,)), shifts, 0), x.shape)
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts) != len(dims):
        raise ValueError(f"roll: {len(shifts)} shifts for {len(dims)} dims")
    for shift, d in zip(shifts, dims):
        (d,) = ops.normalize_axis(d, x.ndim, "roll")
        n = x.shape[d]
        s = shift % n if n else 0
        if s:
            x = ops.cat(_slices(x, d, (n - s, s))[::-1], d)
    return x


def unflatten(x, dim, sizes):
    """Split dim ``dim`` into ``sizes`` (one of them may be -1): the inverse of flatten."""
    x = as_tensor(x)
    (dim,) = ops.normalize_axis(dim, x.ndim, "unflatten")
    sizes = tuple(int(s) for s in sizes)
    known = int(np.prod([s for s in sizes if s != -1]))
    if sizes.count(-1) > 1 or (-1 not in sizes and known != x.shape[dim]) or (
            -1 in sizes and (known == 0 or x.shape[dim] % known)):
        raise ValueError(f"unflatten: sizes {sizes} do not fill dim {dim} of length {x.shape[dim]}")
    return ops.reshape(x, x.shape[:dim] + sizes + x.shape[dim + 1:])


def meshgrid(*tensors, indexing="ij"):
    """Coordinate grids from 1-D tensors: output i varies along axis i (``indexing="ij"``,
    PyTorch's default) or with the first two axes exchanged (``"xy"``, NumPy's default)."""
    tensors = [as_tensor(t) for t in _sizes(tensors)]
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    if builtins.any(t.ndim > 1 for t in tensors):
        raise ValueError(f"meshgrid: expects 0-D or 1-D tensors, got {[t.shape for t in tensors]}")
    tensors = [ops.reshape(t, (-1,)) for t in tensors]
    axes = list(range(len(tensors)))
    if indexing == "xy" and len(axes) >= 2:
        axes[0], axes[1] = 1, 0
    shape = [0] * len(tensors)
    for t, a in zip(tensors, axes):
        shape[a] = t.shape[0]
    return tuple(ops.broadcast_to(ops.reshape(t, tuple(n if i == a else 1 for i, n in enumerate(shape))),
                                  tuple(shape)) for t, a in zip(tensors, axes))
