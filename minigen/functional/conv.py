"""Convolutions (NCHW) and the spatial ops built on them: pooling, nearest upsampling.

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
    return y if b is None else y + b.reshape(1, -1, 1, 1)


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


def _check_conv(op, x, w, b, in_axis, stride, padding):
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"{op}: expected 4-D input (N, C, H, W) and 4-D weight, got x {x.shape}, w {w.shape}")
    if x.shape[1] != w.shape[in_axis]:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels but weight {w.shape} expects "
            f"{w.shape[in_axis]} (dim {in_axis} of the weight)"
        )
    out_channels = w.shape[1 - in_axis]
    if b is not None and b.shape != (out_channels,):
        raise ValueError(f"{op}: bias shape {b.shape} != ({out_channels},)")
    if stride < 1 or padding < 0:
        raise ValueError(f"{op}: stride must be >= 1 and padding >= 0, got {stride}, {padding}")
    if x.dtype != w.dtype:
        raise TypeError(f"{op}: input dtype {x.dtype} != weight dtype {w.dtype}")


def conv2d(x, w, b=None, stride=1, padding=0):
    """2-D cross-correlation, NCHW; weight (Cout, Cin, kh, kw)."""
    x, w = as_tensor(x), as_tensor(w)
    stride, padding = _int_arg(stride, "conv2d: stride"), _int_arg(padding, "conv2d: padding")
    _check_conv("conv2d", x, w, b, 1, stride, padding)
    kh, kw = w.shape[2:]
    if x.shape[2] + 2 * padding < kh or x.shape[3] + 2 * padding < kw:
        raise ValueError(f"conv2d: kernel {(kh, kw)} is larger than the padded input {x.shape[2:]} + {padding}")
    inputs = (x, w) if b is None else (x, w, as_tensor(b))
    return Conv2d(stride, padding)(*inputs)


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


def _check_pool(op, x, k):
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got {x.shape}")
    if x.shape[2] % k or x.shape[3] % k:
        raise ValueError(f"{op}: spatial size {x.shape[2:]} is not divisible by kernel {k}")


def avg_pool2d(x, k):
    """Mean over non-overlapping k x k windows (stride k)."""
    _check_pool("avg_pool2d", x, k)
    n, c, h, w = x.shape
    return ops.mean(ops.reshape(x, (n, c, h // k, k, w // k, k)), axis=(3, 5))


def max_pool2d(x, k):
    """Maximum over non-overlapping k x k windows (stride k)."""
    _check_pool("max_pool2d", x, k)
    n, c, h, w = x.shape
    return ops.max(ops.reshape(x, (n, c, h // k, k, w // k, k)), axis=(3, 5))


def upsample_nearest2d(x, scale):
    """Repeat each pixel ``scale`` times along H and W."""
    if x.ndim != 4:
        raise ValueError(f"upsample_nearest2d: expected a 4-D input, got {x.shape}")
    n, c, h, w = x.shape
    y = ops.broadcast_to(ops.reshape(x, (n, c, h, 1, w, 1)), (n, c, h, scale, w, scale))
    return ops.reshape(y, (n, c, h * scale, w * scale))
