"""Slow: a small text-to-image latent diffusion model trained end to end (autoencoder, then
text encoder and cross-attention UNet jointly) follows its prompts far above chance, chance
being the same model's unconditional samples judged against the same prompts."""
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
