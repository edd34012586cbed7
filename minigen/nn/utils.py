"""``nn.utils`` as in PyTorch: ``clip_grad_norm_`` is ``optim.clip_grad_norm_`` (one function
under both names)."""
from minigen.optim import clip_grad_norm_

__all__ = ["clip_grad_norm_"]
