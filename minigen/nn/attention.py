"""Attention layers: self-attention over the positions of a feature map (the DDPM UNet's
``AttnBlock``) and PyTorch's ``MultiheadAttention`` (self- and cross-attention over
sequences)."""
import numpy as np

from minigen import backend
from minigen import functional as F
from minigen.creation import DEFAULT_DTYPE
from minigen.functional.attention import attention_weights
from minigen.nn import init
from minigen.nn.conv import Conv2d
from minigen.nn.layers import Linear
from minigen.nn.module import Module, Parameter
from minigen.nn.norm import GroupNorm
from minigen.tensor import Tensor


class SelfAttention2d(Module):
    """x + proj(attention(q, k, v)) with q, k, v = 1x1 conv of GroupNorm(x), single head, the
    H*W positions as the sequence (Ho et al. 2020, appendix B; Vaswani et al. 2017, eq. 1)."""

    def __init__(self, channels, groups, dtype=DEFAULT_DTYPE, device="cpu"):
        self.channels = channels
        self.norm = GroupNorm(groups, channels, dtype=dtype, device=device)
        self.qkv = Conv2d(channels, 3 * channels, 1, dtype=dtype, device=device)
        self.proj = Conv2d(channels, channels, 1, dtype=dtype, device=device)

    def forward(self, x):
        n, c, h, w = x.shape
        qkv = F.reshape(self.qkv(self.norm(x)), (n, 3, c, h * w))
        q, k, v = (F.swapaxes(qkv[:, i], 1, 2) for i in range(3))  # (n, h*w, c) each
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(F.reshape(F.swapaxes(out, 1, 2), (n, c, h, w)))

    def extra_repr(self):
        return f"{self.channels}"


def _additive(mask, like, what):
    """A PyTorch ``nn.MultiheadAttention`` mask as an array to add to the scores: boolean True
    (a position that may *not* be attended to) becomes a large negative number, so its weight
    after the softmax is exactly 0; a float mask is added as given."""
    raw = mask.data if isinstance(mask, Tensor) else mask
    raw = backend.to_device(raw if hasattr(raw, "dtype") else np.asarray(raw), like.device)
    xp = backend.xp_of(like.data)
    if raw.dtype.kind == "b":
        return xp.where(raw, -1e9 if like.dtype.itemsize > 2 else -1e4, 0.0).astype(like.dtype)
    if raw.dtype.kind != "f":
        raise TypeError(f"MultiheadAttention: {what} must be boolean or float, got dtype {raw.dtype}")
    return raw.astype(like.dtype)


class MultiheadAttention(Module):
    """Multi-head attention (Vaswani et al. 2017, sec. 3.2.2):
    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O with
    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V) and Attention the scaled dot product (eq. 1).

    One module for self-attention (``attn(x, x, x)``) and cross-attention (``attn(x, c, c)``:
    the queries come from one sequence, the keys and values from another, of ``kdim``/``vdim``
    features, as the image positions of a latent-diffusion UNet attend to the token embeddings
    of a caption, Rombach et al. 2022, sec. 3.3). PyTorch's arguments, parameters and
    state-dict keys (``in_proj_weight`` (3E, E) and ``in_proj_bias`` when kdim = vdim = E,
    else ``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight``; ``out_proj``) and its
    initialisation (Xavier-uniform projections, zero biases), and its sequence-first default
    (``batch_first=False``), so a ported script never computes something else silently;
    minigen's own layers pass ``batch_first=True``. ``add_bias_kv`` and ``add_zero_attn`` are
    not supported.

    With ``batch_first=True``, ``forward(query (N, L, E), key (N, S, kdim), value (N, S,
    vdim))`` returns
    ``(out (N, L, E), weights)``: the weights (N, L, S) averaged over the heads (per head
    (N, H, L, S) with ``average_attn_weights=False``) when ``need_weights``, else None.
    ``key_padding_mask`` (N, S) and ``attn_mask`` (L, S) or (N * H, L, S) follow PyTorch:
    boolean True marks a key that may not be attended to (it gets weight exactly 0), a float
    mask is added to the scores. ``dropout`` drops attention weights in training mode.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False, device="cpu",
                 dtype=DEFAULT_DTYPE):
        if num_heads < 1 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} is not divisible into "
                             f"{num_heads} heads")
        if add_bias_kv or add_zero_attn:
            raise ValueError("MultiheadAttention: add_bias_kv and add_zero_attn are not supported")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        xp = backend.xp_for(device)

        def projection(fan_in):
            weight = Parameter(xp.empty((embed_dim, fan_in), dtype=dtype))
            return init.xavier_uniform_(weight)

        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = init.xavier_uniform_(
                Parameter(xp.empty((3 * embed_dim, embed_dim), dtype=dtype)))
        else:
            self.q_proj_weight = projection(embed_dim)
            self.k_proj_weight = projection(self.kdim)
            self.v_proj_weight = projection(self.vdim)
        self.in_proj_bias = Parameter(xp.zeros(3 * embed_dim, dtype=dtype)) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        if bias:
            init.zeros_(self.out_proj.bias)

    def _project(self, query, key, value):
        e = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:e], b[e:2 * e], b[2 * e:])
        if not self._qkv_same_embed_dim:
            return (F.linear(query, self.q_proj_weight, bq), F.linear(key, self.k_proj_weight, bk),
                    F.linear(value, self.v_proj_weight, bv))
        w = self.in_proj_weight
        if query is key and key is value:  # self-attention: one product for q, k and v
            qkv = F.linear(query, w, b)
            return qkv[..., :e], qkv[..., e:2 * e], qkv[..., 2 * e:]
        return (F.linear(query, w[:e], bq), F.linear(key, w[e:2 * e], bk),
                F.linear(value, w[2 * e:], bv))

    def _heads(self, x):
        """(N, L, E) -> (N, H, L, E / H)."""
        n, length, _ = x.shape
        return F.swapaxes(F.reshape(x, (n, length, self.num_heads, self.head_dim)), 1, 2)

    def _mask(self, key_padding_mask, attn_mask, n, length, s, like):
        """The masks as one additive array broadcastable to the scores (N, H, L, S), or None."""
        total = None
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (n, s):
                raise ValueError(f"MultiheadAttention: key_padding_mask must have shape "
                                 f"(N, S) = {(n, s)}, got {tuple(key_padding_mask.shape)}")
            total = _additive(key_padding_mask, like, "key_padding_mask")[:, None, None, :]
        if attn_mask is not None:
            shape = tuple(attn_mask.shape)
            if shape not in ((length, s), (n * self.num_heads, length, s)):
                raise ValueError(f"MultiheadAttention: attn_mask must have shape (L, S) = "
                                 f"{(length, s)} or (N * H, L, S), got {shape}")
            heads = (n, self.num_heads) if len(shape) == 3 else ()
            extra = _additive(attn_mask, like, "attn_mask").reshape(heads + (length, s))
            total = extra if total is None else total + extra
        return total

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True):
        if query.ndim != 3 or key.ndim != 3 or value.ndim != 3:
            raise ValueError(f"MultiheadAttention: expected 3-D query, key and value, got shapes "
                             f"{query.shape}, {key.shape}, {value.shape}")
        if not self.batch_first:
            query, key, value = (F.swapaxes(t, 0, 1) for t in (query, key, value))
        n, length, _ = query.shape
        if key.shape[:2] != value.shape[:2] or key.shape[0] != n:
            raise ValueError(f"MultiheadAttention: key {key.shape} and value {value.shape} must "
                             f"have the query's batch {n} and one length S")
        q, k, v = (self._heads(t) for t in self._project(query, key, value))
        mask = self._mask(key_padding_mask, attn_mask, n, length, key.shape[1], q)
        p = self.dropout if self.training else 0.0
        if need_weights:
            weights = attention_weights(q, k, mask)
            out = F.matmul(F.dropout(weights, p) if p else weights, v)
        else:
            weights, out = None, F.scaled_dot_product_attention(q, k, v, mask, dropout_p=p)
        out = self.out_proj(F.reshape(F.swapaxes(out, 1, 2), (n, length, self.embed_dim)))
        if not self.batch_first:
            out = F.swapaxes(out, 0, 1)
        if weights is not None and average_attn_weights:
            weights = weights.mean(axis=1)
        return out, weights

    def extra_repr(self):
        return (f"{self.embed_dim}, {self.num_heads}, kdim={self.kdim}, vdim={self.vdim}, "
                f"batch_first={self.batch_first}")
