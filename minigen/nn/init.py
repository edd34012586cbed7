"""Parameter initialisation with PyTorch's names and formulas (``torch.nn.init``).

Each function fills a tensor (or a raw array, e.g. ``m.weight.data``) in place under
``no_grad`` from minigen's generator and returns it. Fans follow PyTorch: for a weight of shape (out, in, *kernel), fan_in = in * prod(kernel)
and fan_out = out * prod(kernel) (a ConvTranspose2d weight (in, out, ...) is read the same
way, as PyTorch does). Gains (``calculate_gain``): 1 for linear/conv/sigmoid, 5/3 for tanh,
sqrt(2) for relu, sqrt(2 / (1 + a^2)) for leaky_relu with slope a (default 0.01), 3/4 for selu.

- Xavier/Glorot (Glorot & Bengio 2010, eq. 16): std = gain sqrt(2 / (fan_in + fan_out));
- Kaiming/He (He et al. 2015, eq. 10): std = gain / sqrt(fan), fan = fan_in or fan_out;
- the uniform forms draw U(-sqrt(3) std, sqrt(3) std), which has that std.
"""
import math

import numpy as np

from minigen.functional import inplace
from minigen.tensor import Tensor, no_grad

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for ``nonlinearity`` (PyTorch's table)."""
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def calculate_fan_in_and_fan_out(tensor):
    if tensor.ndim < 2:
        raise ValueError(
            f"fan in and fan out need a tensor with at least 2 dims, got shape {tensor.shape}"
        )
    receptive = int(np.prod(tensor.shape[2:]))
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(fill, tensor, *args):
    """``fill`` on ``tensor`` under no_grad; a raw array (PyTorch scripts pass
    ``m.weight.data``) is filled in place through a Tensor that shares its memory."""
    with no_grad():
        fill(tensor if isinstance(tensor, Tensor) else Tensor(tensor), *args)
    return tensor


def uniform_(tensor, a=0.0, b=1.0):
    return _fill(inplace.uniform_, tensor, a, b)


def normal_(tensor, mean=0.0, std=1.0):
    return _fill(inplace.normal_, tensor, mean, std)


def constant_(tensor, val):
    return _fill(inplace.fill_, tensor, val)


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def _xavier_std(tensor, gain):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def xavier_uniform_(tensor, gain=1.0):
    bound = math.sqrt(3.0) * _xavier_std(tensor, gain)
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    return normal_(tensor, 0.0, _xavier_std(tensor, gain))


def _kaiming_std(tensor, a, mode, nonlinearity):
    return calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))
