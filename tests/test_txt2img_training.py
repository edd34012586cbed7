"""Slow: a small text-to-image latent diffusion model trained end to end (autoencoder, then
text encoder and cross-attention UNet jointly) follows its prompts far above chance, chance
being the same model's unconditional samples judged against the same prompts; a tiny
inpainting model keeps the known part of its images."""
import numpy as np
import pytest

from minigen import evaluate_txt2img, shapes
from minigen.txt2img import load_txt2img, train_txt2img

pytestmark = pytest.mark.slow


def test_small_latent_diffusion_follows_its_prompts(tmp_path):
    data = shapes.captioned(4000, seed=0)
    train_txt2img(data, 800, tmp_path / "t2i", autoencoder_steps=500, progress=False,
                  figures=False, warmup_steps=100, model_config=dict(attention_resolutions=(8, 4)))
    pipe = load_txt2img(tmp_path / "t2i")

    def drawn(guidance, empty=False):
        return lambda captions: pipe.sample([""] * len(captions) if empty else captions,
                                            guidance=guidance, steps=20, seed=0)

    prompted = evaluate_txt2img.adherence(drawn(3.0), n=100, splits=("train",))["train"]
    chance = evaluate_txt2img.adherence(drawn(0.0, empty=True), n=100, splits=("train",))
    assert prompted >= max(0.2, 5 * chance["train"]), (prompted, chance)


def _quadrants(n, rng):
    """(n, 3, 8, 8) grey images, each quadrant one level drawn uniformly from [-1, 1]."""
    levels = rng.uniform(-1, 1, size=(n, 1, 2, 2)).astype(np.float32)
    return levels.repeat(4, axis=2).repeat(4, axis=3).repeat(3, axis=1)


def test_tiny_inpainting_model_keeps_the_known_half(tmp_path):
    """A model that drew the known half without reading it would miss it by 2 Var = 2/3 in
    mean square (an independent draw of each level); the inpainting model, trained briefly,
    must come within a quarter of that."""
    rng = np.random.default_rng(0)
    caption = "a small red circle on the left"
    train_txt2img((_quadrants(256, rng), [caption] * 256), 150, tmp_path / "inp", latent=False,
                  inpainting=True, progress=False, figures=False, batch_size=32,
                  warmup_steps=20, lr=2e-3, text_config=dict(dim=8, layers=1, heads=2),
                  model_config=dict(base_channels=16, groups=4, time_dim=32))
    images = _quadrants(64, rng)
    known = np.ones((64, 8, 8), np.float32)
    known[:, :, 4:] = 0
    done = load_txt2img(tmp_path / "inp").inpaint(images, known, caption, steps=10)
    error = float(((done - images)[:, :, :, :4] ** 2).mean())
    assert error < 2 / 3 / 4, error
