"""Tensor creation: ``mg.tensor``, ``from_numpy`` and the factories with PyTorch's names
(zeros/ones/randn/rand/empty, their ``*_like`` forms, full, full_like, eye, randint,
arange, linspace, bernoulli)."""
import numpy as np

from minigen import backend
from minigen.tensor import DEFAULT_DTYPE, Tensor


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


def _like(make):
    def like(x, dtype=None, device=None, requires_grad=False):
        return make(x.shape, dtype=dtype or x.dtype, device=device or x.device,
                    requires_grad=requires_grad)

    like.__name__ = like.__qualname__ = f"{make.__name__}_like"
    like.__doc__ = f"``{make.__name__}`` with the shape, dtype and device of ``x`` (unless given)."
    return like


def empty(*shape, dtype=None, device=None, requires_grad=False):
    """PyTorch's uninitialised tensor, here filled with zeros (reproducible, and a read
    before the write cannot leak old memory)."""
    return zeros(*shape, dtype=dtype, device=device, requires_grad=requires_grad)


zeros_like, ones_like, randn_like, rand_like, empty_like = (
    _like(f) for f in (zeros, ones, randn, rand, empty))


def _python_dtype(*values):
    """PyTorch's dtype for Python numbers: bool, int64, else the default float dtype."""
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return np.bool_
    if all(isinstance(v, (int, np.integer)) for v in values):
        return np.int64
    return DEFAULT_DTYPE


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    """A tensor of shape ``size`` filled with ``fill_value`` (dtype from the value, as PyTorch)."""
    dtype = dtype or _python_dtype(fill_value)
    return _filled(lambda xp, s, d: xp.full(s, fill_value, dtype=d), (size,), dtype, device,
                   requires_grad)


def full_like(x, fill_value, dtype=None, device=None, requires_grad=False):
    """``full`` with the shape, dtype and device of ``x`` (unless given)."""
    return full(x.shape, fill_value, dtype=dtype or x.dtype, device=device or x.device,
                requires_grad=requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    """The n x m identity matrix (m defaults to n)."""
    return _filled(lambda xp, s, d: xp.eye(n, n if m is None else m, dtype=d), ((),), dtype,
                   device, requires_grad)


def randint(*args, size=None, dtype=np.int64, device=None):
    """PyTorch's ``randint(low=0, high, size)``: integers uniform on [low, high)."""
    if size is None and args and isinstance(args[-1], (tuple, list)):
        *args, size = args
    if size is None or len(args) not in (1, 2):
        raise TypeError("randint: expected randint(high, size) or randint(low, high, size)")
    low, high = (0, args[0]) if len(args) == 1 else args
    if not high > low:
        raise ValueError(f"randint: need low < high, got low={low}, high={high}")
    rng = backend.rng(device)
    return _filled(lambda xp, s, d: rng.integers(low, high, size=s, dtype=d), (size,), dtype,
                   device, False)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """``[start, end)`` by ``step`` (``arange(n)`` is 0..n-1); int64 for integer arguments,
    else the default float dtype."""
    if end is None:
        start, end = 0, start
    dtype = dtype or _python_dtype(start, end, step)
    return _filled(lambda xp, s, d: xp.arange(start, end, step, dtype=d), ((),), dtype, device,
                   requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    return _filled(lambda xp, s, d: xp.linspace(start, end, steps, dtype=d), ((),), dtype, device,
                   requires_grad)


def from_numpy(array):
    """A Tensor sharing memory with the NumPy ``array`` (its dtype kept, float64 included)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)


def bernoulli(p):
    """Samples of Bernoulli(p) for each probability in ``p`` (0 or 1, ``p``'s dtype and
    device; no gradient), from minigen's generator."""
    p = p if isinstance(p, Tensor) else Tensor(p)
    if p.dtype.kind != "f":
        raise TypeError(f"bernoulli: probabilities must be floating point, got dtype {p.dtype}")
    draws = backend.rng(p.device).random(p.shape)
    return Tensor((draws < p.data).astype(p.dtype))
