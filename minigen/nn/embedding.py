"""Embeddings: the fixed sinusoidal embedding of a timestep and a learned lookup table.

``SinusoidalEmbedding`` is how DDPM tells its denoiser which noise level it sees (Ho et al.
2020, sec. 4, after the Transformer's position encoding, Vaswani et al. 2017, sec. 3.5).
``Embedding`` maps class indices to learned vectors (class-conditional UNet).
"""
import math

import numpy as np

from minigen import backend
from minigen.creation import DEFAULT_DTYPE
from minigen.nn.module import Module, Parameter
from minigen.tensor import Tensor


def as_batch_array(t, op):
    """``t`` (Tensor, array or list) as a raw 1-D array, with a clear error otherwise."""
    t = t.data if isinstance(t, Tensor) else t
    if not hasattr(t, "dtype"):
        t = np.asarray(t)
    if t.ndim != 1:
        raise ValueError(f"{op}: expected a 1-D array of shape (batch,), got shape {t.shape}")
    return t


class SinusoidalEmbedding(Module):
    """t (batch,) -> (batch, dim): [sin(t f_0) .. sin(t f_{h-1}), cos(t f_0) .. cos(t f_{h-1})]
    with h = dim/2 and frequencies f_i = exp(-log(10000) i / (h - 1)), i.e. from 1 down to
    1/10000 (DDPM's ``get_timestep_embedding``; the Transformer divides by h instead).

    It has no parameters and is a constant of t, so it is computed on raw arrays (in float64,
    then cast to ``dtype``) and returned as a Tensor that needs no gradient. ``t`` may be
    integer or float; the result lives on ``device`` (default: t's device). Integer steps on
    the host (DDPM's t) are rows of a table computed once by the same formula, so the values
    are the same and a call is one gather instead of a sin and a cos per entry; on a GPU the
    formula runs directly (the table's range check would wait for the device).
    """

    TABLE_LIMIT = 1 << 16
    """Integer steps at or above this are computed directly (the table stays small)."""

    def __init__(self, dim, dtype=DEFAULT_DTYPE):
        if dim < 4 or dim % 2:
            raise ValueError(f"SinusoidalEmbedding: dim must be even and >= 4, got {dim}")
        self.dim, self.dtype = dim, np.dtype(dtype)
        self._table = None  # rows for t = 0, 1, ... (NumPy)

    def _embed(self, t, xp):
        half = self.dim // 2
        freqs = xp.exp(xp.arange(half, dtype=xp.float64) * (-math.log(10000.0) / (half - 1)))
        args = t.astype(xp.float64)[:, None] * freqs[None, :]
        return xp.concatenate([xp.sin(args), xp.cos(args)], axis=1).astype(self.dtype)

    def forward(self, t, device=None):
        t = as_batch_array(t, "SinusoidalEmbedding")
        if device is not None:
            t = backend.to_device(t, device)
        xp = backend.xp_of(t)
        if (xp is not np or t.dtype.kind not in "iu" or t.size == 0 or t.min() < 0
                or t.max() >= self.TABLE_LIMIT):
            return Tensor(self._embed(t, xp))
        if self._table is None or len(self._table) <= t.max():
            rows = min(self.TABLE_LIMIT, max(1024, 2 * int(t.max()) + 2))
            self._table = self._embed(np.arange(rows), np)
        return Tensor(self._table[t])

    def extra_repr(self):
        return f"{self.dim}"


class Embedding(Module):
    """A learned table: integer indices of any shape (...) -> rows of ``weight``
    (num_embeddings, embedding_dim), shape (..., embedding_dim); initialised N(0, 1) as
    PyTorch's ``nn.Embedding``."""

    def __init__(self, num_embeddings, embedding_dim, device="cpu", dtype=DEFAULT_DTYPE):
        self.num_embeddings, self.dim = num_embeddings, embedding_dim
        xp = backend.xp_for(device)
        data = backend.rng(device).standard_normal((num_embeddings, embedding_dim))
        self.weight = Parameter(xp.asarray(data, dtype=dtype))

    def forward(self, index):
        index = index.data if isinstance(index, Tensor) else index
        index = index if hasattr(index, "dtype") else np.asarray(index)
        if index.dtype.kind not in "iu":
            raise TypeError(f"Embedding: indices must be integers, got dtype {index.dtype}")
        if index.size and (int(index.min()) < 0 or int(index.max()) >= self.num_embeddings):
            raise ValueError(
                f"Embedding: indices must lie in [0, {self.num_embeddings}), got range "
                f"[{int(index.min())}, {int(index.max())}]"
            )
        return self.weight[backend.to_device(index, self.weight.device)]

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.dim}"
