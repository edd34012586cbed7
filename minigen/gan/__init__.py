"""Generative adversarial networks (Goodfellow et al. 2014) and what later work added.

``GAN`` (``gan.py``) is Algorithm 1, one method per step (``d_step``, ``g_step``, the
simultaneous variant, top-k); ``GANTrainer`` (``trainer.py``) runs it on the shared
``minigen.trainer.Trainer`` loop with schedules, checkpoints and figures, from the tuned
defaults or the ``paper`` preset (Algorithm 1 as printed). Losses go through logits
(``losses``), gradient penalties through double backward (``penalties``), networks and
PacGAN packing are in ``models``, figures in ``figures``.

    >>> import minigen.gan as gan
    >>> trainer = gan.train_gan("ring8", steps=3000, out_dir="runs/ring8")   # doctest: +SKIP
    >>> x = gan.sample_run("runs/ring8", n=2500, seed=0)                      # doctest: +SKIP
"""
from minigen.gan.figures import plot_figure1, plot_samples
from minigen.gan.gan import GAN, noise_prior, truncate
from minigen.gan.losses import LOSSES, discriminator_loss, generator_loss
from minigen.gan.models import DCGANDiscriminator, DCGANGenerator, build_model, pack
from minigen.gan.penalties import PENALTIES, r1_penalty, wgan_gp_penalty
from minigen.gan.trainer import (
    DEFAULT_STEPS,
    DEFAULTS,
    IMAGE_DEFAULTS,
    PAPER,
    PRESETS,
    GANTrainer,
    defaults_for,
    load_generator,
    sample_run,
    train_gan,
)

__all__ = [
    "GAN", "GANTrainer", "PAPER", "PRESETS", "train_gan", "sample_run", "load_generator", "noise_prior", "truncate", "DEFAULTS",
    "IMAGE_DEFAULTS", "DEFAULT_STEPS", "defaults_for",
    "discriminator_loss", "generator_loss", "LOSSES", "r1_penalty", "wgan_gp_penalty",
    "PENALTIES", "DCGANGenerator", "DCGANDiscriminator", "build_model", "pack",
    "plot_figure1", "plot_samples",
]
