"""Linear interpolation: ``lerp`` between two tensors, and ``interpolate``, which resizes
images along each spatial axis by nearest or (bi)linear interpolation.

``interpolate`` handles one axis at a time (bilinear is linear along H, then along W). For
an output position o on an axis of input length n and output length m, the source
coordinate is (PyTorch's ``area_pixel_compute_source_index``):

- nearest: floor(o * s), s = 1 / scale_factor when a scale is given, else n / m;
- linear, align_corners=True: o (n - 1) / (m - 1), so the corner pixels' centres align;
- linear, align_corners=False: (o + 1/2) s - 1/2, clamped at 0 (pixel areas align).

Linear mixes the two neighbours floor(c) and floor(c) + 1 (clamped to n - 1) with weights
1 - t and t, t = c - floor(c). Either way the resize of one axis is a linear map, an m x n
matrix R with those weights in each row, applied with ``matmul`` (R x along H, x R^T along
W), so its gradient is R^T times the output gradient. Nearest resizing by integer factors
(m = r n) is a plain repeat (``upsample_nearest2d`` for both axes of an image).
"""
import math

import numpy as np

from minigen import backend
from minigen.functional import ops
from minigen.functional.conv import upsample_nearest2d
from minigen.functional.shaping import repeat_interleave
from minigen.tensor import Tensor, as_tensor


def lerp(start, end, weight):
    """start + weight (end - start): a number or tensor ``weight`` (PyTorch's ``lerp``)."""
    start, end = ops.promote(as_tensor(start), as_tensor(end))
    return start + weight * (end - start)


def _axis_sizes(op, x, size, scale_factor):
    spatial = x.shape[2:]
    k = len(spatial)
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor")
    if size is not None:
        sizes = tuple(size) if isinstance(size, (tuple, list)) else (size,) * k
        scales = (None,) * k
    else:
        scales = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * k
        sizes = tuple(int(math.floor(n * s)) for n, s in zip(spatial, scales))
    if len(sizes) != k or len(scales) != k or min(sizes) < 1:
        raise ValueError(f"{op}: size {size} / scale_factor {scale_factor} do not give {k} "
                         f"positive output sizes for input {x.shape}")
    return sizes, scales


def _resize_matrix(n, m, scale, mode, align_corners):
    """The m x n matrix that resizes one axis from n to m samples (float64)."""
    s = 1.0 / scale if scale is not None else n / m
    o = np.arange(m, dtype=np.float64)
    rows, matrix = np.arange(m), np.zeros((m, n))
    if mode == "nearest":
        matrix[rows, np.minimum(np.floor(o * s).astype(np.int64), n - 1)] = 1.0
        return matrix
    if align_corners:
        c = o * ((n - 1) / (m - 1)) if m > 1 else o * 0
    else:
        c = np.maximum((o + 0.5) * s - 0.5, 0.0)
    lo = np.minimum(np.floor(c).astype(np.int64), n - 1)
    t = c - lo
    np.add.at(matrix, (rows, lo), 1.0 - t)
    np.add.at(matrix, (rows, np.minimum(lo + 1, n - 1)), t)
    return matrix


def _repeats(n, m, scale, mode):
    """r when resizing n samples to m = r n is a plain repeat (nearest), else None."""
    if mode == "nearest" and m % n == 0 and (scale is None or scale == m // n):
        return m // n
    return None


def _resize_axis(x, axis, m, scale, mode, align_corners):
    n = x.shape[axis]
    if _repeats(n, m, scale, mode):
        return repeat_interleave(x, m // n, axis)
    matrix = _resize_matrix(n, m, scale, mode, align_corners)
    r = Tensor(backend.xp_of(x.data).asarray(matrix, dtype=x.dtype))
    return ops.matmul(x, ops.transpose(r)) if axis == x.ndim - 1 else ops.matmul(r, x)


_MODES = {"nearest": 1, "linear": 1, "bilinear": 2}


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None):
    """Resize (N, C, L) or (N, C, H, W) to ``size`` or by ``scale_factor`` (an int, float or
    one per spatial axis), with PyTorch's ``F.interpolate`` arithmetic: modes "nearest",
    "linear" (3-D), "bilinear" (4-D); ``align_corners`` for the linear modes (default False).
    ``recompute_scale_factor=True`` uses n / m instead of the given scale."""
    x = as_tensor(input)
    if mode not in _MODES:
        raise ValueError(f"interpolate: mode must be one of {sorted(_MODES)}, got {mode!r}")
    if x.ndim not in (3, 4) or (mode != "nearest" and x.ndim != 2 + _MODES[mode]):
        raise ValueError(f"interpolate: mode {mode!r} does not take an input of shape {x.shape}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("interpolate: align_corners only applies to the linear modes")
    sizes, scales = _axis_sizes("interpolate", x, size, scale_factor)
    if recompute_scale_factor:
        scales = (None,) * len(scales)
    if x.dtype.kind != "f":
        raise TypeError(f"interpolate: expects a float tensor, got {x.dtype}")
    repeats = [_repeats(n, m, scale, mode) for n, m, scale in zip(x.shape[2:], sizes, scales)]
    if x.ndim == 4 and None not in repeats:  # both axes at once: one broadcast
        return upsample_nearest2d(x, tuple(repeats))
    for axis, (m, scale) in enumerate(zip(sizes, scales), start=2):
        if m != x.shape[axis] or scale not in (None, 1):
            x = _resize_axis(x, axis, m, scale, mode, bool(align_corners))
    return x
