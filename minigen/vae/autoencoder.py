"""The KL-regularised image autoencoder of latent diffusion (Rombach et al. 2022, Sec. 3.1 and
Appendix G): the first stage that maps images to the latent space a diffusion model runs in.

It is the :class:`~minigen.vae.vae.VAE` with convolutional networks: the encoder downsamples
by a factor f (2 or 4, one stride-2 convolution per factor of 2) to latent images of
``latent_channels`` x H/f x W/f, the decoder upsamples back (nearest, then a convolution);
the decoder is Gaussian with one learned log-variance for all pixels (as the reference
code's ``logvar``), and the KL term carries a small weight ``beta`` (1e-6 in the paper), so
that the latents stay close to the data rather than to the prior. Their scale is then
arbitrary; the run stores ``scale_factor`` = 1 / std of the latents of the training data
(Stable Diffusion's 0.18215 was computed so), and :class:`LatentSpace` hands a diffusion
model latents of unit variance and decodes its samples back to images.
"""
import os

import numpy as np

from minigen import backend, nn
from minigen import functional as F
from minigen.errors import InvalidInput
from minigen.tensor import Tensor, no_grad
from minigen import options as checks
from minigen.vae import figures as plots
from minigen.vae.trainer import (
    EVAL_CHUNK, SIZE, TRAINING_OPTIONS, Autoencoder, Option, VAETrainer, load_vae,
    to_data_units, to_model_units, train_run,
)

FACTORS = (2, 4)
#: The encoder's log-variance is clipped to this range, as in the reference code's diagonal
#: Gaussian: with beta = 1e-6 the KL term barely holds sigma up, and exp(-logvar) in the
#: bound's log q(z | x) overflows float32 once logvar falls below about -88.
LOGVAR_RANGE = (-30.0, 20.0)

DEFAULTS = dict(
    factor=2,
    latent_channels=4,
    base_channels=32,
    likelihood="gaussian",
    beta=1e-6,
    batch_size=32,
    lr=1e-3,
    holdout=0.1,
    eval_k=1,
    checkpoint_every=1000,
)
"""Options of ``AutoencoderTrainer`` / ``train_autoencoder``: Rombach et al.'s KL weight and
4 latent channels, a narrow network for small images."""

OPTIONS = dict(
    factor=Option("int", "downsampling factor f of the latent images (2 or 4)", low=2, high=4),
    latent_channels=Option("int", "channels of the latent images", **SIZE),
    base_channels=Option("int", "width of the convolutional networks", **SIZE),
    likelihood=Option("choice", "the decoder's distribution of x given z",
                      choices=("gaussian",)),
    **TRAINING_OPTIONS,
)
"""Every ``AutoencoderTrainer`` option: its type, range or choices, and meaning
(docs/guide.md)."""


class ConvEncoder(nn.Module):
    """Images (n, C, H, W) -> (n, 2 latent_channels, H/f, W/f): the mean and log-variance of
    q(z | x) stacked on axis 1."""

    def __init__(self, in_channels, latent_channels, base_channels, factor):
        layers = [nn.Conv2d(in_channels, base_channels, 3, padding=1), nn.SiLU()]
        for _ in range(int(np.log2(factor))):
            layers += [nn.Conv2d(base_channels, base_channels, 3, stride=2, padding=1), nn.SiLU(),
                       nn.Conv2d(base_channels, base_channels, 3, padding=1), nn.SiLU()]
        layers.append(nn.Conv2d(base_channels, 2 * latent_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        h = self.net(x)
        c = h.shape[1] // 2
        return F.cat([h[:, :c], F.clip(h[:, c:], *LOGVAR_RANGE)], axis=1)


class ConvDecoder(nn.Module):
    """Latents (n, latent_channels, h, w) -> (n, 2 C, f h, f w): the mean of p(x | z) and the
    one learned log-variance, broadcast, stacked on axis 1 (the Gaussian decoder's layout)."""

    def __init__(self, latent_channels, out_channels, base_channels, factor):
        layers = [nn.Conv2d(latent_channels, base_channels, 3, padding=1), nn.SiLU()]
        for _ in range(int(np.log2(factor))):
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(base_channels, base_channels, 3,
                                                              padding=1), nn.SiLU()]
        layers.append(nn.Conv2d(base_channels, out_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)
        self.logvar = nn.Parameter(np.zeros((1, 1, 1, 1), dtype=np.float32))

    def forward(self, z):
        mean = self.net(z)
        return F.cat([mean, F.broadcast_to(self.logvar, mean.shape)], axis=1)


def build_autoencoder(config):
    """(the networks, the latent shape (c, H/f, W/f)) of an autoencoder run's ``config``."""
    channels, height, width = config["data_shape"]
    f, c, base = config["factor"], config["latent_channels"], config["base_channels"]
    return Autoencoder(ConvEncoder(channels, c, base, f),
                       ConvDecoder(c, channels, base, f)), (c, height // f, width // f)


class AutoencoderTrainer(VAETrainer):
    """Trains the latent-diffusion autoencoder on images (n, C, H, W) with H and W multiples
    of ``factor``. Options (``DEFAULTS``): ``factor`` f (2 or 4), ``latent_channels``,
    ``base_channels`` (the networks' width), ``beta`` (the KL weight), and the VAE trainer's
    ``batch_size``, ``lr``, ``holdout``, ``eval_k``, ``checkpoint_every``. At each checkpoint
    step ``curve`` gains the held-out bounds, ``mse`` (the mean squared reconstruction error
    per pixel, images in [0, 1]) and ``scale_factor``, which ``config["scale_factor"]``
    keeps. Figures: reconstructions.png and heldout.png."""

    kind = "autoencoder"
    flatten = False
    build = staticmethod(build_autoencoder)
    option_names = tuple(DEFAULTS)

    def check_options(self, options, data):
        o = checks.check("AutoencoderTrainer", OPTIONS, options, DEFAULTS)
        if o["factor"] not in FACTORS:
            raise InvalidInput(f"AutoencoderTrainer: factor must be one of {FACTORS}, got "
                               f"{o['factor']!r}")
        shape = np.shape(data)
        if len(shape) != 4:
            raise InvalidInput(f"AutoencoderTrainer: data must be images (n, C, H, W), got "
                               f"shape {shape}")
        if shape[2] % o["factor"] or shape[3] % o["factor"]:
            raise InvalidInput(f"AutoencoderTrainer: image size {shape[2]}x{shape[3]} must be a "
                               f"multiple of factor {o['factor']}")
        return o

    def evaluate(self, x=None, k=None):
        """The VAE trainer's held-out bounds, plus ``mse``, the mean squared reconstruction
        error per pixel (images in [0, 1]), and the ``scale_factor`` of the latents."""
        x = self.evaluation_data() if x is None else x
        result = super().evaluate(x, k)
        rec = np.concatenate([self.vae.reconstruct(self.tensor(x[i:i + EVAL_CHUNK]))
                              for i in range(0, len(x), EVAL_CHUNK)])
        result["mse"] = float(np.mean((rec - x) ** 2))
        result["scale_factor"] = self.latent_scale_factor()
        return result

    def latent_scale_factor(self, n=1000):
        """1 / std of posterior samples z ~ q(z | x) of up to ``n`` training images (drawn
        with a fixed generator): the factor that gives the latents unit variance."""
        rng = np.random.default_rng(0)
        x = self.train_x[:n]
        with no_grad():
            mu, logvar = self.vae.encode(self.tensor(x))
            z = backend.to_numpy(mu.data) + np.exp(0.5 * backend.to_numpy(logvar.data)) * \
                rng.standard_normal(mu.shape)
        return float(1 / max(z.std(), 1e-12))

    def on_step_end(self, step):
        super().on_step_end(step)
        if self.curve["step"] and self.curve["step"][-1] == step:
            self.config["scale_factor"] = self.curve["scale_factor"][-1]

    def on_checkpoint(self, step):
        if not self.figures:
            return
        x = self.evaluation_data()[:20]
        plots.reconstructions(self.images(x), self.images(self.vae.reconstruct(self.tensor(x))),
                              os.path.join(self.out_dir, "reconstructions.png"))
        plots.heldout_bound(self.curve, os.path.join(self.out_dir, "heldout.png"))


def train_autoencoder(data, steps, out_dir, seed=None, resume=False, progress=True,
                      figures=True, device="cpu", overwrite=False, comm=None, **options):
    """Train the latent-diffusion autoencoder and return the ``AutoencoderTrainer`` (the CLI's
    ``minigen train autoencoder``); arguments as for :func:`minigen.vae.trainer.train_vae`,
    ``options`` overriding ``DEFAULTS``."""
    return train_run(AutoencoderTrainer, data, steps, out_dir, seed, resume, progress, figures,
                     device, overwrite, comm, options)


class LatentSpace:
    """The latent space of a trained autoencoder run, for a diffusion model to train and
    sample in: :meth:`encode` maps images (data units) to ``scale_factor`` times the
    posterior mean (unit variance), :meth:`decode` maps such latents back to images."""

    def __init__(self, run_dir, device="cpu"):
        self.vae, self.config = load_vae(run_dir, "autoencoder")
        self.vae.encoder.to(device)
        self.vae.decoder.to(device)
        self.device = device
        self.scale_factor = self.config["scale_factor"]
        self.latent_shape = self.vae.latent_shape

    def encode(self, images):
        """Images (n, C, H, W) in data units -> latents (n, c, H/f, W/f), unit variance."""
        y = to_model_units(np.asarray(images, dtype=np.float32), self.config["normalization"],
                           flatten=False)
        with no_grad():
            mu = self.vae.encode(Tensor(backend.to_device(y, self.device)))[0]
        return backend.to_numpy(mu.data) * np.float32(self.scale_factor)

    def decode(self, latents):
        """Latents as :meth:`encode` returns them -> images in data units (the decoder's
        mean)."""
        z = np.asarray(latents, dtype=np.float32) / np.float32(self.scale_factor)
        return to_data_units(self.vae.decode_mean(Tensor(backend.to_device(z, self.device))),
                             self.config)
