"""Fourier features of the input coordinates (Tancik et al. 2020, "Fourier Features Let Networks
Learn High Frequency Functions in Low Dimensional Domains").

An MLP fed raw low-dimensional coordinates is biased towards smooth functions of them
(spectral bias), so a 2-D denoiser blurs sharp edges; feeding sin and cos of the coordinates
at geometrically spaced frequencies lifts that bias. This is the axis-aligned "positional
encoding" of Tancik et al. 2020 (Sec. 6.1: b_j = sigma^(j/m) along each axis), with sigma =
2^m as in NeRF (Mildenhall et al. 2020, eq. 4).
"""
import numpy as np

from minigen import backend
from minigen import functional as F
from minigen.creation import DEFAULT_DTYPE
from minigen.nn.module import Module
from minigen.tensor import Tensor


class FourierFeatures(Module):
    """x (batch, d) -> (batch, d (1 + 2 m)): x itself, then sin(2^k x_i) and cos(2^k x_i)
    for every coordinate i and k = 0..m-1 (all sines, then all cosines).

    The features are a constant of x: computed on raw arrays (float64, cast to ``dtype``),
    like :class:`~minigen.nn.embedding.SinusoidalEmbedding`. The raw x passes through with
    its gradient; an x that requires a gradient raises, since the sines would not carry it.
    """

    def __init__(self, num_frequencies, dtype=DEFAULT_DTYPE):
        if int(num_frequencies) < 1:
            raise ValueError(f"FourierFeatures: num_frequencies must be >= 1, got "
                             f"{num_frequencies}")
        self.num_frequencies, self.dtype = int(num_frequencies), np.dtype(dtype)

    def out_features(self, in_features):
        return in_features * (1 + 2 * self.num_frequencies)

    def forward(self, x):
        if x.requires_grad:
            raise ValueError("FourierFeatures: the input requires a gradient, which its sin/cos "
                             "features do not carry (they are computed on raw arrays)")
        xp = backend.xp_of(x.data)
        freqs = 2.0 ** xp.arange(self.num_frequencies, dtype=xp.float64)
        args = (x.data.astype(xp.float64)[:, :, None] * freqs).reshape(len(x.data), -1)
        features = xp.concatenate([xp.sin(args), xp.cos(args)], axis=1).astype(self.dtype)
        return F.cat([x, Tensor(features)], axis=1)

    def extra_repr(self):
        return f"{self.num_frequencies}"
