"""Normalisation layers: GroupNorm, LayerNorm, BatchNorm2d (affine weight 1, bias 0)."""
import numpy as np

from minigen import backend
from minigen import functional as F
from minigen.creation import DEFAULT_DTYPE
from minigen.nn.module import Module, Parameter
from minigen.tensor import Tensor


def _filled(value, shape, dtype, device):
    return Parameter(backend.xp_for(device).full(shape, value, dtype=dtype))


class GroupNorm(Module):
    """Group normalisation (Wu & He 2018, eq. 1-3): per sample, over each group of
    channels/groups channels and all positions; then a per-channel affine map."""

    def __init__(self, groups, channels, eps=1e-5, dtype=DEFAULT_DTYPE, device="cpu"):
        if groups < 1 or channels % groups:
            raise ValueError(
                f"GroupNorm: {channels} channels are not divisible into {groups} groups"
            )
        self.groups, self.channels, self.eps = groups, channels, eps
        self.weight = _filled(1, (channels,), dtype, device)
        self.bias = _filled(0, (channels,), dtype, device)

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] != self.channels:
            raise ValueError(f"GroupNorm: expected input (N, {self.channels}, ...), got {x.shape}")
        return F.group_norm(x, self.groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.groups}, {self.channels}, eps={self.eps}"


class LayerNorm(Module):
    """Layer normalisation (Ba et al. 2016, eq. 4) over the trailing dims ``shape``."""

    def __init__(self, shape, eps=1e-5, dtype=DEFAULT_DTYPE, device="cpu"):
        self.shape = (int(shape),) if np.isscalar(shape) else tuple(int(n) for n in shape)
        self.eps = eps
        self.weight = _filled(1, self.shape, dtype, device)
        self.bias = _filled(0, self.shape, dtype, device)

    def forward(self, x):
        return F.layer_norm(x, self.shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.shape}, eps={self.eps}"


class BatchNorm2d(Module):
    """Batch normalisation (Ioffe & Szegedy 2015, Algorithm 1) over (N, H, W) per channel.

    Training: normalise with the batch mean and biased variance, and update the buffers
    ``running_mean``/``running_var`` as PyTorch does: r <- (1 - momentum) r + momentum s, with
    the *unbiased* batch variance for ``running_var`` (Algorithm 2's inference statistics).
    Evaluation: normalise with the running statistics.
    """

    def __init__(self, channels, momentum=0.1, eps=1e-5, dtype=DEFAULT_DTYPE, device="cpu"):
        self.channels, self.momentum, self.eps = channels, momentum, eps
        self.weight = _filled(1, (channels,), dtype, device)
        self.bias = _filled(0, (channels,), dtype, device)
        xp = backend.xp_for(device)
        self.register_buffer("running_mean", xp.zeros(channels, dtype=dtype))
        self.register_buffer("running_var", xp.ones(channels, dtype=dtype))

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"BatchNorm2d: expected input (N, {self.channels}, H, W), got {x.shape}"
            )
        shape = (1, self.channels, 1, 1)
        if self.training:
            y = self._normalize_with_batch_stats(x)
        else:
            xp = backend.xp_of(self.running_var)
            mean = Tensor(self.running_mean.reshape(shape))
            inv_std = Tensor((1 / xp.sqrt(self.running_var + self.eps)).reshape(shape))
            y = (x - mean) * inv_std
        return y * F.reshape(self.weight, shape) + F.reshape(self.bias, shape)

    def _normalize_with_batch_stats(self, x):
        n = x.shape[0] * x.shape[2] * x.shape[3]
        if n < 2:
            raise ValueError(
                f"BatchNorm2d: training needs more than 1 value per channel, got input {x.shape}"
            )
        mean = F.mean(x, axis=(0, 2, 3), keepdims=True)
        d = x - mean
        var = F.mean(d * d, axis=(0, 2, 3), keepdims=True)
        m, unbiased = self.momentum, n / (n - 1)
        self.running_mean[...] = (1 - m) * self.running_mean + m * mean.data.reshape(-1)
        self.running_var[...] = (1 - m) * self.running_var + m * unbiased * var.data.reshape(-1)
        return d / F.sqrt(var + self.eps)

    def extra_repr(self):
        return f"{self.channels}, momentum={self.momentum}, eps={self.eps}"
