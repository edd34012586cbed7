"""Argument checks shared by every kernel flavour, run once in the dispatch layer.

Each check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong
shape or value) with a message that starts with the kernel's name and names the offending
argument. The flavours (``reference``, ``cpu``, ``cuda``) trust their inputs; callers that
bypass :mod:`kernels` dispatch must pass valid, C-contiguous arrays themselves.

Contiguity policy: input arrays are made C-contiguous by the dispatcher (a copy only when
needed, see :func:`contiguous`); an ``out`` array is written in place, so a non-contiguous
``out`` is rejected rather than silently copied.
"""
import numbers

import numpy

from .arrays import array_module, is_cupy

FLOAT_DTYPES = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))


def _is_array(x):
    return isinstance(x, numpy.ndarray) or is_cupy(x)


def arrays(kernel, **named):
    """Check that every named argument is a NumPy or CuPy array; return their array module.

    NumPy and CuPy arrays cannot be mixed: the data of one call lives on one device.
    """
    if all(type(x) is numpy.ndarray for x in named.values()):
        return numpy  # the common case, checked first: this runs on every kernel call
    modules = {}
    for name, x in named.items():
        if not _is_array(x):
            raise TypeError(
                f"{kernel}: {name} must be a numpy or cupy array, got {type(x).__name__}"
            )
        modules.setdefault(array_module(x).__name__, []).append(name)
    if len(modules) > 1:
        found = "; ".join(f"{module}: {', '.join(names)}" for module, names in modules.items())
        raise TypeError(f"{kernel}: cannot mix numpy and cupy arrays ({found})")
    return array_module(next(iter(named.values())))


def floating(kernel, **named):
    """Check that all named arrays share one float32/float64 dtype; return that dtype."""
    first = next(iter(named.values())).dtype
    if first in FLOAT_DTYPES and all(x.dtype == first for x in named.values()):
        return numpy.dtype(first)
    dtypes = {name: numpy.dtype(x.dtype) for name, x in named.items()}
    for name, dtype in dtypes.items():
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"{kernel}: {name} must be float32 or float64, got dtype {dtype}")
    if len(set(dtypes.values())) > 1:
        found = ", ".join(f"{name}={dtype}" for name, dtype in dtypes.items())
        raise TypeError(f"{kernel}: dtypes differ ({found}); all data arrays must share one dtype")
    return next(iter(dtypes.values()))


def same_shape(kernel, reference_name, reference, **named):
    """Check that every named array has the shape of ``reference``."""
    for name, x in named.items():
        if x.shape != reference.shape:
            raise ValueError(
                f"{kernel}: {name} has shape {x.shape}, expected {reference_name}'s shape "
                f"{reference.shape}"
            )


def batched(kernel, name, x):
    """Check that ``x`` has a leading batch axis; return the batch size."""
    if x.ndim < 1:
        raise ValueError(f"{kernel}: {name} must have a batch axis, got a 0-d array")
    return x.shape[0]


def _host_or(kernel, name, x, xp):
    """Check that ``x`` is a NumPy array or an array of the data's module ``xp``."""
    if not _is_array(x):
        raise TypeError(f"{kernel}: {name} must be a numpy or cupy array, got {type(x).__name__}")
    if is_cupy(x) and xp is numpy:
        raise TypeError(f"{kernel}: {name} is a cupy array but the data are numpy arrays")


def tables(kernel, xp, **named):
    """Check the per-timestep coefficient tables: 1-D, floating, one common length T >= 1.

    Tables may be NumPy arrays even when the data are CuPy arrays (schedules live on the
    host); the flavours move and cast them. Returns T.
    """
    lengths = {}
    for name, table in named.items():
        _host_or(kernel, name, table, xp)
        if table.ndim != 1 or table.shape[0] == 0:
            raise ValueError(
                f"{kernel}: {name} must be a non-empty 1-D table, got shape {table.shape}"
            )
        if numpy.dtype(table.dtype).kind != "f":
            raise TypeError(f"{kernel}: {name} must be a floating table, got dtype {table.dtype}")
        lengths[name] = table.shape[0]
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{kernel}: tables have different lengths {lengths}")
    return next(iter(lengths.values()))


def timesteps(kernel, t, batch, T, xp):
    """Check ``t``: a 1-D integer array of length ``batch`` with values in [0, T), on the host
    or on the data's device."""
    _host_or(kernel, "t", t, xp)
    if numpy.dtype(t.dtype).kind not in "iu":
        raise TypeError(f"{kernel}: t must have an integer dtype, got {t.dtype}")
    if t.shape != (batch,):
        raise ValueError(f"{kernel}: t must have shape (batch,) = ({batch},), got {t.shape}")
    if batch:
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= T:
            raise ValueError(f"{kernel}: t must lie in [0, {T}), got values in [{lo}, {hi}]")


def out_array(kernel, out, shape, dtype, xp):
    """Check a caller-provided ``out``: same module, shape and dtype, C-contiguous."""
    if out is None:
        return
    if not _is_array(out) or array_module(out) is not xp:
        raise TypeError(f"{kernel}: out must be a {xp.__name__} array, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{kernel}: out has shape {out.shape}, expected {tuple(shape)}")
    if numpy.dtype(out.dtype) != dtype:
        raise TypeError(f"{kernel}: out has dtype {out.dtype}, expected {dtype}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{kernel}: out must be C-contiguous (it is written in place)")


def clip_value(kernel, clip):
    """Check the x0 clipping bound: None or a finite real number > 0."""
    if clip is None:
        return
    if isinstance(clip, bool) or not isinstance(clip, numbers.Real):
        raise TypeError(f"{kernel}: clip must be None or a real number, got {type(clip).__name__}")
    if not numpy.isfinite(clip) or clip <= 0:
        raise ValueError(f"{kernel}: clip must be a finite number > 0, got {clip}")


def integer(kernel, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{kernel}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{kernel}: {name} must be >= {minimum}, got {value}")
    return int(value)


def conv_geometry(kernel, x_shape, w_shape, stride, padding):
    """Check a convolution's shapes and hyper-parameters; return the output shape.

    ``x_shape`` is (N, C, H, W), ``w_shape`` is (Cout, C, kh, kw); the output is
    (N, Cout, Ho, Wo) with Ho = (H + 2 padding - kh) // stride + 1 (likewise Wo).
    """
    stride = integer(kernel, "stride", stride, 1)
    padding = integer(kernel, "padding", padding, 0)
    if len(x_shape) != 4:
        raise ValueError(f"{kernel}: input must be 4-D (N, C, H, W), got shape {tuple(x_shape)}")
    if len(w_shape) != 4:
        raise ValueError(
            f"{kernel}: weight must be 4-D (Cout, C, kh, kw), got shape {tuple(w_shape)}"
        )
    n, c, h, w = x_shape
    cout, cw, kh, kw = w_shape
    if c != cw:
        raise ValueError(
            f"{kernel}: input has {c} channels but weight expects {cw} "
            f"(input {tuple(x_shape)}, weight {tuple(w_shape)})"
        )
    if min(kh, kw) < 1:
        raise ValueError(f"{kernel}: kernel size must be >= 1, got weight shape {tuple(w_shape)}")
    if kh > h + 2 * padding or kw > w + 2 * padding:
        raise ValueError(
            f"{kernel}: kernel {kh}x{kw} is larger than the padded input "
            f"{h + 2 * padding}x{w + 2 * padding} (input {tuple(x_shape)}, padding {padding})"
        )
    return (n, cout, (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1)


def shape_tuple(kernel, name, shape):
    """Check that ``shape`` is a tuple of 4 non-negative ints; return it as a tuple."""
    if not isinstance(shape, (tuple, list)) or len(shape) != 4:
        raise ValueError(f"{kernel}: {name} must be a 4-tuple of ints, got {shape!r}")
    return tuple(integer(kernel, name, s, 0) for s in shape)


def contiguous(xp, *xs):
    """C-contiguous versions of the arrays: the same objects when already contiguous (0-d
    arrays stay 0-d, which ``ascontiguousarray`` would make 1-d)."""
    return tuple(x if x.flags.c_contiguous else xp.ascontiguousarray(x) for x in xs)


def number(kernel, name, value, valid, description):
    """Check that ``value`` is a real number (not a bool) for which ``valid(value)`` holds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{kernel}: {name} must be a real number, got {value!r}")
    if not valid(value):
        raise ValueError(f"{kernel}: {name} must be {description}, got {value}")


def writable(kernel, **named):
    """Check that arrays updated in place are C-contiguous (a copy would lose the update)."""
    for name, x in named.items():
        if not x.flags.c_contiguous:
            raise ValueError(f"{kernel}: {name} must be C-contiguous (it is updated in place)")
