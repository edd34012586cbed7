"""Classifier-free guidance, SDEdit and RePaint on the 8x8 digits (a class-conditional UNet),
scored by the reference classifier of :mod:`minigen.evaluate` (held-out accuracy 0.993).

The slow tests share one model trained here with a fixed seed (a small UNet, T = 250; about
two minutes on one core); docs/tuning.md ("Guidance, SDEdit and RePaint on the digits") has
the numbers of this recipe and of the default one. The fast test checks the CLI's errors on
an image run."""
import numpy as np
import pytest

from minigen import cli
from minigen import data as D
from minigen.diffusion import trainer as T
from minigen.evaluate import digits_classifier
from minigen.trainer import denormalize, normalize

pytestmark = pytest.mark.usefixtures("one_thread")

GUIDANCE = 0.5  # the weight docs/tuning.md recommends for the digits
RESAMPLE, JUMP = 3, 10  # RePaint's resampling recommended there
RECIPE = dict(model_config=dict(base_channels=16), lr=2e-3,
              schedule=dict(kind="linear", T=250, beta_start=4e-4, beta_end=0.08))
"""The image defaults with a UNet of half the width, twice the learning rate and T = 250
(the betas of T = 1000 scaled by 4): cheap enough for a test (docs/tuning.md)."""


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, one_thread):
    """``(ddpm, normalization)`` of a conditional UNet trained 800 steps on the digits."""
    run_dir = tmp_path_factory.mktemp("digits") / "run"
    T.train_ddpm("digits", 800, run_dir, seed=0, conditional=True, progress=False,
                 figures=False, **RECIPE)
    ddpm, config = T.load_run(run_dir)
    return ddpm, config["normalization"]


def _labels(images):
    return digits_classifier().probabilities(images).argmax(axis=1)


def _originals(n=100):
    """The last ``n`` digits of the classifier's fixed order (its held-out ones)."""
    return D.digits(seed=0)[0][-n:]


@pytest.mark.slow
def test_guided_digits_show_the_requested_class(digits_run):
    ddpm, norm = digits_run
    y = np.repeat(np.arange(10), 20)
    agreement = {}
    for w in (0.0, GUIDANCE):
        x = T.sample_ddpm(ddpm, norm, len(y), (1, 8, 8), "ddim", 25, seed=1, y=y, guidance=w)
        agreement[w] = np.mean(_labels(x) == y)
    assert agreement[GUIDANCE] >= 0.9 and agreement[GUIDANCE] > agreement[0.0], agreement


@pytest.mark.slow
def test_inpainting_the_bottom_half_keeps_the_digit(digits_run):
    ddpm, norm = digits_run
    images = _originals()
    mask = np.zeros_like(images)
    mask[:, :, :4] = 1  # the top half is known
    x = normalize(images, norm)
    kept = {}
    for resample, jump in ((1, 1), (RESAMPLE, JUMP)):
        done = ddpm.inpaint(x, mask, resample=resample, jump=jump, seed=2)
        np.testing.assert_array_equal(done[mask == 1], x[mask == 1])
        kept[resample] = np.mean(_labels(denormalize(done, norm)) == _labels(images))
    # "most" completions keep the label; resampling does not lose (binomial s.e. ~0.05)
    assert kept[RESAMPLE] > 0.5 and kept[RESAMPLE] >= kept[1] - 0.05, kept


@pytest.mark.slow
def test_sdedit_keeps_the_digit_at_small_strength_and_forgets_it_at_one(digits_run):
    ddpm, norm = digits_run
    images = _originals()
    target = _labels(images)
    kept = {}
    for strength in (0.1, 1.0):
        edited = ddpm.edit(normalize(images, norm), strength, sampler="ddim", steps=25, seed=3)
        kept[strength] = np.mean(_labels(denormalize(edited, norm)) == target)
    # strength 1: at chance (10 classes, ~0.1; 0.25 is 5 s.e. above it)
    assert kept[0.1] >= 0.8 and kept[1.0] <= 0.25, kept


def _one_line_error(argv, capsys, fragment):
    status = cli.main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert fragment in lines[0], (fragment, lines[0])


def test_bad_inputs_on_an_image_run_give_one_line_and_status_2(tmp_path, capsys):
    """On a conditional digits run (one training step): a mask of another shape, a mask
    that is not 0/1, a label out of range, a strength outside (0, 1]; on an unconditional
    one, guidance. Grayscale rows (n, 8, 8) with a mask of their shape are accepted."""
    tiny = ["--steps", "1", "--quiet", "--no-figures", "--base-channels", "8", "--schedule",
            "cosine", "--T", "20", "--set", "model_config.channel_mults=[1]"]
    run, plain = str(tmp_path / "run"), str(tmp_path / "plain")
    assert cli.main(["train", "ddpm", "--data", "digits", "--out", run, "--conditional",
                     *tiny]) == 0
    base = ["sample", run, "--out", str(tmp_path / "o.npy")]
    images = D.digits(seed=0)[0][:3, 0]  # (3, 8, 8)
    np.save(tmp_path / "x.npy", images)
    for strength in ("0", "1.5"):
        _one_line_error(base + ["--from", str(tmp_path / "x.npy"), "--strength", strength],
                        capsys, "strength must lie in (0, 1]")
    np.savez(tmp_path / "shape.npz", x=images, mask=np.ones((3, 4, 8)))
    _one_line_error(base + ["--inpaint", str(tmp_path / "shape.npz")], capsys,
                    "mask has shape (3, 4, 8)")
    np.savez(tmp_path / "values.npz", x=images, mask=np.full((3, 8, 8), 0.5))
    _one_line_error(base + ["--inpaint", str(tmp_path / "values.npz")], capsys,
                    "only 0 (unknown) and 1 (known)")
    _one_line_error(base + ["--n", "2", "--label", "10"], capsys, "label must lie in [0, 9]")
    mask = np.zeros((3, 8, 8))
    mask[:, :4] = 1
    np.savez(tmp_path / "top.npz", x=images, mask=mask)
    assert cli.main(base + ["--inpaint", str(tmp_path / "top.npz")]) == 0
    capsys.readouterr()
    done = np.load(tmp_path / "o.npy")
    assert done.shape == (3, 1, 8, 8)
    np.testing.assert_array_equal(done[:, 0, :4], images[:, :4])
    assert cli.main(["train", "ddpm", "--data", "digits", "--out", plain, *tiny]) == 0
    _one_line_error(["sample", plain, "--n", "2", "--out", str(tmp_path / "p.npy"),
                     "--label", "1", "--guidance", "1"], capsys, "unconditional")
