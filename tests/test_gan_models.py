"""DCGAN networks, rebuilding from config, and image GAN runs end to end (tiny)."""
import numpy as np
import pytest

import minigen as mg
from minigen.data import digits
from minigen.gan import DCGANDiscriminator, DCGANGenerator, GANTrainer, build_model, sample_run
from minigen.nn import MLP


@pytest.mark.parametrize("size", [4, 8, 16])
def test_dcgan_shapes(size):
    g = DCGANGenerator(latent_dim=5, channels=2, image_size=size, base_channels=4)
    d = DCGANDiscriminator(channels=2, image_size=size, base_channels=4)
    x = g(mg.randn(3, 5))
    assert x.shape == (3, 2, size, size)
    assert np.all(np.abs(x.numpy()) <= 1)  # tanh output
    assert d(x).shape == (3, 1)


def test_dcgan_rejects_bad_sizes_and_inputs():
    with pytest.raises(ValueError, match="power of two"):
        DCGANGenerator(4, image_size=12)
    with pytest.raises(ValueError, match="expected images \\(batch, 1, 8, 8\\)"):
        DCGANDiscriminator(1, 8)(mg.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="z of shape \\(batch, 4\\)"):
        DCGANGenerator(4)(mg.zeros(2, 3))


def test_build_model_round_trip():
    for model in (DCGANGenerator(3, 1, 8, 4), MLP(2, 2, (8,), activation="relu")):
        copy = build_model(type(model).__name__, model.config)
        copy.load_state_dict(model.state_dict())
        z = mg.randn(4, 3 if isinstance(model, DCGANGenerator) else 2)
        model.eval(), copy.eval()
        np.testing.assert_array_equal(model(z).numpy(), copy(z).numpy())


def test_image_gan_trains_packs_and_samples_in_data_units(tmp_path):
    images, _ = digits(seed=0)
    data = (images[:64] + 1) * 8  # the user's own units: 0..16
    trainer = GANTrainer(data, tmp_path / "run", 2, seed=0, progress=False, batch_size=8, pack=2,
                         base_channels=4, latent_dim=4)
    assert trainer.discriminator.config["channels"] == 2  # D sees 2 packed images
    trainer.fit()
    x = sample_run(tmp_path / "run", 5, seed=0)
    assert x.shape == (5, 1, 8, 8) and x.min() >= -1e-4 and x.max() <= 16 + 1e-4
    assert (tmp_path / "run" / "samples.png").exists()


@pytest.mark.slow
def test_dcgan_learns_the_digits(tmp_path):
    # energy distance of G's samples to held-out digits (calibrated: 2.82 untrained, 0.75
    # after 150 steps, 0.38 after 600 with the image defaults)
    from minigen.metrics import energy_distance

    images, _ = digits(seed=0)
    trainer = GANTrainer(images[:1500], tmp_path / "run", 600, seed=0, progress=False,
                         figures=False)
    held_out = images[1500:].reshape(-1, 64)
    before = energy_distance(trainer.samples(297, seed=1).reshape(-1, 64), held_out)
    trainer.fit()
    after = energy_distance(trainer.samples(297, seed=1).reshape(-1, 64), held_out)
    assert after < 0.25 * before, (before, after)
