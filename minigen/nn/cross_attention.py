"""Cross-attention from the positions of a feature map to a sequence of token embeddings: the
block through which latent diffusion's UNet reads its text condition (Rombach et al. 2022,
Sec. 3.3, eq. 3).

With phi_i(z_t) the flattened (H*W, C) image features and tau_theta(y) the (L, d_tau) token
embeddings of the caption,

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V,
    Q = W_Q phi_i(z_t),  K = W_K tau_theta(y),  V = W_V tau_theta(y)          (eq. 3)

so every image position takes a weighted mean of the (projected) words. Padding tokens are
masked out of the softmax (``context_mask``, True at padding, PyTorch's
``key_padding_mask``).
"""
from minigen import functional as F
from minigen.creation import DEFAULT_DTYPE
from minigen.nn.attention import MultiheadAttention
from minigen.nn.conv import Conv2d
from minigen.nn.module import Module
from minigen.nn.norm import GroupNorm


class CrossAttention2d(Module):
    """x + proj(MultiheadAttention(GroupNorm(x), context, context)): the H*W positions of
    x (N, C, H, W) are the queries, the tokens of ``context`` (N, L, context_dim) the keys
    and values (eq. 3 above), ``heads`` heads of C / heads channels; a residual block like
    the UNet's :class:`~minigen.nn.attention.SelfAttention2d`."""

    def __init__(self, channels, context_dim, groups, heads=1, dtype=DEFAULT_DTYPE,
                 device="cpu"):
        kw = dict(dtype=dtype, device=device)
        self.channels, self.context_dim, self.heads = channels, context_dim, heads
        self.norm = GroupNorm(groups, channels, **kw)
        self.attention = MultiheadAttention(channels, heads, kdim=context_dim, vdim=context_dim,
                                            batch_first=True, **kw)
        self.proj = Conv2d(channels, channels, 1, **kw)

    def forward(self, x, context, context_mask=None):
        n, c, h, w = x.shape
        q = F.swapaxes(F.reshape(self.norm(x), (n, c, h * w)), 1, 2)  # (n, h*w, c)
        out, _ = self.attention(q, context, context, key_padding_mask=context_mask,
                                need_weights=False)
        return x + self.proj(F.reshape(F.swapaxes(out, 1, 2), (n, c, h, w)))

    def extra_repr(self):
        return f"{self.channels}, context_dim={self.context_dim}, heads={self.heads}"
