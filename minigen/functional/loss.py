"""Losses, with PyTorch's names, signatures and reductions."""
import numpy as np

from minigen import backend
from minigen.functional import ops
from minigen.functional.activation import log_softmax
from minigen.tensor import Tensor, as_tensor


def _reduce(loss, reduction, op):
    if reduction == "mean":
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _same_shape(op, a, b):
    if a.shape != b.shape:
        raise ValueError(f"{op}: input shape {a.shape} != target shape {b.shape}")


def mse_loss(pred, target, reduction="mean"):
    target = as_tensor(target, like=pred)
    _same_shape("mse_loss", pred, target)
    d = pred - target
    return _reduce(d * d, reduction, "mse_loss")


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """-[t log sigmoid(x) + (1-t) log(1 - sigmoid(x))] = softplus(x) - t x, stable for any |x|."""
    target = as_tensor(target, like=logits)
    _same_shape("binary_cross_entropy_with_logits", logits, target)
    return _reduce(ops.softplus(logits) - target * logits, reduction, "binary_cross_entropy_with_logits")


def _class_axis(op, x):
    if x.ndim < 1:
        raise ValueError(f"{op}: input must have a class axis, got a 0-d tensor")
    return 0 if x.ndim == 1 else 1


def nll_loss(log_probs, target, reduction="mean"):
    """Negative log-likelihood of class indices: -log_probs[n, target[n]] (PyTorch's
    ``nll_loss``: classes on axis 1 of (N, C, ...), or axis 0 of a (C,) input with a 0-d
    target; ``reduction='mean'`` averages over the N x ... picked entries)."""
    axis = _class_axis("nll_loss", log_probs)
    target = target.data if isinstance(target, Tensor) else target
    xp = backend.xp_of(log_probs.data)
    target = xp.asarray(target)
    expected = log_probs.shape[:axis] + log_probs.shape[axis + 1:]
    if target.dtype.kind not in "iu" or target.shape != expected:
        raise ValueError(f"nll_loss: target must hold class indices (an integer array of shape "
                         f"{expected}), got {target.dtype} of shape {target.shape}")
    picked = ops.gather(log_probs, axis, xp.expand_dims(target, axis))
    return _reduce(-ops.squeeze(picked, axis), reduction, "nll_loss")


def cross_entropy(logits, target, reduction="mean"):
    """Softmax cross-entropy over the class axis (1 of (N, C, ...), 0 of (C,)), from logits,
    through the max-shifted log_softmax: -log softmax(x)[target] for class indices, or
    -sum(target * log_softmax(x)) over classes for a float target of the logits' shape
    (class probabilities), as PyTorch's ``cross_entropy``."""
    axis = _class_axis("cross_entropy", logits)
    log_probs = log_softmax(logits, axis=axis)
    if np.dtype(getattr(target, "dtype", np.int64)).kind == "f":
        target = as_tensor(target, like=logits)
        _same_shape("cross_entropy", logits, target)
        return _reduce(-ops.sum(target * log_probs, axis=axis), reduction, "cross_entropy")
    return nll_loss(log_probs, target, reduction)
