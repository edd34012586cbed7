"""DDPM training end to end: sample quality on the S-curve against the true curve (with the
thresholds shown to reject blurred, box-filling, partial and untrained samplers), bit-exact
resume, the NaN stop, normalisation to data units, images through the UNet, figures."""
import json
import os

import numpy as np
import pytest

from minigen import data as D
from minigen.diffusion import trainer as T
from minigen.evaluate import evaluate_samples
from minigen.errors import IgnoredOptions, ResumeNotice
from minigen.trainer import TrainingDiverged

TINY = dict(model_config=dict(hidden=(16, 16), time_dim=8), batch_size=32)


pytestmark = pytest.mark.usefixtures("one_thread")


def passes_s_curve_bar(q):
    """Thresholds for 1000 samples after the short run below; fresh data scores precision
    ~0.99, coverage 1, reverse KL ~0.02, energy distance ~0.04."""
    return (q["precision"] >= 0.85 and q["coverage"] >= 0.96 and q["reverse_kl"] <= 0.15
            and q["energy_distance"] <= 0.12)


def test_s_curve_bar_rejects_degenerate_samplers():
    rng = np.random.default_rng(0)
    fresh = D.s_curve(1000, seed=7)
    assert passes_s_curve_bar(evaluate_samples(fresh, "s_curve"))
    blurred = fresh + 0.1 * rng.standard_normal(fresh.shape)  # twice the data's noise
    box = rng.uniform(fresh.min(0), fresh.max(0), fresh.shape)
    curve = D.S_CURVE
    two_thirds = D.Curve(curve.point, curve.u_min,
                         curve.u_min + 2 / 3 * (curve.u_max - curve.u_min))
    collapsed = np.repeat(fresh[:1], 1000, axis=0)
    for bad in (blurred, box, two_thirds.sample(1000, seed=3, noise=0.05), collapsed):
        assert not passes_s_curve_bar(evaluate_samples(bad, "s_curve"))


def test_short_training_run_draws_the_s_curve(tmp_path):
    """~10 s on one core: 2500 steps of the default 2-D recipe, 1000 ancestral samples with
    the EMA weights (measured: precision 0.97, coverage 1.0; the untrained model scores 0).
    The loss bar: predicting eps = 0 scores 1.0; the default quadratic schedule draws more
    low-noise timesteps (hard to predict), so its loss floor (~0.33 here) sits above the
    linear schedule's (~0.22)."""
    x = D.s_curve(10_000, seed=0)
    trainer = T.DDPMTrainer(x, tmp_path, 2500, seed=0, progress=False, figures=False,
                            checkpoint_every=10**9)
    assert not passes_s_curve_bar(evaluate_samples(trainer.sample(1000, seed=1), "s_curve"))
    trainer.fit()
    q = evaluate_samples(trainer.sample(1000, seed=1), "s_curve")
    assert passes_s_curve_bar(q), q
    assert np.mean(trainer.history["loss"][-200:]) < 0.4


@pytest.mark.slow
def test_demo_length_run_reaches_fresh_data_quality(tmp_path):
    """The demo's 6000 steps (measured: precision 0.983, coverage 1.0, energy distance 0.043
    on 2000 samples)."""
    x = D.s_curve(10_000, seed=0)
    trainer = T.DDPMTrainer(x, tmp_path, 6000, seed=0, progress=False, figures=False,
                            checkpoint_every=10**9)
    trainer.fit()
    q = evaluate_samples(trainer.sample(2000, seed=0), "s_curve")
    assert q["precision"] >= 0.96 and q["coverage"] == 1.0 and q["energy_distance"] < 0.07, q


def _flat_state(trainer):
    state = trainer.state()
    flat = {f"model/{k}": v for k, v in state["model"].items()}
    flat.update({f"ema/{k}": v for k, v in state["ema"]["shadow"].items()})
    for name, s in state["optimizer"]["state"].items():
        flat.update({f"opt/{name}/{k}": np.asarray(v) for k, v in s.items()})
    return flat


def test_resume_is_bit_exact(tmp_path):
    x = D.moons(500, seed=0)
    whole = T.train_ddpm(x, 40, tmp_path / "whole", seed=3, progress=False, figures=False,
                         checkpoint_every=20, **TINY)
    T.train_ddpm(x, 20, tmp_path / "split", seed=3, progress=False, figures=False,
                 checkpoint_every=20, **TINY)
    with pytest.warns(IgnoredOptions, match=r"ignores seed=99 \(the run's: 3\)") as caught:
        resumed = T.train_ddpm(x, 40, tmp_path / "split", seed=99, resume=True, progress=False,
                               figures=False, checkpoint_every=20)
    assert [w.filename for w in caught] == [__file__]  # the warning points at the caller
    assert resumed.step == 40 and resumed.seed == 3 and resumed.opts["batch_size"] == 32
    a, b = _flat_state(whole), _flat_state(resumed)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert whole.history == resumed.history
    np.testing.assert_array_equal(whole.sample(50, seed=0), resumed.sample(50, seed=0))


def test_resume_without_a_checkpoint_starts_afresh(tmp_path):
    with pytest.warns(ResumeNotice, match="holds no run yet; it starts at step 0"):
        trainer = T.train_ddpm(D.moons(200, seed=0), 3, tmp_path, resume=True, progress=False,
                               figures=False, **TINY)
    assert trainer.step == 3


def test_nan_loss_stops_training_with_a_clear_message(tmp_path):
    x = D.moons(200, seed=0)
    trainer = T.DDPMTrainer(x, tmp_path, 50, progress=False, figures=False, checkpoint_every=1,
                            lr=1e30, warmup_steps=0, grad_clip=None, **TINY)
    with pytest.raises(TrainingDiverged, match=r"'loss' is (nan|inf)"):
        trainer.fit()
    assert trainer.step < 50


def test_samples_come_back_in_data_units(tmp_path):
    """Data far from the unit scale: N(100, 5^2) in 2-D. After a short run the samples'
    mean and spread are those of the data (the normalisation is stored with the run)."""
    rng = np.random.default_rng(0)
    x = (np.array([100.0, -40.0]) + 5.0 * rng.standard_normal((2000, 2))).astype(np.float32)
    trainer = T.train_ddpm(x, 400, tmp_path, progress=False, figures=False)
    config = json.loads((tmp_path / "config.json").read_text())
    np.testing.assert_allclose(config["normalization"]["shift"], x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(config["normalization"]["scale"], x.std(0), rtol=1e-5)
    samples = T.sample_run(tmp_path, 1000, sampler="ddim", steps=50, seed=0)
    assert samples.shape == (1000, 2) and samples.dtype == np.float32
    np.testing.assert_allclose(samples.mean(0), [100.0, -40.0], atol=1.0)
    np.testing.assert_allclose(samples.std(0), [5.0, 5.0], rtol=0.2)
    ddpm, _ = T.load_run(tmp_path)
    assert not ddpm.model.training
    np.testing.assert_array_equal(samples, trainer.sample(1000, sampler="ddim", steps=50, seed=0))


def test_normalization_round_trip():
    rng = np.random.default_rng(1)
    vectors = rng.normal(3.0, 7.0, (100, 3))
    images = rng.uniform(0, 255, (10, 3, 4, 4))
    for data in (vectors, images):
        norm = T.fit_normalization(data)
        z = T.normalize(data, norm)
        np.testing.assert_allclose(T.denormalize(z, norm), data, rtol=1e-5, atol=1e-3)
    z = T.normalize(images, T.fit_normalization(images))
    assert z.min() == pytest.approx(-1, abs=1e-6) and z.max() == pytest.approx(1, abs=1e-6)


def test_images_train_through_the_unet_with_clipping_and_figures(tmp_path):
    images, _ = D.digits()
    options = dict(model_config=dict(base_channels=8, channel_mults=(1, 2), groups=4, time_dim=16),
                   schedule=dict(kind="linear", T=20, beta_start=0.005, beta_end=0.5), batch_size=8)
    trainer = T.train_ddpm(images[:64], 2, tmp_path, progress=False, **options)
    assert trainer.model.config["attention_resolutions"] == (4,) and trainer.ddpm.clip_x0 == 1.0
    for name in ("diffusion.png", "samples.png", "loss.png", "checkpoint.npz", "config.json"):
        assert os.path.getsize(tmp_path / name) > 0, name
    samples = T.sample_run(tmp_path, 3, seed=0)
    assert samples.shape == (3, 1, 8, 8)
    assert samples.min() >= -1 - 1e-5 and samples.max() <= 1 + 1e-5


def test_2d_figures_and_quality_are_written(tmp_path):
    options = dict(TINY, schedule=dict(kind="linear", T=50, beta_start=0.002, beta_end=0.4))
    trainer = T.train_ddpm("s_curve", 5, tmp_path, progress=False, **options)
    for name in ("diffusion.png", "samples.png", "loss.png"):
        assert os.path.getsize(tmp_path / name) > 10_000, name
    assert trainer.samples.shape == (2000, 2)
    assert set(trainer.quality) == {"precision", "coverage", "reverse_kl", "energy_distance"}


def test_trainer_rejects_bad_input(tmp_path):
    with pytest.raises(TypeError, match="unknown options"):
        T.DDPMTrainer(D.moons(10, seed=0), tmp_path, 1, learning_rate=1.0)
    with pytest.raises(ValueError, match="vectors .* or images"):
        T.DDPMTrainer(np.zeros((10, 2, 2)), tmp_path, 1)
    with pytest.raises(ValueError, match="NaN or inf"):
        T.DDPMTrainer(np.array([[0.0, np.nan], [1.0, 2.0]]), tmp_path, 1)
    with pytest.raises(FileNotFoundError, match="not a minigen run directory"):
        T.sample_run(tmp_path / "nothing", 5)
    T.train_ddpm(D.moons(100, seed=0), 1, tmp_path, progress=False, figures=False, **TINY)
    with pytest.raises(ValueError, match="sampler must be one of 'ddpm', 'ddim', 'dpm"):
        T.sample_run(tmp_path, 5, sampler="euler")
    with pytest.raises(ValueError, match="use --sampler ddim"):
        T.sample_run(tmp_path, 5, sampler="ddpm", steps=10)


def test_digits_reference_classifier_scores_real_noise_and_collapse():
    from minigen.evaluate import digits_classifier

    classifier = digits_classifier()
    assert classifier.accuracy >= 0.95  # held-out 297 digits (measured 0.993)
    images, labels = D.digits(seed=1)
    real = classifier.score(images[:500])
    rng = np.random.default_rng(0)
    noise = classifier.score(np.clip(rng.standard_normal((500, 1, 8, 8)), -1, 1))
    ones = classifier.score(np.repeat(images[labels == 1][:50], 10, axis=0))
    assert real["class_coverage"] == 10 and real["mean_confidence"] > 0.95
    assert real["frechet_distance"] < 5
    assert noise["mean_confidence"] < 0.8 and noise["frechet_distance"] > 100
    assert ones["class_coverage"] == 1 and ones["frechet_distance"] > 100
    with pytest.raises(ValueError, match=r"expected images \(n, 1, 8, 8\)"):
        classifier.score(np.zeros((3, 64)))


@pytest.mark.slow
def test_digits_unet_run_draws_all_ten_classes(tmp_path):
    """The issue's digits run (~10 min on 2 cores): the default UNet recipe on the 8x8
    digits. Measured at step 1000 of a 1500-step run, 500 DDIM-50 samples: 10/10 classes,
    mean confidence 0.92, Fréchet distance 4.3 (real digits vs real digits: 1.2; real
    digits blurred with N(0, 0.5^2): 29; noise: 508)."""
    trainer = T.train_ddpm("digits", 1000, tmp_path, progress=False, figures=False,
                           checkpoint_every=10**9)
    q = evaluate_samples(trainer.sample(500, sampler="ddim", steps=50, seed=0), "digits")
    assert q["class_coverage"] == 10 and q["mean_confidence"] > 0.85, q
    assert q["frechet_distance"] < 10, q
