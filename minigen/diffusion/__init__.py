"""Diffusion models (``minigen.diffusion``): noise schedules (``schedule``), the DDPM of Ho et
al. 2020 (``ddpm``: the forward process, the reverse step, the training loss and ancestral
sampling), the EDM formulation of Karras et al. 2022 (``edm``: preconditioning, training
noise levels, the Heun and stochastic samplers), the faster samplers (``ddim``,
``dpm_solver``, on one timestep ``spacing``), guidance, SDEdit and RePaint (``editing``),
classifier guidance and its noisy classifier (``classifier_guidance``, ``classifier``), the
argument checks of all of them (``inputs``),
the trainer and run loading (``trainer``), and the training figures (``figures``).

    >>> from minigen.diffusion import train_ddpm, sample_run
    >>> trainer = train_ddpm("s_curve", steps=6000, out_dir="runs/s_curve")   # doctest: +SKIP
    >>> x = sample_run("runs/s_curve", n=2000, sampler="ddim", steps=50)       # doctest: +SKIP
"""
from minigen.diffusion.classifier import load_classifier, train_classifier
from minigen.diffusion.classifier_guidance import classifier_guided_sample
from minigen.diffusion.ddpm import DDPM
from minigen.diffusion.edm import EDM
from minigen.diffusion.schedule import NoiseSchedule
from minigen.diffusion.trainer import DDPMTrainer, load_run, sample_run, train_ddpm

__all__ = ["DDPM", "EDM", "NoiseSchedule", "DDPMTrainer", "train_ddpm", "load_run", "sample_run",
           "train_classifier", "load_classifier", "classifier_guided_sample"]
