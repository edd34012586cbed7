"""GAN figures (matplotlib, Agg backend, written to files).

``plot_figure1`` redraws Figure 1 of Goodfellow et al. 2014 from training snapshots: the
data density p_data (black, dotted), the generator's density p_g (green, solid) and the
discriminator D(x) (blue, dashed) at four moments (a)-(d) of training, D flattening toward
1/2 as p_g approaches p_data. ``plot_samples`` draws generated samples (a 1-D histogram, a
2-D scatter over the data, or an image grid).
"""
import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def moments(steps):
    """The steps after which the 1-D trainer snapshots p_g and D (step 0 is the fourth):
    early, middle and final, like the panels (a)-(d) of Figure 1."""
    return {s for s in (max(1, steps // 20), max(1, steps // 4), steps) if 0 < s <= steps}


def _density(samples, grid):
    """Gaussian KDE of 1-D ``samples`` on ``grid`` (Silverman's bandwidth, at least the grid
    spacing, so that a generator collapsed to a point still shows as a spike)."""
    samples = np.asarray(samples, dtype=np.float64)
    h = max(1.06 * samples.std() * len(samples) ** (-1 / 5), grid[1] - grid[0])
    u = (grid[:, None] - samples[None, :]) / h
    return np.exp(-0.5 * u * u).sum(1) / (len(samples) * h * np.sqrt(2 * np.pi))


def plot_figure1(snapshots, data, path, d_label="D(x)"):
    """Figure 1 of the paper from ``snapshots`` ``{step: {"x": grid, "d": D(grid),
    "samples": G samples}}`` (up to four, by step) and 1-D ``data`` samples."""
    plt = _pyplot()
    steps = sorted(snapshots, key=int)[-4:] if len(snapshots) > 4 else sorted(snapshots, key=int)
    fig, axes = plt.subplots(1, len(steps), figsize=(3.2 * len(steps), 2.8), squeeze=False,
                             sharey=True)
    for ax, letter, step in zip(axes[0], "abcd", steps):
        snap = snapshots[step]
        x = np.asarray(snap["x"], dtype=np.float64)
        ax.plot(x, _density(data, x), "k:", label="p_data")
        ax.plot(x, _density(snap["samples"], x), "g-", label="p_g")
        ax.plot(x, snap["d"], "b--", label=d_label)
        ax.axhline(0.5, color="0.8", lw=0.8)
        ax.set_title(f"({letter}) step {int(step)}", fontsize=9)
        ax.set_xlim(x[0], x[-1])
    axes[0][0].set_ylim(0, 1.05)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mosaic(images, gap=1):
    """Images (n, C, H, W) tiled on a square grid (H', W', C), ``gap`` grey (0) pixels apart."""
    n, c, h, w = images.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.zeros((rows * (h + gap) - gap, cols * (w + gap) - gap, c))
    for i, img in enumerate(np.clip(images, -1, 1)):
        r, q = divmod(i, cols)
        top, left = r * (h + gap), q * (w + gap)
        out[top:top + h, left:left + w] = img.transpose(1, 2, 0)
    return out


def plot_samples(samples, path, data=None):
    """Generated ``samples``: a histogram (n, 1), a scatter over ``data`` (n, 2) (first two
    features for more), or a grid of images (n, C, H, W) in [-1, 1]."""
    plt = _pyplot()
    samples = np.asarray(samples)
    if samples.ndim == 4:
        mosaic = _mosaic(samples)
        fig, ax = plt.subplots(figsize=(0.5 * mosaic.shape[1] / samples.shape[3],) * 2)
        ax.imshow(mosaic[..., 0] if mosaic.shape[2] == 1 else (mosaic + 1) / 2, cmap="gray",
                  vmin=-1, vmax=1, interpolation="nearest")
        ax.axis("off")
        fig.subplots_adjust(0, 0, 1, 1)
    else:
        fig, ax = plt.subplots(figsize=(4, 4))
        if samples.shape[1] == 1:
            ax.hist(samples[:, 0], bins=60, density=True, alpha=0.6, color="g", label="G")
            if data is not None:
                ax.hist(np.asarray(data)[:, 0], bins=60, density=True, histtype="step", color="k",
                        label="data")
        else:
            if data is not None:
                ax.scatter(data[:, 0], data[:, 1], s=1, c="0.6", label="data")
            ax.scatter(samples[:, 0], samples[:, 1], s=1, c="g", label="G")
            ax.set_aspect("equal")
        ax.legend(fontsize=7, markerscale=4)
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
