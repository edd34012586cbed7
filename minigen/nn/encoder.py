"""The noise-aware image classifier of classifier guidance: the UNet's encoder half plus a
head (Dhariwal & Nichol 2021, Sec. 4: "the downsampling trunk of the UNet model with an
attention pool at the 8x8 layer"; here a mean pool, the smaller choice of their App. C).

    16x16  stem conv3x3 C->32 | Res 32->32 | Down 32
     8x8   Res 32->64 + attn | middle: Res 64, attn, Res 64 | GroupNorm, SiLU, mean pool,
           Linear 64->K

The trunk is built from the UNet's own blocks (:class:`~minigen.nn.unet.ResBlock`,
:class:`~minigen.nn.unet.Downsample`, self-attention), with the same time embedding, so that
the classifier sees x_t and t as the denoiser does; it has no skips and no up path.
"""
import numpy as np

from minigen import functional as F
from minigen.creation import DEFAULT_DTYPE
from minigen.errors import InvalidInput
from minigen.nn.attention import SelfAttention2d
from minigen.nn.conv import Conv2d
from minigen.nn.embedding import SinusoidalEmbedding, as_batch_array
from minigen.nn.layers import Linear
from minigen.nn.module import Module
from minigen.nn.norm import GroupNorm
from minigen.nn.unet import Downsample, ResBlock


class UNetEncoder(Module):
    """logits of p_phi(y | x_t, t): (N, in_channels, image_size, image_size), (N,) -> (N, K).

    Arguments as the :class:`~minigen.nn.unet.UNet`'s of the same names (its down path and
    middle block); ``num_classes`` = K is the number of outputs."""

    def __init__(self, num_classes, in_channels=1, base_channels=32, channel_mults=(1, 2),
                 num_res_blocks=1, attention_resolutions=(8,), image_size=16, groups=8,
                 time_dim=128, dtype=DEFAULT_DTYPE, device="cpu"):
        channel_mults = tuple(int(m) for m in channel_mults)
        attention_resolutions = tuple(int(r) for r in attention_resolutions)
        if int(num_classes) < 2:
            raise InvalidInput(f"UNetEncoder: num_classes must be >= 2, got {num_classes}")
        if image_size % 2 ** (len(channel_mults) - 1) or base_channels % 2:
            raise InvalidInput(f"UNetEncoder: image_size {image_size} must be divisible by "
                               f"2**(len(channel_mults)-1) and base_channels {base_channels} "
                               "even")
        self.config = dict(num_classes=int(num_classes), in_channels=in_channels,
                           base_channels=base_channels, channel_mults=channel_mults,
                           num_res_blocks=num_res_blocks,
                           attention_resolutions=attention_resolutions, image_size=image_size,
                           groups=groups, time_dim=time_dim, dtype=np.dtype(dtype).name)
        self.in_channels, self.image_size = in_channels, image_size
        kw = dict(dtype=dtype, device=device)
        self.time_embed = SinusoidalEmbedding(base_channels, dtype)
        self.time_mlp = [Linear(base_channels, time_dim, **kw), Linear(time_dim, time_dim, **kw)]
        self.stem = Conv2d(in_channels, base_channels, 3, padding=1, **kw)
        ch, size, self.trunk = base_channels, image_size, []
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                self.trunk.append(ResBlock(ch, base_channels * mult, time_dim, 0.0, groups, **kw))
                ch = base_channels * mult
                if size in attention_resolutions:
                    self.trunk.append(SelfAttention2d(ch, groups, **kw))
            if level < len(channel_mults) - 1:
                self.trunk.append(Downsample(ch, **kw))
                size //= 2
        self.trunk += [ResBlock(ch, ch, time_dim, 0.0, groups, **kw),
                       SelfAttention2d(ch, groups, **kw),
                       ResBlock(ch, ch, time_dim, 0.0, groups, **kw)]
        self.out_norm = GroupNorm(groups, ch, **kw)
        self.head = Linear(ch, int(num_classes), **kw)

    def forward(self, x, t):
        s, c = self.image_size, self.in_channels
        if x.ndim != 4 or x.shape[1:] != (c, s, s):
            raise InvalidInput(f"UNetEncoder: expected x of shape (N, {c}, {s}, {s}), got "
                               f"{x.shape}")
        t = as_batch_array(t, "UNetEncoder")
        if t.shape[0] != x.shape[0]:
            raise InvalidInput(f"UNetEncoder: t has {t.shape[0]} entries but x has batch size "
                               f"{x.shape[0]}")
        temb = self.time_mlp[1](F.silu(self.time_mlp[0](self.time_embed(t, device=x.device))))
        h = self.stem(x)
        for block in self.trunk:
            h = block(h, temb) if isinstance(block, ResBlock) else block(h)
        h = F.silu(self.out_norm(h))
        return self.head(h.mean(axis=(2, 3)))

    def extra_repr(self):
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items())
