"""Self-attention over the positions of a feature map (the DDPM UNet's ``AttnBlock``)."""
from minigen import functional as F
from minigen.creation import DEFAULT_DTYPE
from minigen.nn.conv import Conv2d
from minigen.nn.module import Module
from minigen.nn.norm import GroupNorm


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
