"""Figure helpers both model families use: samples over the data, the loss curve, image grids.
PNG files via Matplotlib's Agg canvas (no pyplot, no global backend switch, no display
needed). 2-D figures draw the first two features of vector data. The figures of one family
are in ``minigen/diffusion/figures.py`` and ``minigen/gan/figures.py``.
"""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from minigen import backend

DATA_COLOR, SAMPLE_COLOR = "#9e9e9e", "#1f77b4"


def save_figure(fig, path):
    """Write the Matplotlib Figure ``fig`` to ``path`` (PNG at 110 dpi, tight bounds)."""
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def scatter(ax, x, color, size=2.0, alpha=0.5):
    """The first two features of the rows of ``x`` as small rasterised points on ``ax``."""
    x = backend.to_numpy(x)
    ax.scatter(x[:, 0], x[:, 1], s=size, c=color, alpha=alpha, linewidths=0, rasterized=True)


def samples_over_data(samples, data, path, title="samples over the training data", metrics=None):
    """Samples (blue) over the training data (grey), side by side with the samples alone."""
    xy = backend.to_numpy(data)[:, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    aspect = float(np.clip((hi[0] - lo[0]) / max(hi[1] - lo[1], 1e-12), 0.5, 2.0))
    fig = Figure(figsize=(2 * 4.0 * aspect + 1.0, 4.6))
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    scatter(axes[0], data[: len(samples)], DATA_COLOR, size=3, alpha=0.5)
    scatter(axes[0], samples, SAMPLE_COLOR, size=3, alpha=0.6)
    scatter(axes[1], samples, SAMPLE_COLOR, size=3, alpha=0.6)
    axes[0].set_title("data (grey) and samples (blue)", fontsize=10)
    axes[1].set_title(f"{len(samples)} samples", fontsize=10)
    for ax in axes:
        ax.set_aspect("equal")
    if metrics:
        text = "   ".join(f"{k} {v:.3g}" for k, v in metrics.items())
        fig.text(0.5, 0.01, text, ha="center", fontsize=9)
    fig.suptitle(title, fontsize=11)
    save_figure(fig, path)


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
    save_figure(fig, path)


def tile(images, nrow):
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
    canvas = tile(images, nrow)
    fig = Figure(figsize=(0.5 + canvas.shape[1] / 14, 0.5 + canvas.shape[0] / 14))
    ax = fig.subplots()
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    save_figure(fig, path)
