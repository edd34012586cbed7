"""Figures of a diffusion run: the forward and reverse chains and the samples of a checkpoint.

The chains are drawn in the model's (normalised) units, samples in data units.
"""
import os

import numpy as np
from matplotlib.figure import Figure

from minigen import backend
from minigen.viz import (
    SAMPLE_COLOR, save_figure, scatter, tile, image_grid, loss_curve, samples_over_data,
)


def chain_timesteps(T, count=6):
    """Paper timesteps 0 < ... < T to show, denser near 0 where the structure appears."""
    if count == 6:
        fractions = np.array([0.0, 0.05, 0.1, 0.2, 0.4, 1.0])
    else:
        fractions = np.linspace(0, 1, count) ** 2
    return sorted({int(round(f * T)) for f in fractions})


def diffusion_chains_2d(forward, reverse, path, limit=3.5):
    """Two rows of scatter plots: ``forward`` {t: x_t} drawn from q(x_t | x_0) on the data
    (top), ``reverse`` {t: x_t} of the sampler from x_T to x_0 (bottom), same t per column."""
    ts = sorted(forward)
    fig = Figure(figsize=(2.2 * len(ts), 4.6))
    axes = fig.subplots(2, len(ts), squeeze=False)
    for j, t in enumerate(ts):
        rows = ((forward, "#555555", "forward q(x_t | x_0)"),
                (reverse, SAMPLE_COLOR, "reverse p(x_{t-1} | x_t)"))
        for i, (chain, color, label) in enumerate(rows):
            ax = axes[i, j]
            scatter(ax, chain[t], color, size=1.5, alpha=0.4)
            ax.set_xlim(-limit, limit)
            ax.set_ylim(-limit, limit)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"t = {t}", fontsize=10)
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.suptitle("Diffusion: data to noise (top), noise to samples (bottom)", fontsize=11)
    save_figure(fig, path)


def diffusion_chains_images(forward, reverse, path):
    """Rows of images along the chains: the forward process on training images (top block)
    and the reverse chain of samples (bottom block), one column per timestep (model units,
    shown clipped to [-1, 1])."""
    ts = sorted(forward)
    top = np.concatenate([forward[t][:, None] for t in ts], axis=1)  # (rows, len(ts), C, H, W)
    bottom = np.concatenate([reverse[t][:, None] for t in ts], axis=1)
    fig = Figure(figsize=(1.1 * len(ts) + 0.8, 1.1 * (len(top) + len(bottom)) + 0.6))
    axes = fig.subplots(2, 1)
    for ax, block, label in ((axes[0], top, "forward"), (axes[1], bottom, "reverse")):
        n, k = block.shape[:2]
        ax.imshow(tile(block.reshape((n * k,) + block.shape[2:]), k), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_xticks([(j + 0.5) * (block.shape[-1] + 1) for j in range(k)])
        ax.set_xticklabels([f"t={t}" for t in ts], fontsize=8)
        ax.set_yticks([])
        ax.set_ylabel(label, fontsize=9)
    save_figure(fig, path)


def checkpoint_samples(trainer, final=False, n_samples=None):
    """What the figures of a :class:`minigen.diffusion.trainer.DDPMTrainer` checkpoint show:
    ``(samples, forward, reverse)``, the samples in data units from the EMA weights
    (ancestral sampling for vectors; DDIM with 50 steps for images at intermediate
    checkpoints, ancestral at the end) and the chains {t: x_t} at :func:`chain_timesteps`.
    An EDM run's samples come from its Heun sampler, without chains (None, None)."""
    ddpm, data = trainer.ddpm, trainer.data_raw
    images = data.ndim == 4
    n = n_samples or (64 if images else (2000 if final else 1000))
    if not hasattr(ddpm, "schedule"):
        return trainer.sample(n, seed=0), None, None
    ts = chain_timesteps(ddpm.schedule.T)
    rng = np.random.default_rng(0)
    sampler = "ddpm" if (final or not images) else "ddim"
    keep = ts if sampler == "ddpm" else True
    samples, reverse = trainer.sample(n, sampler=sampler, seed=0, return_trajectory=keep)
    if sampler == "ddim":
        reverse = {t: reverse[min(reverse, key=lambda s: abs(s - t))] for t in ts}
    index = rng.choice(len(data), size=min(len(data), n), replace=False)
    x0 = trainer.data[backend.to_device(index, trainer.device)]
    forward = {0: backend.to_numpy(x0)}
    for t in ts[1:]:
        x_t = ddpm.q_sample(x0, np.full(len(x0), t - 1), seed=rng.integers(2**31))
        forward[t] = backend.to_numpy(x_t)
    return samples, forward, {t: backend.to_numpy(x) for t, x in reverse.items()}


def ddpm_figures(trainer, samples, forward, reverse, quality=None):
    """Write a checkpoint's figures to the trainer's out_dir: ``diffusion.png`` (the chains of
    :func:`checkpoint_samples`, when given), ``samples.png`` (with the ``quality`` numbers in
    the title, when given) and ``loss.png``."""
    out, quality = trainer.out_dir, quality or {}
    if samples.ndim == 4:
        rows = 4
        if forward is not None:
            diffusion_chains_images({t: x[:rows] for t, x in forward.items()},
                                    {t: x[:rows] for t, x in reverse.items()},
                                    os.path.join(out, "diffusion.png"))
        title = f"{len(samples)} samples, step {trainer.step}"
        if "class_coverage" in quality:
            title += (f": {quality['class_coverage']}/10 classes, "
                      f"confidence {quality['mean_confidence']:.2f}")
        image_grid(samples, os.path.join(out, "samples.png"), nrow=8, title=title)
    else:
        if forward is not None:
            diffusion_chains_2d(forward, reverse, os.path.join(out, "diffusion.png"))
        samples_over_data(samples, trainer.data_raw, os.path.join(out, "samples.png"),
                          title=f"{type(trainer.ddpm).__name__} samples, step {trainer.step}",
                          metrics=quality)
    if trainer.history["step"]:
        loss_curve(trainer.history, os.path.join(out, "loss.png"))
