"""Fault injection (issue 11): nothing a user has is lost, nothing silently wrong.

Each case runs through the command line (in-process ``cli.main``, or a subprocess where a
signal or ``kill -9`` is part of the case) or the API: a run directory belongs to one run,
resume checks its data and kind, no checkpoint holds a non-finite state, Ctrl-C saves the
current step, ``kill -9`` at any moment resumes bit for bit, output paths and resource
errors give one line, sampling works in chunks."""
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minigen import checkpoint, cli
from minigen.diffusion import trainer as ddpm_trainer
from minigen.errors import RunExists, UserError
from minigen.trainer import TrainingDiverged, TrainingInterrupted
from tests.test_trainer import LinearFit, assert_bit_identical, final_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--quiet", "--no-figures", "--batch-size", "16"]


def _cli(argv, capsys):
    status = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _one_line(status, err, *fragments, code=2):
    assert status == code, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def _snapshot(directory):
    """Name -> (sha256, mtime) of every file: 'nothing in it changed'."""
    return {name: (hashlib.sha256((directory / name).read_bytes()).hexdigest(),
                   os.stat(directory / name).st_mtime_ns)
            for name in sorted(os.listdir(directory))}


def _train(run, steps, *extra, data="s_curve", kind="ddpm", capsys=None):
    fast = FAST if kind == "ddpm" else FAST[:2]
    return _cli(["train", kind, "--data", data, "--steps", steps, "--out", run, *fast, *extra],
                capsys)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 6-step DDPM run on the S-curve (not to be modified by the tests that use it)."""
    run = tmp_path_factory.mktemp("faults") / "run"
    assert cli.main(["train", "ddpm", "--data", "s_curve", "--steps", "6", "--out", str(run),
                     *FAST]) == 0
    return run


# --- 1. a run directory belongs to one run ---------------------------------------------------
@pytest.mark.parametrize("kind", ["ddpm", "gan"])
def test_fresh_train_into_a_run_refuses_and_changes_nothing(run_dir, kind, capsys):
    before = _snapshot(run_dir)
    status, _, err = _train(run_dir, 2, kind=kind, capsys=capsys)
    _one_line(status, err, "already holds a run", "--resume", "--overwrite")
    assert _snapshot(run_dir) == before


def test_overwrite_replaces_the_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, 4, capsys=capsys)[0] == 0
    status, out, _ = _train(run, 2, "--overwrite", kind="gan", capsys=capsys)
    assert status == 0 and "step 2" in out
    assert json.loads((run / "config.json").read_text())["kind"] == "gan"
    assert checkpoint.load(run / "checkpoint.npz")["step"] == 2
    status, _, err = _train(run, 4, "--overwrite", "--resume", capsys=capsys)
    _one_line(status, err, "--resume", "--overwrite")


def test_library_trainers_refuse_an_existing_run_too(tmp_path):
    LinearFit(tmp_path, 3, progress=False).fit()
    before = _snapshot(tmp_path)
    with pytest.raises(RunExists, match="overwrite"):
        LinearFit(tmp_path, 2, progress=False).fit()
    assert _snapshot(tmp_path) == before
    LinearFit(tmp_path, 2, progress=False).fit(overwrite=True)
    assert checkpoint.load(tmp_path / "checkpoint.npz")["step"] == 2


# --- 3. resume checks data and kind before touching anything ---------------------------------
@pytest.mark.parametrize("data,kind,fragment", [
    ("moons", "ddpm", "not the ones"),            # same shape, other values
    ("digits", "ddpm", "shape"),                  # images on a 2-D run
    ("s_curve", "gan", "holds a 'ddpm' run"),     # another kind
])
def test_resume_refuses_other_data_or_kind_and_changes_nothing(run_dir, data, kind, fragment,
                                                               capsys):
    before = _snapshot(run_dir)
    status, _, err = _train(run_dir, 9, "--resume", data=data, kind=kind, capsys=capsys)
    _one_line(status, err, "--resume", fragment)
    assert _snapshot(run_dir) == before


def test_resume_names_the_options_it_ignores(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, 3, "--seed", 2, capsys=capsys)[0] == 0
    status, out, err = _cli(["train", "ddpm", "--data", "s_curve", "--steps", "5", "--out", run,
                             "--quiet", "--no-figures", "--resume", "--seed", "7", "--lr", "0.5"],
                            capsys)
    assert status == 0 and "step 5" in out
    _one_line(0, err, "minigen: note:", "seed=7 (the run's: 2)", "lr=0.5 (the run's: 0.02)",
              code=0)
    config = json.loads((run / "config.json").read_text())
    assert config["seed"] == 2 and config["lr"] == 0.02


# --- 2. divergence: the last checkpoint is the last good state --------------------------------
class BlowsUp(LinearFit):
    """The update of step ``blow_at`` makes the weights huge but finite (loss inf after it)
    or, with ``nan_state``, leaves a NaN in Adam's state while the weights stay finite."""

    def __init__(self, *args, blow_at=3, nan_state=False, probe=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.blow_at, self.nan_state, self.probe = blow_at, nan_state, probe

    def train_step(self, step):
        metrics = super().train_step(step)
        if step == self.blow_at:
            if self.nan_state:
                self.opt.state["weight"]["exp_avg_sq"][...] = np.nan
            else:
                self.model.weight.data[...] = 1e30
        return metrics

    def health_metrics(self):
        if not self.probe:
            return {}
        import minigen as mg
        import minigen.functional as F
        from tests.test_trainer import X, Y
        return {"loss": F.mse_loss(self.model(mg.tensor(X)), mg.tensor(Y)).item()}


@pytest.mark.parametrize("nan_state", [False, True])
def test_checkpoints_hold_only_finite_usable_states(tmp_path, nan_state):
    t = BlowsUp(tmp_path, 10, blow_at=3, nan_state=nan_state, checkpoint_every=1, progress=False)
    with pytest.raises(TrainingDiverged, match=r"after step 4.*last good checkpoint .*\(step 3\)"):
        t.fit()
    saved = checkpoint.load(tmp_path / "checkpoint.npz")
    assert saved["step"] == 3
    for tree in (saved["model"], saved["opt"], saved["ema"]):
        assert all(np.isfinite(np.asarray(v, dtype=float)).all()
                   for v in _leaves(tree)), tree


def _leaves(tree):
    if isinstance(tree, dict):
        return [leaf for item in tree.values() for leaf in _leaves(item)]
    return [tree] if isinstance(tree, (np.ndarray, float)) else []


def test_a_run_that_ends_non_finite_exits_non_zero(tmp_path, capsys):
    status, _, err = _cli(["train", "ddpm", "--data", "s_curve", "--steps", "2", "--out",
                           tmp_path / "r", *FAST, "--lr", "1e30"], capsys)
    _one_line(status, err, "training diverged", "no checkpoint was written", code=1)
    assert not (tmp_path / "r" / "checkpoint.npz").exists()


# --- sample refuses NaN/inf, also from overflow in data units ---------------------------------
@pytest.mark.parametrize("poison,fragment", [
    ("weights", "the network produced"),
    ("scale", "overflow float32 when mapped back to data units"),
])
def test_sample_refuses_non_finite_output(run_dir, tmp_path, poison, fragment, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "checkpoint.npz"):
        (run / name).write_bytes((run_dir / name).read_bytes())
    saved = checkpoint.load(run / "checkpoint.npz")
    if poison == "weights":
        for state in (saved["model"], saved["ema"]["shadow"]):
            for value in state.values():
                value[...] = np.nan
    else:
        saved["config"]["normalization"]["scale"] = [1e39, 1e39]
    checkpoint.save(saved, run / "checkpoint.npz")
    target = tmp_path / "s.npy"
    status, _, err = _cli(["sample", run, "--n", "20", "--out", target, "--sampler", "ddim",
                           "--steps", "3"], capsys)
    _one_line(status, err.split("\r")[-1], fragment, "nothing was written")
    assert not target.exists() and os.listdir(tmp_path) == ["run"]


def test_sdedit_output_with_nan_is_refused(run_dir, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "checkpoint.npz"):
        (run / name).write_bytes((run_dir / name).read_bytes())
    saved = checkpoint.load(run / "checkpoint.npz")
    for state in (saved["model"], saved["ema"]["shadow"]):
        for value in state.values():
            value[...] = np.nan
    checkpoint.save(saved, run / "checkpoint.npz")
    source, target = tmp_path / "x.npy", tmp_path / "s.npy"
    np.save(source, np.zeros((5, 2), dtype=np.float32))
    status, _, err = _cli(["sample", run, "--from", source, "--strength", "0.1", "--out",
                           target, "--sampler", "ddim", "--steps", "3"], capsys)
    _one_line(status, err.split("\r")[-1], "NaN/inf", "nothing was written")
    assert not target.exists()


# --- 4. Ctrl-C saves the current step ---------------------------------------------------------
def test_ctrl_c_saves_the_current_step_which_resumes_bit_exactly(tmp_path, request):
    # Python's own handler: a shell starts pytest with SIGINT ignored under `&` or nohup, and
    # the trainer rightly leaves an ignored SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    full = LinearFit(tmp_path / "full", 30, seed=4, checkpoint_every=100, progress=False)
    full.fit()

    class CtrlC(LinearFit):
        def train_step(self, step):
            if step == 11:  # mid-step: the step completes, the loop stops after it
                os.kill(os.getpid(), signal.SIGINT)
            return super().train_step(step)

    cut = CtrlC(tmp_path / "cut", 30, seed=4, checkpoint_every=100, progress=False)
    with pytest.raises(TrainingInterrupted, match="holds step 12 of 30"):
        cut.fit()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert checkpoint.load(tmp_path / "cut" / "checkpoint.npz")["step"] == 12
    resumed = LinearFit(tmp_path / "cut", 30, seed=4, checkpoint_every=100, progress=False)
    resumed.resume().fit()
    assert_bit_identical(final_state(resumed), final_state(full))
    assert resumed.history == full.history


def _popen(argv):
    """``python -m minigen argv`` with SIGINT at its default (a shell may start it ignored)."""
    return subprocess.Popen([sys.executable, "-m", "minigen", *map(str, argv)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(path, process, timeout=60):
    start = time.monotonic()
    while not os.path.exists(path):
        assert process.poll() is None and time.monotonic() - start < timeout
        time.sleep(0.02)


def test_ctrl_c_on_the_command_line_exits_130_naming_the_saved_step(tmp_path):
    run = tmp_path / "run"
    process = _popen(["train", "ddpm", "--data", "s_curve", "--steps", "200000", "--out", run,
                      *FAST, "--checkpoint-every", "100000"])
    _wait_for(run / "config.json", process)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    step = checkpoint.load(run / "checkpoint.npz")["step"]
    assert 0 < step < 200000 and f"holds step {step} of 200000" in err and "--resume" in err


# --- kill -9 at random moments, then resume: bit for bit ---------------------------------------
def _arrays(path):
    saved = checkpoint.load(path)
    flat = {}

    def walk(tree, prefix):
        if isinstance(tree, dict):
            for key, item in tree.items():
                walk(item, f"{prefix}/{key}")
        elif isinstance(tree, np.ndarray):
            flat[prefix] = tree
    for key in ("model", "ema", "optimizer"):
        walk(saved[key], key)
    return flat, saved["step"], saved["history"]


def test_kill_9_at_random_moments_then_resume_is_bit_exact(tmp_path):
    steps = ["--steps", "40", "--checkpoint-every", "1", "--seed", "3"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert subprocess.run([sys.executable, "-m", "minigen", "train", "ddpm", "--data", "moons",
                           "--out", whole, *FAST, *steps], cwd=ROOT, timeout=300).returncode == 0
    seed = int(time.time())
    rng, kills = random.Random(seed), 0
    for attempt in range(12):
        process = _popen(["train", "ddpm", "--data", "moons", "--out", cut, *FAST, *steps,
                          *(["--resume"] if attempt else [])])
        if attempt < 3:  # the first kill lands in training, the others anywhere (startup too)
            if attempt == 0:
                _wait_for(cut / "config.json", process)
            time.sleep(rng.uniform(0.0, 0.4 if attempt == 0 else 1.5))
            if process.poll() is None:
                process.kill()  # SIGKILL: no handler, no cleanup
                kills += 1
        process.communicate(timeout=300)
        if process.returncode == 0:
            break
        assert process.returncode == -signal.SIGKILL, (seed, attempt)
    assert process.returncode == 0 and kills >= 1, seed
    assert not [n for n in os.listdir(cut) if n.endswith(".tmp")]  # stale ones were removed
    a, step_a, history_a = _arrays(whole / "checkpoint.npz")
    b, step_b, history_b = _arrays(cut / "checkpoint.npz")
    assert step_a == step_b == 40 and a.keys() == b.keys() and history_a == history_b
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_stale_temporary_files_are_removed_on_the_next_start(tmp_path):
    LinearFit(tmp_path, 3, progress=False).fit()
    stale = [tmp_path / ".checkpoint.npz.0123456789ab.tmp",
             tmp_path / ".config.json.abcdef012345.tmp"]
    for path in stale:
        path.write_bytes(b"half a save")
    (tmp_path / "notes.tmp").write_text("the user's")
    LinearFit(tmp_path, 5, progress=False).resume().fit()
    assert not any(path.exists() for path in stale) and (tmp_path / "notes.tmp").exists()


# --- 6. output paths, OS and memory errors: one line, before any work -------------------------
def test_bad_output_paths_give_one_line_before_any_work(run_dir, tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("x")
    for out, fragment in [(tmp_path / "file", "not a directory"),
                          (tmp_path / "file" / "run", "is a file")]:
        status, _, err = _train(out, 3, capsys=capsys)
        _one_line(status, err, fragment)
    sampled = []
    monkeypatch.setattr(ddpm_trainer, "sample_run", lambda *a, **k: sampled.append(1))
    (tmp_path / "d.npy").mkdir()
    for out, fragment in [(tmp_path / "d.npy", "is a directory"),
                          (tmp_path / "no" / "s.npy", "does not exist"),
                          (tmp_path / "s.csv", ".npy")]:
        status, _, err = _cli(["sample", run_dir, "--n", "5", "--out", out], capsys)
        _one_line(status, err, fragment)
    assert not sampled


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_directories_give_one_line(run_dir, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        _one_line(*_train(locked / "run", 3, capsys=capsys)[::2], "not writable")
        status, _, err = _cli(["sample", run_dir, "--n", "5", "--out", locked / "s.npy"], capsys)
        _one_line(status, err, "not writable")
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("error,fragment", [
    (MemoryError("Unable to allocate 7.28 TiB"), "out of memory"),
    (OSError(28, "No space left on device", "run/checkpoint.npz"), "No space left on device"),
    (ModuleNotFoundError("No module named 'sklearn'", name="sklearn"), "not installed"),
])
def test_os_and_memory_errors_give_one_line(tmp_path, error, fragment, capsys, monkeypatch):
    def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr(ddpm_trainer, "train_ddpm", fails)
    status, _, err = _train(tmp_path / "r", 3, capsys=capsys)
    _one_line(status, err, fragment)


def test_library_bugs_keep_their_traceback_and_debug_shows_user_errors(run_dir, tmp_path, capsys,
                                                                       monkeypatch):
    with pytest.raises(UserError, match="already holds a run"):
        cli.main(["train", "ddpm", "--data", "s_curve", "--steps", "2", "--out", str(run_dir),
                  "--debug"])

    def bug(*args, **kwargs):
        raise ValueError("an internal shape mismatch")

    def missing_module_of_minigen(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'minigen.gone'", name="minigen.gone")

    for error, fails in [(ValueError, bug), (ModuleNotFoundError, missing_module_of_minigen)]:
        monkeypatch.setattr(ddpm_trainer, "train_ddpm", fails)
        with pytest.raises(error):
            cli.main(["train", "ddpm", "--data", "s_curve", "--steps", "2", "--out",
                      str(tmp_path / "r")])


@pytest.mark.parametrize("argv,fragment", [
    (["sample", "r", "--n", "5", "--out", "x.npy", "--eta", "1.5"], "--eta"),
    (["sample", "r", "--n", "5", "--out", "x.npy", "--eta", "-0.1"], "--eta"),
    (["sample", "r", "--n", str(10**12), "--out", "x.npy"], "--n"),
    (["train", "ddpm", "--data", "moons", "--steps", "2", "--out", "r", "--batch-size",
      str(10**20)], "--batch-size"),
])
def test_out_of_range_arguments_give_one_line(argv, fragment, capsys):
    status, _, err = _cli(argv, capsys)
    _one_line(status, err, fragment)


# --- 7. sampling in bounded memory ---------------------------------------------------------
def test_ddpm_sampling_runs_in_chunks_and_one_chunk_is_the_plain_chain(run_dir, monkeypatch):
    ddpm, config = ddpm_trainer.load_run(run_dir)
    shapes = []
    plain = type(ddpm).ddim_sample

    def recording(self, shape, *args, **kwargs):
        shapes.append(shape)
        return plain(self, shape, *args, **kwargs)

    monkeypatch.setattr(type(ddpm), "ddim_sample", recording)
    one = ddpm_trainer.sample_ddpm(ddpm, config["normalization"], 50, (2,), "ddim", 5, seed=1)
    reference = plain(ddpm, (50, 2), 5, progress=False, seed=1)
    np.testing.assert_array_equal(one, ddpm_trainer.denormalize(reference, config["normalization"]))
    monkeypatch.setattr(ddpm_trainer, "SAMPLE_CHUNK_ELEMENTS", 2 * 16)
    shapes.clear()
    out = np.full((50, 2), np.nan, dtype=np.float32)
    chunked = ddpm_trainer.sample_ddpm(ddpm, config["normalization"], 50, (2,), "ddim", 5,
                                       seed=1, out=out, check_finite=True)
    assert chunked is out and np.isfinite(out).all()
    assert shapes == [(16, 2)] * 3 + [(2, 2)]
    np.testing.assert_array_equal(chunked[:16], one[:16])  # the same generator, drawn in turn


def test_the_cli_writes_samples_chunk_by_chunk_into_the_npy(run_dir, tmp_path, capsys):
    target = tmp_path / "s.npy"
    status, out, _ = _cli(["sample", run_dir, "--n", "30", "--out", target, "--sampler", "ddim",
                           "--steps", "3", "--seed", "2"], capsys)
    assert status == 0 and "wrote 30 samples" in out
    expected = ddpm_trainer.sample_run(run_dir, 30, sampler="ddim", steps=3, seed=2)
    np.testing.assert_array_equal(np.load(target), expected)
    assert os.listdir(tmp_path) == ["s.npy"]
