"""Normalisation layers: GroupNorm, LayerNorm, BatchNorm1d/2d (affine weight 1, bias 0), with
PyTorch's constructor arguments in PyTorch's order."""
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

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device="cpu",
                 dtype=DEFAULT_DTYPE):
        if num_groups < 1 or num_channels % num_groups:
            raise ValueError(
                f"GroupNorm: {num_channels} channels are not divisible into {num_groups} groups"
            )
        self.groups, self.channels, self.eps = num_groups, num_channels, eps
        self.weight = _filled(1, (num_channels,), dtype, device) if affine else None
        self.bias = _filled(0, (num_channels,), dtype, device) if affine else None

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] != self.channels:
            raise ValueError(f"GroupNorm: expected input (N, {self.channels}, ...), got {x.shape}")
        return F.group_norm(x, self.groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.groups}, {self.channels}, eps={self.eps}"


class LayerNorm(Module):
    """Layer normalisation (Ba et al. 2016, eq. 4) over the trailing dims ``normalized_shape``."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 device="cpu", dtype=DEFAULT_DTYPE):
        shape = normalized_shape
        self.shape = (int(shape),) if np.isscalar(shape) else tuple(int(n) for n in shape)
        self.eps = eps
        self.weight = _filled(1, self.shape, dtype, device) if elementwise_affine else None
        self.bias = _filled(0, self.shape, dtype, device) if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.shape}, eps={self.eps}"


_LAYOUTS = {2: "(N, C)", 3: "(N, C, L)", 4: "(N, C, H, W)"}


class _BatchNorm(Module):
    """Batch normalisation (Ioffe & Szegedy 2015, Algorithm 1) per channel (dim 1), over the
    batch and every other dim.

    Training: normalise with the batch mean and biased variance, and update the buffers
    ``running_mean``/``running_var`` as PyTorch does: r <- (1 - momentum) r + momentum s, with
    the *unbiased* batch variance for ``running_var`` (Algorithm 2's inference statistics);
    ``momentum=None`` averages all batches equally (momentum 1/``num_batches_tracked``).
    Evaluation: normalise with the running statistics (the batch's without
    ``track_running_stats``). Arguments, buffers and state-dict keys are PyTorch's.
    """

    ranks = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device="cpu", dtype=DEFAULT_DTYPE):
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.track_running_stats = track_running_stats
        self.weight = _filled(1, (num_features,), dtype, device) if affine else None
        self.bias = _filled(0, (num_features,), dtype, device) if affine else None
        if track_running_stats:
            xp = backend.xp_for(device)
            self.register_buffer("running_mean", xp.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", xp.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", xp.zeros((), dtype=np.int64))

    def forward(self, x):
        name, c = type(self).__name__, self.num_features
        if x.ndim not in self.ranks or x.shape[1] != c:
            wanted = " or ".join(_LAYOUTS[r].replace("C", str(c)) for r in self.ranks)
            raise ValueError(f"{name}: expected input {wanted}, got {x.shape}")
        shape = (1, c) + (1,) * (x.ndim - 2)
        if self.training or not self.track_running_stats:
            y = self._normalize_with_batch_stats(x)
        else:
            xp = backend.xp_of(self.running_var)
            mean = Tensor(self.running_mean.reshape(shape))
            inv_std = Tensor((1 / xp.sqrt(self.running_var + self.eps)).reshape(shape))
            y = (x - mean) * inv_std
        if self.weight is None:
            return y
        return y * F.reshape(self.weight, shape) + F.reshape(self.bias, shape)

    def _normalize_with_batch_stats(self, x):
        axes = (0,) + tuple(range(2, x.ndim))
        n = x.data.size // x.shape[1]
        if n < 2:
            raise ValueError(f"{type(self).__name__}: training needs more than 1 value per "
                             f"channel, got input {x.shape}")
        mean = F.mean(x, axis=axes, keepdims=True)
        d = x - mean
        var = F.mean(d * d, axis=axes, keepdims=True)
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            m = 1.0 / int(self.num_batches_tracked) if self.momentum is None else self.momentum
            unbiased = n / (n - 1)
            self.running_mean[...] = (1 - m) * self.running_mean + m * mean.data.reshape(-1)
            self.running_var[...] = (1 - m) * self.running_var + m * unbiased * var.data.reshape(-1)
        return d / F.sqrt(var + self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs."""

    ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs."""

    ranks = (4,)
