"""``F.pad`` in all of PyTorch's modes. Constant padding is ``ops.pad``; the other modes
put copies of edge slices of x beside it along each padded axis (one ``cat`` of basic
slices, whose gradient adds the copies back):

- reflect: mirror without repeating the edge (positions -1, -2 read 1, 2), width < n;
- replicate: the edge value repeated, n >= 1;
- circular: wrap around (position -1 reads n - 1), width <= n.
"""
from minigen.functional import ops
from minigen.tensor import as_tensor


def _sides(mode, x, axis, lo, hi):
    """The (left, right) blocks that pad ``x`` by lo and hi along ``axis``."""
    n = x.shape[axis]

    def cut(a, b):
        return x[(slice(None),) * axis + (slice(a, b),)]

    if mode == "reflect":
        return ops.flip(cut(1, lo + 1), axis), ops.flip(cut(n - 1 - hi, n - 1), axis)
    if mode == "circular":
        return cut(n - lo, n), cut(0, hi)
    shape = list(x.shape)
    edges = []
    for width, edge in ((lo, cut(0, 1)), (hi, cut(n - 1, n))):
        shape[axis] = width
        edges.append(ops.broadcast_to(edge, tuple(shape)))
    return tuple(edges)


_LIMIT = {"reflect": ("widths < the size", lambda w, n: w < n),
          "circular": ("widths <= the size", lambda w, n: w <= n),
          "replicate": ("a non-empty axis, size", lambda w, n: n > 0)}


def pad(x, pad, mode="constant", value=None):
    """PyTorch's ``F.pad``: ``pad`` = (left, right) for the last axis, then (top, bottom) for
    the one before, and so on; ``mode`` is "constant" (with ``value``, default 0), "reflect",
    "replicate" or "circular"."""
    x = as_tensor(x)
    if mode == "constant":
        return ops.pad(x, pad, value=0.0 if value is None else value)
    if mode not in _LIMIT:
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', "
                         f"got {mode!r}")
    if value not in (None, 0, 0.0):
        raise ValueError(f"pad: value={value} only applies to mode='constant', not {mode!r}")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim or min(pad, default=0) < 0:
        raise ValueError(f"pad: needs pairs of widths >= 0 for at most {x.ndim} axes, got {pad}")
    need, fits = _LIMIT[mode]
    for k in range(len(pad) // 2):
        lo, hi = pad[2 * k], pad[2 * k + 1]
        axis = x.ndim - 1 - k
        n = x.shape[axis]
        if not (fits(lo, n) and fits(hi, n)):
            raise ValueError(f"pad: {mode} padding needs {need} ({n}) of axis {axis}, "
                             f"got widths ({lo}, {hi})")
        if lo or hi:
            left, right = _sides(mode, x, axis, lo, hi)
            x = ops.cat([left, x, right], axis)
    return x
