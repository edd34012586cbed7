"""Classifier guidance (Dhariwal & Nichol 2021, Algorithms 1 and 2): the classifier's gradient
against finite differences, the two guided updates against their formulas, and the guided
samplers on a 1-D Gaussian mixture whose denoiser and noisy classifier are exact, against
the class shares of the tilted distribution p(x) p(y | x)^s computed by quadrature."""
import json

import numpy as np
import pytest

from minigen import cli, nn
from minigen.diffusion import DDPM, NoiseSchedule
from minigen.diffusion import classifier_guidance as cg
from minigen.diffusion.classifier import ClassifierTrainer, check_pairing, load_classifier
from minigen.tensor import Tensor
from minigen.trainer import normalize
from tests.crash import crash_at

pytestmark = pytest.mark.usefixtures("one_thread")

MEANS = np.array([-1.0, 0.0, 1.0])
WEIGHTS = np.array([0.3, 0.4, 0.3])
STD = 0.45


def _tables(schedule, t):
    """sqrt(abar_t) and the variance of each component of p_t (abar STD^2 + 1 - abar)."""
    abar = schedule.alphas_cumprod[np.asarray(t)][:, None]
    return np.sqrt(abar), abar * STD**2 + 1.0 - abar


class ExactClassifier(nn.Module):
    """p(y | x_t) of the mixture diffused to t: logits log pi_k - (x - a m_k)^2 / (2 v_t),
    written in Tensor ops so that the gradient flows through it."""

    def __init__(self, schedule):
        self.schedule = schedule

    def forward(self, x, t):
        a, v = _tables(self.schedule, t)
        d = x - Tensor(a * MEANS[None])
        return Tensor(np.log(WEIGHTS)[None]) - d * d * Tensor(0.5 / v)


def exact_eps(schedule):
    """eps(x_t, t) = -sqrt(1 - abar_t) grad log p_t(x_t) of the mixture."""
    def eps(x, t):
        xv = x.data
        a, v = _tables(schedule, t)
        log_r = np.log(WEIGHTS)[None] - (xv - a * MEANS[None]) ** 2 / (2 * v)
        r = np.exp(log_r - log_r.max(1, keepdims=True))
        r /= r.sum(1, keepdims=True)
        score = (r * -(xv - a * MEANS[None]) / v).sum(1, keepdims=True)
        return Tensor(-np.sqrt(1.0 - a**2) * score)
    return eps


def tilted_shares(y, s):
    """Shares of the nearest-mean regions under p(x) p(y | x)^s (quadrature on a fine grid)."""
    x = np.linspace(-5, 5, 200001)
    comps = WEIGHTS[:, None] * np.exp(-(x[None] - MEANS[:, None]) ** 2 / (2 * STD**2))
    density = comps.sum(0) * (comps[y] / comps.sum(0)) ** s
    region = np.abs(x[None] - MEANS[:, None]).argmin(0)
    return np.array([density[region == k].sum() for k in range(3)]) / density.sum()


def _shares(samples):
    region = np.abs(samples[:, :1] - MEANS[None]).argmin(1)
    return np.bincount(region, minlength=3) / len(samples)


# --- the gradient and the two updates --------------------------------------------------
def test_log_prob_grad_matches_finite_differences():
    rng = np.random.default_rng(0)
    clf = nn.MLP(2, 4, hidden=(16, 16), time_dim=8, dtype=np.float64)
    x, t, y = rng.standard_normal((5, 2)), np.array([0, 3, 7, 9, 2]), np.array([0, 3, 1, 2, 3])
    g = cg.log_prob_grad(clf, x, t, y)

    def log_prob(x):
        logits = clf(Tensor(x), t).data
        m = logits.max(1, keepdims=True)
        return logits[np.arange(5), y] - (m[:, 0] + np.log(np.exp(logits - m).sum(1)))

    h, numeric = 1e-6, np.zeros_like(x)
    for j in range(2):
        e = np.zeros_like(x)
        e[:, j] = h
        numeric[:, j] = (log_prob(x + e) - log_prob(x - e)) / (2 * h)
    np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8)


def test_log_prob_grad_of_the_exact_classifier_is_the_analytic_one():
    schedule = NoiseSchedule.linear(50, 1e-3, 0.2)
    x, t, y = np.linspace(-2, 2, 7)[:, None], np.arange(0, 49, 7), np.array([0, 1, 2] * 2 + [1])
    a, v = _tables(schedule, t)
    d = x - a * MEANS[None]
    log_r = np.log(WEIGHTS)[None] - d**2 / (2 * v)
    r = np.exp(log_r) / np.exp(log_r).sum(1, keepdims=True)
    expected = -d[np.arange(7), y] / v[:, 0] + (r * d / v).sum(1)
    np.testing.assert_allclose(cg.log_prob_grad(ExactClassifier(schedule), x, t, y)[:, 0],
                               expected, rtol=1e-10)


def test_guided_updates_are_the_algorithms_lines():
    mean, var, g = np.array([[1.0, 2.0]]), np.array([[0.25]]), np.array([[4.0, -8.0]])
    np.testing.assert_allclose(cg.guided_mean(mean, var, g, 0.5), [[1.5, 1.0]])
    np.testing.assert_allclose(cg.guided_eps(mean, np.array([[0.64]]), g, 0.5),
                               [[1.0 - 0.5 * 0.6 * 4.0, 2.0 + 0.5 * 0.6 * 8.0]])


def test_scale_zero_is_the_unguided_sampler():
    schedule = NoiseSchedule.linear(40, 1e-3, 0.3)
    ddpm = DDPM(exact_eps(schedule), schedule)
    clf = ExactClassifier(schedule)
    for sampler, plain in (("ddpm", lambda: ddpm.sample((50, 1), seed=3, progress=False,
                                                        dtype=np.float64)),
                           ("ddim", lambda: ddpm.ddim_sample((50, 1), 10, seed=3,
                                                             progress=False, dtype=np.float64))):
        guided = cg.classifier_guided_sample(ddpm, clf, (50, 1), 0, 0.0, sampler, steps=10,
                                             seed=3, dtype=np.float64)
        np.testing.assert_allclose(guided, plain(), atol=1e-10)


def test_arguments_are_checked():
    schedule = NoiseSchedule.linear(10, 0.1, 0.6)
    ddpm, clf = DDPM(exact_eps(schedule), schedule), ExactClassifier(schedule)
    with pytest.raises(ValueError, match="scale"):
        cg.classifier_guided_sample(ddpm, clf, (4, 1), 0, -1.0)
    with pytest.raises(ValueError, match="sampler"):
        cg.classifier_guided_sample(ddpm, clf, (4, 1), 0, 1.0, sampler="euler")
    with pytest.raises(ValueError, match="4 integers"):
        cg.classifier_guided_sample(ddpm, clf, (4, 1), np.array([0, 1]), 1.0)


# --- the exact mixture: shares follow the tilted distribution ----------------------------
@pytest.mark.parametrize("sampler,steps", [("ddpm", None), ("ddim", 100)])
def test_guided_shares_move_to_the_class_as_the_tilted_distribution_says(sampler, steps):
    """y = 2 (the right mode). Shares of 6000 samples against the tilted shares: s = 0 the
    prior, s = 1 exactly p(x | y) (exact denoiser and classifier: the guided score is the
    conditional's); s = 3 only approximates p(x) p(y|x)^3 (the gradient of the noisy
    classifier cubed is not the tilted distribution's noisy score), so there the share of y
    must rise beyond s = 1's at least as far as the tilted one's (it overshoots a little)."""
    schedule = NoiseSchedule.linear(300, 1e-4 * 1000 / 300, 0.02 * 1000 / 300)
    ddpm = DDPM(exact_eps(schedule), schedule)
    clf = ExactClassifier(schedule)
    n, y = 6000, 2
    shares = {s: _shares(cg.classifier_guided_sample(ddpm, clf, (n, 1), y, s, sampler, steps,
                                                     seed=0, dtype=np.float64))
              for s in (0.0, 1.0, 3.0)}
    se = np.sqrt(0.25 / n)
    for s in (0.0, 1.0):
        np.testing.assert_allclose(shares[s], tilted_shares(y, s), atol=4 * se + 0.01)
    exact3 = tilted_shares(y, 3.0)
    assert shares[0.0][y] < shares[1.0][y] < shares[3.0][y]
    assert shares[3.0][y] >= exact3[y] - 4 * se
    assert shares[3.0][0] < shares[1.0][0] < shares[0.0][0]
    assert tilted_shares(y, 0.0)[y] < tilted_shares(y, 1.0)[y] < exact3[y]


def test_the_unet_encoder_classifies_images_and_its_gradient_reaches_the_input():
    clf = nn.UNetEncoder(10, image_size=8, attention_resolutions=(4,))
    x = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)
    logits = clf(Tensor(x), np.array([0, 5, 9]))
    assert logits.shape == (3, 10)
    g = cg.log_prob_grad(clf, x, np.array([0, 5, 9]), np.array([1, 2, 3]))
    assert g.shape == x.shape and np.all(np.isfinite(g)) and np.abs(g).max() > 0


# --- the command line: train a classifier from a DDPM run, sample with it ------------------
def _cli(argv, capsys):
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.err


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread):
    """A 2-D DDPM on four labelled modes (1000 steps) and a classifier trained from it."""
    root = tmp_path_factory.mktemp("clf")
    rng = np.random.default_rng(0)
    modes = np.array([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])
    y = rng.integers(4, size=3000)
    np.savez(root / "mix.npz", x=(modes[y] + 0.1 * rng.standard_normal((3000, 2))), y=y)
    for argv in (["train", "ddpm", "--data", str(root / "mix.npz"), "--steps", "1000", "--out",
                  str(root / "ddpm")],
                 ["train", "classifier", "--data", str(root / "ddpm"), "--steps", "600",
                  "--out", str(root / "clf")]):
        assert cli.main(argv + ["--quiet", "--no-figures"]) == 0
    return root, modes


def test_the_classifier_trained_from_a_run_classifies_clean_data(runs):
    root, modes = runs
    clf, config = load_classifier(root / "clf")
    assert config["source_run"] == str(root / "ddpm") and config["num_classes"] == 4
    ddpm_config = json.loads((root / "ddpm" / "config.json").read_text())
    assert config["schedule"] == ddpm_config["schedule"]
    rng = np.random.default_rng(5)
    y = rng.integers(4, size=400)
    x = normalize(modes[y] + 0.1 * rng.standard_normal((400, 2)), config["normalization"])
    logits = clf(Tensor(x), np.zeros(400, dtype=np.int64)).data
    assert (logits.argmax(1) == y).mean() > 0.97


@pytest.mark.parametrize("sampler", ["ddim", "dpm++2m"])
def test_cli_guided_samples_land_in_the_requested_mode(runs, capsys, sampler):
    root, modes = runs
    shares = []
    for scale in ("0", "2"):
        out = root / f"{sampler}{scale}.npy"
        status, err = _cli(["sample", str(root / "ddpm"), "--n", "400", "--out", str(out),
                            "--classifier", str(root / "clf"), "--label", "1", "--scale", scale,
                            "--sampler", sampler, "--steps", "20"], capsys)
        assert status == 0, err
        x = np.load(out)
        shares.append((np.linalg.norm(x[:, None] - modes[None], axis=2).argmin(1) == 1).mean())
    assert shares[0] < 0.4 and shares[1] > 0.95, shares


def test_cli_classifier_options_are_checked(runs, capsys, tmp_path):
    root, _ = runs
    base = ["sample", str(root / "ddpm"), "--n", "5", "--out", str(tmp_path / "x.npy")]
    cases = [(["--scale", "2"], "--scale applies with --classifier"),
             (["--classifier", str(root / "clf")], "needs --label"),
             (["--classifier", str(root / "clf"), "--label", "4"], "label in [0, 3]"),
             (["--classifier", str(root / "clf"), "--label", "1", "--scale", "-1"], "--scale"),
             (["--classifier", str(tmp_path / "none"), "--label", "1"], "no such run")]
    for extra, fragment in cases:
        status, err = _cli(base + extra, capsys)
        assert status == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err
    status, err = _cli(["sample", str(root / "clf"), "--n", "5", "--out",
                        str(tmp_path / "x.npy")], capsys)
    assert status == 2 and "classifier run" in err


def test_a_classifier_of_other_units_is_refused(runs, capsys, tmp_path):
    """Trained from the data with a cosine schedule, not the run's quadratic one."""
    root, _ = runs
    status, err = _cli(["train", "classifier", "--data", str(root / "mix.npz"), "--steps", "2",
                        "--out", str(tmp_path / "other"), "--quiet"], capsys)
    assert status == 0, err
    config = json.loads((tmp_path / "other" / "config.json").read_text())
    ddpm_config = json.loads((root / "ddpm" / "config.json").read_text())
    with pytest.raises(ValueError, match="normalisation|schedule"):
        check_pairing({**config, "schedule": {"kind": "cosine", "T": 1000}}, ddpm_config, "x")
    with pytest.raises(ValueError, match="normalisation"):
        check_pairing({**config, "normalization": {"shift": [0, 0], "scale": [1, 1]}},
                      ddpm_config, "x")
    check_pairing(config, ddpm_config, "x")  # the same data, drawn the same: the same units


def test_classifier_training_resumes_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(3, size=300)
    x = (np.eye(3)[y, :2] * 2 + 0.1 * rng.standard_normal((300, 2))).astype(np.float32)
    norm = {"shift": [0.0, 0.0], "scale": [1.0, 1.0]}
    options = dict(batch_size=32, checkpoint_every=3, model_config={"hidden": (16,)},
                   progress=False)

    def trainer(name):
        return ClassifierTrainer(x, y, tmp_path / name, 8, {"kind": "cosine", "T": 50}, norm,
                                 seed=1, **options)

    reference = trainer("ref")
    reference.fit()
    crash_at(trainer("cut"), 4)
    resumed = trainer("cut").resume()
    assert resumed.step == 3
    resumed.fit()
    a, b = reference.model.state_dict(), resumed.model.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert reference.history == resumed.history
