"""``F.pad`` in all of PyTorch's modes. Constant padding is ``ops.pad``; the other modes
read each padded position from a source position of the same axis, so they are one integer
index per padded axis (``getitem``, whose gradient adds the copies back):

- reflect: mirror without repeating the edge (positions -1, -2 read 1, 2), width < n;
- replicate: the edge value (clip to [0, n - 1]);
- circular: wrap around (position mod n), width <= n.
"""
from minigen import backend
from minigen.functional import ops
from minigen.tensor import as_tensor


def _source(mode, lo, hi, n, xp):
    """The source position of each of the lo + n + hi output positions along one axis."""
    i = xp.arange(-lo, n + hi)
    if mode == "replicate":
        return xp.clip(i, 0, n - 1)
    if mode == "circular":
        return i % n
    period = 2 * (n - 1)
    j = i % period if period else i * 0
    return xp.where(j < n, j, period - j)


_LIMIT = {"reflect": ("<", lambda w, n: w < n), "circular": ("<=", lambda w, n: w <= n),
          "replicate": ("<=", lambda w, n: n > 0)}


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
    xp = backend.xp_of(x.data)
    sign, fits = _LIMIT[mode]
    for k in range(len(pad) // 2):
        lo, hi = pad[2 * k], pad[2 * k + 1]
        axis = x.ndim - 1 - k
        n = x.shape[axis]
        if not (fits(lo, n) and fits(hi, n)):
            raise ValueError(f"pad: {mode} padding needs widths {sign} the size ({n}) of axis "
                             f"{axis}, got ({lo}, {hi})")
        if lo or hi:
            x = ops.getitem(x, (slice(None),) * axis + (_source(mode, lo, hi, n, xp),))
    return x
