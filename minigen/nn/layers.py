"""Basic layers: Linear, activations as modules, Dropout, Identity, Flatten, and the
containers Sequential, ModuleList, ModuleDict.

Constructors take PyTorch's arguments in PyTorch's order; ``inplace=True`` is accepted and
ignored (minigen never overwrites an activation's input: backward may need it).
"""
import math
from collections import OrderedDict

from minigen import backend
from minigen import functional as F
from minigen.creation import DEFAULT_DTYPE
from minigen.nn.module import Module, Parameter


def uniform(shape, bound, dtype=DEFAULT_DTYPE, device="cpu"):
    """Parameter with entries ~ U(-bound, bound) from minigen's generator."""
    xp = backend.xp_for(device)
    data = backend.rng(device).uniform(-bound, bound, size=shape)
    return Parameter(xp.asarray(data, dtype=dtype or DEFAULT_DTYPE))


def kaiming_uniform_bound(fan_in):
    """PyTorch's default init for Linear/Conv weights: kaiming_uniform(a=sqrt(5)), i.e.
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)); biases use the same bound."""
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


class Linear(Module):
    def __init__(self, in_features, out_features, bias=True, device="cpu", dtype=DEFAULT_DTYPE):
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

    def __init__(self, inplace=False):
        self.inplace = inplace

    def forward(self, x):
        return type(self).fn(x)


class ReLU(_Activation):
    fn = F.relu


class SiLU(_Activation):
    fn = F.silu


class Tanh(_Activation):
    fn = F.tanh

    def __init__(self):
        super().__init__()


class Sigmoid(_Activation):
    fn = F.sigmoid

    def __init__(self):
        super().__init__()


class GELU(_Activation):
    """GELU as ``F.gelu``: the exact erf form by default, ``approximate="tanh"`` for the
    tanh approximation (PyTorch's signature and default)."""

    def __init__(self, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)


class ReLU6(_Activation):
    fn = F.relu6


class SELU(_Activation):
    fn = F.selu


class Softsign(_Activation):
    fn = F.softsign

    def __init__(self):
        super().__init__()


class Hardsigmoid(_Activation):
    fn = F.hardsigmoid


class Hardswish(_Activation):
    fn = F.hardswish


class Mish(_Activation):
    fn = F.mish


class CELU(Module):
    def __init__(self, alpha=1.0, inplace=False):
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x):
        return F.celu(x, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01, inplace=False):
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Upsample(Module):
    """``F.interpolate`` as a layer (PyTorch's arguments): nearest, linear or bilinear
    resizing to ``size`` or by ``scale_factor``."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self.align_corners, self.recompute_scale_factor = align_corners, recompute_scale_factor

    def forward(self, x):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)

    def extra_repr(self):
        scale = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{scale}, mode={self.mode!r}"


class Dropout(Module):
    def __init__(self, p=0.5, inplace=False):
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Identity(Module):
    """Returns its input; any constructor arguments are ignored (as PyTorch)."""

    def __init__(self, *args, **kwargs):
        pass

    def forward(self, x):
        return x


class Flatten(Module):
    """Flattens dims ``start_dim`` .. ``end_dim`` into one (default: all but the batch dim)."""

    def __init__(self, start_dim=1, end_dim=-1):
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        start, end = self.start_dim % max(x.ndim, 1), self.end_dim % max(x.ndim, 1)
        if start > end:
            raise ValueError(f"Flatten: start_dim {self.start_dim} is after end_dim "
                             f"{self.end_dim} for a {x.ndim}-d input")
        return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


# --- containers: items named "0", "1", ... (or by key), as in PyTorch's state dicts ------------
class _Container(Module):
    def __init__(self):
        self._items = OrderedDict()

    def _members(self):
        return iter(self._items.items())

    def __getattr__(self, name):  # getattr(seq, "0"), as for PyTorch's registered modules
        items = self.__dict__.get("_items", {})
        if name in items:
            return items[name]
        return super().__getattr__(name)

    def __len__(self):
        return len(self._items)

    def _check(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: {type(module).__name__} is not a Module")
        return module


class _IndexedContainer(_Container):
    """Items kept in order, indexed by position (negative too) or slice."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        self._items[str(len(self._items))] = self._check(module)
        return self

    def _key(self, i):
        keys = list(self._items)
        if not -len(keys) <= i < len(keys):
            raise IndexError(f"{type(self).__name__}: index {i} out of range for {len(keys)} modules")
        return keys[i]

    def __getitem__(self, i):
        items = list(self._items.values())
        if isinstance(i, slice):
            return type(self)(*items[i]) if type(self) is Sequential else type(self)(items[i])
        return self._items[self._key(i)]

    def __setitem__(self, i, module):
        self._items[self._key(i)] = self._check(module)

    def __iter__(self):
        return iter(self._items.values())


class Sequential(_IndexedContainer):
    """Calls its modules in order. ``Sequential(a, b)`` names them "0", "1";
    ``Sequential(OrderedDict(name=module, ...))`` by the given names."""

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], dict):
            _Container.__init__(self)
            for name, m in layers[0].items():
                self._items[str(name)] = self._check(m)
        else:
            super().__init__(layers)

    def forward(self, x):
        for layer in self._items.values():
            x = layer(x)
        return x


class ModuleList(_IndexedContainer):
    """A list of modules whose parameters the parent finds (PyTorch's ``nn.ModuleList``);
    plain Python lists of modules work too."""

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self


class ModuleDict(_Container):
    """A dict of modules keyed by string, in insertion order (PyTorch's ``nn.ModuleDict``)."""

    def __init__(self, modules=None):
        super().__init__()
        for name, m in dict(modules or {}).items():
            self[name] = m

    def __getitem__(self, name):
        return self._items[name]

    def __setitem__(self, name, module):
        self._items[str(name)] = self._check(module)

    def __contains__(self, name):
        return name in self._items

    def __iter__(self):
        return iter(self._items)

    def keys(self):
        return self._items.keys()

    def values(self):
        return self._items.values()

    def items(self):
        return self._items.items()
