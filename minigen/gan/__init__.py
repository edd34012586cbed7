"""Generative adversarial networks (Goodfellow et al. 2014) and what later work added.

``GANTrainer`` runs Algorithm 1 (k discriminator updates, then one generator update) or the
simultaneous-update variant on the shared ``minigen.trainer.Trainer`` loop; losses go
through logits (``losses``), gradient penalties through double backward (``penalties``),
networks and PacGAN packing are in ``models``, figures in ``figures``.

    >>> import minigen.gan as gan
    >>> trainer = gan.train_gan("ring8", steps=3000, out_dir="runs/ring8")   # doctest: +SKIP
    >>> x = gan.sample_run("runs/ring8", n=2500, seed=0)                      # doctest: +SKIP
"""
from minigen.gan.figures import plot_figure1, plot_samples
from minigen.gan.losses import LOSSES, discriminator_loss, generator_loss
from minigen.gan.models import DCGANDiscriminator, DCGANGenerator, build_model, pack
from minigen.gan.penalties import PENALTIES, r1_penalty, wgan_gp_penalty
from minigen.gan.trainer import (
    DEFAULT_STEPS,
    DEFAULTS,
    IMAGE_DEFAULTS,
    GANTrainer,
    defaults_for,
    load_generator,
    noise_prior,
    sample_run,
    train_gan,
)

__all__ = [
    "GANTrainer", "train_gan", "sample_run", "load_generator", "noise_prior", "DEFAULTS",
    "IMAGE_DEFAULTS", "DEFAULT_STEPS", "defaults_for",
    "discriminator_loss", "generator_loss", "LOSSES", "r1_penalty", "wgan_gp_penalty",
    "PENALTIES", "DCGANGenerator", "DCGANDiscriminator", "build_model", "pack",
    "plot_figure1", "plot_samples",
]
