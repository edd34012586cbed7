"""Convolution layers (NCHW), initialised as PyTorch's: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
for weight and bias (``kaiming_uniform_bound``). Constructor arguments are PyTorch's, in
PyTorch's order."""
import math

from minigen import functional as F
from minigen.creation import DEFAULT_DTYPE
from minigen.functional.conv import kernel_hw
from minigen.nn.layers import kaiming_uniform_bound, uniform
from minigen.nn.module import Module


_PADDING_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
                  "circular": "circular"}


def _check_padding_mode(who, mode, allowed=("zeros",)):
    if mode not in allowed:
        raise ValueError(f"{who}: padding_mode must be one of {list(allowed)}, got {mode!r}")


def _extras(dilation, groups):
    """The keyword arguments beyond PyTorch's common ones, passed only when not the default
    (``F.conv2d`` raises on those its kernels lack)."""
    return {k: v for k, v in (("dilation", dilation), ("groups", groups)) if v != 1}


class _ConvNd(Module):
    """Cross-correlation over ``dims`` spatial axes; weight (out_channels, in_channels /
    groups, *kernel_size), fan_in = in / groups * prod(kernel_size). A ``padding_mode``
    other than "zeros" pads explicitly (``F.pad``) and convolves without padding."""

    dims, conv = 2, None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device="cpu", dtype=DEFAULT_DTYPE):
        who = type(self).__name__
        _check_padding_mode(who, padding_mode, tuple(_PADDING_MODES))
        if padding_mode != "zeros" and isinstance(padding, str):
            raise ValueError(f"{who}: padding_mode={padding_mode!r} needs numeric padding, got {padding!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = (kernel_hw(kernel_size, f"{who}: kernel_size") if self.dims == 2 else
                            (int(kernel_size[0] if isinstance(kernel_size, (tuple, list)) else kernel_size),))
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.padding_mode = padding_mode
        bound = kaiming_uniform_bound(in_channels // groups * math.prod(self.kernel_size))
        self.weight = uniform((out_channels, in_channels // groups) + self.kernel_size, bound, dtype, device)
        self.bias = uniform((out_channels,), bound, dtype, device) if bias else None

    def forward(self, x):
        padding = self.padding
        if self.padding_mode != "zeros":
            pairs = padding if isinstance(padding, (tuple, list)) else (padding,) * self.dims
            x = F.pad(x, [w for p in reversed(pairs) for w in (p, p)], mode=_PADDING_MODES[self.padding_mode])
            padding = 0
        return type(self).conv(x, self.weight, self.bias, self.stride, padding,
                               **_extras(self.dilation, self.groups))

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")


class Conv2d(_ConvNd):
    """2-D cross-correlation (NCHW); weight (out_channels, in_channels / groups, kh, kw)."""

    dims, conv = 2, F.conv2d


class Conv1d(_ConvNd):
    """1-D cross-correlation (NCL); weight (out_channels, in_channels / groups, k)."""

    dims, conv = 1, F.conv1d


class ConvTranspose2d(Module):
    """Transposed convolution; weight (in_channels, out_channels, kh, kw). PyTorch computes
    fan_in from the weight's dim 1, so here fan_in = out_channels*kh*kw."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device="cpu", dtype=DEFAULT_DTYPE):
        _check_padding_mode("ConvTranspose2d", padding_mode)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = kernel_hw(kernel_size, "ConvTranspose2d: kernel_size")
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        self.dilation, self.groups = dilation, groups
        kh, kw = self.kernel_size
        bound = kaiming_uniform_bound(out_channels // groups * kh * kw)
        self.weight = uniform((in_channels, out_channels // groups, kh, kw), bound, dtype, device)
        self.bias = uniform((out_channels,), bound, dtype, device) if bias else None

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, **_extras(self.dilation, self.groups))

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, "
                f"output_padding={self.output_padding}, bias={self.bias is not None}")
