"""Sample-quality metrics: two-sample distances, mode coverage, curve structure, Fréchet distance.

Inputs are array-likes of samples (n, d): anything ``numpy.asarray`` accepts, minigen
Tensors included. Everything is computed in float64 and returned as Python floats (or dicts
of them). The O(n^2) two-sample statistics draw a random subset of at most ``max_samples``
points per set (with their own ``seed``, so results are reproducible) when a set is larger.

What each metric sees:

* ``energy_distance`` and ``mmd`` compare two finite samples; they catch shifts, collapse
  onto part of the data and box-filling, but at the scale of the whole set (the median
  bandwidth) they miss blur finer than the data's structure: an 8-Gaussian ring blurred by
  5 component stds scores like fresh data (a bandwidth of a few stds does see it).
* ``mode_coverage`` (PacGAN protocol) and ``curve_quality`` compare samples with the known
  generator of a toy set (:mod:`minigen.data`): *precision* (how many samples lie on the
  data) and *coverage* (how much of the data is reached), which separate blur, collapse
  and box-filling failures.
* ``frechet_distance`` compares Gaussians fitted to two feature sets (the FID formula).
"""
from __future__ import annotations

import operator

import numpy as np

_CHUNK_ELEMENTS = 1 << 22  # numbers in one block of pairwise differences


def _samples(x, name: str, fn: str) -> np.ndarray:
    a = np.asarray(x)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
            or a.dtype == np.bool_):
        raise TypeError(f"{fn}: {name} must hold real numbers, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{fn}: {name} must be 2D (n_samples, n_features), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{fn}: {name} is empty, shape {a.shape}")
    a = a.astype(np.float64)
    bad = a.size - np.count_nonzero(np.isfinite(a))
    if bad:
        raise ValueError(f"{fn}: {name} contains {bad} NaN or inf values")
    return a


def sample_pair(x, y, fn: str, min_n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` as float64 (n, d) sample arrays of the same d (and >= ``min_n`` rows),
    or a ValueError naming ``fn``."""
    x = _samples(x, "x", fn)
    y = _samples(y, "y", fn)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{fn}: x and y must have the same number of features, got shapes "
            f"{x.shape} and {y.shape}"
        )
    if min(len(x), len(y)) < min_n:
        raise ValueError(
            f"{fn}: needs at least {min_n} samples per set, got shapes {x.shape} and {y.shape}"
        )
    return x, y


def subsample(a: np.ndarray, max_samples: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most ``max_samples`` rows of ``a``, drawn without replacement."""
    if max_samples is None or len(a) <= max_samples:
        return a
    return a[rng.choice(len(a), size=max_samples, replace=False)]


def sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances (len(a), len(b)).

    Summed squared differences, in row blocks of at most ``_CHUNK_ELEMENTS`` numbers: exact
    zeros for equal points (|a|^2 + |b|^2 - 2 a.b leaves round-off that a square root
    magnifies to ~1e-8), so the energy distance of a set with itself is exactly 0.
    """
    out = np.empty((len(a), len(b)))
    rows = max(1, _CHUNK_ELEMENTS // (len(b) * a.shape[1]))
    for start in range(0, len(a), rows):
        diff = a[start:start + rows, None, :] - b[None, :, :]
        out[start:start + rows] = np.einsum("ijk,ijk->ij", diff, diff)
    return out


def _positive(value, name: str, fn: str) -> float:
    value = float(value)
    if not (value > 0.0 and np.isfinite(value)):
        raise ValueError(f"{fn}: {name} must be a finite number > 0, got {value}")
    return value


def energy_distance(x, y, max_samples: int | None = 2000, seed=0) -> float:
    """Energy distance between two sample sets (n, d) and (m, d).

    D(X, Y) = sqrt(2 E|X - Y| - E|X - X'| - E|Y - Y'|) (Székely & Rizzo 2013, "Energy
    statistics: a class of statistics based on distances", sec. 2), with the expectations
    taken over the empirical distributions (the V-statistic: pairs i = j included). It is
    >= 0, exactly 0 for identical sets, and equals ``scipy.stats.energy_distance`` in 1D.
    Sets larger than ``max_samples`` are subsampled with ``seed``.
    """
    x, y = sample_pair(x, y, "energy_distance")
    rng = np.random.default_rng(seed)
    x, y = subsample(x, max_samples, rng), subsample(y, max_samples, rng)
    e_xy = np.sqrt(sq_dists(x, y)).mean()
    e_xx = np.sqrt(sq_dists(x, x)).mean()
    e_yy = np.sqrt(sq_dists(y, y)).mean()
    return float(np.sqrt(max(2.0 * e_xy - e_xx - e_yy, 0.0)))


def mmd(x, y, bandwidth: float | None = None, max_samples: int | None = 1000, seed=0) -> float:
    """Squared maximum mean discrepancy with the RBF kernel k(a, b) = exp(-|a - b|^2 / (2 s^2)).

    Unbiased estimator MMD^2_u (Gretton et al. 2012, "A Kernel Two-Sample Test", Lemma 6):
    mean of k over pairs i != j within x, plus the same within y, minus twice the mean of k
    over all (x_i, y_j). It is 0 in expectation when both sets come from one distribution,
    so it can be slightly negative. ``bandwidth`` s defaults to the median heuristic: the
    median Euclidean distance over distinct pairs of the pooled sample (Gretton et al.
    2012, sec. 8). Needs >= 2 samples per set; sets larger than ``max_samples`` are
    subsampled with ``seed``.
    """
    x, y = sample_pair(x, y, "mmd", min_n=2)
    rng = np.random.default_rng(seed)
    x, y = subsample(x, max_samples, rng), subsample(y, max_samples, rng)
    d_xx, d_yy, d_xy = sq_dists(x, x), sq_dists(y, y), sq_dists(x, y)
    if bandwidth is None:
        pooled = np.concatenate([
            d_xx[np.triu_indices(len(x), 1)], d_yy[np.triu_indices(len(y), 1)], d_xy.ravel()
        ])
        bandwidth = np.sqrt(np.median(pooled))
        if bandwidth == 0.0:
            raise ValueError("mmd: median heuristic bandwidth is 0 (most points coincide); "
                             "pass bandwidth explicitly")
    s2 = 2.0 * _positive(bandwidth, "bandwidth", "mmd") ** 2
    n, m = len(x), len(y)
    k_xx = (np.exp(-d_xx / s2).sum() - n) / (n * (n - 1))  # diagonal k(x_i, x_i) = 1 removed
    k_yy = (np.exp(-d_yy / s2).sum() - m) / (m * (m - 1))
    k_xy = np.exp(-d_xy / s2).mean()
    return float(k_xx + k_yy - 2.0 * k_xy)


def _nearest(samples: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and Euclidean distance to the nearest of ``points`` for each sample."""
    index = np.empty(len(samples), dtype=np.int64)
    dist2 = np.empty(len(samples))
    rows = max(1, _CHUNK_ELEMENTS // len(points))
    for start in range(0, len(samples), rows):
        d = sq_dists(samples[start:start + rows], points)
        index[start:start + rows] = d.argmin(1)
        dist2[start:start + rows] = d[np.arange(len(d)), index[start:start + rows]]
    return index, np.sqrt(dist2)


def _kl_to_uniform(counts: np.ndarray) -> float:
    """KL(p || uniform) of the histogram ``counts`` = log k - H(p); inf for an empty histogram."""
    total = counts.sum()
    if total == 0:
        return float("inf")
    p = counts[counts > 0] / total
    return float(np.sum(p * np.log(p * len(counts))))


def mode_coverage(samples, modes, std: float, threshold: float = 3.0) -> dict:
    """PacGAN's mode-coverage protocol (Lin et al. 2018, Table 1) for a Gaussian mixture.

    A sample is *high quality* when it lies within ``threshold * std`` of its nearest mode;
    a mode is *covered* when at least one high-quality sample is nearest to it. Returns

    * ``modes_covered`` (int) and ``n_modes``;
    * ``high_quality``: the fraction of samples that are high quality;
    * ``reverse_kl``: KL(p || uniform) in nats, p the histogram of high-quality samples
      over their nearest modes: 0 for a perfectly balanced sampler, log(n_modes) when all
      high-quality samples sit on one mode, and ``inf`` when there is no high-quality
      sample at all (no histogram to compare);
    * ``mode_counts``: that histogram (list of ints).
    """
    fn = "mode_coverage"
    samples = _samples(samples, "samples", fn)
    modes = _samples(modes, "modes", fn)
    if samples.shape[1] != modes.shape[1]:
        raise ValueError(f"{fn}: samples {samples.shape} and modes {modes.shape} differ in "
                         "their number of features")
    radius = _positive(threshold, "threshold", fn) * _positive(std, "std", fn)
    nearest, dist = _nearest(samples, modes)
    high_quality = dist <= radius
    counts = np.bincount(nearest[high_quality], minlength=len(modes))
    return {
        "modes_covered": int(np.count_nonzero(counts)),
        "n_modes": len(modes),
        "high_quality": float(high_quality.mean()),
        "reverse_kl": _kl_to_uniform(counts),
        "mode_counts": counts.tolist(),
    }


def curve_quality(samples, curve_points, curve_params, noise_std: float,
                  threshold: float = 3.0, n_bins: int = 50) -> dict:
    """Precision and coverage of samples (n, d) against a known generating curve.

    ``curve_points`` (m, d) is a dense polyline of the noiseless curve and ``curve_params``
    (m,) its parameter u at each point, e.g. ``minigen.data.S_CURVE.polyline()``. Distances
    are to the nearest polyline vertex, which overestimates the distance to the curve by at
    most half the vertex spacing (keep that well below ``noise_std``). Returns

    * ``precision``: fraction of samples within ``threshold * noise_std`` of the curve
      (high-quality samples; ~0.99 for fresh data with threshold 3);
    * ``coverage``: fraction of ``n_bins`` equal bins over the range of u that hold at
      least one high-quality sample (a sample's u is that of its nearest vertex);
    * ``reverse_kl``: KL(histogram of high-quality samples over the bins || uniform), which
      assumes the data's u is uniform (true for ``s_curve``, ``swiss_roll``, ``moons``);
      ``inf`` without high-quality samples;
    * ``mean_distance``: mean distance of all samples to the curve.
    """
    fn = "curve_quality"
    samples = _samples(samples, "samples", fn)
    curve_points = _samples(curve_points, "curve_points", fn)
    curve_params = np.asarray(curve_params, dtype=np.float64)
    if samples.shape[1] != curve_points.shape[1]:
        raise ValueError(f"{fn}: samples {samples.shape} and curve_points {curve_points.shape} "
                         "differ in their number of features")
    if curve_params.shape != (len(curve_points),):
        raise ValueError(f"{fn}: curve_params must have shape ({len(curve_points)},), "
                         f"got {curve_params.shape}")
    n_bins = operator.index(n_bins)
    if n_bins < 1:
        raise ValueError(f"{fn}: n_bins must be >= 1, got {n_bins}")
    radius = _positive(threshold, "threshold", fn) * _positive(noise_std, "noise_std", fn)
    nearest, dist = _nearest(samples, curve_points)
    high_quality = dist <= radius
    u_min, u_max = curve_params.min(), curve_params.max()
    span = u_max - u_min if u_max > u_min else 1.0
    bins = np.minimum(((curve_params[nearest] - u_min) / span * n_bins).astype(np.int64),
                      n_bins - 1)
    counts = np.bincount(bins[high_quality], minlength=n_bins)
    return {
        "precision": float(high_quality.mean()),
        "coverage": float(np.count_nonzero(counts) / n_bins),
        "reverse_kl": _kl_to_uniform(counts),
        "mean_distance": float(dist.mean()),
    }


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr sqrt(sigma1 sigma2) for symmetric PSD matrices, as tr sqrt(A sigma2 A) with
    A = sqrt(sigma1): A sigma2 A is symmetric PSD and similar to sigma1 sigma2."""
    w, v = np.linalg.eigh(sigma1)
    a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = a @ sigma2 @ a
    eig = np.linalg.eigvalsh((m + m.T) / 2.0)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def gaussian_frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2):

    |mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))
    (Dowson & Landau 1982; the FID formula of Heusel et al. 2017). Covariances must
    be symmetric positive semi-definite; the square root uses eigen-decompositions only.
    """
    fn = "gaussian_frechet_distance"
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu1.ndim != 1 or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"{fn}: expected mu (d,) and sigma (d, d) for both Gaussians, got "
                         f"{mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * _trace_sqrt_product(
        sigma1, sigma2)
    return float(max(value, 0.0))


def frechet_distance(feats_a, feats_b) -> float:
    """Squared Fréchet distance between Gaussians fitted to two feature sets (n, d), (m, d).

    Means and unbiased covariances (ddof = 1) of each set go into
    :func:`gaussian_frechet_distance`; with Inception features this is FID. It is a
    *squared* distance, as FID is reported. Needs >= 2 samples per set.
    """
    a, b = sample_pair(feats_a, feats_b, "frechet_distance", min_n=2)
    moments = []
    for f in (a, b):
        mu = f.mean(0)
        centred = f - mu
        moments += [mu, centred.T @ centred / (len(f) - 1)]
    return gaussian_frechet_distance(*moments)
