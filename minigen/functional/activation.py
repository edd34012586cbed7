"""Activations built from the core ops, softmax family (max-shifted), dropout."""
import math

from minigen import backend
from minigen.functional import fused, ops
from minigen.tensor import Tensor


def silu(x):
    """x * sigmoid(x) (a.k.a. swish), one fused node."""
    return fused.SiLU()(x)


def gelu(x):
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    (Hendrycks & Gimpel 2016, eq. in sec. 2; PyTorch's ``approximate='tanh'``)."""
    inner = (x + 0.044715 * x * x * x) * math.sqrt(2.0 / math.pi)
    return 0.5 * x * (1.0 + ops.tanh(inner))


def _shift(x, axis):
    """The (constant) max along ``axis``; subtracting it keeps exp from overflowing."""
    m = x.data.max(axis=axis, keepdims=True)
    xp = backend.xp_of(m)
    return Tensor(xp.where(xp.isfinite(m), m, 0))


def logsumexp(x, axis=-1, keepdims=False):
    """log(sum(exp(x))) along ``axis``, max-shifted (finite for logits of 1e3)."""
    m = _shift(x, axis)
    y = ops.log(ops.sum(ops.exp(x - m), axis=axis, keepdims=True)) + m
    return y if keepdims else ops.reshape(y, tuple(n for i, n in enumerate(y.shape) if i != axis % x.ndim))


def softmax(x, axis=-1):
    e = ops.exp(x - _shift(x, axis))
    return e / ops.sum(e, axis=axis, keepdims=True)


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
