"""The command line: user mistakes give one line on stderr and exit status 2 (no traceback);
train -> resume -> sample works on a user's .npy file; sample dispatches on the run kind."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minigen import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(argv, capsys):
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _one_line_error(status, err, *fragments):
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    paths = {}
    for name, array in {
        "vectors.npy": rng.standard_normal((300, 2)).astype(np.float32),
        "nan.npy": np.array([[0.0, np.nan], [1.0, 2.0]]),
        "rank1.npy": np.zeros(5),
        "empty.npy": np.zeros((0, 2)),
    }.items():
        np.save(tmp_path / name, array)
        paths[name] = str(tmp_path / name)
    (tmp_path / "garbage.npy").write_bytes(b"not an array")
    paths["garbage.npy"] = str(tmp_path / "garbage.npy")
    return paths


@pytest.mark.parametrize("argv,fragments", [
    ([], ["required: command"]),
    (["fly"], ["invalid choice: 'fly'"]),
    (["train", "ddpm", "--data", "mnist", "--steps", "5", "--out", "r"],
     ["unknown dataset 'mnist'"]),
    (["train", "ddpm", "--data", "moons", "--steps", "0", "--out", "r"],
     ["--steps", "positive integer"]),
    (["train", "ddpm", "--data", "moons", "--steps", "ten", "--out", "r"], ["--steps"]),
    (["train", "ddpm", "--data", "moons", "--out", "r"], ["--steps"]),
    (["train", "flow", "--data", "moons", "--steps", "5", "--out", "r"], ["invalid choice: 'flow'"]),
    (["train", "gan", "--data", "moons", "--steps", "5", "--out", "r", "--loss", "hinge"],
     ["--loss"]),
    (["sample", "run", "--n", "-1", "--out", "x.npy"], ["--n"]),
    (["sample", "run", "--n", "5", "--out", "x.npy", "--sampler", "euler"], ["--sampler"]),
])
def test_bad_arguments_give_one_line_and_status_2(argv, fragments, capsys):
    status, _, err = _run(argv, capsys)
    _one_line_error(status, err, *fragments)


@pytest.mark.parametrize("name,fragment", [
    ("missing.npy", "no such file"),
    ("garbage.npy", "cannot read the file"),
    ("nan.npy", "NaN or inf"),
    ("rank1.npy", "expected vectors"),
    ("empty.npy", "empty"),
])
def test_bad_data_files_give_one_line_and_status_2(name, fragment, files, tmp_path, capsys):
    path = files.get(name, str(tmp_path / name))
    status, _, err = _run(["train", "ddpm", "--data", path, "--steps", "5", "--out",
                           str(tmp_path / "run")], capsys)
    _one_line_error(status, err, name, fragment)


@pytest.mark.parametrize("argv", [
    ["train", "ddpm", "--data", "moons", "--steps", "5", "--out", "r", "--device", "cuda"],
    ["sample", "r", "--n", "5", "--out", "x.npy", "--device", "cuda"],
])
def test_cuda_device_without_a_gpu_gives_one_line_and_status_2(argv, capsys, monkeypatch):
    from minigen import backend

    monkeypatch.setattr(backend, "cuda_available", lambda: False)
    status, _, err = _run(argv, capsys)
    _one_line_error(status, err, "--device cuda", "CuPy")


def test_sample_needs_a_run_directory_and_a_npy_target(tmp_path, capsys):
    npy, csv = str(tmp_path / "x.npy"), str(tmp_path / "x.csv")
    status, _, err = _run(["sample", str(tmp_path), "--n", "5", "--out", npy], capsys)
    _one_line_error(status, err, "not a minigen run directory")
    status, _, err = _run(["sample", str(tmp_path), "--n", "5", "--out", csv], capsys)
    _one_line_error(status, err, "--out must name a .npy file")
    (tmp_path / "config.json").write_text(json.dumps({"kind": "flow"}))
    status, _, err = _run(["sample", str(tmp_path), "--n", "5", "--out", npy], capsys)
    _one_line_error(status, err, "unknown run kind 'flow'")


def test_train_resume_and_sample_a_users_file(files, tmp_path, capsys):
    run = str(tmp_path / "run")
    base = ["train", "ddpm", "--data", files["vectors.npy"], "--out", run, "--quiet",
            "--no-figures", "--batch-size", "16"]
    status, out, _ = _run(base + ["--steps", "6", "--checkpoint-every", "3"], capsys)
    assert status == 0 and "step 6" in out
    status, out, _ = _run(base + ["--steps", "9", "--resume"], capsys)
    assert status == 0 and "step 9" in out
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["step"] == list(range(9))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["kind"] == "ddpm" and config["batch_size"] == 16
    assert config["data"] == files["vectors.npy"]
    target = str(tmp_path / "samples.npy")
    status, out, _ = _run(["sample", run, "--n", "40", "--out", target, "--sampler", "ddim",
                           "--steps", "10", "--seed", "3"], capsys)
    assert status == 0 and "wrote 40 samples" in out
    first = np.load(target)
    assert first.shape == (40, 2) and np.all(np.isfinite(first))
    _run(["sample", run, "--n", "40", "--out", target, "--sampler", "ddim", "--steps", "10",
          "--seed", "3", "--overwrite"], capsys)
    np.testing.assert_array_equal(np.load(target), first)
    status, _, err = _run(["sample", run, "--n", "4", "--out", target, "--steps", "10",
                           "--overwrite"], capsys)
    _one_line_error(status, err, "use --sampler ddim")


def test_sample_dispatches_gan_runs(tmp_path, capsys):
    gan = pytest.importorskip("minigen.gan")
    run = tmp_path / "gan"
    gan.train_gan("moons", 2, run, progress=False, figures=False)
    target = str(tmp_path / "g.npy")
    status, out, _ = _run(["sample", str(run), "--n", "30", "--out", target, "--seed", "1"], capsys)
    assert status == 0 and np.load(target).shape == (30, 2)
    status, _, err = _run(["sample", str(run), "--n", "30", "--out", target, "--sampler", "ddim",
                           "--overwrite"], capsys)
    _one_line_error(status, err, "DDPM runs")


def test_python_dash_m_entry_point_reports_errors_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "minigen", "train", "ddpm", "--data",
                             str(tmp_path / "nope.npy"), "--steps", "3", "--out",
                             str(tmp_path / "r")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no such file" in result.stderr
    result = subprocess.run([sys.executable, "-m", "minigen", "--help"], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0 and "demo" in result.stdout and "sample" in result.stdout


@pytest.mark.slow
def test_demo_trains_the_s_curve_and_writes_figures(tmp_path, capsys):
    status, out, _ = _run(["demo", "--out", str(tmp_path), "--quiet"], capsys)
    assert status == 0
    assert "curve precision" in out and "coverage 1.00" in out
    precision = float(out.split("curve precision ")[1].split()[0])
    assert precision >= 0.96
    for name in ("diffusion.png", "samples.png", "loss.png", "checkpoint.npz"):
        assert os.path.exists(tmp_path / name)
