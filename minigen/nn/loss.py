"""Loss modules with PyTorch's names and arguments; each calls its ``F`` function.

``CrossEntropyLoss`` and ``NLLLoss`` take (N, C) scores and (N,) integer class targets as in
PyTorch; arguments left at their defaults are not passed on, so the ``F`` functions only
need to accept those that are used.
"""
from minigen import functional as F
from minigen.nn.module import Module


class _Loss(Module):
    def __init__(self, reduction="mean"):
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(
                f"{type(self).__name__}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}"
            )
        self.reduction = reduction

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities (after a sigmoid); ``BCEWithLogitsLoss`` is the
    numerically stable form on logits."""

    def __init__(self, weight=None, reduction="mean"):
        super().__init__(reduction)
        self.weight = weight

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        super().__init__(reduction)
        if pos_weight is not None:
            raise ValueError("BCEWithLogitsLoss: pos_weight is not implemented; weight the "
                             "positive targets' terms of reduction='none' instead")
        self.weight = weight

    def forward(self, input, target):
        if self.weight is None:
            return F.binary_cross_entropy_with_logits(input, target, reduction=self.reduction)
        loss = F.binary_cross_entropy_with_logits(input, target, reduction="none") * self.weight
        if self.reduction == "none":
            return loss
        return loss.mean() if self.reduction == "mean" else loss.sum()


def _set(**kwargs):
    """The keyword arguments that differ from PyTorch's defaults."""
    defaults = dict(ignore_index=-100, label_smoothing=0.0)
    return {k: v for k, v in kwargs.items()
            if (v is not None if k == "weight" else v != defaults[k])}


class CrossEntropyLoss(_Loss):
    """Cross-entropy of (N, C) logits against (N,) class indices: ``F.cross_entropy``."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        self.options = _set(weight=weight, ignore_index=ignore_index,
                            label_smoothing=label_smoothing)

    def forward(self, input, target):
        return F.cross_entropy(input, target, reduction=self.reduction, **self.options)


class NLLLoss(_Loss):
    """Negative log-likelihood of (N, C) log-probabilities at (N,) class indices:
    ``F.nll_loss``."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        self.options = _set(weight=weight, ignore_index=ignore_index)

    def forward(self, input, target):
        return F.nll_loss(input, target, reduction=self.reduction, **self.options)
