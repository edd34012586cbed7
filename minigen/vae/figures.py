"""VAE figures (PNG files through :mod:`minigen.viz`).

``reconstructions``: held-out images above their reconstructions; ``samples``: decoded
prior draws (an image grid, or a scatter over the data for vectors); ``manifold``: the
paper's Figure 4, the decoder's mean over a grid of a 2-D latent space whose coordinates
are mapped through the inverse CDF of the Gaussian prior; ``heldout_bound``: the held-out
ELBO over training (the paper's Figure 2), ``heldout_bounds`` the same for several runs
(its latent sizes).
"""
import numpy as np
from matplotlib.figure import Figure
from scipy.stats import norm

from minigen import viz


def reconstructions(originals, reconstructed, path, nrow=10):
    """``originals`` (first row block) over ``reconstructed`` (images in [-1, 1])."""
    n = min(len(originals), nrow * 2)
    viz.image_grid(np.concatenate([originals[:n], reconstructed[:n]]), path, nrow=nrow,
                   title="held-out images (top) and their reconstructions (bottom)")


def samples(images_or_points, path, data=None):
    """Decoded prior draws: an image grid (images in [-1, 1]) or points over ``data``."""
    if np.ndim(images_or_points) == 4:
        viz.image_grid(images_or_points, path, nrow=8, title="samples: x = E[x | z], z ~ N(0, I)")
    else:
        viz.samples_over_data(images_or_points, data, path, title="VAE samples")


def manifold_grid(n):
    """(n*n, 2) latent points: the quantiles (i + 1/2) / n of N(0, 1) on each axis, the
    first coordinate varying fastest (Figure 4's layout)."""
    q = norm.ppf((np.arange(n) + 0.5) / n)
    z1, z2 = np.meshgrid(q, q[::-1])
    return np.stack([z1.ravel(), z2.ravel()], axis=1)


def manifold(images, path):
    """Figure 4: the decoded ``manifold_grid`` (images in [-1, 1], row-major)."""
    n = int(round(np.sqrt(len(images))))
    viz.image_grid(images, path, nrow=n, title="learned manifold (2-D latent)")


def heldout_bound(curve, path):
    """Figure 2: the held-out ELBO (nats per example) against training steps; ``curve``
    ``{"step": [...], "elbo": [...]}``."""
    heldout_bounds({None: curve}, path)


def heldout_bounds(curves, path):
    """Figure 2 for several runs: one held-out ELBO curve per entry of ``curves`` (a label,
    e.g. the latent size, to a curve as :func:`heldout_bound` takes; a legend when labelled)."""
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    labelled = any(label is not None for label in curves)
    for i, (label, curve) in enumerate(curves.items()):
        ax.plot(curve["step"], curve["elbo"], marker="o", markersize=3,
                color=viz.SAMPLE_COLOR if not labelled else f"C{i}", label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("held-out ELBO (nats per example)")
    ax.grid(True, alpha=0.3)
    if labelled:
        ax.legend(fontsize=8)
    viz.save_figure(fig, path)
