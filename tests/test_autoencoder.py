"""The latent-diffusion autoencoder: reconstruction against the mean-image baseline, latents
of unit variance through the stored scale factor, shapes for f = 2 and 4, the CLI."""
import json

import numpy as np
import pytest

from minigen import cli
from minigen.data import digits
from minigen.errors import InvalidInput
from minigen.vae.autoencoder import (
    LOGVAR_RANGE, AutoencoderTrainer, LatentSpace, train_autoencoder,
)

SMALL = dict(base_channels=8, batch_size=32, eval_k=1)


def test_autoencoder_reconstructs_better_than_the_mean_image(tmp_path):
    """The mean image of the training set is the best reconstruction that ignores its input;
    100 steps reach less than half its error (about a third)."""
    images = digits()[0][:400]
    trainer = train_autoencoder(images, 100, tmp_path / "run", progress=False,
                                checkpoint_every=100, lr=3e-3, **{**SMALL, "base_channels": 16})
    x = trainer.heldout_x
    baseline = float(np.mean((x - trainer.train_x.mean(axis=0)) ** 2))
    assert trainer.curve["mse"][0] < 0.5 * baseline, (trainer.curve, baseline)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["scale_factor"] == trainer.curve["scale_factor"][0]
    space = LatentSpace(tmp_path / "run")
    z = space.encode(images)
    assert z.shape == (400, 4, 4, 4) and 0.8 < z.std() < 1.2
    rec = space.decode(z)
    assert rec.shape == images.shape
    assert np.mean(((rec - images) / 2) ** 2) < 0.5 * baseline  # [-1, 1] -> [0, 1] units


def test_encoder_log_variance_is_clipped_so_the_bound_stays_finite(tmp_path):
    """An encoder pushed to log-variance -900 (the collapse a beta of 1e-6 allows) reads
    -30, and the held-out bound stays finite instead of overflowing to a false divergence."""
    trainer = AutoencoderTrainer(digits()[0][:50], tmp_path, 1, progress=False, figures=False,
                                 **SMALL)
    last = trainer.vae.encoder.net[-1]
    c = trainer.vae.latent_shape[0]
    last.weight.data[c:] = 0.0
    last.bias.data[c:] = -900.0
    _, logvar = trainer.vae.encode(trainer.tensor(trainer.heldout_x[:4]))
    assert np.all(logvar.numpy() == LOGVAR_RANGE[0])
    assert all(np.isfinite(v) for v in trainer.evaluate().values()), trainer.evaluate()


@pytest.mark.parametrize("factor,shape", [(2, (4, 4, 4)), (4, (4, 2, 2))])
def test_latent_shape_follows_the_factor(tmp_path, factor, shape):
    trainer = AutoencoderTrainer(digits()[0][:50], tmp_path, 1, progress=False, figures=False,
                                 factor=factor, **SMALL)
    assert trainer.vae.latent_shape == shape


def test_bad_autoencoder_options(tmp_path):
    images = digits()[0][:50]
    with pytest.raises(InvalidInput, match="factor must be one of"):
        AutoencoderTrainer(images, tmp_path / "a", 1, factor=3)
    with pytest.raises(InvalidInput, match="multiple of factor"):
        AutoencoderTrainer(np.zeros((4, 1, 6, 6)), tmp_path / "b", 1, factor=4)
    with pytest.raises(InvalidInput, match="images"):
        AutoencoderTrainer(np.zeros((4, 2)), tmp_path / "c", 1)


def test_cli_trains_an_autoencoder_and_refuses_to_sample_it(tmp_path, capsys):
    images = tmp_path / "x.npy"
    np.save(images, digits()[0][:64])
    run = str(tmp_path / "run")
    assert cli.main(["train", "autoencoder", "--data", str(images), "--steps", "2", "--out", run,
                     "--quiet", "--factor", "4", "--set", "base_channels=4"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["factor"] == 4
    assert cli.main(["sample", run, "--n", "2", "--out", str(tmp_path / "s.npy")]) == 2
    assert "LatentSpace" in capsys.readouterr().err
