"""Pooling layers with PyTorch's constructors: ``MaxPool2d``, ``AvgPool2d``, over
``F.max_pool2d`` / ``F.avg_pool2d``. Options left at PyTorch's defaults are not passed on, so
an option the functional form lacks fails by name, not silently."""
from minigen import functional as F
from minigen.nn.module import Module


class _Pool2d(Module):
    pool = None
    defaults = {}

    def __init__(self, kernel_size, stride=None, padding=0, **options):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.options = {k: v for k, v in options.items() if v != self.defaults[k]}

    def forward(self, x):
        return type(self).pool(x, self.kernel_size, self.stride, self.padding, **self.options)

    def extra_repr(self):
        extra = "".join(f", {k}={v}" for k, v in self.options.items())
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}{extra}"


class MaxPool2d(_Pool2d):
    pool = F.max_pool2d
    defaults = {"dilation": 1, "ceil_mode": False}

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        if return_indices:
            raise ValueError("MaxPool2d: return_indices=True is not supported")
        super().__init__(kernel_size, stride, padding, dilation=dilation, ceil_mode=ceil_mode)


class AvgPool2d(_Pool2d):
    pool = F.avg_pool2d
    defaults = {"ceil_mode": False, "count_include_pad": True, "divisor_override": None}

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__(kernel_size, stride, padding, ceil_mode=ceil_mode,
                         count_include_pad=count_include_pad, divisor_override=divisor_override)
