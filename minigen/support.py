"""Support metrics for any 2-D (or low-dimensional) set: does each sample lie on the data, and
is every part of the data reached in proportion?

Density-free, so they work on sets with sharp edges (a uniform square, an annulus, a glyph)
where no generating curve or mixture is known, given a large fresh sample of the data:

* :func:`knn_precision_recall`: improved precision and recall of Kynkäänniemi et al. 2019
  ("Improved Precision and Recall Metric for Assessing Generative Models", Sec. 2): the
  support of a set is the union of balls around its points, each of radius the distance to
  its k-th nearest neighbour in the same set; precision is the share of generated samples
  inside the real set's support, recall the share of real points inside the generated one's.
  The balls blur the support by about the k-th neighbour distance of the smaller set, so a
  thin blur just outside a sharp edge still counts as inside.
* :func:`support_share`: the share of samples in the cells of a fine histogram that a large
  fresh sample of the data visits. Its resolution is the cell, not the sample spacing, so it
  sees blur outside a sharp edge that the k-NN balls absorb.
* :func:`region_shares`: per cell of a coarse grid over the data (the cells holding at least
  ``min_share`` of the data), the ratio of the samples' share to the data's: 1 for a sampler
  that weighs every region right, ~0.5 for a region it reaches half as often as the data.
"""
from __future__ import annotations

import operator

import numpy as np

from minigen.metrics import sample_pair, sq_dists, subsample

K = 3
"""Neighbours per ball in :func:`knn_precision_recall` (Kynkäänniemi et al. 2019 use k = 3)."""
_ROWS = 512


def knn_radii(x, k: int = K) -> np.ndarray:
    """Distance of each point of ``x`` (n, d) to its k-th nearest neighbour in ``x`` (itself
    excluded)."""
    x = np.asarray(x, dtype=np.float64)
    k = operator.index(k)
    if not 1 <= k < len(x):
        raise ValueError(f"knn_radii: k must be in [1, {len(x) - 1}] for {len(x)} points, got {k}")
    out = np.empty(len(x))
    for start in range(0, len(x), _ROWS):
        d = sq_dists(x[start:start + _ROWS], x)
        out[start:start + _ROWS] = np.partition(d, k, axis=1)[:, k]  # column 0 is the point
    return np.sqrt(out)


def _inside(points, centres, radii):
    """Whether each point lies in at least one ball (centre, radius)."""
    inside = np.empty(len(points), dtype=bool)
    r2 = radii**2
    for start in range(0, len(points), _ROWS):
        inside[start:start + _ROWS] = (sq_dists(points[start:start + _ROWS], centres)
                                       <= r2).any(axis=1)
    return inside


def knn_precision_recall(real, fake, k: int = K, max_samples: int | None = 5000,
                         seed=0) -> dict:
    """Improved precision and recall (Kynkäänniemi et al. 2019, eqs. 1-2) with k-NN balls.

    ``precision``: share of ``fake`` inside the union of the real points' k-NN balls;
    ``recall``: share of ``real`` inside the union of the fake points' k-NN balls. Both sets
    should have the same size (the ball radii shrink with it); sets larger than
    ``max_samples`` are subsampled with ``seed``."""
    real, fake = sample_pair(real, fake, "knn_precision_recall", min_n=k + 1)
    rng = np.random.default_rng(seed)
    real, fake = subsample(real, max_samples, rng), subsample(fake, max_samples, rng)
    return {"precision": float(_inside(fake, real, knn_radii(real, k)).mean()),
            "recall": float(_inside(real, fake, knn_radii(fake, k)).mean())}


def _grid(reference, bins):
    """Edges of a bins^d grid over the bounding box of ``reference``, and a cell indexer."""
    lo, hi = reference.min(0), reference.max(0)
    width = np.where(hi > lo, (hi - lo) / bins, 1.0)

    def cell(x):
        """Flat cell index of each point, -1 outside the box."""
        index = np.floor((x - lo) / width).astype(np.int64)
        index = np.where(x == hi, bins - 1, index)  # the box's upper faces belong to it
        outside = ((index < 0) | (index >= bins)).any(axis=1)
        flat = np.ravel_multi_index(tuple(np.clip(index, 0, bins - 1).T), (bins,) * x.shape[1])
        return np.where(outside, -1, flat)

    return cell


def support_share(samples, reference, bins: int = 100) -> float:
    """Share of ``samples`` in the cells of a ``bins``^d grid over the bounding box of
    ``reference`` that ``reference`` visits. ``reference`` is a large fresh sample of the data
    (e.g. 200 000 points for bins = 100 in 2-D, so that each visited cell holds many);
    fresh data then scores ~1."""
    samples, reference = sample_pair(samples, reference, "support_share")
    bins = _bins(bins, "support_share")
    cell = _grid(reference, bins)
    visited = np.zeros(bins ** reference.shape[1], dtype=bool)
    visited[cell(reference)] = True
    c = cell(samples)
    return float(np.mean((c >= 0) & visited[np.maximum(c, 0)]))


def region_shares(samples, reference, bins: int = 3, min_share: float = 0.06) -> dict:
    """Share of ``samples`` over share of ``reference`` in each cell of a coarse ``bins``^d
    grid over the bounding box of ``reference`` that holds at least ``min_share`` of it.

    Returns ``min_ratio`` (the worst-served region), ``ratios`` and ``reference_shares``
    (lists over the regions, in C order of their (x bin, y bin)). With n samples a region of
    share p has a ratio of std sqrt((1 - p) / (n p)) for a perfect sampler (0.08 for
    p = 0.06, n = 2500). The defaults (a 3x3 grid, regions of >= 6% of the data) make
    "every region at >= 80% of its share" a bar that fresh data passes (docs/tuning.md)."""
    samples, reference = sample_pair(samples, reference, "region_shares")
    bins = _bins(bins, "region_shares")
    if not 0.0 < min_share < 1.0:
        raise ValueError(f"region_shares: min_share must lie in (0, 1), got {min_share}")
    cell = _grid(reference, bins)
    n_cells = bins ** reference.shape[1]
    ref = np.bincount(cell(reference), minlength=n_cells) / len(reference)
    c = cell(samples)
    got = np.bincount(c[c >= 0], minlength=n_cells) / len(samples)
    regions = ref >= min_share
    ratios = got[regions] / ref[regions]
    return {"min_ratio": float(ratios.min()), "ratios": ratios.tolist(),
            "reference_shares": ref[regions].tolist()}


def support_quality(samples, reference, k: int = K, bins: int = 100, region_bins: int = 3,
                    min_share: float = 0.06, seed=0) -> dict:
    """All support numbers of ``samples`` against a large fresh ``reference`` sample:
    ``precision``/``recall`` (k-NN, against a random subset of ``reference`` as large as
    ``samples``), ``in_support`` (:func:`support_share`) and ``min_region_ratio``
    (:func:`region_shares`)."""
    samples, reference = sample_pair(samples, reference, "support_quality")
    rng = np.random.default_rng(seed)
    real = subsample(reference, len(samples), rng)
    out = knn_precision_recall(real, samples, k, max_samples=None)
    out["in_support"] = support_share(samples, reference, bins)
    out["min_region_ratio"] = region_shares(samples, reference, region_bins, min_share)["min_ratio"]
    return out


def _bins(bins, fn):
    bins = operator.index(bins)
    if bins < 1:
        raise ValueError(f"{fn}: bins must be >= 1, got {bins}")
    return bins
