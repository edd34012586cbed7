"""Losses."""
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


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """-[t log sigmoid(x) + (1-t) log(1 - sigmoid(x))] = softplus(x) - t x, stable for any |x|."""
    target = as_tensor(target, like=logits)
    _same_shape("binary_cross_entropy_with_logits", logits, target)
    return _reduce(ops.softplus(logits) - target * logits, reduction, "binary_cross_entropy_with_logits")
