"""BigGAN's truncation trick (Brock et al. 2019, Sec. 3.1): every latent coordinate within psi,
distributed as the prior truncated to [-psi, psi] (against the truncated normal's CDF and
variance written from the error function), and ``sample --truncation`` on a GAN run."""
import math

import numpy as np
import pytest

from minigen import cli
from minigen.data import ring8
from minigen.gan import GANTrainer, sample_run, truncate
from minigen.gan.gan import noise_prior


def _phi(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@pytest.mark.parametrize("psi", [0.3, 1.0, 2.0])
def test_truncated_normal_coordinates_follow_the_truncated_normal(psi):
    rng = np.random.default_rng(0)
    z = truncate(noise_prior(20000, 4, "normal", rng), psi, "normal", rng)
    assert z.shape == (20000, 4) and z.dtype == np.float32
    assert np.abs(z).max() <= psi
    values = np.sort(z.ravel().astype(np.float64))
    mass = _phi(psi) - _phi(-psi)
    cdf = np.array([(_phi(v) - _phi(-psi)) / mass for v in values[::97]])
    empirical = (np.arange(len(values))[::97] + 1) / len(values)
    assert np.abs(cdf - empirical).max() < 3.26 / math.sqrt(len(values))  # KS, alpha < 1e-6
    density = math.exp(-psi**2 / 2) / math.sqrt(2 * math.pi)
    variance = 1.0 - 2 * psi * density / mass
    assert abs(values.var() - variance) < 5 * variance * math.sqrt(2 / len(values))


def test_truncation_keeps_coordinates_already_inside_and_redraws_the_rest():
    rng = np.random.default_rng(1)
    z = noise_prior(1000, 8, "normal", rng)
    inside = np.abs(z) <= 0.5
    t = truncate(z, 0.5, "normal", np.random.default_rng(2))
    np.testing.assert_array_equal(t[inside], z[inside])
    assert np.all(t[~inside] != z[~inside]) and np.abs(t).max() <= 0.5
    uniform = noise_prior(1000, 3, "uniform", rng)
    np.testing.assert_array_equal(truncate(uniform, 1.0, "uniform", rng), uniform)
    with pytest.raises(ValueError, match="psi must be a number > 0"):
        truncate(z, 0.0, "normal", rng)


def test_sample_truncation_on_a_gan_run(tmp_path, capsys):
    GANTrainer(ring8(256, seed=0), tmp_path / "run", 5, seed=0, progress=False, batch_size=16,
               hidden=16, depth=2, figures=False).fit()
    wide, narrow = (sample_run(tmp_path / "run", 2000, seed=0, truncation=psi)
                    for psi in (None, 0.2))
    assert narrow.std(0).sum() < wide.std(0).sum()
    np.testing.assert_array_equal(narrow, sample_run(tmp_path / "run", 2000, seed=0,
                                                     truncation=0.2))
    out = tmp_path / "x.npy"
    assert cli.main(["sample", str(tmp_path / "run"), "--n", "50", "--out", str(out),
                     "--truncation", "0.5"]) == 0
    assert np.load(out).shape == (50, 2)
    for psi in ("0", "nan"):
        assert cli.main(["sample", str(tmp_path / "run"), "--n", "5", "--out",
                         str(tmp_path / "y.npy"), "--truncation", psi]) == 2
        assert "--truncation applies to GAN runs and must be > 0" in capsys.readouterr().err
