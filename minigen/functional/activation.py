"""Activations built from the core ops, softmax family (max-shifted), dropout."""
import math

from minigen import backend
from minigen.functional import fused, ops
from minigen.tensor import Tensor


def silu(x):
    """x * sigmoid(x) (a.k.a. swish), one fused node."""
    return fused.SiLU()(x)


def gelu(x, approximate="none"):
    """GELU, x Phi(x) (Hendrycks & Gimpel 2016, sec. 2), with PyTorch's default: the exact
    form 0.5 x (1 + erf(x / sqrt(2))); ``approximate="tanh"`` gives the paper's
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), which needs no erf."""
    if approximate == "none":
        return 0.5 * x * (1.0 + ops.erf(x * (1.0 / math.sqrt(2.0))))
    if approximate == "tanh":
        inner = (x + 0.044715 * x * x * x) * math.sqrt(2.0 / math.pi)
        return 0.5 * x * (1.0 + ops.tanh(inner))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def logsigmoid(x):
    """log(sigmoid(x)) = -softplus(-x): finite and accurate for any x (-100 gives -100)."""
    return -ops.softplus(-x)


def elu(x, alpha=1.0):
    """ELU (Clevert et al. 2016): x for x > 0, alpha (exp(x) - 1) otherwise, written as
    max(0, x) + alpha (exp(min(0, x)) - 1) so no branch overflows."""
    return ops.relu(x) + alpha * (ops.exp(ops.clip(x, hi=0.0)) - 1.0)


def hardtanh(x, min_val=-1.0, max_val=1.0):
    """x clipped to [min_val, max_val] (PyTorch's ``hardtanh``: slope 0 at the bounds)."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val {min_val} > max_val {max_val}")
    return ops.Clip(min_val, max_val, strict=True)(x)


def relu6(x):
    """min(max(x, 0), 6): ``hardtanh(x, 0, 6)``."""
    return hardtanh(x, 0.0, 6.0)


SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def selu(x):
    """scale * elu(x, alpha) with the self-normalising constants of Klambauer et al. 2017
    (eq. 2)."""
    return SELU_SCALE * elu(x, SELU_ALPHA)


def celu(x, alpha=1.0):
    """max(0, x) + min(0, alpha (exp(x / alpha) - 1)) (Barron 2017): ELU rescaled so that
    its derivative is continuous at 0 for any alpha."""
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0")
    return ops.relu(x) + alpha * (ops.exp(ops.clip(x, hi=0.0) * (1.0 / alpha)) - 1.0)


def softsign(x):
    """x / (1 + |x|)."""
    return x / (1.0 + ops.abs(x))


def hardsigmoid(x):
    """relu6(x + 3) / 6: 0 below -3, 1 above 3, linear in between (slope 0 at the bounds)."""
    return hardtanh(x, -3.0, 3.0) * (1.0 / 6.0) + 0.5


def hardswish(x):
    """x * hardsigmoid(x) (Howard et al. 2019, MobileNetV3)."""
    return x * hardsigmoid(x)


def mish(x):
    """x * tanh(softplus(x)) (Misra 2019)."""
    return x * ops.tanh(ops.softplus(x))


def _shift(x, axes):
    """The (constant) max over ``axes``; subtracting it keeps exp from overflowing."""
    xp = backend.xp_of(x.data)
    if x.data.size == 0:
        return Tensor(xp.zeros(tuple(1 if i in axes else n for i, n in enumerate(x.shape)), x.dtype))
    m = x.data.max(axis=axes, keepdims=True)
    return Tensor(xp.where(xp.isfinite(m), m, 0))


def logsumexp(x, axis=-1, keepdims=False):
    """log(sum(exp(x))) over ``axis`` (an int or a tuple), max-shifted (finite for logits of
    1e3); over an empty axis it is -inf."""
    axes = ops.normalize_axis(axis, x.ndim, "logsumexp")
    m = _shift(x, axes)
    y = ops.log(ops.sum(ops.exp(x - m), axis=axes, keepdims=True)) + m
    return y if keepdims else ops.reshape(y, tuple(n for i, n in enumerate(y.shape) if i not in axes))


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis``, max-shifted."""
    axes = ops.normalize_axis(axis, x.ndim, "softmax")
    e = ops.exp(x - _shift(x, axes))
    return e / ops.sum(e, axis=axes, keepdims=True)


def log_softmax(x, axis=-1):
    return x - logsumexp(x, axis=axis, keepdims=True)


def dropout(x, p=0.5, training=True):
    """Inverted dropout: zero each element with probability p, scale the rest by 1/(1-p)."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    keep = backend.rng(x.device).random(x.shape) >= p
    return x * Tensor((keep / (1.0 - p)).astype(x.dtype))
