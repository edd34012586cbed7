"""The option tables (minigen.options): every trainer option is checked by name, type and
range when the trainer is built, before anything is allocated or written, with one error
naming the option; a batch that the ranks cannot share or the memory cannot hold is refused
with the estimate."""
import os
import types

import numpy as np
import pytest

from minigen import options
from minigen.diffusion import classifier
from minigen.diffusion import trainer as ddpm_trainer
from minigen.errors import InvalidInput
from minigen.gan import trainer as gan_trainer
from minigen.graph import graph_bytes
from minigen.options import Option
from minigen.txt2img import trainer as txt2img_trainer
from minigen.vae import autoencoder
from minigen.vae import trainer as vae_trainer

pytestmark = pytest.mark.usefixtures("one_thread")

VECTORS = np.random.default_rng(0).standard_normal((64, 2)).astype(np.float32)
IMAGES = np.random.default_rng(0).uniform(0, 1, (8, 1, 8, 8)).astype(np.float32)


def _ddpm(tmp_path, data=VECTORS, **opts):
    return ddpm_trainer.DDPMTrainer(data, tmp_path / "run", 2, progress=False, figures=False,
                                    **opts)


def _gan(tmp_path, **opts):
    return gan_trainer.GANTrainer(VECTORS, tmp_path / "run", 2, progress=False, figures=False,
                                  **opts)


@pytest.mark.parametrize("opts,message", [
    (dict(lr=float("nan")), "lr must be a finite number > 0, got nan"),
    (dict(lr=float("inf")), "lr must be a finite number > 0, got inf"),
    (dict(lr=-1), "lr must be a finite number > 0, got -1"),
    (dict(ema_decay=2), "ema_decay must be a finite number in [0, 1), got 2"),
    (dict(ema_decay="abc"), "ema_decay must be a finite number in [0, 1), got 'abc'"),
    (dict(warmup_steps=-10), "warmup_steps must be an integer in [0, 2147483647], got -10"),
    (dict(grad_clip=-1), "grad_clip must be a finite number > 0, or null (off), got -1"),
    (dict(batch_size="abc"), "batch_size must be an integer in [1, 2147483647], got 'abc'"),
    (dict(batch_size=1.5), "batch_size must be an integer in [1, 2147483647], got 1.5"),
    (dict(batch_size=-5), "batch_size must be an integer in [1, 2147483647], got -5"),
    (dict(batch_size=True), "batch_size must be an integer"),
    (dict(model="UNet"), "model must be 'MLP', got 'UNet'"),
    (dict(model_config={"hidden": "abc"}), "model_config.hidden must be a list of integers"),
    (dict(model_config={"hidden": [16, 0]}), "model_config.hidden must be a list of integers"),
    (dict(model_config={"base_channels": 8}), "model_config has no entries ['base_channels']"),
    (dict(schedule={"T": 0}), "schedule.T must be an integer in [1, 100000], got 0"),
    (dict(schedule={"kind": "zigzag"}), "schedule.kind must be one of ('linear'"),
    (dict(conditional="yes"), "conditional must be true or false, got 'yes'"),
    (dict(label_dropout=1.0), "label_dropout must be a finite number in [0, 1), got 1.0"),
    (dict(prediction="foo"), "prediction must be one of ('eps', 'x0', 'v'), got 'foo'"),
])
def test_ddpm_options_are_refused_by_name_before_the_run_directory_exists(opts, message,
                                                                          tmp_path):
    with pytest.raises(InvalidInput) as info:
        _ddpm(tmp_path, **opts)
    assert str(info.value).startswith("DDPMTrainer: ") and message in str(info.value)
    assert not (tmp_path / "run").exists()


def test_images_refuse_the_mlp(tmp_path):
    with pytest.raises(InvalidInput, match="model must be 'UNet', got 'MLP'"):
        _ddpm(tmp_path, data=IMAGES, model="MLP")


@pytest.mark.parametrize("opts,message", [
    (dict(lr=float("nan")), "lr must be a finite number > 0, got nan"),
    (dict(betas=[2, 0.9]), "betas must be a list of 2 finite numbers in [0, 1), got [2, 0.9]"),
    (dict(betas=[0.5]), "betas must be a list of 2 finite numbers in [0, 1), got [0.5]"),
    (dict(k=0), "k must be an integer in [1, 2147483647], got 0"),
    (dict(hidden=32.5), "hidden must be an integer"),
    (dict(top_k=0), "top_k must be a finite number in (0, 1], got 0"),
    (dict(momentum=1), "momentum must be a finite number in [0, 1), got 1"),
    (dict(loss="hinge"), "loss must be one of ('minimax', 'nonsaturating', 'wasserstein')"),
    (dict(pack=3), "batch_size 256 must be a multiple of pack 3"),
])
def test_gan_options_are_refused_by_name(opts, message, tmp_path):
    with pytest.raises(InvalidInput) as info:
        _gan(tmp_path, **opts)
    assert str(info.value).startswith("GANTrainer: ") and message in str(info.value)
    assert not (tmp_path / "run").exists()


def test_valid_values_are_normalised():
    assert Option("int", "", low=1).parse(4.0) == 4 and type(Option("int", "").parse(4.0)) is int
    assert Option("float", "", low=0).parse(np.float32(0.5)) == 0.5
    assert Option("float", "", low=0, none="off").parse(None) is None
    assert Option("ints", "", low=1).parse((3, 4)) == [3, 4]
    with pytest.raises(ValueError, match="must be a list of integers >= 1, got \\[\\]"):
        Option("ints", "", low=1).parse([])
    with pytest.raises(ValueError, match="got None"):
        Option("float", "").parse(None)


def test_tables_accept_the_defaults_and_every_choice(tmp_path):
    for data in (VECTORS, IMAGES):
        defaults = ddpm_trainer.defaults_for(data)
        assert options.check("T", ddpm_trainer.options_for(data), {}, defaults).keys() == \
            defaults.keys()
    for preset in gan_trainer.PRESETS.values():
        options.check("T", gan_trainer.OPTIONS, {}, preset)
    assert set(gan_trainer.OPTIONS) == set(gan_trainer.DEFAULTS)
    assert set(ddpm_trainer.OPTIONS) == set(ddpm_trainer.VECTOR_DEFAULTS)


def test_a_batch_smaller_than_the_ranks_is_refused(tmp_path):
    two_ranks = types.SimpleNamespace(rank=0, size=2)
    with pytest.raises(InvalidInput, match="split over 2 ranks: it must be at least 2"):
        _ddpm(tmp_path, batch_size=1, comm=two_ranks)
    with pytest.raises(InvalidInput, match="split over 2 ranks: it must be at least 4"):
        _gan(tmp_path, batch_size=2, pack=2, comm=two_ranks)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("build", [_ddpm, _gan])
def test_a_batch_that_cannot_fit_in_memory_is_refused_with_the_estimate(build, tmp_path):
    with pytest.raises(InvalidInput) as info:
        build(tmp_path, batch_size=2**31 - 1)
    text = str(info.value)
    assert "batch_size 2147483647 needs about" in text and "TiB per training step" in text
    assert "of memory are available on cpu" in text


def test_the_memory_estimate_is_twice_the_graph_of_the_step(monkeypatch, tmp_path):
    """The MLP's graph is affine in the batch, so the extrapolation from one and two examples
    is exact: the estimate of 64 examples is twice the bytes of their graph; a step is refused
    exactly when it exceeds MEMORY_FRACTION of the available memory."""
    trainer = _ddpm(tmp_path, batch_size=64)

    def graph(m):
        return trainer._probe_loss(trainer.data[:m])

    need = options.step_memory(graph, 64)
    assert need == 2 * graph_bytes(graph(64)) > 2 * graph_bytes(graph(32))
    for scale, refused in ((1.01, False), (0.99, True)):
        monkeypatch.setattr(options, "available_memory",
                            lambda device: need / options.MEMORY_FRACTION * scale)
        if refused:
            with pytest.raises(InvalidInput, match="batch_size 64 needs about"):
                _ddpm(tmp_path, batch_size=64)
        else:
            _ddpm(tmp_path, batch_size=64)


def test_labels_beyond_the_class_limit_are_refused_as_labels(tmp_path):
    for labels in (np.full(len(VECTORS), 3_000_000_000, dtype=np.int64),
                   np.full(len(VECTORS), 2**63 + 5, dtype=np.uint64)):
        with pytest.raises(InvalidInput, match="labels are class numbers 0..K-1 with K at "
                                               "most 65536, got a largest label of"):
            _ddpm(tmp_path, conditional=True, labels=labels)
    trainer = _ddpm(tmp_path, conditional=True, labels=np.arange(len(VECTORS)) % 3)
    assert trainer.model.num_classes == 3


def test_the_guide_lists_every_option_with_its_range():
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                        "guide.md")
    with open(path) as f:
        guide = f.read()
    tables = [(ddpm_trainer.OPTIONS, ""), (gan_trainer.OPTIONS, ""), (vae_trainer.OPTIONS, ""),
              (autoencoder.OPTIONS, ""), (txt2img_trainer.OPTIONS, ""), (classifier.OPTIONS, "")] + [
        (table, "model_config.") for table in ddpm_trainer.DENOISER_OPTIONS.values()] + [
        (table, "model_config.") for table in classifier.CLASSIFIER_MODELS.values()]
    for table, prefix in tables:
        for name, value, meaning in options.rows(table, prefix):
            assert f"| `{name}` | {value} | {meaning} |" in guide, name
