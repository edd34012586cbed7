"""Losses."""
import numpy as np

from minigen.functional import ops
from minigen.tensor import as_tensor


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


def binary_cross_entropy(prob, target, weight=None, reduction="mean"):
    """-w [t log p + (1-t) log(1-p)] for probabilities p (PyTorch's ``F.binary_cross_entropy``).
    The logs are clipped below at log(smallest normal number) of the dtype (PyTorch clips at
    -100) so that p = 0 or 1 gives a finite loss; prefer the logits form for stability."""
    target = as_tensor(target, like=prob)
    _same_shape("binary_cross_entropy", prob, target)
    tiny = float(np.finfo(prob.dtype).tiny)
    loss = -(target * ops.log(ops.clip(prob, tiny, None))
             + (1 - target) * ops.log(ops.clip(1 - prob, tiny, None)))
    if weight is not None:
        loss = loss * as_tensor(weight, like=prob)
    return _reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """-[t log sigmoid(x) + (1-t) log(1 - sigmoid(x))] = softplus(x) - t x, stable for any |x|."""
    target = as_tensor(target, like=logits)
    _same_shape("binary_cross_entropy_with_logits", logits, target)
    return _reduce(ops.softplus(logits) - target * logits, reduction, "binary_cross_entropy_with_logits")
