"""Basic layers: Linear, activations as modules, Sequential, Dropout."""
import math

from minigen import backend
from minigen import functional as F
from minigen.creation import DEFAULT_DTYPE
from minigen.nn.module import Module, Parameter


def uniform(shape, bound, dtype=DEFAULT_DTYPE, device="cpu"):
    """Parameter with entries ~ U(-bound, bound) from minigen's generator."""
    xp = backend.xp_for(device)
    data = backend.rng(device).uniform(-bound, bound, size=shape)
    return Parameter(xp.asarray(data, dtype=dtype))


def kaiming_uniform_bound(fan_in):
    """PyTorch's default init for Linear/Conv weights: kaiming_uniform(a=sqrt(5)), i.e.
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)); biases use the same bound."""
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


class Linear(Module):
    def __init__(self, in_features, out_features, bias=True, dtype=DEFAULT_DTYPE, device="cpu"):
        self.in_features, self.out_features = in_features, out_features
        bound = kaiming_uniform_bound(in_features)
        self.weight = uniform((out_features, in_features), bound, dtype, device)
        self.bias = uniform((out_features,), bound, dtype, device) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class _Activation(Module):
    fn = None

    def forward(self, x):
        return type(self).fn(x)


class ReLU(_Activation):
    fn = F.relu


class SiLU(_Activation):
    fn = F.silu


class GELU(_Activation):
    fn = F.gelu


class Tanh(_Activation):
    fn = F.tanh


class Sigmoid(_Activation):
    fn = F.sigmoid


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01):
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Dropout(Module):
    def __init__(self, p=0.5):
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Sequential(Module):
    def __init__(self, *layers):
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)
