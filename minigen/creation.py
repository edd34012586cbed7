"""Tensor creation: ``mg.tensor`` and the zeros/ones/randn/rand factories."""
import numpy as np

from minigen import backend
from minigen.tensor import Tensor

DEFAULT_DTYPE = np.float32


def tensor(data, requires_grad=False, dtype=None, device=None):
    """A new Tensor from array-like ``data``.

    Python numbers and lists of floats become float32 (the default dtype); arrays keep their
    dtype unless ``dtype`` is given; ``device`` defaults to the data's own device.
    """
    if isinstance(data, Tensor):
        data = data.data
    if device is None:
        device = backend.device_of(data)
    xp = backend.xp_for(device)
    if dtype is None and not hasattr(data, "dtype"):
        probe = np.asarray(data)
        dtype = DEFAULT_DTYPE if probe.dtype.kind == "f" else probe.dtype
    array = backend.to_device(data, device) if hasattr(data, "dtype") else xp.asarray(data)
    array = xp.array(array, dtype=dtype, copy=True)
    return Tensor(array, requires_grad=requires_grad)


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def _filled(fill, shape, dtype, device, requires_grad):
    xp = backend.xp_for(device)
    return Tensor(fill(xp, _shape(shape), dtype or DEFAULT_DTYPE), requires_grad=requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad=False):
    return _filled(lambda xp, s, d: xp.zeros(s, dtype=d), shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False):
    return _filled(lambda xp, s, d: xp.ones(s, dtype=d), shape, dtype, device, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False):
    """Standard normal samples from minigen's generator (see ``mg.manual_seed``)."""
    rng = backend.rng(device)
    return _filled(lambda xp, s, d: rng.standard_normal(s, dtype=d), shape, dtype, device, requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad=False):
    """Uniform samples on [0, 1) from minigen's generator."""
    rng = backend.rng(device)
    return _filled(lambda xp, s, d: rng.random(s, dtype=d), shape, dtype, device, requires_grad)
