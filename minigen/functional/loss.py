"""Losses, with PyTorch's names, signatures and reductions."""
import math

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


def _class_axis(op, x):
    if x.ndim < 1:
        raise ValueError(f"{op}: input must have a class axis, got a 0-d tensor")
    return 0 if x.ndim == 1 else 1


def _class_weight(op, weight, classes, dtype, xp):
    """The per-class weights as a constant array of the loss's dtype (ones when None)."""
    if weight is None:
        return xp.ones(classes, dtype=dtype)
    weight = xp.asarray(weight.data if isinstance(weight, Tensor) else weight, dtype=dtype)
    if weight.shape != (classes,):
        raise ValueError(f"{op}: weight must have shape ({classes},) (one per class), got {weight.shape}")
    return weight


def nll_loss(log_probs, target, weight=None, *, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of class indices, PyTorch's ``nll_loss``: the loss of entry n
    is -weight[t_n] log_probs[n, t_n], 0 where t_n == ignore_index; classes on axis 1 of
    (N, C, ...), or axis 0 of a (C,) input with a 0-d target. ``reduction='mean'`` divides
    the sum by the sum of the picked weights (the number of kept entries without ``weight``);
    ``weight`` is a constant (no gradient)."""
    axis = _class_axis("nll_loss", log_probs)
    target = target.data if isinstance(target, Tensor) else target
    xp = backend.xp_of(log_probs.data)
    target = xp.asarray(target)
    expected = log_probs.shape[:axis] + log_probs.shape[axis + 1:]
    if target.dtype.kind not in "iu" or target.shape != expected:
        raise ValueError(f"nll_loss: target must hold class indices (an integer array of shape "
                         f"{expected}), got {target.dtype} of shape {target.shape}")
    kept = target != ignore_index
    target = xp.where(kept, target, 0)
    picked = ops.squeeze(ops.gather(log_probs, axis, xp.expand_dims(target, axis)), axis)
    w = _class_weight("nll_loss", weight, log_probs.shape[axis], log_probs.dtype, xp)[target] * kept
    loss = -picked * Tensor(w)
    if reduction == "mean":
        total = float(w.sum())  # all entries ignored: a NaN loss with zero gradients (PyTorch's)
        return ops.sum(loss) * (1.0 / total) if total else ops.sum(loss) + math.nan
    return _reduce(loss, reduction, "nll_loss")


def cross_entropy(logits, target, weight=None, *, ignore_index=-100, reduction="mean"):
    """Softmax cross-entropy over the class axis (1 of (N, C, ...), 0 of (C,)), from logits,
    through the max-shifted log_softmax, as PyTorch's ``cross_entropy``: for class indices
    ``nll_loss(log_softmax(x), target, weight, ...)``; for a float target of the logits'
    shape (class probabilities) -sum_c weight[c] target[n, c] log_softmax(x)[n, c], averaged
    over the entries by ``reduction='mean'``."""
    axis = _class_axis("cross_entropy", logits)
    log_probs = log_softmax(logits, axis=axis)
    if np.dtype(getattr(target, "dtype", np.int64)).kind != "f":
        return nll_loss(log_probs, target, weight, ignore_index=ignore_index, reduction=reduction)
    target = as_tensor(target, like=logits)
    _same_shape("cross_entropy", logits, target)
    if weight is not None:
        w = _class_weight("cross_entropy", weight, logits.shape[axis], logits.dtype,
                          backend.xp_of(logits.data))
        target = target * Tensor(w.reshape((-1,) + (1,) * (logits.ndim - axis - 1)))
    return _reduce(-ops.sum(target * log_probs, axis=axis), reduction, "cross_entropy")
