"""minigen.metrics against brute-force loops and closed forms, and proof that the metrics
separate fresh data from blurred, collapsed and box-filling samplers."""
import itertools
import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, strategies as st

from minigen import data as D
from minigen import metrics as M

N = 2500  # PacGAN's evaluation sample size


def _gaussians(seed, n, m, d, shift=0.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal((m, d)) + shift


# ---------------------------------------------------------------- energy distance


def _energy_brute(x, y):
    def mean_dist(a, b):
        return sum(math.dist(p, q) for p in a for q in b) / (len(a) * len(b))

    return math.sqrt(2 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y))


def test_energy_distance_matches_brute_force_loop():
    x, y = _gaussians(0, 30, 40, 3, shift=0.7)
    assert M.energy_distance(x, y) == pytest.approx(_energy_brute(x, y), rel=1e-10)


def test_energy_distance_identical_sets_is_zero():
    x = D.s_curve(500, seed=0)
    assert M.energy_distance(x, x) == 0.0
    assert M.energy_distance(x, x.copy()) == 0.0


def test_energy_distance_matches_scipy_in_1d():
    stats = pytest.importorskip("scipy.stats")
    x, y = _gaussians(1, 200, 300, 1, shift=0.5)
    expected = stats.energy_distance(x[:, 0], y[:, 0])
    assert M.energy_distance(x, y) == pytest.approx(expected, rel=1e-9)


def test_energy_distance_of_shifted_gaussians_matches_closed_form():
    # X ~ N(0, 1), Y ~ N(mu, 1): X - Y ~ N(-mu, 2) and E|N(m, s^2)| = s sqrt(2/pi)
    # exp(-m^2 / 2s^2) + m erf(m / (s sqrt 2)); E|X - X'| = 2 / sqrt(pi).
    mu = 1.0
    e_xy = 2 / math.sqrt(math.pi) * math.exp(-mu**2 / 4) + mu * math.erf(mu / 2)
    expected = math.sqrt(2 * e_xy - 2 * 2 / math.sqrt(math.pi))
    # Quantile points instead of random draws: no sampling noise, only discretisation.
    n = 2000
    x = np.array([NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)])[:, None]
    assert M.energy_distance(x, x + mu, max_samples=None) == pytest.approx(expected, abs=0.002)


@given(seed=st.integers(0, 2**16), scale=st.floats(0.1, 10.0), shift=st.floats(-5, 5))
def test_energy_distance_symmetry_translation_and_scaling(seed, scale, shift):
    x, y = _gaussians(seed, 15, 20, 2, shift=0.3)
    value = M.energy_distance(x, y)
    assert M.energy_distance(y, x) == pytest.approx(value, rel=1e-9, abs=1e-12)
    assert M.energy_distance(x + shift, y + shift) == pytest.approx(value, rel=1e-6, abs=1e-9)
    # Distances scale by c, so D^2 scales by c and D by sqrt(c).
    assert M.energy_distance(scale * x, scale * y) == pytest.approx(
        math.sqrt(scale) * value, rel=1e-6, abs=1e-9)


def test_energy_distance_subsamples_reproducibly():
    x, y = _gaussians(3, 3000, 2600, 2, shift=0.5)
    full = M.energy_distance(x, y, max_samples=None)
    sub = M.energy_distance(x, y, max_samples=1000, seed=0)
    assert sub == M.energy_distance(x, y, max_samples=1000, seed=0)
    assert sub != M.energy_distance(x, y, max_samples=1000, seed=1)
    assert sub == pytest.approx(full, rel=0.1)


# ---------------------------------------------------------------- MMD


def _mmd_brute(x, y, bandwidth):
    def k(p, q):
        return math.exp(-math.dist(p, q) ** 2 / (2 * bandwidth**2))

    n, m = len(x), len(y)
    k_xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    k_yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    k_xy = sum(k(p, q) for p in x for q in y) / (n * m)
    return k_xx + k_yy - 2 * k_xy


def test_mmd_matches_brute_force_loop():
    x, y = _gaussians(4, 25, 30, 3, shift=0.5)
    assert M.mmd(x, y, bandwidth=1.3) == pytest.approx(_mmd_brute(x, y, 1.3), rel=1e-10)


def test_mmd_median_heuristic_is_median_pairwise_distance_of_pooled_sample():
    x, y = _gaussians(5, 20, 15, 2, shift=1.0)
    z = np.concatenate([x, y])
    median = float(np.median([math.dist(p, q) for p, q in itertools.combinations(z, 2)]))
    assert M.mmd(x, y) == pytest.approx(M.mmd(x, y, bandwidth=median), rel=1e-12)


def test_mmd_of_shifted_gaussians_matches_closed_form():
    # For N(0, I_d) vs N(delta, I_d) and bandwidth s: E k(X, X') = c = (s^2 / (s^2 + 2))^(d/2),
    # E k(X, Y) = c exp(-|delta|^2 / (2 (s^2 + 2))), so MMD^2 = 2 c (1 - exp(...)).
    s, d, shift = 1.0, 2, 1.0
    c = (s**2 / (s**2 + 2)) ** (d / 2)
    expected = 2 * c * (1 - math.exp(-(shift**2) / (2 * (s**2 + 2))))
    x, y = _gaussians(6, 2000, 2000, d)
    y[:, 0] += shift
    assert M.mmd(x, y, bandwidth=s, max_samples=None) == pytest.approx(expected, abs=0.01)


def test_mmd_estimator_is_unbiased():
    # Same distribution, tiny sets: the unbiased MMD^2_u averages to 0, the biased
    # V-statistic would average (1 - c)(1/n + 1/m) = 0.17 here.
    values = [M.mmd(*_gaussians(seed, 8, 8, 2), bandwidth=1.0) for seed in range(400)]
    mean, se = np.mean(values), np.std(values) / math.sqrt(len(values))
    assert abs(mean) < 4 * se and abs(mean) < 0.02


def test_mmd_same_distribution_small_shifted_large():
    x, y = _gaussians(7, 1000, 1000, 2)
    assert abs(M.mmd(x, y)) < 0.003
    assert M.mmd(x, y + [0.5, 0.0]) > 0.02


# ---------------------------------------------------------------- mode coverage


def test_mode_coverage_hand_computed():
    modes = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    samples = np.array([[0.0, 0.0], [1.0, 1.0], [10.0, 2.9], [0.0, 13.5], [5.0, 5.0]])
    out = M.mode_coverage(samples, modes, std=1.0, threshold=3.0)
    p = np.array([2 / 3, 1 / 3])
    assert out["modes_covered"] == 2 and out["n_modes"] == 4
    assert out["high_quality"] == pytest.approx(3 / 5)
    assert out["mode_counts"] == [2, 1, 0, 0]
    assert out["reverse_kl"] == pytest.approx(math.log(4) + np.sum(p * np.log(p)))


def test_mode_coverage_without_high_quality_samples():
    out = M.mode_coverage(np.full((10, 2), 100.0), D.RING8.modes, D.RING8.std)
    assert out["modes_covered"] == 0 and out["high_quality"] == 0.0
    assert out["reverse_kl"] == math.inf


def _collapsed(mixture, n_modes):
    return D.Mixture(mixture.modes[:n_modes], mixture.std).sample(N, seed=3)


@pytest.mark.parametrize("make,mixture", [(D.ring8, D.RING8), (D.grid25, D.GRID25)],
                         ids=["ring8", "grid25"])
def test_mode_coverage_separates_fresh_data_from_bad_samplers(make, mixture):
    k = len(mixture.modes)
    x = make(N, seed=1)
    rng = np.random.default_rng(0)

    def score(samples):
        return M.mode_coverage(samples, mixture.modes, mixture.std)

    fresh = score(make(N, seed=2))
    assert fresh["modes_covered"] == k
    assert fresh["high_quality"] > 0.97  # 1 - exp(-9/2) = 0.989 in expectation
    assert fresh["reverse_kl"] < 0.02
    blurred = score(x + 5 * mixture.std * rng.standard_normal(x.shape))
    assert blurred["high_quality"] < 0.3
    box = score(rng.uniform(x.min(0), x.max(0), size=x.shape))
    assert box["high_quality"] < 0.05
    two = score(_collapsed(mixture, 2))
    assert two["modes_covered"] == 2 and two["high_quality"] > 0.97
    assert two["reverse_kl"] > math.log(k / 2) - 0.05
    point = score(np.repeat(x[:1], N, axis=0))
    assert point["modes_covered"] == 1 and point["reverse_kl"] == pytest.approx(math.log(k))


@pytest.mark.parametrize("make,mixture", [(D.ring8, D.RING8), (D.grid25, D.GRID25)],
                         ids=["ring8", "grid25"])
def test_two_sample_distances_catch_collapse_and_box_on_mixtures(make, mixture):
    ref, fresh = make(N, seed=0), make(N, seed=2)
    x = make(N, seed=1)
    box = np.random.default_rng(0).uniform(x.min(0), x.max(0), size=x.shape)
    two = _collapsed(mixture, 2)
    assert M.energy_distance(ref, fresh) < 0.15
    assert M.energy_distance(ref, box) > 0.2
    assert M.energy_distance(ref, two) > 1.0
    assert M.mmd(ref, fresh) < 0.002
    assert M.mmd(ref, box) > 0.005
    assert M.mmd(ref, two) > 0.1
    # The median bandwidth is blind to blur below the mode spacing; a bandwidth of a few
    # component stds is not.
    blurred = x + 5 * mixture.std * np.random.default_rng(1).standard_normal(x.shape)
    bw = 3 * mixture.std
    assert M.mmd(ref, blurred, bandwidth=bw) > 10 * abs(M.mmd(ref, fresh, bandwidth=bw)) + 0.01


# ---------------------------------------------------------------- curve quality


def test_curve_quality_hand_computed():
    line_x = np.linspace(0.0, 1.0, 101)
    points = np.stack([line_x, np.zeros_like(line_x)], axis=1)
    samples = np.array([[0.05, 0.0], [0.951, 0.2], [0.5, 1.0], [0.52, -0.1]])
    out = M.curve_quality(samples, points, 10 * line_x, noise_std=0.1, threshold=3.0, n_bins=10)
    assert out["precision"] == pytest.approx(3 / 4)
    assert out["coverage"] == pytest.approx(3 / 10)
    assert out["reverse_kl"] == pytest.approx(math.log(10) - math.log(3))
    assert out["mean_distance"] == pytest.approx((0.0 + math.hypot(0.001, 0.2) + 1.0 + 0.1) / 4)


CURVES = [(D.s_curve, D.S_CURVE), (D.swiss_roll, D.SWISS_ROLL), (D.moons, D.MOONS)]
NOISE = 0.05


def _segment(curve, fraction):
    end = curve.u_min + fraction * (curve.u_max - curve.u_min)
    return D.Curve(curve.point, curve.u_min, end).sample(N, seed=3, noise=NOISE)


@pytest.mark.parametrize("make,curve", CURVES, ids=["s_curve", "swiss_roll", "moons"])
def test_curve_quality_separates_fresh_data_from_bad_samplers(make, curve):
    polyline = curve.polyline()
    x = make(N, seed=1, noise=NOISE)
    rng = np.random.default_rng(0)

    def score(samples):
        return M.curve_quality(samples, *polyline, noise_std=NOISE)

    fresh = score(make(N, seed=2, noise=NOISE))
    assert fresh["precision"] > 0.97 and fresh["coverage"] == 1.0
    assert fresh["reverse_kl"] < 0.05
    assert score(x + 0.3 * rng.standard_normal(x.shape))["precision"] < 0.5
    assert score(rng.uniform(x.min(0), x.max(0), size=x.shape))["precision"] < 0.5
    third = score(_segment(curve, 1 / 3))
    assert third["precision"] > 0.97 and third["coverage"] < 0.45 and third["reverse_kl"] > 0.8
    assert score(np.repeat(x[:1], N, axis=0))["coverage"] <= 0.04


@pytest.mark.parametrize("make,curve", CURVES, ids=["s_curve", "swiss_roll", "moons"])
def test_two_sample_distances_catch_segment_and_box_on_curves(make, curve):
    ref, fresh = make(N, seed=0, noise=NOISE), make(N, seed=2, noise=NOISE)
    x = make(N, seed=1, noise=NOISE)
    box = np.random.default_rng(0).uniform(x.min(0), x.max(0), size=x.shape)
    third = _segment(curve, 1 / 3)
    assert M.energy_distance(ref, fresh) < 0.06
    assert M.energy_distance(ref, box) > 0.1
    assert M.energy_distance(ref, third) > 0.3
    assert M.mmd(ref, fresh) < 0.001
    assert M.mmd(ref, box) > 0.002
    assert M.mmd(ref, third) > 0.05


# ---------------------------------------------------------------- Fréchet distance


def test_gaussian_frechet_closed_forms():
    # 1D: (mu1 - mu2)^2 + (s1 - s2)^2; diagonal: |mu1 - mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2.
    assert M.gaussian_frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    got = M.gaussian_frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-12)


def test_gaussian_frechet_matches_scipy_sqrtm_for_non_commuting_covariances():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((2, 5, 5))
    s1, s2 = a @ a.T + 0.1 * np.eye(5), b @ b.T
    mu1, mu2 = rng.standard_normal((2, 5))
    expected = (np.sum((mu1 - mu2) ** 2)
                + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real))
    assert M.gaussian_frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert M.gaussian_frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-8)
    assert M.gaussian_frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_of_features():
    rng = np.random.default_rng(9)
    a = rng.standard_normal((500, 4)) @ rng.standard_normal((4, 4))
    shift = np.array([1.0, -2.0, 0.5, 0.0])
    # Same covariance, shifted mean: exactly |shift|^2.
    assert M.frechet_distance(a, a + shift) == pytest.approx(shift @ shift, rel=1e-9)
    # Large samples of N(0, diag(1, 4)) and N(1, diag(4, 4)): 1 + (1 - 2)^2 = 2 in closed form.
    x = rng.standard_normal((40_000, 2)) * [1.0, 2.0]
    y = rng.standard_normal((40_000, 2)) * [2.0, 2.0] + [1.0, 0.0]
    assert M.frechet_distance(x, y) == pytest.approx(2.0, abs=0.1)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("metric", [M.energy_distance, M.mmd, M.frechet_distance],
                         ids=["energy_distance", "mmd", "frechet_distance"])
def test_two_sample_validation(metric):
    name = metric.__name__
    good = np.zeros((5, 2))
    with pytest.raises(ValueError, match=rf"{name}: x must be 2D.*\(5,\)"):
        metric(np.zeros(5), good)
    with pytest.raises(ValueError, match=rf"{name}: y is empty"):
        metric(good, np.zeros((0, 2)))
    with pytest.raises(ValueError, match=rf"{name}:.*same number of features.*\(5, 3\)"):
        metric(good, np.zeros((5, 3)))
    with pytest.raises(ValueError, match=rf"{name}: x contains 5 NaN or inf"):
        metric(np.array([[0.0, np.nan]] * 5), good)
    with pytest.raises(TypeError, match=rf"{name}: y must hold real numbers"):
        metric(good, np.array([["a", "b"]] * 5))


def test_metric_specific_validation():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="mmd: needs at least 2"):
        M.mmd(x[:1], x)
    with pytest.raises(ValueError, match="frechet_distance: needs at least 2"):
        M.frechet_distance(x, x[:1])
    with pytest.raises(ValueError, match="bandwidth"):
        M.mmd(x, x + 1, bandwidth=0.0)
    with pytest.raises(ValueError, match="std"):
        M.mode_coverage(x, D.RING8.modes, std=0.0)
    with pytest.raises(ValueError, match="mode_coverage.*features"):
        M.mode_coverage(np.zeros((5, 3)), D.RING8.modes, std=0.1)
    points, u = D.S_CURVE.polyline(50)
    with pytest.raises(ValueError, match=r"curve_params must have shape \(50,\)"):
        M.curve_quality(x, points, u[:-1], noise_std=0.1)
    with pytest.raises(ValueError, match="gaussian_frechet_distance"):
        M.gaussian_frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))


def test_metrics_accept_lists_and_float32():
    x, y = _gaussians(10, 50, 60, 2, shift=0.5)
    assert M.energy_distance(x.astype(np.float32), y.tolist()) == pytest.approx(
        M.energy_distance(x, y), rel=1e-5)
    assert M.frechet_distance(x.astype(np.float32), y) == pytest.approx(
        M.frechet_distance(x, y), rel=1e-5)
