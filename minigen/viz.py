"""Figures of a diffusion run: the forward and reverse chains, samples over the data, the loss
curve, image grids. PNG files via Matplotlib's Agg canvas (no pyplot, no global backend
switch, no display needed).

2-D figures draw the first two features of vector data; the chains are drawn in the model's
(normalised) units, samples in data units.
"""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from minigen import backend

DATA_COLOR, SAMPLE_COLOR = "#9e9e9e", "#1f77b4"


def _save(fig, path):
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def chain_timesteps(T, count=6):
    """Paper timesteps 0 < ... < T to show, denser near 0 where the structure appears."""
    if count == 6:
        fractions = np.array([0.0, 0.05, 0.1, 0.2, 0.4, 1.0])
    else:
        fractions = np.linspace(0, 1, count) ** 2
    return sorted({int(round(f * T)) for f in fractions})


def _scatter(ax, x, color, size=2.0, alpha=0.5):
    x = backend.to_numpy(x)
    ax.scatter(x[:, 0], x[:, 1], s=size, c=color, alpha=alpha, linewidths=0, rasterized=True)


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
            _scatter(ax, chain[t], color, size=1.5, alpha=0.4)
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
    _save(fig, path)


def samples_over_data(samples, data, path, title="samples over the training data", metrics=None):
    """Samples (blue) over the training data (grey), side by side with the samples alone."""
    xy = backend.to_numpy(data)[:, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    aspect = float(np.clip((hi[0] - lo[0]) / max(hi[1] - lo[1], 1e-12), 0.5, 2.0))
    fig = Figure(figsize=(2 * 4.0 * aspect + 1.0, 4.6))
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    _scatter(axes[0], data[: len(samples)], DATA_COLOR, size=3, alpha=0.5)
    _scatter(axes[0], samples, SAMPLE_COLOR, size=3, alpha=0.6)
    _scatter(axes[1], samples, SAMPLE_COLOR, size=3, alpha=0.6)
    axes[0].set_title("data (grey) and samples (blue)", fontsize=10)
    axes[1].set_title(f"{len(samples)} samples", fontsize=10)
    for ax in axes:
        ax.set_aspect("equal")
    if metrics:
        text = "   ".join(f"{k} {v:.3g}" for k, v in metrics.items())
        fig.text(0.5, 0.01, text, ha="center", fontsize=9)
    fig.suptitle(title, fontsize=11)
    _save(fig, path)


def loss_curve(history, path, key="loss", window=100):
    """The training loss per step (faint) and its moving average over ``window`` steps."""
    steps = np.asarray(history["step"])
    values = np.array([np.nan if v is None else v for v in history[key]], dtype=np.float64)
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    ax.plot(steps, values, color=SAMPLE_COLOR, alpha=0.25, linewidth=0.7, label=key)
    w = min(window, len(values))
    if w > 1:
        smooth = np.convolve(values, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1:], smooth, color=SAMPLE_COLOR, linewidth=1.8,
                label=f"mean of {w} steps")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    _save(fig, path)


def _tile(images, nrow):
    """(n, C, H, W) in [-1, 1] -> one (rows*(H+1)+1, nrow*(W+1)+1[, 3]) image in [0, 1]."""
    images = np.clip((backend.to_numpy(images) + 1.0) / 2.0, 0.0, 1.0)
    n, c, h, w = images.shape
    rows = -(-n // nrow)
    canvas = np.ones((rows * (h + 1) + 1, nrow * (w + 1) + 1, c))
    for k in range(n):
        i, j = divmod(k, nrow)
        top, left = 1 + i * (h + 1), 1 + j * (w + 1)
        canvas[top:top + h, left:left + w] = images[k].transpose(1, 2, 0)
    return canvas[..., 0] if c == 1 else canvas


def image_grid(images, path, nrow=8, title=None):
    """A grid of images (n, C, H, W) with values in [-1, 1] (grayscale when C == 1)."""
    canvas = _tile(images, nrow)
    fig = Figure(figsize=(0.5 + canvas.shape[1] / 14, 0.5 + canvas.shape[0] / 14))
    ax = fig.subplots()
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    _save(fig, path)


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
        ax.imshow(_tile(block.reshape((n * k,) + block.shape[2:]), k), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_xticks([(j + 0.5) * (block.shape[-1] + 1) for j in range(k)])
        ax.set_xticklabels([f"t={t}" for t in ts], fontsize=8)
        ax.set_yticks([])
        ax.set_ylabel(label, fontsize=9)
    _save(fig, path)


def ddpm_figures(trainer, final=False, n_samples=None):
    """All figures of a :class:`minigen.diffusion.trainer.DDPMTrainer` run, written to its
    out_dir: ``diffusion.png`` (forward and reverse chains), ``samples.png`` and ``loss.png``.
    Samples come from the EMA weights (ancestral sampling for vectors; DDIM with 50 steps for
    images at intermediate checkpoints, ancestral at the end). Returns ``(samples, quality)``,
    the samples in data units and the numbers of :func:`evaluate_samples` (empty for images)."""
    import os

    from minigen.diffusion.evaluate import evaluate_samples

    out = trainer.out_dir
    ddpm, data = trainer.ddpm, trainer.data_raw
    T = ddpm.schedule.T
    ts = chain_timesteps(T)
    rng = np.random.default_rng(0)
    images = data.ndim == 4
    n = n_samples or (64 if images else (2000 if final else 1000))
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
    reverse = {t: backend.to_numpy(x) for t, x in reverse.items()}
    if images:
        rows = 4
        diffusion_chains_images({t: x[:rows] for t, x in forward.items()},
                                {t: x[:rows] for t, x in reverse.items()},
                                os.path.join(out, "diffusion.png"))
        quality = evaluate_samples(samples, trainer.config.get("data")) if final else {}
        title = f"{len(samples)} samples, step {trainer.step}"
        if "class_coverage" in quality:
            title += (f": {quality['class_coverage']}/10 classes, "
                      f"confidence {quality['mean_confidence']:.2f}")
        image_grid(samples, os.path.join(out, "samples.png"), nrow=8, title=title)
    else:
        diffusion_chains_2d(forward, reverse, os.path.join(out, "diffusion.png"))
        quality = evaluate_samples(samples, trainer.config.get("data"), reference=data)
        samples_over_data(samples, data, os.path.join(out, "samples.png"),
                          title=f"DDPM samples, step {trainer.step}", metrics=quality)
    if trainer.history["step"]:
        loss_curve(trainer.history, os.path.join(out, "loss.png"))
    return samples, quality
