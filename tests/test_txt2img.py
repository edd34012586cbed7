"""Text-to-image plumbing (fast): the text-conditioned UNet and its null condition, the
inpainting masks in latent space, training and loading runs in pixel and latent space,
sampling, SDEdit and inpainting shapes, PNG and .npy files, the command line."""
import json

import numpy as np
import pytest

import minigen as mg
from minigen import backend, shapes
from minigen.cli import main
from minigen.errors import InvalidInput, RunExists
from minigen.txt2img import files, load_txt2img, masks, text, train_txt2img
from minigen.txt2img.trainer import Txt2ImgTrainer, build_model

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(text_config=dict(dim=8, layers=1, heads=2),
            model_config=dict(base_channels=8, groups=4, time_dim=16),
            schedule=dict(kind="cosine", T=20), batch_size=8, warmup_steps=1)


@pytest.fixture(scope="module")
def data():
    return shapes.captioned(32, seed=0)


@pytest.fixture(scope="module")
def pixel_run(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("t2i") / "pixel"
    train_txt2img(data, 3, out, latent=False, progress=False, figures=False, **TINY)
    return out


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("t2i") / "latent"
    train_txt2img(data, 2, out, progress=False, figures=False, autoencoder_steps=2, **TINY)
    return out


def test_null_condition_is_the_empty_caption_and_image_condition_is_repeated():
    config = dict(latent_shape=[4, 8, 8], inpainting=True, **TINY)
    model, tokenizer = build_model(config)
    np.testing.assert_array_equal(model.null_condition, [tokenizer.bos_id] + [
        tokenizer.pad_id] * (tokenizer.max_length - 1))
    x, t = mg.randn(2, 4, 8, 8), np.array([1, 5])
    cond = np.random.default_rng(0).standard_normal((2, 5, 8, 8)).astype(np.float32)
    null = np.broadcast_to(model.null_condition, (2, len(model.null_condition)))
    with model.conditioned_on(cond):
        a = model(x, t).numpy()
        np.testing.assert_allclose(model(x, t, null).numpy(), a, atol=1e-6)
        doubled = model(mg.cat([x, x]), np.concatenate([t, t]), np.concatenate([null, null]))
        np.testing.assert_allclose(doubled.numpy()[2:], a, atol=1e-5)
        with pytest.raises(InvalidInput, match="image condition of 2 rows for a batch of 3"):
            model(mg.randn(3, 4, 8, 8), np.array([1, 2, 3]))
    assert model.image_condition is None
    assert model.unet.in_channels == 9 and a.shape == (2, 4, 8, 8)


def test_latent_known_cells_need_every_pixel_known():
    known = np.ones((1, 8, 8))
    known[0, 0, 0] = 0  # one pixel of cell (0, 0)
    known[0, 4:, 4:] = 0  # all of cell (1, 1)
    cells = masks.latent_known(known, 4)
    np.testing.assert_array_equal(cells, [[[[0, 1], [1, 0]]]])
    with pytest.raises(InvalidInput, match="not a multiple of the autoencoder's factor 4"):
        masks.latent_known(np.ones((1, 6, 8)), 4)


def test_random_masks_are_one_rectangle_of_whole_cells():
    known = masks.random_known(200, (32, 32), 4, np.random.default_rng(0))
    assert known.shape == (200, 32, 32)
    cells = masks.latent_known(known, 4)[:, 0]
    np.testing.assert_array_equal(known, cells.repeat(4, 1).repeat(4, 2))  # cell-aligned
    for cell in cells:
        rows, cols = np.nonzero(cell == 0)
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert len(rows) == box >= 4  # one filled rectangle, sides >= 2 cells of 8
    assert (cells == 0).all(axis=(1, 2)).any() and (cells == 1).any()


def test_pixel_run_samples_edits_and_inpaints(pixel_run, data):
    pipe = load_txt2img(pixel_run)
    config = json.loads((pixel_run / "config.json").read_text())
    assert config["kind"] == "txt2img" and config["latent_shape"] == [3, 32, 32]
    assert config["model_config"]["channel_mults"] == [1, 2, 2]  # one more level in pixels
    images, captions = data
    out = pipe.sample(captions[:2], guidance=2.0, steps=3)
    assert out.shape == (2, 3, 32, 32) and out.min() >= -1 and out.max() <= 1
    assert pipe.sample("a small red circle on the left", n=3, steps=2).shape == (3, 3, 32, 32)
    assert pipe.edit(images[:2], captions[:2], 0.5, steps=3).shape == (2, 3, 32, 32)
    known = np.ones((2, 32, 32))
    known[:, :, :16] = 0
    done = pipe.inpaint(images[:2], known, captions[:2], guidance=1.0)  # RePaint, T = 20
    np.testing.assert_allclose(done[:, :, :, 16:], images[:2, :, :, 16:], atol=1e-6)
    with pytest.raises(InvalidInput, match="3 prompts for 2 images"):
        pipe.edit(images[:2], captions[:3], 0.5)
    with pytest.raises(InvalidInput, match="mask must have shape"):
        pipe.inpaint(images[:2], known[:1], captions[:2])


def test_latent_run_trains_its_autoencoder_first_and_refuses_a_second_start(latent_run, data):
    config = json.loads((latent_run / "config.json").read_text())
    assert config["latent"] and config["latent_shape"] == [4, 8, 8]
    assert config["autoencoder"] == str(latent_run) + "-autoencoder"
    pipe = load_txt2img(latent_run)
    assert pipe.sample(data[1][:2], guidance=1.0, steps=2).shape == (2, 3, 32, 32)
    with pytest.raises(RunExists):
        train_txt2img(data, 2, latent_run, progress=False, figures=False, **TINY)


def test_inpainting_run_reads_mask_and_masked_latent(tmp_path, latent_run, data):
    out = tmp_path / "inpaint"
    autoencoder = str(latent_run) + "-autoencoder"
    train_txt2img(data, 2, out, autoencoder=autoencoder, inpainting=True, progress=False,
                  figures=False, **TINY)
    pipe = load_txt2img(out)
    known = np.ones((2, 32, 32))
    known[:, 8:24, 8:24] = 0
    assert pipe.inpaint(data[0][:2], known, data[1][:2], steps=2).shape == (2, 3, 32, 32)
    with pytest.raises(InvalidInput, match="cannot sample with an inpainting run"):
        pipe.sample("a small red circle on the left")
    with pytest.raises(InvalidInput, match="cannot edit with an inpainting run"):
        pipe.edit(data[0][:2], data[1][:2], 0.5, steps=2)


def _recording(monkeypatch, model):
    """The image conditions ``model`` is called with, recorded as they are given."""
    seen, forward = [], model.forward

    def spy(*args, **kwargs):
        seen.append(np.array(model.image_condition))
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", spy)
    return seen


def test_trainer_and_sampler_give_the_network_the_same_image_condition(tmp_path, latent_run,
                                                                       data, monkeypatch):
    images, captions = data
    index = np.array([5, 0, 7])
    known = np.ones((3, 32, 32), np.float32)
    known[:, 4:20, 8:28] = 0  # latent cells rows 1-4, columns 2-6
    drawn = [known]
    monkeypatch.setattr(masks, "random_known", lambda n, size, factor, rng: drawn[0][:n])
    trainer = Txt2ImgTrainer(images, captions, tmp_path / "r", 1, inpainting=True,
                             autoencoder=str(latent_run) + "-autoencoder", progress=False,
                             figures=False, **TINY)
    seen = _recording(monkeypatch, trainer.model)
    trainer._loss(index, trainer.tokens[index], np.random.default_rng(0))
    trainer.pipeline().inpaint(images[index], known, [captions[i] for i in index], steps=1)
    trained, sampled = seen
    np.testing.assert_array_equal(trained, sampled)
    cells = np.ones((3, 8, 8))
    cells[:, 1:5, 2:7] = 0
    np.testing.assert_array_equal(trained[:, 0], cells)  # 1 = keep, at latent resolution
    np.testing.assert_allclose(trained[:, 1:], trainer.space.encode(images[index] * known[:, None]),
                               atol=1e-6)
    drawn[0] = np.ones_like(known)  # nothing masked: the latent channels are z_0 itself
    trainer._loss(index, trainer.tokens[index], np.random.default_rng(0))
    np.testing.assert_allclose(seen[-1][:, 1:], backend.to_numpy(trainer.latents[index]),
                               atol=1e-6)


def test_inpainting_network_reads_the_masked_latent_with_and_without_caption():
    model, tokenizer = build_model(dict(latent_shape=[4, 8, 8], inpainting=True, **TINY))
    rng = np.random.default_rng(0)
    x, t = mg.tensor(rng.standard_normal((2, 4, 8, 8)).astype(np.float32)), np.array([3, 15])
    condition = rng.standard_normal((2, 5, 8, 8)).astype(np.float32)
    other = condition.copy()
    other[:, 1:] = rng.standard_normal((2, 4, 8, 8))
    for y in (text.encode(tokenizer, ["a small red circle on the left"] * 2), None):
        with model.conditioned_on(condition):
            out = model(x, t, y)
        with model.conditioned_on(other):
            assert np.abs(model(x, t, y).numpy() - out.numpy()).max() > 1e-3
    (out ** 2).sum().backward()
    stem = np.asarray(model.unet.stem.weight.grad)  # input channels: z_t, mask, latent
    assert (np.abs(stem[:, 4:]).sum(axis=(0, 2, 3)) > 0).all()


def test_inpainting_predicts_v_by_default_and_older_runs_load_as_eps(tmp_path, latent_run,
                                                                    data, monkeypatch):
    from minigen.txt2img import trainer

    out = tmp_path / "inpaint"
    train_txt2img(data, 1, out, autoencoder=str(latent_run) + "-autoencoder",
                  inpainting=True, progress=False, figures=False, **TINY)
    assert json.loads((out / "config.json").read_text())["prediction"] == "v"
    assert load_txt2img(out).ddpm.prediction == "v"
    assert load_txt2img(latent_run).ddpm.prediction == "eps"
    read_run = trainer.read_run

    def saved_without_prediction(run_dir, kind):
        config, state = read_run(run_dir, kind)
        return {k: v for k, v in config.items() if k != "prediction"}, state

    monkeypatch.setattr(trainer, "read_run", saved_without_prediction)
    assert load_txt2img(out).ddpm.prediction == "eps"


def test_pixel_inpainting_model_inpaints_more_images_than_a_sampling_chunk(tmp_path, data):
    out = tmp_path / "pixel-inpaint"
    train_txt2img(data, 1, out, latent=False, inpainting=True, progress=False, figures=False,
                  **TINY)
    images = np.repeat(data[0], 3, axis=0)  # 96 images; the sampler's chunks hold 85
    known = np.ones((96, 32, 32))
    known[:, :, 16:] = 0
    pipe = load_txt2img(out)
    assert pipe.inpaint(images, known, "a small red circle on the left",
                        steps=1).shape == (96, 3, 32, 32)


def test_options_are_checked_before_anything_is_written(tmp_path, data):
    with pytest.raises(InvalidInput, match="caption_dropout must be"):
        train_txt2img(data, 2, tmp_path / "r", latent=False, caption_dropout=2.0)
    with pytest.raises(InvalidInput, match="latent=True needs an autoencoder run"):
        from minigen.txt2img import Txt2ImgTrainer

        Txt2ImgTrainer(*data, tmp_path / "r", 2)
    assert not (tmp_path / "r").exists()


def test_png_and_npy_files_round_trip(tmp_path):
    images = np.random.default_rng(0).uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)
    files.write_images(str(tmp_path / "a.png"), images)
    back = files.read_images(str(tmp_path / "a.png"))
    assert back.shape == (1, 3, 10, 10)  # the grid's 1-pixel frame
    np.testing.assert_allclose(back[:, :, 1:-1, 1:-1], images, atol=2 / 255 + 1e-6)  # 8 bits
    files.write_images(str(tmp_path / "a.npy"), images)
    np.testing.assert_array_equal(files.read_images(str(tmp_path / "a.npy")), images)
    mask = np.zeros((8, 8, 3), np.float32)
    mask[:, 4:] = 1
    from matplotlib import image as mpimg

    mpimg.imsave(tmp_path / "m.png", mask)
    np.testing.assert_array_equal(files.read_mask(str(tmp_path / "m.png"))[0], mask[..., 0])
    with pytest.raises(InvalidInput, match="expected a .png or .npy file"):
        files.read_images(str(tmp_path / "a.jpg"))
    with pytest.raises(InvalidInput, match="no such file"):
        files.read_mask(str(tmp_path / "none.png"))


def test_command_line_samples_edits_and_inpaints(pixel_run, tmp_path, capsys):
    grid = tmp_path / "grid.png"
    run = str(pixel_run)
    assert main(["sample", run, "--prompt", "a small red circle on the left", "--guidance",
                 "2", "--n", "4", "--steps", "2", "--out", str(grid)]) == 0
    assert files.read_images(str(grid)).shape == (1, 3, 2 * 34, 2 * 34)
    image = shapes.captioned(1, seed=3)[0]
    files.write_images(str(tmp_path / "in.npy"), image)
    assert main(["sample", run, "--from", str(tmp_path / "in.npy"), "--prompt",
                 "a small blue circle on the left", "--strength", "0.4", "--steps", "2",
                 "--out", str(tmp_path / "edit.npy")]) == 0
    assert np.load(tmp_path / "edit.npy").shape == (1, 3, 32, 32)
    mask = np.ones((1, 32, 32))
    mask[:, 10:20, 10:20] = 0
    np.save(tmp_path / "mask.npy", mask)
    assert main(["sample", run, "--inpaint", str(tmp_path / "in.npy"), "--mask",
                 str(tmp_path / "mask.npy"), "--out", str(tmp_path / "done.npy")]) == 0
    capsys.readouterr()
    for argv, message in [
        (["--inpaint", str(tmp_path / "in.npy")], "--inpaint and --mask go together"),
        (["--prompt", "a pink circle", "--n", "1"], "unknown word 'pink'"),
        (["--label", "1", "--n", "1"], "--label, --jump and --eta do not apply"),
        (["--n", "1", "--out", str(grid)], "exists: give --overwrite"),
    ]:
        argv = ["sample", run] + argv + ([] if "--out" in argv else
                                         ["--out", str(tmp_path / "x.png")])
        assert main(argv) == 2
        assert message in capsys.readouterr().err


def test_command_line_trains_a_run_and_refuses_bad_options(tmp_path, capsys):
    out = str(tmp_path / "run")
    small = ["--set", "text_config.dim=8", "--set", "text_config.heads=2", "--set",
             "model_config.base_channels=8", "--set", "model_config.groups=4", "--set",
             "schedule.T=20", "--batch-size", "4", "--n-train", "8", "--quiet", "--no-figures"]
    assert main(["train", "txt2img", "--data", "shapes", "--steps", "1", "--out", out,
                 "--latent", "off", *small]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["latent"] is False
    capsys.readouterr()
    assert main(["train", "txt2img", "--data", "shapes", "--steps", "1", "--out", out,
                 "--latent", "off", *small]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "txt2img", "--data", "shapes", "--steps", "1", "--out",
                 str(tmp_path / "r2"), "--caption-dropout", "1.5"]) == 2
    assert "caption_dropout must be" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()
