"""Convolutions (NCHW) and the spatial ops built on them: pooling, nearest upsampling.

Grouped and dilated convolutions are compositions, so every kernel flavour runs them: a
dilation d spreads the kernel out with d - 1 zeros between taps (a scatter into zeros,
whose adjoint is the strided slice), and ``groups`` convolves each slice of channels with
its slice of filters and concatenates the results. The kernels take one stride and one
padding for both axes; other geometries are compositions too: unequal or asymmetric
padding is an explicit ``pad`` first, unequal strides (sh, sw) a convolution at stride
gcd(sh, sw) whose output is then subsampled, and conv1d a conv2d over a unit height.
Pooling gathers its windows with one reshape when they tile the input and with kh * kw
strided slices when they overlap.

Three Functions close under differentiation (as in Chainer): ``Conv2d``, ``ConvTranspose2d``
and ``Conv2dGradW``; the backward of each is written with the other two, so gradients of any
order exist. Their raw computations are the kernels package's ``conv2d``,
``conv2d_grad_input`` (= a transposed convolution) and ``conv2d_grad_weight``: Numba kernels
on the CPU, Numba-CUDA on CuPy arrays, and the im2col + GEMM NumPy reference with
``MINIGEN_KERNELS=reference``.
"""
import math

import numpy as np

import kernels
from minigen import backend
from minigen.functional import ops
from minigen.tensor import Function, Tensor, as_tensor


def _int_arg(v, name):
    """An int, or a pair of equal ints (the kernels use one stride/padding for H and W)."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2 or v[0] != v[1]:
            raise ValueError(f"{name} must be an int or a pair of equal ints, got {v!r}")
        v = v[0]
    return int(v)


def kernel_hw(v, name):
    """(kh, kw) from an int or a pair."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _stride_pair(v, name):
    """(sh, sw) from an int or a pair of ints >= 1."""
    pair = kernel_hw(v, name)
    if min(pair) < 1:
        raise ValueError(f"{name} must be >= 1, got {v!r}")
    return pair


def _padding_widths(padding, kernel, dilation, stride, op):
    """(top, bottom, left, right) from an int, a pair, "valid" or "same" (PyTorch's: stride
    1, the extra pixel of an odd total on the bottom/right)."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError(f"{op}: padding='same' needs stride 1, got {stride}")
        total = [d * (k - 1) for d, k in zip(dilation, kernel)]
        return (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    ph, pw = kernel_hw(padding, f"{op}: padding")
    if min(ph, pw) < 0:
        raise ValueError(f"{op}: padding must be >= 0, got {padding!r}")
    return (ph, ph, pw, pw)


def _with_bias(y, b):
    """y + b per channel (on Numba's threads for NumPy arrays: :func:`kernels.add`)."""
    return y if b is None else kernels.add(y, b.reshape(1, -1, 1, 1))


class Conv2d(Function):
    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding

    def forward(self, x, w, b=None):
        return _with_bias(kernels.conv2d(x, w, self.stride, self.padding), b)

    def backward(self, gy):
        x, w = self.inputs[:2]
        gx = ConvTranspose2d(self.stride, self.padding, x.shape[2:])(gy, w) if x.requires_grad else None
        gw = Conv2dGradW(w.shape, self.stride, self.padding)(x, gy) if w.requires_grad else None
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, ops.sum(gy, axis=(0, 2, 3))


class ConvTranspose2d(Function):
    """The adjoint of Conv2d: weight (Cin, Cout, kh, kw) maps (N, Cin, H, W) to
    (N, Cout, *out_hw)."""

    def __init__(self, stride, padding, out_hw):
        self.stride, self.padding, self.out_hw = stride, padding, tuple(out_hw)

    def forward(self, x, w, b=None):
        out_shape = (x.shape[0], w.shape[1]) + self.out_hw
        return _with_bias(kernels.conv2d_grad_input(x, w, out_shape, self.stride, self.padding), b)

    def backward(self, gy):
        x, w = self.inputs[:2]
        gx = Conv2d(self.stride, self.padding)(gy, w) if x.requires_grad else None
        gw = Conv2dGradW(w.shape, self.stride, self.padding)(gy, x) if w.requires_grad else None
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, ops.sum(gy, axis=(0, 2, 3))


class Conv2dGradW(Function):
    """The weight gradient of conv2d(x, W) for output gradient gy, as a function of (x, gy)."""

    def __init__(self, w_shape, stride, padding):
        self.w_shape, self.stride, self.padding = tuple(w_shape), stride, padding

    def forward(self, x, gy):
        return kernels.conv2d_grad_weight(x, gy, self.w_shape, self.stride, self.padding)

    def backward(self, ggw):
        x, gy = self.inputs
        gx = ConvTranspose2d(self.stride, self.padding, x.shape[2:])(gy, ggw) if x.requires_grad else None
        ggy = Conv2d(self.stride, self.padding)(x, ggw) if gy.requires_grad else None
        return gx, ggy


def _check_conv(op, x, w, b, in_axis, groups=1):
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"{op}: expected 4-D input (N, C, H, W) and 4-D weight, got x {x.shape}, w {w.shape}")
    # conv2d's weight is (Cout, Cin / groups, ...), conv_transpose2d's (Cin, Cout / groups, ...)
    in_channels = w.shape[in_axis] * (groups if in_axis == 1 else 1)
    out_channels = w.shape[1 - in_axis] * (groups if in_axis == 0 else 1)
    if groups < 1 or x.shape[1] % groups or w.shape[0] % groups:
        raise ValueError(f"{op}: groups={groups} must divide the {x.shape[1]} input channels "
                         f"and the weight's dim 0 ({w.shape[0]})")
    if x.shape[1] != in_channels:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels but weight {w.shape} expects "
            f"{in_channels} (dim {in_axis} of the weight"
            f"{f' times groups={groups}' if in_axis == 1 else ''})"
        )
    if b is not None and b.shape != (out_channels,):
        raise ValueError(f"{op}: bias shape {b.shape} != ({out_channels},)")
    ops.same_float_dtype(op, input=x, weight=w, bias=b)


def dilate(w, dilation):
    """The kernel (..., kh, kw) spread out with ``dilation - 1`` zeros between its taps
    (an int, or (dh, dw)): conv2d with it is the dilated convolution (Yu & Koltun 2016)."""
    dh, dw = kernel_hw(dilation, "dilation")
    if min(dh, dw) < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation!r}")
    if (dh, dw) == (1, 1):
        return w
    kh, kw = w.shape[-2:]
    shape = w.shape[:-2] + ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    taps = (Ellipsis, slice(None, None, dh), slice(None, None, dw))
    return ops.GetItemGrad(taps, shape)(w)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation, NCHW; weight (Cout, Cin / groups, kh, kw). ``stride`` and
    ``dilation`` are ints or (H, W) pairs, ``padding`` an int, a pair, "valid" or "same";
    ``dilation`` spaces the kernel taps, ``groups`` splits the channels into independent
    convolutions (PyTorch's signature)."""
    x, w = as_tensor(x), as_tensor(w)
    b = None if b is None else as_tensor(b)
    (sh, sw), groups = _stride_pair(stride, "conv2d: stride"), int(groups)
    dilation = _stride_pair(dilation, "conv2d: dilation")
    top, bottom, left, right = _padding_widths(padding, w.shape[2:], dilation, (sh, sw), "conv2d")
    _check_conv("conv2d", x, w, b, 1, groups)
    w = dilate(w, dilation)
    kh, kw = w.shape[2:]
    if x.shape[2] + top + bottom < kh or x.shape[3] + left + right < kw:
        raise ValueError(f"conv2d: kernel {(kh, kw)} (dilation {dilation}) is larger than the "
                         f"padded input {x.shape[2:]} + {(top + bottom, left + right)}")
    pad = top
    if len({top, bottom, left, right}) > 1:
        x, pad = ops.pad(x, (left, right, top, bottom)), 0
    step = math.gcd(sh, sw)
    if groups == 1:
        y = Conv2d(step, pad)(*((x, w) if b is None else (x, w, b)))
    else:
        cin, cout = x.shape[1] // groups, w.shape[0] // groups
        y = ops.cat([Conv2d(step, pad)(x[:, g * cin:(g + 1) * cin], w[g * cout:(g + 1) * cout])
                     for g in range(groups)], axis=1)
        y = y if b is None else y + ops.reshape(b, (1, -1, 1, 1))
    return y if (sh, sw) == (step, step) else y[:, :, ::sh // step, ::sw // step]


def _single(v):
    """An int from an int or a 1-tuple (PyTorch's conv1d takes both)."""
    return v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else v


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation, NCL; weight (Cout, Cin / groups, k): conv2d over a unit
    height. ``padding`` is an int, "valid" or "same"."""
    x, w = as_tensor(x), as_tensor(w)
    if x.ndim != 3 or w.ndim != 3:
        raise ValueError(f"conv1d: expected 3-D input (N, C, L) and 3-D weight, got x {x.shape}, "
                         f"w {w.shape}")
    padding = padding if isinstance(padding, str) else (0, _single(padding))
    y = conv2d(ops.unsqueeze(x, 2), ops.unsqueeze(w, 2), b, (1, _single(stride)), padding,
               (1, _single(dilation)), groups)
    return ops.squeeze(y, 2)


def _transposed_pairs(x, w, stride, padding, output_padding):
    """Transposed convolution with the geometries the kernels lack, as compositions (w is
    already dilated): unequal strides insert (sh, sw) / g - 1 zeros between input pixels
    (the adjoint of conv2d's subsampling) and run at stride g = gcd(sh, sw); padding runs
    unpadded and crops, and output_padding beyond the crop is zero rows/columns (no tap
    reaches them)."""
    (sh, sw), (ph, pw), (oh, ow) = stride, padding, output_padding
    step = math.gcd(sh, sw)
    n, c, h, wd = x.shape
    if (sh, sw) != (step, step):
        spread = (n, c, (h - 1) * (sh // step) + 1, (wd - 1) * (sw // step) + 1)
        x = ops.GetItemGrad((Ellipsis, slice(None, None, sh // step), slice(None, None, sw // step)),
                            spread)(x)
    full = tuple((m - 1) * step + k for m, k in zip(x.shape[2:], w.shape[2:]))
    y = ConvTranspose2d(step, 0, full)(x, w)
    y = y[:, :, ph:full[0] - ph + min(oh, ph), pw:full[1] - pw + min(ow, pw)]
    return ops.pad(y, (0, max(0, ow - pw), 0, max(0, oh - ph)))


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed convolution (the adjoint of conv2d), NCHW; weight (Cin, Cout / groups,
    kh, kw). ``stride``, ``padding``, ``output_padding`` and ``dilation`` are ints or (H, W)
    pairs; ``dilation`` spreads the kernel as in conv2d; ``groups`` transposes each slice of
    channels with its slice of filters."""
    x, w = as_tensor(x), as_tensor(w)
    stride = _stride_pair(stride, "conv_transpose2d: stride")
    dilation = _stride_pair(dilation, "conv_transpose2d: dilation")
    padding = kernel_hw(padding, "conv_transpose2d: padding")
    output_padding = kernel_hw(output_padding, "conv_transpose2d: output_padding")
    groups = int(groups)
    _check_conv("conv_transpose2d", x, w, b, 0, groups)
    if min(padding) < 0:
        raise ValueError(f"conv_transpose2d: padding must be >= 0, got {padding}")
    if not all(0 <= o < max(s, d) for o, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"conv_transpose2d: output_padding {output_padding} must be in "
                         f"[0, max(stride, dilation)) per axis, stride {stride}, dilation {dilation}")
    w = dilate(w, dilation)
    out_hw = tuple((n - 1) * s - 2 * p + k + o for n, s, p, k, o in
                   zip(x.shape[2:], stride, padding, w.shape[2:], output_padding))
    if min(out_hw) < 1:
        raise ValueError(f"conv_transpose2d: output size {out_hw} is empty for input {x.shape}")
    # the kernels take one stride and padding, and output_padding < stride
    direct = len(set(stride)) == 1 and len(set(padding)) == 1 and max(output_padding) < stride[0]

    def transpose(xg, wg, *bias):
        if direct:
            return ConvTranspose2d(stride[0], padding[0], out_hw)(xg, wg, *bias)
        return _transposed_pairs(xg, wg, stride, padding, output_padding)

    if groups == 1 and direct:
        return transpose(x, w, *(() if b is None else (as_tensor(b),)))
    cin = x.shape[1] // groups
    y = ops.cat([transpose(x[:, g * cin:(g + 1) * cin], w[g * cin:(g + 1) * cin])
                 for g in range(groups)], axis=1)
    return y if b is None else y + ops.reshape(as_tensor(b), (1, -1, 1, 1))


def _pool_geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode):
    """(kernel, stride, padding, dilation, output size) per axis, PyTorch's arithmetic:
    Ho = floor_or_ceil((H + 2 padding - dilation (kh - 1) - 1) / stride) + 1, where
    ceil_mode drops a last window that would start in the right padding."""
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got {x.shape}")
    (k, s, p, d) = (kernel_hw(v, f"{op}: {name}") for v, name in (
        (kernel_size, "kernel_size"), (kernel_size if stride is None else stride, "stride"),
        (padding, "padding"), (dilation, "dilation")))
    if min(k + s + d) < 1 or min(p) < 0 or 2 * p[0] > k[0] or 2 * p[1] > k[1]:
        raise ValueError(f"{op}: need kernel_size, stride, dilation >= 1 and 0 <= padding <= "
                         f"kernel/2, got kernel {k}, stride {s}, padding {p}, dilation {d}")
    out = []
    for n, ki, si, pi, di in zip(x.shape[2:], k, s, p, d):
        span = n + 2 * pi - di * (ki - 1) - 1
        o = (-(-span // si) if ceil_mode else span // si) + 1
        if ceil_mode and (o - 1) * si >= n + pi:
            o -= 1
        out.append(o)
    if min(out) < 1:
        raise ValueError(f"{op}: kernel {k} (dilation {d}) does not fit the padded input "
                         f"{x.shape[2:]} + {p}")
    return k, s, p, d, tuple(out)


def _windows(x, geometry, fill):
    """The pooling windows of x (N, C, H, W) and the axes that index inside a window:
    (N, C, Ho, kh, Wo, kw) with axes (3, 5) when the windows tile the input (one reshape),
    else (N, C, Ho, Wo, kh * kw) with axis 4 (a stack of kh * kw strided slices). The
    padding, and the extra right/bottom cells a ceil-mode window reaches, are ``fill``."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (ho, wo) = geometry
    n, c, h, w = x.shape
    extra_h = max(0, (ho - 1) * sh + dh * (kh - 1) + 1 - (h + 2 * ph))
    extra_w = max(0, (wo - 1) * sw + dw * (kw - 1) + 1 - (w + 2 * pw))
    if ph or pw or extra_h or extra_w:
        x = ops.pad(x, (pw, pw + extra_w, ph, ph + extra_h), value=fill)
    if (sh, sw) == (kh, kw) and (dh, dw) == (1, 1):
        x = x[:, :, :ho * kh, :wo * kw] if x.shape[2:] != (ho * kh, wo * kw) else x
        return ops.reshape(x, (n, c, ho, kh, wo, kw)), (3, 5)
    taps = [x[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
            for i in range(kh) for j in range(kw)]
    return ops.stack(taps, axis=-1), (4,)


def _window_sizes(n, k, s, p, out, count_include_pad):
    """How many cells each avg-pool window averages along one axis (PyTorch's divisor):
    the window clipped to the padded input, or to the input itself without the padding."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, n + p)
    if not count_include_pad:
        start, end = np.maximum(start, 0), np.minimum(end, n)
    return end - start


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over kh x kw windows (stride defaults to the kernel size), PyTorch's options:
    zero padding counts in the mean unless ``count_include_pad=False``; ``ceil_mode`` keeps
    a last partial window (averaged over its cells inside the padded input);
    ``divisor_override`` divides every window sum by one number."""
    geometry = _pool_geometry("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    windows, axes = _windows(x, geometry, 0.0)
    (kh, kw), (sh, sw), (ph, pw), _, (ho, wo) = geometry
    if divisor_override is not None:
        return ops.sum(windows, axis=axes) * (1.0 / divisor_override)
    rows = _window_sizes(x.shape[2], kh, sh, ph, ho, count_include_pad)
    cols = _window_sizes(x.shape[3], kw, sw, pw, wo, count_include_pad)
    if (rows == kh).all() and (cols == kw).all():
        return ops.mean(windows, axis=axes)
    xp = backend.xp_of(x.data)
    scale = Tensor(xp.asarray(1.0 / np.outer(rows, cols), dtype=x.dtype))
    return ops.sum(windows, axis=axes) * scale


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Maximum over kh x kw windows (stride defaults to the kernel size; padding never wins;
    ``dilation`` spaces the window's taps, ``ceil_mode`` keeps a last partial window); tied
    maxima share the gradient equally (PyTorch gives it to one of them)."""
    geometry = _pool_geometry("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    windows, axes = _windows(x, geometry, -float("inf"))
    return ops.max(windows, axis=axes)


def upsample_nearest2d(x, scale):
    """Repeat each pixel ``scale`` times along H and W (an int, or a pair (rh, rw))."""
    if x.ndim != 4:
        raise ValueError(f"upsample_nearest2d: expected a 4-D input, got {x.shape}")
    rh, rw = kernel_hw(scale, "upsample_nearest2d: scale")
    n, c, h, w = x.shape
    y = ops.broadcast_to(ops.reshape(x, (n, c, h, 1, w, 1)), (n, c, h, rh, w, rw))
    return ops.reshape(y, (n, c, h * rh, w * rw))
