"""The GAN trainer: Algorithm 1's schedule, the optimal discriminator (Goodfellow et al.
2014, Proposition 1), exact resume, divergence detection, sampling from a run directory."""
import json
import os

import numpy as np
import pytest

import minigen as mg
import minigen.nn as nn
from minigen.data import RING8, gaussian1d, ring8
from minigen.gan import GANTrainer, load_generator, sample_run, train_gan
from minigen.gan.models import pack
from minigen.metrics import mode_coverage
from minigen.trainer import TrainingDiverged
from tests.crash import crash_at

SMALL = dict(batch_size=16, hidden=16, depth=2, checkpoint_every=10**6)


def _trainer(tmp_path, steps=10, data=None, **options):
    data = ring8(256, seed=0) if data is None else data
    return GANTrainer(data, tmp_path / "run", steps, seed=0, progress=False, **{**SMALL, **options})


def _params(trainer):
    params = {f"{who}.{k}": v for who in ("generator", "discriminator")
              for k, v in getattr(trainer, who).state_dict().items()}
    if trainer.ema is not None:
        params.update({f"ema.{k}": v for k, v in trainer.ema.shadow.items()})
    return params


@pytest.mark.parametrize("k", [1, 3])
def test_algorithm1_makes_k_discriminator_updates_per_generator_update(tmp_path, k):
    trainer = _trainer(tmp_path, k=k)
    events = []
    for name, opt in (("D", trainer.d_optimizer), ("G", trainer.g_optimizer)):
        step = opt.step
        opt.step = lambda step=step, name=name: (events.append(name), step())[1]
    for s in range(4):
        trainer.train_step(s)
    assert "".join(events) == ("D" * k + "G") * 4


def _one_step_generator_after(tmp_path, d_lr, **options):
    trainer = _trainer(tmp_path, **options)
    trainer.learning_rate = lambda step: 1e-2
    trainer.train_step(0)  # sets both lrs; then one more step with D's lr changed
    trainer.d_optimizer.lr = d_lr
    trainer.learning_rate = lambda step: None
    trainer.g_optimizer.lr = 1e-2
    (trainer.gan.simultaneous_step if options.get("simultaneous") else
     lambda: (trainer.gan.d_step(), trainer.gan.g_step()))()
    return trainer.generator.state_dict()


def test_simultaneous_update_takes_g_gradient_before_d_moves(tmp_path):
    # Simultaneous: G's update cannot depend on how far D stepped in the same iteration;
    # in Algorithm 1, G's update sees the updated D (so it does depend on it).
    for simultaneous, same in ((True, True), (False, False)):
        a = _one_step_generator_after(tmp_path / "a", 0.0, simultaneous=simultaneous)
        b = _one_step_generator_after(tmp_path / "b", 1e-1, simultaneous=simultaneous)
        equal = all(np.array_equal(a[key], b[key]) for key in a)
        assert equal == same


def test_optimal_discriminator_matches_proposition1(tmp_path):
    # G frozen at G(z) = a z + b with z ~ N(0, 1), so p_g = N(b, a^2) in D's (standardised)
    # units; D trained alone approaches D*(x) = p_data(x) / (p_data(x) + p_g(x)).
    data = gaussian1d(40000, mean=0.0, std=1.0, seed=0)
    g = nn.Linear(1, 1)
    g.weight.data[...] = 0.6
    g.bias.data[...] = 0.8
    trainer = GANTrainer(data, tmp_path / "run", 600, seed=0, progress=False, generator=g,
                         latent_dim=1, noise="normal", batch_size=256, hidden=32, depth=2,
                         lr=3e-3, lr_decay=False)
    for step in range(600):
        trainer.d_optimizer.lr = 3e-3 if step < 400 else 5e-4
        trainer.gan.d_step()
    x = np.linspace(-1.5, 2.0, 71)
    mu, sd = (0.0 - trainer.shift[0]) / trainer.scale, 1.0 / trainer.scale
    p_data = np.exp(-0.5 * ((x - mu) / sd) ** 2) / sd
    p_g = np.exp(-0.5 * ((x - 0.8) / 0.6) ** 2) / 0.6
    d_star = p_data / (p_data + p_g)
    with mg.no_grad():
        logits = trainer.gan.critic(mg.tensor(x[:, None].astype(np.float32))).numpy()[:, 0]
    d = 1 / (1 + np.exp(-logits))
    assert np.max(np.abs(d - d_star)) < 0.04, np.round(np.c_[x, d, d_star][::7], 3)


@pytest.mark.parametrize("options", [{}, dict(penalty="wgan-gp", pack=2, k=2),
                                     dict(simultaneous=True, penalty="r1", label_smoothing=0.1),
                                     dict(ema_decay=0.9, top_k=0.5)])
def test_resume_is_bit_exact(tmp_path, options):
    reference = _trainer(tmp_path / "ref", steps=8, **{**options, "checkpoint_every": 3})
    reference.fit()

    crash_at(_trainer(tmp_path / "cut", steps=8, **{**options, "checkpoint_every": 3}), 4)

    resumed = _trainer(tmp_path / "cut", steps=8, **{**options, "checkpoint_every": 3}).resume()
    assert resumed.step == 3
    resumed.fit()
    a, b = _params(reference), _params(resumed)
    assert a.keys() == b.keys() and all(np.array_equal(a[key], b[key]) for key in a)
    assert reference.history == resumed.history


def test_train_gan_resume_continues_with_the_saved_options(tmp_path):
    out = tmp_path / "run"
    data = ring8(256, seed=1)
    full = train_gan(data, 6, tmp_path / "full", k=2, progress=False, **SMALL)
    train_gan(data, 3, out, k=2, progress=False, **SMALL)
    # a longer run, resumed: the cosine decay is over the new total, so compare the
    # options and step count rather than parameters with `full`
    resumed = train_gan(data, 6, out, resume=True, progress=False)
    assert resumed.step == 6 and resumed.options["k"] == 2 and resumed.options["hidden"] == 16
    assert len(resumed.history["step"]) == len(full.history["step"]) == 6


def test_runs_saved_before_the_ema_and_top_k_options_resume_as_they_were(tmp_path):
    """A checkpoint whose config predates ``ema_decay``/``top_k``/``top_k_until`` resumes
    with those off (``ADDED_OPTIONS``), on the trajectory of an uninterrupted such run."""
    from minigen import checkpoint
    from minigen.gan.trainer import ADDED_OPTIONS

    data, old = ring8(256, seed=1), dict(SMALL, **ADDED_OPTIONS)
    full = train_gan(data, 6, tmp_path / "full", progress=False, figures=False, **old)
    out = tmp_path / "old"
    crash_at(GANTrainer(data, out, 6, progress=False, figures=False, **{**old,
                                                                      "checkpoint_every": 3}), 3)
    saved = checkpoint.load(out / "checkpoint.npz")
    for name in ADDED_OPTIONS:
        del saved["config"][name]
    checkpoint.save(saved, out / "checkpoint.npz")
    resumed = train_gan(data, 6, out, resume=True, progress=False, figures=False)
    assert resumed.options["top_k"] == 1.0 and resumed.ema is None
    a, b = _params(full), _params(resumed)
    assert all(np.array_equal(a[key], b[key]) for key in a)


def test_nan_stops_training_with_a_clear_message(tmp_path):
    trainer = _trainer(tmp_path, steps=5)
    trainer.discriminator.parameters()[0].data[...] = np.nan
    with pytest.raises(TrainingDiverged, match="d_loss.*step 0"):
        trainer.fit()


def test_sample_run_rebuilds_the_generator(tmp_path):
    trainer = _trainer(tmp_path, steps=4)
    trainer.fit()
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["kind"] == "gan"
    x = sample_run(run, 300, seed=3)
    assert x.shape == (300, 2) and x.dtype == np.float32
    np.testing.assert_array_equal(x, sample_run(run, 300, seed=3))
    np.testing.assert_allclose(x, trainer.samples(300, seed=3), rtol=1e-6)
    assert os.path.exists(run / "samples.png")
    with pytest.raises(FileNotFoundError, match="not a minigen run directory"):
        sample_run(tmp_path / "missing", 10)


@pytest.mark.parametrize("simultaneous", [False, True])
def test_ema_of_the_generator_follows_its_formula(tmp_path, simultaneous):
    # shadow = d_n shadow + (1 - d_n) G's weights after update n, d_n = min(decay, (1+n)/(10+n)),
    # starting from G's initial weights; the EMA leaves the training itself unchanged
    decay, steps = 0.8, 12
    options = dict(steps=steps, lr=1e-2, lr_decay=False, simultaneous=simultaneous)
    trainer = _trainer(tmp_path / "ema", ema_decay=decay, **options)
    shadow = {k: v.astype(np.float64) for k, v in trainer.generator.state_dict().items()}
    for step in range(steps):
        trainer.train_step(step)
        d = min(decay, (1 + step) / (10 + step))
        for k, v in trainer.generator.state_dict().items():
            shadow[k] = d * shadow[k] + (1 - d) * v
    raw = trainer.generator.state_dict()
    for k, v in trainer.ema.shadow.items():
        np.testing.assert_allclose(v, shadow[k], rtol=1e-5, atol=1e-6)
    assert max(np.abs(v - raw[k]).max() for k, v in shadow.items()) > 1e-3
    plain = _trainer(tmp_path / "plain", **options)  # reseeds minigen's generator
    for step in range(steps):
        plain.train_step(step)
    assert all(np.array_equal(raw[k], v) for k, v in plain.generator.state_dict().items())
    # samples come from the averaged weights, and sampling leaves G's own weights in place
    plain.generator.load_state_dict({k: v.astype(np.float32) for k, v in shadow.items()})
    np.testing.assert_allclose(trainer.samples(200, seed=5), plain.samples(200, seed=5),
                               rtol=1e-4, atol=1e-4)
    assert all(np.array_equal(raw[k], v) for k, v in trainer.generator.state_dict().items())


def test_sample_run_uses_the_ema_weights(tmp_path):
    trainer = _trainer(tmp_path, steps=6, ema_decay=0.9)
    trainer.fit()
    run = tmp_path / "run"
    x = sample_run(run, 300, seed=3)
    np.testing.assert_allclose(x, trainer.samples(300, seed=3), rtol=1e-6)
    generator, config = load_generator(run, use_ema=False)
    raw = trainer.generator.state_dict()
    assert config["ema_decay"] == 0.9
    assert all(np.array_equal(raw[k], v) for k, v in generator.state_dict().items())
    ema, _ = load_generator(run)
    assert all(np.array_equal(trainer.ema.shadow[k], v) for k, v in ema.state_dict().items())
    assert not all(np.allclose(raw[k], v, atol=1e-4) for k, v in trainer.ema.shadow.items())


def test_top_k_schedule_anneals_then_keeps_the_whole_batch(tmp_path):
    # n = 32, m = 16: epoch = step / 2; 0.99^epoch falls to top_k = 0.5 at epoch 69
    trainer = _trainer(tmp_path, steps=400, data=ring8(32, seed=0), top_k=0.5, top_k_until=0.5)
    assert trainer.kept_fraction(0) == 1.0
    assert trainer.kept_fraction(20) == pytest.approx(0.99 ** 10)
    assert trainer.kept_fraction(150) == trainer.kept_fraction(199) == 0.5
    assert trainer.kept_fraction(200) == trainer.kept_fraction(399) == 1.0
    off = _trainer(tmp_path / "off", steps=400, data=ring8(32, seed=0), top_k=1.0)
    assert off.kept_fraction(150) == 1.0


@pytest.mark.parametrize("loss", ["nonsaturating", "wasserstein"])
def test_top_k_generator_loss_uses_the_fakes_rated_most_real(tmp_path, loss):
    trainer = _trainer(tmp_path, loss=loss, batch_size=64)
    fake = trainer.generator(trainer.gan.noise(64))
    with mg.no_grad():
        logits = trainer.gan.D(fake).numpy()[:, 0].astype(np.float64)
    top = np.sort(logits)[-16:]
    expected = np.log1p(np.exp(-top)).mean() if loss == "nonsaturating" else -top.mean()
    trainer.gan.keep = 0.25
    top_loss = trainer.gan._generator_loss(fake)
    assert top_loss.item() == pytest.approx(expected, rel=1e-5)
    assert trainer.gan.minibatch.weight == 1.0  # of this (the only) process
    trainer.gan.keep = 1.0
    everything = np.log1p(np.exp(-logits)).mean() if loss == "nonsaturating" else -logits.mean()
    assert trainer.gan._generator_loss(fake).item() == pytest.approx(everything, rel=1e-5)


def test_standardisation_is_undone_in_samples(tmp_path):
    # data in other units: the networks see the same standardised data, and samples come
    # back in the data's units
    data = ring8(256, seed=0)
    a = _trainer(tmp_path / "a", steps=3, data=data)
    b = _trainer(tmp_path / "b", steps=3, data=data * 1000 + 50)
    np.testing.assert_allclose(a.data, b.data, atol=1e-5)
    assert np.allclose(a.data.mean(0), 0, atol=1e-6) and np.isclose((a.data**2).mean(), 1)
    np.testing.assert_allclose(a.samples(100) * 1000 + 50, b.samples(100), rtol=1e-5, atol=1e-3)


def test_pack_concatenates_consecutive_samples():
    x = mg.tensor(np.arange(24, dtype=np.float32).reshape(6, 2, 1, 2))
    packed = pack(x, 3)
    assert packed.shape == (2, 6, 1, 2)
    np.testing.assert_array_equal(packed.numpy()[1], np.concatenate(x.numpy()[3:6], axis=0))
    with pytest.raises(ValueError, match="pack=4"):
        pack(x, 4)


def test_bad_options_are_rejected(tmp_path):
    with pytest.raises(TypeError, match="unknown options \\['lr_g'\\]"):
        _trainer(tmp_path, lr_g=1e-3)
    with pytest.raises(ValueError, match="loss"):
        _trainer(tmp_path, loss="hinge")
    with pytest.raises(ValueError, match="ema_decay"):
        _trainer(tmp_path, ema_decay=1.0)
    with pytest.raises(ValueError, match="top_k"):
        _trainer(tmp_path, top_k=0.0)
    with pytest.raises(ValueError, match="multiple of pack"):
        _trainer(tmp_path, pack=3)
    with pytest.raises(ValueError, match="data must be"):
        _trainer(tmp_path, data=np.zeros(10, np.float32))


def test_one_dimensional_run_writes_figure1(tmp_path):
    trainer = _trainer(tmp_path, steps=20, data=gaussian1d(512, mean=2.0, seed=0), noise="uniform",
                       latent_dim=1)
    trainer.fit()
    assert sorted(trainer.snapshots, key=int) == ["0", "1", "5", "20"]
    assert os.path.getsize(tmp_path / "run" / "figure1.png") > 5000


def test_short_ring8_run_covers_the_modes(tmp_path):
    # calibrated on seeds 0, 1, 2: 7-8 modes at 45-57% high quality after 1000 steps; with
    # G's loss sign flipped the run covers 0 modes, and a collapsed G covers one or two
    trainer = GANTrainer(ring8(10000, seed=0), tmp_path / "run", 1000, seed=0, progress=False,
                         figures=False, hidden=128, depth=3, batch_size=256, input_scale=5.0,
                         lr=1e-3, checkpoint_every=10**6)
    trainer.fit()
    c = mode_coverage(trainer.samples(2500, seed=1), RING8.modes, RING8.std)
    assert c["modes_covered"] >= 6 and c["high_quality"] >= 0.25, c


def test_train_gan_reads_a_data_file(tmp_path):
    path = tmp_path / "mine.npy"
    np.save(path, (ring8(100, seed=0) * 3 + 7).astype(np.float64))  # 100 points < batch_size
    trainer = train_gan(str(path), 2, tmp_path / "run", progress=False, figures=False)
    assert trainer.config["dataset"] == str(path) and trainer.options["batch_size"] > 100
    x = sample_run(tmp_path / "run", 50, seed=0)
    assert x.shape == (50, 2) and abs(float(x.mean()) - 7) < 3


@pytest.mark.slow
def test_default_options_cover_the_ring_in_4000_steps(tmp_path):
    # half the default run length; measured with the current defaults: seed 0 8 modes at
    # 90.2% high quality, seed 1 8 modes at 85.6% (the defaults before top-k: 7-8 modes at
    # 86-94% over seeds 0-4)
    trainer = train_gan("ring8", 4000, tmp_path / "run", seed=0, progress=False, figures=False)
    c = mode_coverage(sample_run(tmp_path / "run", 2500, seed=1000), RING8.modes, RING8.std)
    assert c["modes_covered"] >= 7 and c["high_quality"] >= 0.85, c
    assert trainer.options["input_scale"] == 4.0


@pytest.mark.slow
def test_default_options_reach_the_coverage_target_on_the_grid(tmp_path):
    """Issue 5's target on the harder set with the CLI defaults (DEFAULT_STEPS): all 25
    modes, >= 94% high quality over 5 seeds (seed 0: 25 modes, 95.4%, reverse KL 0.007;
    bench/coverage.py); the bar here leaves a point for one seed's noise."""
    from minigen.data import GRID25
    from minigen.gan.trainer import DEFAULT_STEPS

    train_gan("grid25", DEFAULT_STEPS, tmp_path / "run", seed=0, progress=False, figures=False)
    c = mode_coverage(sample_run(tmp_path / "run", 2500, seed=1000), GRID25.modes, GRID25.std)
    assert c["modes_covered"] == 25 and c["high_quality"] >= 0.93, c
    assert c["reverse_kl"] <= 0.04, c


def test_paper_preset_is_algorithm1_as_printed(tmp_path):
    """preset="paper": minimax losses, uniform noise, SGD with momentum at a constant lr, every
    fake in G's loss, D's input unscaled; the GAN object then takes k D steps per G step."""
    trainer = GANTrainer(ring8(64, seed=0), tmp_path / "run", 4, seed=0, progress=False,
                         figures=False, preset="paper", k=2, **SMALL)
    o = trainer.options
    assert (o["loss"], o["noise"], o["input_scale"], o["top_k"]) == ("minimax", "uniform", 1.0, 1.0)
    assert isinstance(trainer.d_optimizer, mg.optim.SGD) and trainer.d_optimizer.lr == 0.1
    assert trainer.learning_rate(3) == trainer.learning_rate(0) == 0.1
    assert trainer.kept_fraction(0) == 1.0
    events = []
    for name, opt in (("D", trainer.d_optimizer), ("G", trainer.g_optimizer)):
        step = opt.step
        opt.step = lambda step=step, name=name: (events.append(name), step())[1]
    trainer.fit()
    assert events == ["D", "D", "G"] * 4
    with pytest.raises(ValueError, match="preset"):
        GANTrainer(ring8(64, seed=0), tmp_path / "other", 1, preset="tuned2")
