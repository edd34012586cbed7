"""The text encoder of a text-to-image model: token ids -> one embedding per token.

A small Transformer encoder (Vaswani et al. 2017) in the pre-LayerNorm arrangement of GPT-2
and CLIP's text tower (Radford et al. 2021), which latent diffusion trains jointly with its
denoiser (Rombach et al. 2022, sec. 3.3: tau_theta, a transformer over the tokens of y):

    h_0 = E_token[ids] + E_position[0..L-1]
    h_i = h_{i-1} + Attention(LN(h_{i-1}))        (self-attention; padding is never attended to)
    h_i = h_i + MLP(LN(h_i))                      (Linear, GELU, Linear)
    out = LN(h_depth)                             (N, L, dim): the keys and values of cross-attention

The padding mask (True on ``pad_id``) travels with the embeddings, so a cross-attention layer
can ignore padding too; because the real tokens come first and padding is masked, the
embeddings of the real tokens do not depend on how much padding follows them.
"""
import numpy as np

from minigen.creation import DEFAULT_DTYPE
from minigen.nn.attention import MultiheadAttention
from minigen.nn.embedding import Embedding
from minigen.nn.layers import GELU, Linear, ModuleList, Sequential
from minigen.nn.module import Module
from minigen.nn.norm import LayerNorm
from minigen.tensor import Tensor


class TransformerBlock(Module):
    """x + Attention(LN(x)), then + MLP(LN(x)): one pre-LayerNorm Transformer encoder block."""

    def __init__(self, dim, heads, mlp_ratio=4, dropout=0.0, device="cpu", dtype=DEFAULT_DTYPE):
        kw = dict(device=device, dtype=dtype)
        self.norm1 = LayerNorm(dim, **kw)
        self.attn = MultiheadAttention(dim, heads, dropout=dropout, batch_first=True, **kw)
        self.norm2 = LayerNorm(dim, **kw)
        self.mlp = Sequential(Linear(dim, mlp_ratio * dim, **kw), GELU(),
                              Linear(mlp_ratio * dim, dim, **kw))

    def forward(self, x, padding_mask=None):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, key_padding_mask=padding_mask, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TextEncoder(Module):
    """Token ids (N, L) -> ``(embeddings (N, L, dim), padding_mask (N, L) bool)``, with
    ``L <= max_length`` and the mask True where ``ids == pad_id`` (PyTorch's
    ``key_padding_mask`` convention: pass it on to ``nn.MultiheadAttention``)."""

    def __init__(self, vocab_size, max_length, dim=64, depth=2, heads=4, mlp_ratio=4,
                 dropout=0.0, pad_id=0, device="cpu", dtype=DEFAULT_DTYPE):
        kw = dict(device=device, dtype=dtype)
        self.vocab_size, self.max_length, self.dim, self.pad_id = vocab_size, max_length, dim, pad_id
        self.token = Embedding(vocab_size, dim, **kw)
        self.position = Embedding(max_length, dim, **kw)
        self.blocks = ModuleList([TransformerBlock(dim, heads, mlp_ratio, dropout, **kw)
                                  for _ in range(depth)])
        self.norm = LayerNorm(dim, **kw)

    def forward(self, ids):
        ids = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
        if ids.ndim != 2 or ids.shape[1] > self.max_length:
            raise ValueError(f"TextEncoder: expected ids (N, L) with L <= {self.max_length}, got "
                             f"shape {ids.shape}")
        padding_mask = ids == self.pad_id
        x = self.token(ids) + self.position(np.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x, padding_mask)
        return self.norm(x), padding_mask

    def extra_repr(self):
        return f"vocab_size={self.vocab_size}, max_length={self.max_length}, dim={self.dim}"
