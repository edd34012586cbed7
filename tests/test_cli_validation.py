"""Every command-line option is checked before anything is written: a bad value gives one
line naming the option and exit status 2, and the run directory stays as it was; ``sample``
checks the run it reads, refuses to replace a file without --overwrite, and refuses options
that would do nothing."""
import json
import os
import shutil

import numpy as np
import pytest

from minigen import cli

pytestmark = pytest.mark.usefixtures("one_thread")

DDPM = ["train", "ddpm", "--data", "moons", "--steps", "2", "--quiet", "--no-figures"]
GAN = ["train", "gan", "--data", "ring8", "--steps", "2", "--quiet", "--no-figures"]


def _refused(argv, capsys, *fragments):
    status = cli.main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("base,extra,fragments", [
    (DDPM, ["--lr", "nan"], ["lr must be a finite number > 0, got nan"]),
    (DDPM, ["--lr", "inf"], ["lr must be a finite number > 0, got inf"]),
    (DDPM, ["--lr", "-1"], ["lr must be a finite number > 0, got -1"]),
    (DDPM, ["--ema-decay", "2"], ["ema_decay must be a finite number in [0, 1), got 2"]),
    (DDPM, ["--set", "ema_decay=abc"], ["ema_decay", "got 'abc'"]),
    (DDPM, ["--set", "lr=inf"], ["lr must be", "got inf"]),
    (DDPM, ["--warmup-steps", "-10"], ["warmup_steps must be an integer in [0,", "got -10"]),
    (DDPM, ["--set", "grad_clip=-1"], ["grad_clip must be", "got -1"]),
    (DDPM, ["--set", "batch_size=abc"], ["batch_size must be an integer", "got 'abc'"]),
    (DDPM, ["--set", "batch_size=1.5"], ["batch_size must be an integer", "got 1.5"]),
    (DDPM, ["--set", "batch_size=-5"], ["batch_size must be an integer", "got -5"]),
    (DDPM, ["--set", "model=UNet"], ["model must be 'MLP', got 'UNet'"]),
    (DDPM, ["--set", 'model_config.hidden="abc"'], ["model_config.hidden must be a list"]),
    (DDPM, ["--hidden", "abc"], ["model_config.hidden must be a list", "got 'abc'"]),
    (DDPM, ["--T", "0"], ["schedule.T must be an integer in [1, 100000], got 0"]),
    (DDPM, ["--batch-size", "2147483647"], ["batch_size 2147483647 needs about",
                                            "of memory are available"]),
    (DDPM, ["--seed", "-1"], ["argument --seed", "got -1"]),
    (GAN, ["--set", "lr=NaN"], ["GANTrainer: lr must be a finite number > 0, got nan"]),
    (GAN, ["--set", "betas=[2,0.9]"], ["betas must be a list of 2 finite numbers in [0, 1)"]),
    (GAN, ["--batch-size", "2147483647"], ["batch_size 2147483647 needs about"]),
])
def test_bad_train_options_write_nothing(base, extra, fragments, tmp_path, capsys):
    run = tmp_path / "run"
    _refused(base + ["--out", str(run)] + extra, capsys, *fragments)
    assert not run.exists()


def test_a_refused_option_leaves_an_existing_run_as_it_was(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(DDPM + ["--out", str(run)]) == 0
    before = {name: (run / name).read_bytes() for name in os.listdir(run)}
    _refused(DDPM + ["--out", str(run), "--overwrite", "--lr", "-1"], capsys, "lr must be")
    assert {name: (run / name).read_bytes() for name in os.listdir(run)} == before


@pytest.mark.parametrize("argv,fragments", [
    (["train", "ddpm", "--data", "moons", "--steps", "2", "--out", ""], ["argument --out",
                                                                         "got ''"]),
    (["demo", "--out", " "], ["argument --out", "got ' '"]),
    (["sample", "run", "--n", "5", "--out", "x.npy", "--seed", "-1"],
     ["argument --seed: expected an integer in [0, 9223372036854775807], got -1"]),
])
def test_messages_name_the_option(argv, fragments, capsys):
    _refused(argv, capsys, *fragments)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for kind, argv in (("ddpm", DDPM), ("gan", GAN)):
        assert cli.main(argv + ["--out", str(root / kind)]) == 0
    return root


def _edited(runs, tmp_path, kind, edit=None, checkpoint_of=None):
    run = tmp_path / "edited"
    shutil.copytree(runs / kind, run)
    if edit:
        with open(run / "config.json") as f:
            config = json.load(f)
        edit(config)
        with open(run / "config.json", "w") as f:
            json.dump(config, f)
    if checkpoint_of:
        shutil.copy(runs / checkpoint_of / "checkpoint.npz", run / "checkpoint.npz")
    return run


@pytest.mark.parametrize("kind,edit,checkpoint_of,fragments", [
    ("ddpm", lambda c: c.update(kind="gan"), None, ["config.json gives kind 'gan'",
                                                    "its checkpoint 'ddpm'"]),
    ("gan", lambda c: c.update(kind="ddpm"), None, ["config.json gives kind 'ddpm'"]),
    ("ddpm", lambda c: c.update(data_shape=[3]), None, ["data_shape [3]", "checkpoint [2]"]),
    ("ddpm", lambda c: c.pop("data_shape"), None, ["data_shape None"]),
    ("ddpm", None, "gan", ["config.json gives kind 'ddpm', its checkpoint 'gan'"]),
    ("gan", None, "ddpm", ["config.json gives kind 'gan', its checkpoint 'ddpm'"]),
])
def test_sample_refuses_an_edited_or_mixed_run(kind, edit, checkpoint_of, fragments, runs,
                                               tmp_path, capsys):
    run = _edited(runs, tmp_path, kind, edit, checkpoint_of)
    out = tmp_path / "s.npy"
    _refused(["sample", str(run), "--n", "5", "--out", str(out)], capsys, *fragments)
    assert not out.exists()


def test_sample_refuses_a_checkpoint_without_the_model(runs, tmp_path, capsys):
    from minigen import checkpoint

    run = _edited(runs, tmp_path, "ddpm")
    state = checkpoint.load(run / "checkpoint.npz")
    del state["ema"]
    checkpoint.save(state, run / "checkpoint.npz")
    _refused(["sample", str(run), "--n", "5", "--out", str(tmp_path / "s.npy")], capsys,
             "checkpoint.npz: a ddpm checkpoint holds ['model', 'ema']; this one lacks ['ema']")


def test_sample_replaces_a_file_only_with_overwrite(runs, tmp_path, capsys):
    out = tmp_path / "s.npy"
    np.save(out, np.zeros(3))
    argv = ["sample", str(runs / "ddpm"), "--n", "5", "--out", str(out), "--sampler", "ddim",
            "--steps", "2"]
    _refused(argv, capsys, f"--out {out} exists: give --overwrite")
    assert np.load(out).shape == (3,)
    assert cli.main(argv + ["--overwrite"]) == 0
    assert np.load(out).shape == (5, 2)


@pytest.mark.parametrize("extra,fragments", [
    (["--eta", "0.5"], ["--eta applies to --sampler ddim; the ddpm sampler has no eta"]),
    (["--eta", "0.5", "--sampler", "dpm++2m"], ["the dpm++2m sampler has no eta"]),
    (["--guidance", "2"], ["--guidance applies with --label"]),
    (["--resample", "3"], ["--resample applies to --inpaint"]),
    (["--jump", "2"], ["--jump applies to --inpaint"]),
])
def test_sample_refuses_options_that_would_do_nothing(extra, fragments, runs, tmp_path, capsys):
    out = tmp_path / "s.npy"
    _refused(["sample", str(runs / "ddpm"), "--n", "5", "--out", str(out)] + extra, capsys,
             *fragments)
    assert not out.exists()
