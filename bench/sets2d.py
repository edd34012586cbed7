"""2-D sets for tuning the DDPM's vector defaults and for confirming them on data never used
while tuning (docs/tuning.md).

``TUNE``: the sets the defaults were chosen on (minigen's s_curve, ring8, grid25 and a
sharp-edged 4x4 checkerboard). ``HELDOUT``: sets generated here and only scored once the
defaults were fixed: a uniform square, an annulus, a pinwheel, two spirals, a random Gaussian
mixture and the dark region of a rendered glyph. Each entry maps a name to ``sample(n, seed)``
returning float32 points (n, 2); ``SHARP`` names the sets with a sharp-edged support.
"""
import functools

import numpy as np

from minigen import data as datasets
from minigen.support import support_quality


def checkerboard(n, seed=None):
    """Uniform on the 8 dark squares of a 4x4 board over [-2, 2]^2."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(4 * n, 2))
    dark = (np.floor(x[:, 0] + 2) + np.floor(x[:, 1] + 2)) % 2 == 0
    return _take(x[dark], n)


def uniform_square(n, seed=None):
    """Uniform on [-1, 1]^2."""
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, 2)).astype(np.float32)


def annulus(n, seed=None):
    """Uniform on the annulus 1 <= |x| <= 2 (area-uniform radius)."""
    rng = np.random.default_rng(seed)
    r = np.sqrt(rng.uniform(1.0, 4.0, n))
    a = rng.uniform(0, 2 * np.pi, n)
    return np.stack([r * np.cos(a), r * np.sin(a)], 1).astype(np.float32)


def pinwheel(n, seed=None, arms=5, radial_std=0.3, tangential_std=0.1, rate=0.25):
    """The pinwheel of Johnson et al. 2016 (SVAE): Gaussian blobs sheared into spiral arms."""
    rng = np.random.default_rng(seed)
    arm = rng.integers(0, arms, n)
    f = rng.standard_normal((n, 2)) * [radial_std, tangential_std] + [1.0, 0.0]
    angle = 2 * np.pi * arm / arms + rate * np.exp(f[:, 0])
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * f[:, 0] - s * f[:, 1], s * f[:, 0] + c * f[:, 1]], 1).astype(np.float32)


def two_spirals(n, seed=None, noise=0.05):
    """Two interleaved Archimedean spirals (r proportional to the angle, up to 1.5 turns)."""
    rng = np.random.default_rng(seed)
    u = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi  # uniform in arc length, roughly
    sign = np.where(rng.integers(0, 2, n) == 0, 1.0, -1.0)[:, None]
    x = sign * np.stack([u * np.cos(u), u * np.sin(u)], 1) / np.pi
    return (x + noise * rng.standard_normal((n, 2))).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _random_mixture():
    """10 components with means, covariances and weights drawn once (structure seed 2024)."""
    rng = np.random.default_rng(2024)
    means = rng.uniform(-3, 3, size=(10, 2))
    factors = rng.normal(0, 0.25, size=(10, 2, 2)) + 0.1 * np.eye(2)
    weights = rng.dirichlet(np.full(10, 2.0))
    return means, factors, weights


def random_mixture(n, seed=None):
    """A random 10-component Gaussian mixture (full covariances, unequal weights)."""
    means, factors, weights = _random_mixture()
    rng = np.random.default_rng(seed)
    k = rng.choice(len(weights), size=n, p=weights)
    z = rng.standard_normal((n, 2))
    return (means[k] + np.einsum("nij,nj->ni", factors[k], z)).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _glyph_path():
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    from matplotlib.transforms import Affine2D

    path = TextPath((0, 0), "R", size=1.0, prop=FontProperties(family="DejaVu Sans",
                                                               weight="bold"))
    v = path.vertices
    centre, scale = (v.max(0) + v.min(0)) / 2, (v.max(0) - v.min(0)).max() / 4
    return path.transformed(Affine2D().translate(*-centre).scale(1 / scale))


def glyph(n, seed=None):
    """Uniform on the filled letter "R" (DejaVu Sans Bold, text-to-path), about 4 units tall."""
    path = _glyph_path()
    v = path.vertices
    lo, hi = v.min(0), v.max(0)
    rng = np.random.default_rng(seed)
    out = []
    while sum(len(o) for o in out) < n:
        x = rng.uniform(lo, hi, size=(4 * n, 2))
        out.append(x[path.contains_points(x)])
    return _take(np.concatenate(out), n)


def _take(x, n):
    if len(x) < n:
        raise RuntimeError(f"drew {len(x)} < {n} points")
    return x[:n].astype(np.float32)


def _dataset(name):
    return lambda n, seed=None: datasets.load_dataset(name, n=n, seed=seed)


TUNE = {"s_curve": _dataset("s_curve"), "ring8": _dataset("ring8"), "grid25": _dataset("grid25"),
        "checkerboard": checkerboard}
HELDOUT = {"uniform_square": uniform_square, "annulus": annulus, "pinwheel": pinwheel,
           "two_spirals": two_spirals, "random_mixture": random_mixture, "glyph": glyph}
SETS = {**TUNE, **HELDOUT}
SHARP = ("checkerboard", "uniform_square", "annulus", "glyph")

N_TRAIN = datasets.DEFAULT_N
N_REFERENCE = 200_000


def training_data(name, seed):
    """The training array of set ``name`` for run ``seed`` (minigen's sets: what
    ``load_dataset(name, seed=seed)`` draws, as the trainers do)."""
    return SETS[name](N_TRAIN, seed=seed)


@functools.lru_cache(maxsize=None)
def reference(name):
    """A large fresh sample of set ``name`` (fixed seed, disjoint from the training seeds)."""
    return SETS[name](N_REFERENCE, seed=987_654)


REAL_SEED = 555_555
"""Real-vs-real samples are drawn with seed ``REAL_SEED + run seed``: neither a run's seed nor
the reference's, so the sample is independent of both."""


def real_sample(name, seed, n):
    """``n`` fresh points of set ``name``, independent of run ``seed``'s training data and of
    :func:`reference`: scored like a model's samples, they give the metrics' real-vs-real
    baseline."""
    return SETS[name](n, seed=REAL_SEED + seed)


def score(samples, name):
    """Support numbers (:func:`minigen.support.support_quality`, in %) of ``samples`` against
    a fresh sample of set ``name``, plus PacGAN's mode coverage on the mixtures and the curve
    precision on s_curve."""
    from minigen import metrics
    from minigen import evaluate

    out = {k: 100.0 * v for k, v in support_quality(samples, reference(name)).items()}
    if name in evaluate.MIXTURES:
        mixture = evaluate.MIXTURES[name]
        c = metrics.mode_coverage(samples, mixture.modes, mixture.std)
        out.update(modes=c["modes_covered"], high_quality=100.0 * c["high_quality"],
                   reverse_kl=c["reverse_kl"])
    elif name in evaluate.CURVES:
        c = metrics.curve_quality(samples, *evaluate.CURVES[name].polyline(),
                                  noise_std=evaluate.CURVE_NOISE)
        out.update(curve_precision=100.0 * c["precision"], curve_coverage=100.0 * c["coverage"])
    return out
