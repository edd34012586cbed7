"""GAN networks: DCGAN-style convolutional G and D for small images, PacGAN packing, and
rebuilding a generator from its class name and ``.config``.

Vector data uses ``nn.MLP`` for both networks; images use ``DCGANGenerator`` /
``DCGANDiscriminator`` (Radford et al. 2015, sec. 3: fractionally-strided convolutions +
BatchNorm + ReLU and a tanh output in G; strided convolutions + LeakyReLU(0.2) in D).
The discriminator here has no BatchNorm: a batch-dependent D would make the gradient
penalties (which treat D as a per-sample function) and packing ill-defined.
"""
import math

import numpy as np

from minigen import backend, nn
from minigen import functional as F
from minigen.creation import DEFAULT_DTYPE
from minigen.errors import InvalidInput
from minigen.nn.conv import Conv2d, ConvTranspose2d
from minigen.nn.norm import BatchNorm2d
from minigen.tensor import Tensor


def pack(x, m):
    """PacGAN packing (Lin et al. 2018, sec. 3): groups of ``m`` consecutive samples become one
    sample of the discriminator, concatenated along the feature (vectors (n, d) ->
    (n/m, m d)) or channel axis (images (n, C, H, W) -> (n/m, m C, H, W))."""
    if x.shape[0] % m:
        raise InvalidInput(f"pack: batch of {x.shape[0]} samples is not a multiple of pack={m}")
    return x.reshape((x.shape[0] // m, x.shape[1] * m) + tuple(x.shape[2:]))


def with_labels(x, y, num_classes):
    """The conditional GAN's input (Mirza & Osindero 2014): the one-hot codes of the labels
    ``y`` ((n,) host ints in 0..K-1) joined to ``x`` (a Tensor), as K more features of
    vectors (n, d) -> (n, d + K) or K more constant channels of images (n, C, H, W) ->
    (n, C + K, H, W). G sees [z, y], D sees [x, y]: both networks stay one-input, so
    packing and the gradient penalties apply unchanged."""
    onehot = np.eye(num_classes, dtype=x.dtype)[np.asarray(y)]
    if x.ndim == 4:
        onehot = np.broadcast_to(onehot[:, :, None, None], (len(onehot), num_classes)
                                 + tuple(x.shape[2:]))
    return F.cat([x, Tensor(backend.to_device(np.ascontiguousarray(onehot), x.device))], axis=1)


def _levels(image_size, who):
    """Number of stride-2 stages between 4x4 and ``image_size`` (a power of two >= 4)."""
    n = int(round(math.log2(image_size))) if image_size >= 1 else -1
    if n < 2 or 2**n != image_size:
        raise InvalidInput(f"{who}: image_size must be a power of two >= 4, got {image_size}")
    return n - 2


class DCGANGenerator(nn.Module):
    """z (batch, latent_dim) -> images (batch, channels, image_size, image_size) in [-1, 1].

    ConvTranspose2d(latent, c 2^L, 4) maps the 1x1 latent to 4x4, then L stages of
    ConvTranspose2d(k 4, stride 2, padding 1) + BatchNorm2d + ReLU double the size and halve
    the channels, down to ``base_channels``; a final 3x3 convolution and tanh give the image.
    """

    def __init__(self, latent_dim, channels=1, image_size=8, base_channels=32,
                 dtype=DEFAULT_DTYPE, device="cpu"):
        levels = _levels(image_size, "DCGANGenerator")
        self.config = dict(latent_dim=latent_dim, channels=channels, image_size=image_size,
                           base_channels=base_channels, dtype=np.dtype(dtype).name)
        kw = dict(dtype=dtype, device=device)
        width = base_channels * 2**levels
        layers = [ConvTranspose2d(latent_dim, width, 4, **kw), BatchNorm2d(width, **kw), nn.ReLU()]
        for _ in range(levels):
            layers += [ConvTranspose2d(width, width // 2, 4, stride=2, padding=1, **kw),
                       BatchNorm2d(width // 2, **kw), nn.ReLU()]
            width //= 2
        layers += [Conv2d(width, channels, 3, padding=1, **kw), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        if z.ndim != 2 or z.shape[1] != self.config["latent_dim"]:
            raise InvalidInput(f"DCGANGenerator: expected z of shape "
                             f"(batch, {self.config['latent_dim']}), got {z.shape}")
        return self.net(z.reshape(z.shape[0], z.shape[1], 1, 1))


class DCGANDiscriminator(nn.Module):
    """images (batch, channels, image_size, image_size) -> logits (batch, 1).

    L stages of Conv2d(k 4, stride 2, padding 1) + LeakyReLU(0.2) halve the size down to 4x4
    and double the channels from ``base_channels``; a 4x4 convolution gives one logit.
    """

    def __init__(self, channels=1, image_size=8, base_channels=32, dtype=DEFAULT_DTYPE,
                 device="cpu"):
        levels = _levels(image_size, "DCGANDiscriminator")
        self.config = dict(channels=channels, image_size=image_size, base_channels=base_channels,
                           dtype=np.dtype(dtype).name)
        kw = dict(dtype=dtype, device=device)
        width = base_channels
        layers = [Conv2d(channels, width, 3, padding=1, **kw), nn.LeakyReLU(0.2)]
        for _ in range(levels):
            layers += [Conv2d(width, width * 2, 4, stride=2, padding=1, **kw), nn.LeakyReLU(0.2)]
            width *= 2
        layers.append(Conv2d(width, 1, 4, **kw))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        c = self.config
        if x.ndim != 4 or x.shape[1:] != (c["channels"], c["image_size"], c["image_size"]):
            raise InvalidInput(f"DCGANDiscriminator: expected images (batch, {c['channels']}, "
                             f"{c['image_size']}, {c['image_size']}), got {x.shape}")
        return self.net(x).reshape(x.shape[0], 1)


nn.models.MODELS.update(DCGANGenerator=DCGANGenerator, DCGANDiscriminator=DCGANDiscriminator)
build_model = nn.build_model  # the one registry: minigen.nn.models.MODELS
