"""The boundary of the diffusion samplers: each public entry of :class:`DDPM`, of the DDIM and
DPM-Solver++ samplers and of the editing methods checks and converts its arguments here, in
one step, so that the modules of the math read as the papers do.

Every check raises a one-line error that names the entry and the argument: ``InvalidInput``
(a ``ValueError``) for a bad value or shape, ``TypeError`` for a wrong kind of object.
"""
import numpy as np

from minigen import backend
from minigen.diffusion.schedule import NoiseSchedule
from minigen.errors import InvalidInput
from minigen.tensor import Tensor

VARIANCES = ("fixed_small", "fixed_large")
PREDICTIONS = ("eps", "x0", "v")


def raw(x):
    """The array behind ``x`` (a Tensor's data, anything else as it is)."""
    return x.data if isinstance(x, Tensor) else x


def check_config(schedule, variance, clip_x0, prediction):
    """The arguments of ``DDPM(model, schedule, variance, clip_x0, prediction)``."""
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"DDPM: schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    if variance not in VARIANCES:
        raise InvalidInput(f"DDPM: variance must be one of {VARIANCES}, got {variance!r}")
    if prediction not in PREDICTIONS:
        raise InvalidInput(f"DDPM: prediction must be one of {PREDICTIONS}, got {prediction!r}")
    if clip_x0 is not None and not (np.isfinite(clip_x0) and clip_x0 > 0):
        raise InvalidInput(f"DDPM: clip_x0 must be None or a positive number, got {clip_x0!r}")


def timesteps(t, x, T, fn):
    """``t`` as an int64 host array of shape (batch,) = (len(x),) in 0..T-1 (a scalar is
    broadcast)."""
    t = np.asarray(backend.to_numpy(t))
    if t.ndim == 0:
        t = np.full(x.shape[0], t)
    if t.dtype.kind not in "iu":
        raise TypeError(f"DDPM.{fn}: t must be integers, got dtype {t.dtype}")
    if t.shape != (x.shape[0],):
        raise InvalidInput(f"DDPM.{fn}: t must have shape (batch,) = ({x.shape[0]},), got "
                           f"{t.shape}")
    if t.size and (t.min() < 0 or t.max() >= T):
        raise InvalidInput(f"DDPM.{fn}: t must lie in [0, {T}), got values in "
                           f"[{t.min()}, {t.max()}]")
    return t.astype(np.int64, copy=False)


def noise(noise, x, seed, fn):
    """``noise`` as an array of x's shape and dtype; N(0, I) drawn from ``seed`` when None."""
    if noise is None:
        return generator(seed, backend.device_of(x)).standard_normal(x.shape, dtype=x.dtype)
    noise = raw(noise)
    if noise.shape != x.shape:
        raise InvalidInput(f"DDPM.{fn}: noise shape {noise.shape} != x shape {x.shape}")
    return noise.astype(x.dtype, copy=False)


def null_condition(model):
    """The condition that means "no condition" to ``model``: its ``null_condition`` array
    (e.g. the empty caption's token ids), else its null class ``num_classes``, else None."""
    null = getattr(model, "null_condition", None)
    return getattr(model, "num_classes", None) if null is None else np.asarray(null)


def labels(model, y, batch, guidance):
    """``y`` as (batch,) int64 host labels (an int is broadcast) of ``model``'s classes, or,
    for a model with a ``null_condition`` array, as (batch, *null_condition.shape) int64
    conditions (one row is broadcast); ``guidance`` >= 0; None stays None (the null
    condition)."""
    if not (np.isfinite(guidance) and guidance >= 0):
        raise InvalidInput(f"DDPM: guidance must be a number >= 0, got {guidance!r}")
    null = getattr(model, "null_condition", None)
    if null is not None:
        return None if y is None else _conditions(y, batch, np.shape(null))
    classes = getattr(model, "num_classes", None)
    if classes is None and (y is not None or guidance):
        raise InvalidInput("DDPM: labels y and guidance need a class-conditional model "
                           "(trained with labels); this model is unconditional")
    if y is None:
        return None
    y = np.asarray(backend.to_numpy(raw(y)))
    if y.ndim == 0:
        y = np.full(batch, y)
    if y.dtype.kind not in "iu":
        raise TypeError(f"DDPM: labels y must be integers, got dtype {y.dtype}")
    if y.shape != (batch,):
        raise InvalidInput(f"DDPM: labels y must have shape ({batch},), got {y.shape}")
    if y.size and (y.min() < 0 or y.max() > classes):
        raise InvalidInput(f"DDPM: labels y must lie in [0, {classes - 1}] (or {classes}, the "
                           f"null class), got values in [{y.min()}, {y.max()}]")
    return y.astype(np.int64, copy=False)


def _conditions(y, batch, shape):
    """Per-sample integer conditions ``y`` of a model with a null-condition array of
    ``shape``, as (batch, *shape) int64 host arrays."""
    y = np.asarray(backend.to_numpy(raw(y)))
    if y.dtype.kind not in "iu":
        raise TypeError(f"DDPM: conditions y must be integers, got dtype {y.dtype}")
    if y.shape == shape:
        y = np.broadcast_to(y, (batch, *shape))
    if y.shape != (batch, *shape):
        raise InvalidInput(f"DDPM: conditions y must have shape {(batch, *shape)}, got {y.shape}")
    return y.astype(np.int64)


def start(ddpm, shape, seed, dtype, return_trajectory, x_T, y, guidance, fn):
    """The checked start of a sampler: ``(x, rng, keep)``, the first state (``x_T``, or
    N(0, I) of ``shape`` drawn from ``seed``) in ``dtype`` (the model's by default) on the
    model's device, the Generator to draw from, and the set of paper timesteps whose states
    the trajectory keeps. Labels and guidance are checked here too, so that a bad label
    fails before the loop."""
    shape = tuple(int(n) for n in shape)
    if not shape or min(shape) < 1:
        raise InvalidInput(f"DDPM.{fn}: shape must be (batch, ...) with positive sizes, got "
                           f"{shape}")
    model_dtype, device = model_dtype_device(ddpm.model)
    dtype = np.dtype(model_dtype if dtype is None else dtype)
    rng = generator(seed, device)
    if x_T is None:
        x = rng.standard_normal(shape, dtype=dtype)
    else:
        x = backend.to_device(backend.xp_of(raw(x_T)).asarray(raw(x_T), dtype=dtype), device)
        if x.shape != shape:
            raise InvalidInput(f"DDPM.{fn}: x_T has shape {x.shape}, expected {shape}")
    labels(ddpm.model, y, len(x), guidance)
    if return_trajectory is True:
        keep = set(range(ddpm.schedule.T + 1))
    elif return_trajectory is False:
        keep = set()
    else:
        keep = {int(t) for t in return_trajectory}
    return x, rng, keep


def steps(steps, T, fn):
    """``steps``, an integer in [1, T]."""
    integer = isinstance(steps, (int, np.integer)) and not isinstance(steps, bool)
    if not integer or not 1 <= steps <= T:
        raise InvalidInput(f"{fn}: steps must be an integer in [1, {T}], got {steps!r}")
    return int(steps)


def eta(eta, fn):
    """DDIM's ``eta``, a number >= 0."""
    if not (np.isfinite(eta) and eta >= 0):
        raise InvalidInput(f"DDPM.{fn}: eta must be a number >= 0, got {eta!r}")


def choice(value, allowed, what, fn):
    """``value``, one of ``allowed``."""
    if value not in allowed:
        raise InvalidInput(f"{fn}: {what} must be one of {allowed}, got {value!r}")
    return value


def positive_int(value, what, fn):
    """``value``, an integer >= 1."""
    if not (isinstance(value, (int, np.integer)) and value >= 1):
        raise InvalidInput(f"{fn}: {what} must be a positive integer, got {value!r}")
    return int(value)


def positive_or_none(value, what, fn):
    """``value``, None or a number > 0."""
    if value is not None and not (np.isfinite(value) and value > 0):
        raise InvalidInput(f"{fn}: {what} must be None or a number > 0, got {value!r}")


def strength(strength):
    """SDEdit's ``strength``, in (0, 1]."""
    if not (np.isfinite(strength) and 0 < strength <= 1):
        raise InvalidInput(f"DDPM.edit: strength must lie in (0, 1], got {strength!r}")


def mask(mask, x):
    """RePaint's ``mask`` (1 = known, 0 = unknown) as a boolean array of x's shape on x's
    device."""
    mask = backend.to_numpy(raw(mask))
    if mask.shape != x.shape:
        raise InvalidInput(f"DDPM.inpaint: mask has shape {mask.shape}, x_known has {x.shape}; "
                           "they must be equal")
    if not np.isin(mask, (0, 1)).all():
        raise InvalidInput("DDPM.inpaint: mask must hold only 0 (unknown) and 1 (known), got "
                           f"values {np.unique(mask)[:5].tolist()}")
    return backend.to_device(mask.astype(bool), backend.device_of(x))


def model_output(out, x):
    """The network's output ``out`` at x_t as a Tensor of x_t's shape."""
    out = out if isinstance(out, Tensor) else Tensor(out)
    if out.shape != x.shape:
        raise InvalidInput(f"DDPM: the model returned shape {out.shape} for x_t of shape "
                           f"{x.shape}; it must predict an array of the input's shape")
    return out


def generator(seed, device):
    """A random Generator: minigen's own for ``device`` when seed is None, ``seed`` itself
    when it is a Generator, else a fresh one seeded with it."""
    if seed is None:
        return backend.rng(device)
    if hasattr(seed, "standard_normal"):
        return seed
    return backend.xp_for(device).random.default_rng(seed)


def model_dtype_device(model):
    """The dtype and device of the model's first parameter (float32 on the CPU without
    any)."""
    for p in model.parameters() if hasattr(model, "parameters") else []:
        return p.dtype, p.device
    return np.float32, "cpu"
