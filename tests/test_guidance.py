"""Classifier-free guidance, SDEdit and RePaint on a trained DDPM: the guidance formula
against its definition, labelled data, and one class-conditional 2-D run trained through the
CLI on a labelled Gaussian mixture (a user's .npz with x and y) that every ability is
measured on, through the API and the CLI."""
import numpy as np
import pytest

from minigen import cli, nn
from minigen import data as D
from minigen.diffusion import DDPM, NoiseSchedule
from minigen.diffusion import trainer as T
from minigen.diffusion.editing import repaint_schedule
from minigen.tensor import Tensor

pytestmark = pytest.mark.usefixtures("one_thread")

MODES = np.array([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])
STD = 0.1


def _nearest(samples):
    """(index of the nearest mode, distance to it) per sample."""
    d = np.linalg.norm(samples[:, None] - MODES[None], axis=2)
    return d.argmin(1), d.min(1)


def _run(argv, capsys):
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _one_line_error(status, err, fragment):
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def run(tmp_path_factory, one_thread):
    """2000 steps of the default 2-D recipe with --conditional (~15 s on one core) on four
    modes at distance 2 from the origin, std 0.1, labelled by mode."""
    root = tmp_path_factory.mktemp("cfg")
    rng = np.random.default_rng(0)
    y = rng.integers(len(MODES), size=4000)
    x = (MODES[y] + STD * rng.standard_normal((4000, 2))).astype(np.float32)
    np.savez(root / "mix.npz", x=x, y=y)
    status = cli.main(["train", "ddpm", "--data", str(root / "mix.npz"), "--steps", "2000",
                       "--out", str(root / "run"), "--conditional", "--quiet", "--no-figures"])
    assert status == 0
    return root


# --- guidance: the formula, labels, data ---------------------------------------------------
class _Affine(nn.Module):
    """A fake class-conditional model: x * (1 + t) + 10 * y (y = None: the null class)."""
    num_classes = 3

    def forward(self, x, t, y=None):
        y = np.full(len(x.data), 3) if y is None else np.asarray(y)
        return x * 1.0 + (x * 0.0 + (t[:, None] + 10.0 * y[:, None]))


def test_guided_output_is_one_plus_w_conditional_minus_w_unconditional():
    ddpm = DDPM(_Affine(), NoiseSchedule.cosine(10))
    x, t = np.ones((4, 2), np.float32), np.array([0, 3, 5, 9])
    y = np.array([0, 1, 2, 1])
    conditional = 1.0 + t[:, None] + 10.0 * y[:, None]
    unconditional = 1.0 + t[:, None] + 30.0
    for w in (0.0, 0.5, 3.0):
        np.testing.assert_allclose(ddpm.model_output(x, t, y, w),
                                   (1 + w) * conditional - w * unconditional + 0 * x, rtol=1e-6)
    np.testing.assert_allclose(ddpm.model_output(x, t, None, 3.0), unconditional + 0 * x)
    np.testing.assert_allclose(ddpm.model_output(x, t, 2), 1.0 + t[:, None] + 20.0 + 0 * x)


def test_labels_and_guidance_are_checked():
    ddpm = DDPM(_Affine(), NoiseSchedule.cosine(10))
    x, t = np.ones((2, 2), np.float32), np.array([0, 1])
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        ddpm.model_output(x, t, np.array([0, 4]))
    with pytest.raises(TypeError, match="integers"):
        ddpm.model_output(x, t, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="guidance must be"):
        ddpm.model_output(x, t, 1, guidance=-1.0)
    plain = DDPM(lambda x, t: x * 0.0, NoiseSchedule.cosine(10))
    with pytest.raises(ValueError, match="unconditional"):
        plain.sample((2, 2), progress=False, guidance=3.0)
    with pytest.raises(ValueError, match="unconditional"):
        plain.ddim_sample((2, 2), 5, progress=False, y=1)


def test_conditional_mlp_treats_no_labels_as_the_null_class():
    mlp = nn.MLP(2, 2, hidden=(8,), time_dim=8, num_classes=3)
    x, t = Tensor(np.ones((3, 2), np.float32)), np.array([1, 2, 3])
    np.testing.assert_array_equal(mlp(x, t).data, mlp(x, t, np.array([3, 3, 3])).data)
    assert not np.allclose(mlp(x, t).data, mlp(x, t, np.array([0, 1, 2])).data)
    with pytest.raises(ValueError, match="unconditional"):
        nn.MLP(2, 2, time_dim=8)(x, t, np.array([0, 1, 2]))


@pytest.mark.parametrize("name,classes", [("ring8", 8), ("grid25", 25)])
def test_mixture_labels_are_the_mode_of_each_point(name, classes):
    x, y = D.load_labelled(name, n=2000, seed=3)
    np.testing.assert_array_equal(x, D.load_dataset(name, n=2000, seed=3))
    modes = D.MIXTURES[name].modes
    assert set(y) == set(range(classes))
    assert np.all(np.linalg.norm(x - modes[y], axis=1) < 6 * D.MIXTURES[name].std)


def test_user_labels_are_validated(tmp_path):
    x = np.zeros((5, 2), np.float32)
    for y, fragment in ((np.arange(4), "4 labels"), (np.arange(5.0), "integer"),
                        (np.array([0, 1, -1, 0, 1]), ">= 0")):
        np.savez(tmp_path / "bad.npz", x=x, y=y)
        with pytest.raises(ValueError, match=fragment):
            D.load_labelled(str(tmp_path / "bad.npz"))
    np.save(tmp_path / "plain.npy", x)
    assert D.load_labelled(str(tmp_path / "plain.npy"))[1] is None


def test_conditional_training_needs_labels(tmp_path, capsys):
    status, _, err = _run(["train", "ddpm", "--data", "s_curve", "--steps", "5", "--out",
                           str(tmp_path / "r"), "--conditional"], capsys)
    _one_line_error(status, err, "has no labels")


# --- the trained conditional run -------------------------------------------------------------
def test_guided_samples_land_on_the_requested_mode(run, capsys):
    """--label k --guidance 3: >= 95% of the samples within 3 std of mode k, for every k
    (measured: 99-100%); without --label (the null class) every mode is drawn."""
    for k in range(len(MODES)):
        out = str(run / f"mode{k}.npy")
        status, _, _ = _run(["sample", str(run / "run"), "--n", "200", "--out", out, "--label",
                             str(k), "--guidance", "3", "--seed", str(k)], capsys)
        assert status == 0
        share = np.mean(np.linalg.norm(np.load(out) - MODES[k], axis=1) < 3 * STD)
        assert share >= 0.95, (k, share)
    out = str(run / "null.npy")
    assert _run(["sample", str(run / "run"), "--n", "400", "--out", out], capsys)[0] == 0
    mode, distance = _nearest(np.load(out))
    counts = np.bincount(mode[distance < 3 * STD], minlength=len(MODES))
    assert counts.min() >= 0.15 * 400, counts


@pytest.mark.parametrize("sampler, steps", [("ddim", 50), ("dpm++2m", 20)])
def test_guided_fast_samplers_land_on_the_requested_mode(run, sampler, steps):
    ddpm, config = T.load_run(run / "run")
    samples = T.sample_ddpm(ddpm, config["normalization"], 200, (2,), sampler, steps, y=1,
                            guidance=3.0)
    assert np.mean(np.linalg.norm(samples - MODES[1], axis=1) < 3 * STD) >= 0.95


def test_guidance_errors_on_the_cli(run, capsys):
    base = ["sample", str(run / "run"), "--n", "5", "--out", str(run / "e.npy")]
    _one_line_error(*_run(base + ["--label", "7"], capsys)[::2], "[0, 3]")
    status, _, err = _run(["sample", str(run / "run"), "--out", str(run / "e.npy")], capsys)
    _one_line_error(status, err, "--n is required")


def test_repaint_schedule_goes_down_with_jumps_back():
    assert repaint_schedule(3) == [3, 2, 1, 0]
    assert repaint_schedule(4, resample=2, jump=2) == [4, 3, 2, 3, 4, 3, 2, 1, 0]
    states = repaint_schedule(100, resample=3, jump=5)
    assert states[0] == 100 and states[-1] == 0
    assert all(abs(a - b) == 1 for a, b in zip(states[:-1], states[1:]))
    assert sum(b < a for a, b in zip(states[:-1], states[1:])) == 100 + 2 * 5 * 19


def _on_modes(n, seed):
    rng = np.random.default_rng(seed)
    k = rng.integers(len(MODES), size=n)
    return (MODES[k] + STD * rng.standard_normal((n, 2))).astype(np.float32), k


# --- SDEdit ------------------------------------------------------------------------------
def test_sdedit_keeps_the_input_at_small_strength_and_forgets_it_at_one(run, capsys):
    """--from FILE --strength S: one output per row. At S = 0.05 the outputs stay on their
    input's mode, close to the input; at S = 1 the mode is that of a fresh sample (agreement
    with the input's ~1/4 = chance)."""
    x, k = _on_modes(200, seed=5)
    np.save(run / "in.npy", x)
    shares = {}
    for strength in ("0.05", "1"):
        out = str(run / f"edit{strength}.npy")
        status, _, _ = _run(["sample", str(run / "run"), "--from", str(run / "in.npy"),
                             "--strength", strength, "--out", out], capsys)
        assert status == 0
        edited = np.load(out)
        assert edited.shape == x.shape
        shares[strength] = np.mean(_nearest(edited)[0] == k)
        if strength == "0.05":
            assert np.median(np.linalg.norm(edited - x, axis=1)) < 2 * STD
    assert shares["0.05"] >= 0.95 and shares["1"] <= 0.45, shares


def test_sdedit_with_ddim_and_guidance_moves_inputs_to_the_label(run):
    x, _ = _on_modes(100, seed=6)
    out = T.edit_run(run / "run", x, 0.7, sampler="ddim", steps=30, label=2, guidance=3.0)
    assert np.mean(np.linalg.norm(out - MODES[2], axis=1) < 3 * STD) >= 0.9


# --- RePaint -----------------------------------------------------------------------------
def test_inpainting_completes_the_unknown_coordinate_into_the_support(run, capsys):
    """x known, y unknown: the completion lies within 3 std of a mode whose x it shares
    (measured: 88% with R = 1, 98% with R = 3 and jump 10), and the known entries come back
    exactly."""
    x, _ = _on_modes(100, seed=7)
    mask = np.zeros_like(x)
    mask[:, 0] = 1
    np.savez(run / "known.npz", x=x, mask=mask)
    shares = {}
    for resample in ("1", "3"):
        out = str(run / f"inpaint{resample}.npy")
        status, _, _ = _run(["sample", str(run / "run"), "--inpaint", str(run / "known.npz"),
                             "--resample", resample, "--jump", "10", "--out", out], capsys)
        assert status == 0
        completed = np.load(out)
        np.testing.assert_array_equal(completed[:, 0], x[:, 0])
        mode, distance = _nearest(completed)
        shares[resample] = np.mean((distance < 3 * STD)
                                   & (np.abs(MODES[mode, 0] - x[:, 0]) < 3 * STD))
    assert shares["1"] >= 0.8 and shares["3"] >= 0.9, shares


def test_bad_edit_and_inpaint_inputs_give_one_line_and_status_2(run, tmp_path, capsys):
    base = ["sample", str(run / "run"), "--out", str(tmp_path / "o.npy")]
    x = np.zeros((3, 2), np.float32)
    np.save(tmp_path / "x.npy", x)
    for strength in ("0", "1.5"):
        status, _, err = _run(base + ["--from", str(tmp_path / "x.npy"), "--strength", strength],
                              capsys)
        _one_line_error(status, err, "strength must lie in (0, 1]")
    np.savez(tmp_path / "shape.npz", x=x, mask=np.ones((3, 3)))
    _one_line_error(*_run(base + ["--inpaint", str(tmp_path / "shape.npz")], capsys)[::2],
                    "mask has shape (3, 3)")
    np.savez(tmp_path / "values.npz", x=x, mask=np.full((3, 2), 0.5))
    _one_line_error(*_run(base + ["--inpaint", str(tmp_path / "values.npz")], capsys)[::2],
                    "only 0 (unknown) and 1 (known)")
    plain = str(tmp_path / "plain")
    assert cli.main(["train", "ddpm", "--data", "moons", "--steps", "2", "--out", plain,
                     "--quiet", "--no-figures"]) == 0
    status, _, err = _run(["sample", plain, "--n", "3", "--out", str(tmp_path / "o.npy"),
                           "--guidance", "3"], capsys)
    _one_line_error(status, err, "unconditional")


def test_images_train_conditionally_through_the_unet_and_sample_guided(tmp_path):
    """The image path: a class-conditional UNet (a few steps, no quality claim), guided DDIM
    samples of the requested shape, and inpainting that keeps the known pixels exactly."""
    images, labels = D.digits(seed=0)
    trainer = T.DDPMTrainer(images[:64], tmp_path, 2, progress=False, figures=False,
                            labels=labels[:64], conditional=True, batch_size=8,
                            model_config=dict(base_channels=8, channel_mults=(1,), time_dim=16),
                            schedule=dict(kind="linear", T=20))
    trainer.fit()
    assert trainer.model.num_classes == int(labels[:64].max()) + 1
    samples = trainer.sample(4, sampler="ddim", steps=3, y=np.array([0, 1, 2, 3]), guidance=2.0)
    assert samples.shape == (4, 1, 8, 8) and np.all(np.isfinite(samples))
    T.load_run(tmp_path)  # the conditional run loads back
    mask = np.zeros((2, 1, 8, 8))
    mask[..., :4, :] = 1
    done = T.inpaint_run(tmp_path, images[:2], mask, resample=2, jump=5, label=3, guidance=1.0)
    np.testing.assert_array_equal(done[..., :4, :], images[:2, :, :4, :])
