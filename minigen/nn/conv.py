"""Convolution layers (NCHW), initialised as PyTorch's: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
for weight and bias (``kaiming_uniform_bound``)."""
from minigen import functional as F
from minigen.creation import DEFAULT_DTYPE
from minigen.functional.conv import kernel_hw
from minigen.nn.layers import kaiming_uniform_bound, uniform
from minigen.nn.module import Module


class Conv2d(Module):
    """2-D cross-correlation; weight (out_channels, in_channels, kh, kw), fan_in = in*kh*kw."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 dtype=DEFAULT_DTYPE, device="cpu"):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = kernel_hw(kernel_size, "Conv2d: kernel_size")
        self.stride, self.padding = stride, padding
        kh, kw = self.kernel_size
        bound = kaiming_uniform_bound(in_channels * kh * kw)
        self.weight = uniform((out_channels, in_channels, kh, kw), bound, dtype, device)
        self.bias = uniform((out_channels,), bound, dtype, device) if bias else None

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")


class ConvTranspose2d(Module):
    """Transposed convolution; weight (in_channels, out_channels, kh, kw). PyTorch computes
    fan_in from the weight's dim 1, so here fan_in = out_channels*kh*kw."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, bias=True, dtype=DEFAULT_DTYPE, device="cpu"):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = kernel_hw(kernel_size, "ConvTranspose2d: kernel_size")
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        kh, kw = self.kernel_size
        bound = kaiming_uniform_bound(out_channels * kh * kw)
        self.weight = uniform((in_channels, out_channels, kh, kw), bound, dtype, device)
        self.bias = uniform((out_channels,), bound, dtype, device) if bias else None

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, "
                f"output_padding={self.output_padding}, bias={self.bias is not None}")
