"""The class-conditional GAN (Mirza & Osindero 2014): the one-hot input, a short run whose
samples land in the requested mode, exact resume, sampling through the CLI with --label."""
import numpy as np
import pytest

from minigen import cli
from minigen.gan import GANTrainer, sample_run
from minigen.gan.models import with_labels
from minigen.tensor import Tensor
from tests.crash import crash_at

pytestmark = pytest.mark.usefixtures("one_thread")

MODES = np.array([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])
SMALL = dict(hidden=64, depth=2, batch_size=128, figures=False, progress=False)


def _data(n=2000):
    rng = np.random.default_rng(0)
    y = rng.integers(4, size=n)
    return (MODES[y] + 0.1 * rng.standard_normal((n, 2))).astype(np.float32), y


def test_with_labels_appends_one_hot_features_and_channels():
    x = Tensor(np.zeros((3, 2), np.float32))
    np.testing.assert_array_equal(with_labels(x, np.array([2, 0, 1]), 3).data,
                                  [[0, 0, 0, 0, 1], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0]])
    images = with_labels(Tensor(np.ones((2, 1, 4, 4), np.float32)), np.array([1, 0]), 2).data
    assert images.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(images[:, 1:, 2, 3], [[0, 1], [1, 0]])
    np.testing.assert_array_equal(images[:, 0], 1)


def test_conditional_gan_samples_the_requested_mode(tmp_path, capsys):
    x, y = _data()
    GANTrainer(x, tmp_path / "run", 800, seed=0, labels=y, conditional=True, **SMALL).fit()
    for k in range(4):
        s = sample_run(tmp_path / "run", 400, seed=1, label=k)
        d = np.linalg.norm(s[:, None] - MODES[None], axis=2)
        assert (d.argmin(1) == k).mean() > 0.95 and (d.min(1) < 0.4).mean() > 0.9, k
    per_row = np.arange(400) % 4
    s = sample_run(tmp_path / "run", 400, seed=2, label=per_row)
    assert (np.linalg.norm(s[:, None] - MODES[None], axis=2).argmin(1) == per_row).mean() > 0.95
    with pytest.raises(ValueError, match="an int or 400 ints"):
        sample_run(tmp_path / "run", 400, seed=2, label=per_row[:10])
    mixed = sample_run(tmp_path / "run", 2000, seed=1)
    shares = np.bincount(np.linalg.norm(mixed[:, None] - MODES[None], axis=2).argmin(1),
                         minlength=4) / 2000
    np.testing.assert_allclose(shares, np.bincount(y) / len(y), atol=0.08)
    out = tmp_path / "x.npy"
    assert cli.main(["sample", str(tmp_path / "run"), "--n", "50", "--out", str(out),
                     "--label", "3", "--truncation", "0.5"]) == 0
    assert (np.linalg.norm(np.load(out)[:, None] - MODES[None], axis=2).argmin(1) == 3).all()
    assert cli.main(["sample", str(tmp_path / "run"), "--n", "5", "--out",
                     str(tmp_path / "y.npy"), "--label", "4"]) == 2
    assert "label 4 is not a class of this run (0..3)" in capsys.readouterr().err


def test_conditional_resume_is_bit_exact(tmp_path):
    x, y = _data(500)
    options = dict(SMALL, labels=y, conditional=True, checkpoint_every=3, penalty="wgan-gp",
                   pack=2)
    reference = GANTrainer(x, tmp_path / "ref", 8, seed=3, **options)
    reference.fit()
    crash_at(GANTrainer(x, tmp_path / "cut", 8, seed=3, **options), 4)
    resumed = GANTrainer(x, tmp_path / "cut", 8, seed=3, **options).resume()
    assert resumed.step == 3
    resumed.fit()
    for who in ("generator", "discriminator"):
        a, b = (getattr(t, who).state_dict() for t in (reference, resumed))
        assert all(np.array_equal(a[key], b[key]) for key in a)
    assert reference.history == resumed.history


def test_conditional_needs_labels_and_the_cli_trains_on_a_labelled_set(tmp_path, capsys):
    x, _ = _data(100)
    with pytest.raises(ValueError, match="conditional=True needs labels"):
        GANTrainer(x, tmp_path / "r", 2, conditional=True, **SMALL)
    assert cli.main(["train", "gan", "--data", "ring8", "--steps", "3", "--out",
                     str(tmp_path / "ring"), "--conditional", "--quiet", "--no-figures",
                     "--batch-size", "16"]) == 0
    s = sample_run(tmp_path / "ring", 10, seed=0, label=7)
    assert s.shape == (10, 2)
    assert cli.main(["sample", str(tmp_path / "ring"), "--n", "5", "--out",
                     str(tmp_path / "z.npy"), "--label", "1", "--guidance", "1"]) == 2
    assert "apply to DDPM runs" in capsys.readouterr().err
