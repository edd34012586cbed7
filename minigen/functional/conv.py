"""Convolutions (NCHW) and the spatial ops built on them: pooling, nearest upsampling.

Grouped and dilated convolutions are compositions, so every kernel flavour runs them: a
dilation d spreads the kernel out with d - 1 zeros between taps (a scatter into zeros,
whose adjoint is the strided slice), and ``groups`` convolves each slice of channels with
its slice of filters and concatenates the results. Pooling gathers its windows with one
reshape when they tile the input and with kh * kw strided slices when they overlap.

Three Functions close under differentiation (as in Chainer): ``Conv2d``, ``ConvTranspose2d``
and ``Conv2dGradW``; the backward of each is written with the other two, so gradients of any
order exist. Their raw computations are the kernels package's ``conv2d``,
``conv2d_grad_input`` (= a transposed convolution) and ``conv2d_grad_weight``: Numba kernels
on the CPU, Numba-CUDA on CuPy arrays, and the im2col + GEMM NumPy reference with
``MINIGEN_KERNELS=reference``.
"""

import kernels
from minigen.functional import ops
from minigen.tensor import Function, as_tensor


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


def _check_conv(op, x, w, b, in_axis, stride, padding, groups=1):
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"{op}: expected 4-D input (N, C, H, W) and 4-D weight, got x {x.shape}, w {w.shape}")
    if groups < 1 or x.shape[1] % groups or w.shape[1 - in_axis] % groups:
        raise ValueError(f"{op}: groups={groups} must divide the {x.shape[1]} input and "
                         f"{w.shape[1 - in_axis]} output channels")
    if x.shape[1] != w.shape[in_axis] * groups:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels but weight {w.shape} expects "
            f"{w.shape[in_axis] * groups} (dim {in_axis} of the weight times groups={groups})"
        )
    out_channels = w.shape[1 - in_axis]
    if b is not None and b.shape != (out_channels,):
        raise ValueError(f"{op}: bias shape {b.shape} != ({out_channels},)")
    if stride < 1 or padding < 0:
        raise ValueError(f"{op}: stride must be >= 1 and padding >= 0, got {stride}, {padding}")
    ops.same_float_dtype(op, input=x, weight=w, bias=b)


def dilate(w, dilation):
    """The kernel (..., kh, kw) spread out with ``dilation - 1`` zeros between its taps:
    conv2d with it is the dilated convolution (Yu & Koltun 2016)."""
    if dilation == 1:
        return w
    kh, kw = w.shape[-2:]
    shape = w.shape[:-2] + ((kh - 1) * dilation + 1, (kw - 1) * dilation + 1)
    taps = (Ellipsis, slice(None, None, dilation), slice(None, None, dilation))
    return ops.GetItemGrad(taps, shape)(w)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation, NCHW; weight (Cout, Cin / groups, kh, kw). ``dilation`` spaces
    the kernel taps; ``groups`` splits the channels into independent convolutions (PyTorch's
    signature; one stride, padding and dilation for H and W)."""
    x, w = as_tensor(x), as_tensor(w)
    b = None if b is None else as_tensor(b)
    stride, padding = _int_arg(stride, "conv2d: stride"), _int_arg(padding, "conv2d: padding")
    dilation, groups = _int_arg(dilation, "conv2d: dilation"), int(groups)
    if dilation < 1:
        raise ValueError(f"conv2d: dilation must be >= 1, got {dilation}")
    _check_conv("conv2d", x, w, b, 1, stride, padding, groups)
    w = dilate(w, dilation)
    kh, kw = w.shape[2:]
    if x.shape[2] + 2 * padding < kh or x.shape[3] + 2 * padding < kw:
        raise ValueError(f"conv2d: kernel {(kh, kw)} (dilation {dilation}) is larger than the "
                         f"padded input {x.shape[2:]} + {padding}")
    if groups == 1:
        return Conv2d(stride, padding)(*((x, w) if b is None else (x, w, b)))
    cin, cout = x.shape[1] // groups, w.shape[0] // groups
    y = ops.cat([Conv2d(stride, padding)(x[:, g * cin:(g + 1) * cin], w[g * cout:(g + 1) * cout])
                 for g in range(groups)], axis=1)
    return y if b is None else y + ops.reshape(b, (1, -1, 1, 1))


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0):
    """Transposed convolution (the adjoint of conv2d), NCHW; weight (Cin, Cout, kh, kw)."""
    x, w = as_tensor(x), as_tensor(w)
    stride = _int_arg(stride, "conv_transpose2d: stride")
    padding = _int_arg(padding, "conv_transpose2d: padding")
    output_padding = _int_arg(output_padding, "conv_transpose2d: output_padding")
    _check_conv("conv_transpose2d", x, w, b, 0, stride, padding)
    if not 0 <= output_padding < stride:
        raise ValueError(f"conv_transpose2d: output_padding {output_padding} must be in [0, stride {stride})")
    out_hw = tuple((n - 1) * stride - 2 * padding + k + output_padding for n, k in zip(x.shape[2:], w.shape[2:]))
    if min(out_hw) < 1:
        raise ValueError(f"conv_transpose2d: output size {out_hw} is empty for input {x.shape}")
    inputs = (x, w) if b is None else (x, w, as_tensor(b))
    return ConvTranspose2d(stride, padding, out_hw)(*inputs)


def _windows(op, x, kernel_size, stride, padding, fill):
    """The pooling windows of x (N, C, H, W) and the axes that index inside a window:
    (N, C, Ho, kh, Wo, kw) with axes (3, 5) when the windows tile the input (one reshape),
    else (N, C, Ho, Wo, kh * kw) with axis 4 (a stack of kh * kw strided slices).
    Ho = (H + 2 padding - kh) // stride + 1 (PyTorch's floor mode); the padding is ``fill``."""
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got {x.shape}")
    (kh, kw), (sh, sw), (ph, pw) = (kernel_hw(v, f"{op}: {name}") for v, name in (
        (kernel_size, "kernel_size"), (kernel_size if stride is None else stride, "stride"),
        (padding, "padding")))
    if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0 or 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"{op}: need kernel_size and stride >= 1 and 0 <= padding <= kernel/2, "
                         f"got kernel {(kh, kw)}, stride {(sh, sw)}, padding {(ph, pw)}")
    n, c, h, w = x.shape
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"{op}: kernel {(kh, kw)} does not fit the padded input {(h, w)} + {(ph, pw)}")
    if ph or pw:
        x = ops.pad(x, (pw, pw, ph, ph), value=fill)
    if (sh, sw) == (kh, kw):
        x = x[:, :, :ho * kh, :wo * kw] if x.shape[2:] != (ho * kh, wo * kw) else x
        return ops.reshape(x, (n, c, ho, kh, wo, kw)), (3, 5)
    taps = [x[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
            for i in range(kh) for j in range(kw)]
    return ops.stack(taps, axis=-1), (4,)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over kh x kw windows (stride defaults to the kernel size); zero padding counts
    in the mean (PyTorch's count_include_pad=True)."""
    windows, axes = _windows("avg_pool2d", x, kernel_size, stride, padding, 0.0)
    return ops.mean(windows, axis=axes)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Maximum over kh x kw windows (stride defaults to the kernel size; padding never wins);
    tied maxima share the gradient equally (PyTorch gives it to one of them)."""
    windows, axes = _windows("max_pool2d", x, kernel_size, stride, padding, -float("inf"))
    return ops.max(windows, axis=axes)


def upsample_nearest2d(x, scale):
    """Repeat each pixel ``scale`` times along H and W."""
    if x.ndim != 4:
        raise ValueError(f"upsample_nearest2d: expected a 4-D input, got {x.shape}")
    n, c, h, w = x.shape
    y = ops.broadcast_to(ops.reshape(x, (n, c, h, 1, w, 1)), (n, c, h, scale, w, scale))
    return ops.reshape(y, (n, c, h * scale, w * scale))
