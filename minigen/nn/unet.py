"""The DDPM denoiser: a UNet with residual blocks, self-attention and a time embedding
(Ho et al. 2020, appendix B, after PixelCNN++), scaled down to train on a CPU.

The default configuration (1x16x16 input, ``channel_mults`` (1, 2), one res block per
level, attention at 8x8), with each block's input -> output channels:

    16x16  stem conv3x3 1->32 | Res 32->32 | Down 32
     8x8   Res 32->64 + attn | middle: Res 64, attn, Res 64
     8x8   Res [64+64]->64 + attn | Res [64+32]->64 + attn, Up 64
    16x16  Res [64+32]->32 | Res [32+32]->32 | GroupNorm, SiLU, conv3x3 32->1

Every down-path output (stem, each res stage, each downsample) is kept and concatenated to
the input of one up-path res block, as in DDPM. The timestep enters every res block through
the embedding sinusoid(t) -> Linear -> SiLU -> Linear (plus a learned class embedding when
``num_classes`` is set). Weights use PyTorch's default initialisation; DDPM instead
zero-initialises the last conv of each block, which gives the layers before it (first conv,
time projection, norms) exactly zero gradient at the first step.

Dhariwal & Nichol (2021, Sec. 3) measured four changes, each an option here, all off by
default (the default network and its state-dict keys are the DDPM one above):

- ``adagn``: adaptive group normalisation, AdaGN(h, y) = y_s GroupNorm(h) + y_b, with
  [y_s, y_b] a linear projection of the time (and class) embedding, in place of adding the
  projection to h; the official code's ``use_scale_shift_norm``, which writes y_s as 1 + s;
- ``resblock_updown``: BigGAN's residual blocks for up- and downsampling (Brock et al.
  2019), resampling both paths of a res block (2x2 average pool, nearest x2) in place of the
  strided / upsampling convolution;
- more ``attention_resolutions`` (e.g. (16, 8): attention at 16x16 as well);
- ``rescale_residual``: each res block returns (skip + h) / sqrt(2) (BigGAN; Song et al.
  2021), which keeps the variance of a sum of two unit-variance branches at 1.
"""
import numpy as np

from minigen import functional as F
from minigen.creation import DEFAULT_DTYPE
from minigen.errors import InvalidInput
from minigen.nn.attention import SelfAttention2d
from minigen.nn.conv import Conv2d
from minigen.nn.cross_attention import CrossAttention2d
from minigen.nn.embedding import Embedding, SinusoidalEmbedding, as_batch_array
from minigen.nn.layers import Dropout, Linear
from minigen.nn.module import Module
from minigen.nn.norm import GroupNorm


class ResBlock(Module):
    """x -> GroupNorm, SiLU, conv3x3 -> + Linear(SiLU(temb)) -> GroupNorm, SiLU, dropout,
    conv3x3 -> + skip(x), where skip is a 1x1 conv when the channel count changes.

    Options (the module docstring): ``adagn`` replaces "+ Linear(SiLU(temb)), GroupNorm" by
    AdaGN, (1 + s) GroupNorm(h) + b with [s, b] = Linear(SiLU(temb)); ``resample`` "down" or
    "up" resamples h (after the first SiLU) and x alike (BigGAN's up/down res block);
    ``rescale_residual`` divides the sum by sqrt(2)."""

    def __init__(self, in_channels, out_channels, time_dim, dropout=0.0, groups=8,
                 dtype=DEFAULT_DTYPE, device="cpu", adagn=False, resample=None,
                 rescale_residual=False):
        kw = dict(dtype=dtype, device=device)
        self.adagn, self.resample, self.rescale = adagn, resample, rescale_residual
        self.norm1 = GroupNorm(groups, in_channels, **kw)
        self.conv1 = Conv2d(in_channels, out_channels, 3, padding=1, **kw)
        self.time_proj = Linear(time_dim, out_channels * (2 if adagn else 1), **kw)
        self.norm2 = GroupNorm(groups, out_channels, **kw)
        self.dropout = Dropout(dropout)
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1, **kw)
        same = in_channels == out_channels
        self.skip = None if same else Conv2d(in_channels, out_channels, 1, **kw)

    def forward(self, x, temb):
        h = F.silu(self.norm1(x))
        if self.resample is not None:
            h, x = _resample(h, self.resample), _resample(x, self.resample)
        h = self.conv1(h)
        n, c = h.shape[:2]
        if self.adagn:  # AdaGN(h, y) = y_s GroupNorm(h) + y_b, y_s = 1 + s
            scale_shift = F.reshape(self.time_proj(F.silu(temb)), (n, 2 * c, 1, 1))
            h = self.norm2(h) * (scale_shift[:, :c] + 1.0) + scale_shift[:, c:]
        else:
            h = self.norm2(h + F.reshape(self.time_proj(F.silu(temb)), (n, c, 1, 1)))
        h = self.conv2(self.dropout(F.silu(h)))
        out = (x if self.skip is None else self.skip(x)) + h
        return out * (2 ** -0.5) if self.rescale else out


def _resample(x, how):
    """BigGAN's resampling inside a res block: 2x2 average pool ("down") or nearest x2
    ("up")."""
    return F.avg_pool2d(x, 2) if how == "down" else F.upsample_nearest2d(x, 2)


class Downsample(Module):
    """Halve H and W with a stride-2 conv3x3."""

    def __init__(self, channels, dtype=DEFAULT_DTYPE, device="cpu"):
        self.conv = Conv2d(channels, channels, 3, stride=2, padding=1, dtype=dtype, device=device)

    def forward(self, x):
        return self.conv(x)


class Upsample(Module):
    """Double H and W: nearest-neighbour x2, then conv3x3."""

    def __init__(self, channels, dtype=DEFAULT_DTYPE, device="cpu"):
        self.conv = Conv2d(channels, channels, 3, padding=1, dtype=dtype, device=device)

    def forward(self, x):
        return self.conv(F.upsample_nearest2d(x, 2))


def _run(stage, x, temb, context=None, context_mask=None):
    for m in stage:
        if isinstance(m, ResBlock):
            x = m(x, temb)
        elif isinstance(m, CrossAttention2d):
            x = m(x, context, context_mask)
        else:
            x = m(x)
    return x


def _check_config(in_channels, base_channels, channel_mults, num_res_blocks,
                  attention_resolutions, image_size, dropout, groups, time_dim, num_classes,
                  context_dim=None, out_channels=None):
    problems = []
    if in_channels < 1 or time_dim < 1 or num_res_blocks < 1:
        problems.append(f"in_channels ({in_channels}), time_dim ({time_dim}) and num_res_blocks "
                        f"({num_res_blocks}) must be >= 1")
    if base_channels < 4 or base_channels % 2:
        problems.append(f"base_channels must be even and >= 4 (it is the size of the sinusoidal "
                        f"embedding), got {base_channels}")
    if not channel_mults or min(channel_mults) < 1:
        problems.append(f"channel_mults must be a non-empty tuple of positive ints, "
                        f"got {channel_mults}")
    else:
        factor = 2 ** (len(channel_mults) - 1)
        if image_size < factor or image_size % factor:
            problems.append(f"image_size {image_size} must be divisible by "
                            f"2**(len(channel_mults)-1) = {factor} ({len(channel_mults)} levels)")
        channels = sorted({base_channels} | {base_channels * m for m in channel_mults})
        if groups < 1 or any(c % groups for c in channels):
            problems.append(f"groups={groups} must divide every channel count {channels} "
                            f"(base_channels * channel_mults)")
        resolutions = [image_size // 2**i for i in range(len(channel_mults))]
        stray = sorted(set(attention_resolutions) - set(resolutions))
        if stray:
            problems.append(f"attention_resolutions {stray} are not among the resolutions "
                            f"{resolutions}")
    if not 0 <= dropout < 1:
        problems.append(f"dropout must be in [0, 1), got {dropout}")
    if num_classes is not None and num_classes < 1:
        problems.append(f"num_classes must be None or >= 1, got {num_classes}")
    for name, value in (("context_dim", context_dim), ("out_channels", out_channels)):
        if value is not None and value < 1:
            problems.append(f"{name} must be None or >= 1, got {value}")
    if context_dim is not None and not attention_resolutions:
        problems.append("context_dim needs at least one attention resolution (the "
                        "cross-attention blocks sit there)")
    if problems:
        raise InvalidInput("UNet: " + "; ".join(problems))


class UNet(Module):
    """eps_theta(x_t, t[, y, context]): (N, in_channels, image_size, image_size) -> (N,
    out_channels, image_size, image_size), ``out_channels`` defaulting to ``in_channels``.

    ``attention_resolutions`` lists the feature-map sizes (e.g. 8 for 8x8) whose res stages,
    and the middle block, get self-attention. With ``num_classes`` = K, ``y`` holds labels in
    0..K-1, or K, the "null" class that classifier-free guidance trains with some probability
    and samples with; ``y=None`` means the null class for the whole batch.

    With ``context_dim`` = d, each attention block is followed by a
    :class:`~minigen.nn.cross_attention.CrossAttention2d` block in which the image positions
    attend to ``context`` (N, L, d), e.g. a caption's token embeddings (latent diffusion,
    Rombach et al. 2022, Sec. 3.3); ``context_mask`` (N, L) is True at padding tokens.
    """

    def __init__(self, in_channels=1, base_channels=32, channel_mults=(1, 2), num_res_blocks=1,
                 attention_resolutions=(8,), image_size=16, dropout=0.0, groups=8,
                 time_dim=128, num_classes=None, context_dim=None, out_channels=None,
                 dtype=DEFAULT_DTYPE, device="cpu", adagn=False, resblock_updown=False,
                 rescale_residual=False):
        channel_mults = tuple(int(m) for m in channel_mults)
        attention_resolutions = tuple(int(r) for r in attention_resolutions)
        self.config = dict(in_channels=in_channels, base_channels=base_channels,
                           channel_mults=channel_mults, num_res_blocks=num_res_blocks,
                           attention_resolutions=attention_resolutions, image_size=image_size,
                           dropout=dropout, groups=groups, time_dim=time_dim,
                           num_classes=num_classes)
        extra = dict(context_dim=context_dim, out_channels=out_channels)
        _check_config(**self.config, **extra)
        self.config.update({k: v for k, v in extra.items() if v is not None})
        self.context_dim = context_dim
        self.config["dtype"] = np.dtype(dtype).name
        # the paper's options only when set, so the default network's config stays as it was
        options = dict(adagn=bool(adagn), resblock_updown=bool(resblock_updown),
                       rescale_residual=bool(rescale_residual))
        self.config.update({k: v for k, v in options.items() if v})
        self.in_channels, self.image_size, self.num_classes = in_channels, image_size, num_classes
        kw = dict(dtype=dtype, device=device)

        def res(cin, cout, resample=None):
            return ResBlock(cin, cout, time_dim, dropout, groups, **kw, adagn=adagn,
                            resample=resample, rescale_residual=rescale_residual)

        def attention(ch, size):
            if size not in attention_resolutions:
                return []
            cross = [] if context_dim is None else [CrossAttention2d(ch, context_dim, groups,
                                                                     **kw)]
            return [SelfAttention2d(ch, groups, **kw)] + cross

        self.time_embed = SinusoidalEmbedding(base_channels, dtype)
        self.time_mlp = [Linear(base_channels, time_dim, **kw), Linear(time_dim, time_dim, **kw)]
        self.class_embed = (
            None if num_classes is None else Embedding(num_classes + 1, time_dim, **kw)
        )
        self.stem = Conv2d(in_channels, base_channels, 3, padding=1, **kw)

        ch, size, skips = base_channels, image_size, [base_channels]
        self.down = []
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                self.down.append([res(ch, base_channels * mult)])
                ch = base_channels * mult
                self.down[-1] += attention(ch, size)
                skips.append(ch)
            if level < len(channel_mults) - 1:
                self.down.append([res(ch, ch, "down") if resblock_updown
                                  else Downsample(ch, **kw)])
                size //= 2
                skips.append(ch)
        self.middle = [res(ch, ch)] + attention(ch, size) + [res(ch, ch)]
        self.up = []
        for level, mult in reversed(list(enumerate(channel_mults))):
            for i in range(num_res_blocks + 1):
                stage = [res(ch + skips.pop(), base_channels * mult)]
                ch = base_channels * mult
                stage += attention(ch, size)
                if level > 0 and i == num_res_blocks:
                    stage.append(res(ch, ch, "up") if resblock_updown else Upsample(ch, **kw))
                    size *= 2
                self.up.append(stage)
        self.out_norm = GroupNorm(groups, ch, **kw)
        self.out_conv = Conv2d(ch, out_channels or in_channels, 3, padding=1, **kw)

    def embed(self, t, y, batch, device):
        """The conditioning vector (batch, time_dim) fed to every res block."""
        t = as_batch_array(t, "UNet")
        if t.shape[0] != batch:
            raise InvalidInput(f"UNet: t has {t.shape[0]} entries but x has batch size {batch}")
        temb = self.time_mlp[1](F.silu(self.time_mlp[0](self.time_embed(t, device=device))))
        if self.class_embed is None:
            if y is not None:
                raise InvalidInput(
                    "UNet: labels y given but the model is unconditional (num_classes=None)"
                )
            return temb
        y = np.full(batch, self.num_classes) if y is None else as_batch_array(y, "UNet")
        if y.shape[0] != batch:
            raise InvalidInput(f"UNet: y has {y.shape[0]} entries but x has batch size {batch}")
        return temb + self.class_embed(y)

    def forward(self, x, t, y=None, context=None, context_mask=None):
        s, c = self.image_size, self.in_channels
        if x.shape[1:] != (c, s, s) or x.ndim != 4:
            raise InvalidInput(f"UNet: expected x of shape (N, {c}, {s}, {s}), got {x.shape}")
        temb = self.embed(t, y, x.shape[0], x.device)
        cond = self._context(context, context_mask, x.shape[0])
        h = self.stem(x)
        skips = [h]
        for stage in self.down:
            h = _run(stage, h, temb, *cond)
            skips.append(h)
        h = _run(self.middle, h, temb, *cond)
        for stage in self.up:
            h = _run(stage, F.cat([h, skips.pop()], axis=1), temb, *cond)
        return self.out_conv(F.silu(self.out_norm(h)))

    def _context(self, context, context_mask, batch):
        """(context, context_mask) checked against the model and the batch."""
        if self.context_dim is None:
            if context is not None:
                raise InvalidInput("UNet: context given but the model has no cross-attention "
                                   "(context_dim=None)")
            return None, None
        d = self.context_dim
        if context is None or context.ndim != 3 or context.shape[0] != batch \
                or context.shape[2] != d:
            got = None if context is None else context.shape
            raise InvalidInput(f"UNet: context must have shape ({batch}, L, {d}), got {got}")
        if context_mask is not None and tuple(context_mask.shape) != context.shape[:2]:
            raise InvalidInput(f"UNet: context_mask must have shape {context.shape[:2]} "
                               f"(batch, tokens), got {tuple(context_mask.shape)}")
        return context, context_mask

    def extra_repr(self):
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items())
