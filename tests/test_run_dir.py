"""A run directory (minigen/rundir.py) and stop signals (minigen/stopping.py), through the
command line and the library: one writer per directory (a lock naming its holder, a stale
one taken over), a fresh run refuses someone's other files, ``--resume`` refuses what it
cannot continue, SIGTERM saves like Ctrl-C, ``sample`` reads whole checkpoints while a run
writes them, and a run extended beyond its planned total says why it cannot match a longer
run."""
import os
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest

from minigen import checkpoint, distributed
from minigen.errors import ResumeNotice, RunBusy
from minigen.rundir import LOCK_FILE, RunDirectory, RunLock
from minigen.stopping import TrainingInterrupted
from tests.test_faults import FAST, _cli, _one_line, _popen, _snapshot, _train, _wait_for
from tests.test_trainer import LinearFit, assert_bit_identical, final_state

LONG = ["--steps", "200000", "--checkpoint-every", "100000"]


def _stop(process, signum=signal.SIGINT):
    process.send_signal(signum)
    return process.communicate(timeout=120)


@pytest.fixture
def training(tmp_path):
    """A DDPM run training in another process (long enough to outlive the test), and its
    directory; stopped with Ctrl-C at the end."""
    run = tmp_path / "busy"
    process = _popen(["train", "ddpm", "--data", "s_curve", "--out", run, *FAST, *LONG,
                      "--checkpoint-every", "1"])
    _wait_for(run / "checkpoint.npz", process)
    yield run, process
    if process.poll() is None:
        _stop(process)


# --- one writer per run directory -----------------------------------------------------------
@pytest.mark.parametrize("mode", ["--resume", "--overwrite"])
def test_a_second_writer_is_refused_naming_the_holder(training, mode, capsys):
    run, process = training
    status, _, err = _train(run, 5, mode, capsys=capsys)
    _one_line(status, err, "in use", f"process {process.pid}")
    assert process.poll() is None  # the holder trains on
    assert (run / LOCK_FILE).read_text().strip() == str(process.pid)
    _, err = _stop(process)
    assert process.returncode == 130 and "holds step" in err
    assert not (run / LOCK_FILE).exists()  # released with the run


def test_sample_reads_whole_checkpoints_while_a_run_writes_them(training, tmp_path, capsys):
    run, process = training
    steps = set()
    for i in range(8):
        target = tmp_path / f"s{i}.npy"
        status, _, err = _cli(["sample", run, "--n", "8", "--out", target, "--sampler", "ddim",
                               "--steps", "2"], capsys)
        assert status == 0, err
        assert np.isfinite(np.load(target)).all()
        steps.add(int(checkpoint.load(run / "checkpoint.npz")["step"]))
    assert len(steps) > 1  # the run wrote checkpoints meanwhile


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (run / LOCK_FILE).write_text(dead + "\n")
    status, out, err = _train(run, 2, capsys=capsys)
    assert status == 0 and "step 2" in out, err
    assert not (run / LOCK_FILE).exists()


def test_the_lock_is_one_writer_in_the_library_too(tmp_path):
    LinearFit(tmp_path, 3, progress=False).fit()
    holder = LinearFit(tmp_path, 6, progress=False).resume()  # holds the lock until fit() ends
    with pytest.raises(RunBusy, match=f"process {os.getpid()}"):
        LinearFit(tmp_path, 6, progress=False).resume()
    with pytest.raises(RunBusy):
        LinearFit(tmp_path, 2, progress=False).fit(overwrite=True)
    holder.fit()
    assert holder.step == 6 and not (tmp_path / LOCK_FILE).exists()
    LinearFit(tmp_path, 8, progress=False).resume().fit()  # free again


def test_a_lock_file_removed_by_its_holder_is_not_shared(tmp_path):
    """A writer that opened the lock file just before its holder removed it must not lock
    the removed file (two writers): it locks the new one."""
    first, second = RunLock(tmp_path), RunLock(tmp_path)
    first.acquire()
    stale = open(tmp_path / LOCK_FILE)  # as the second writer opened it
    first.release()
    assert not second._same_file(stale)
    second.acquire()
    with pytest.raises(RunBusy):
        RunLock(tmp_path).acquire()
    second.release()
    stale.close()


# --- a fresh run, --resume and demo refuse what they cannot do ---------------------------------
@pytest.mark.parametrize("extra", [[], ["--overwrite"]])
def test_a_fresh_run_refuses_a_directory_of_other_files(tmp_path, extra, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "history.json").write_text('{"the user\'s": 1}')
    (mine / "samples.png").write_bytes(b"not minigen's")
    before = _snapshot(mine)
    status, _, err = _train(mine, 2, *extra, capsys=capsys)
    _one_line(status, err, "not empty and holds no minigen run", "history.json",
              "choose an empty or new directory")
    assert _snapshot(mine) == before


def test_resume_into_a_missing_directory_is_refused_and_an_empty_one_noted(tmp_path, capsys):
    status, _, err = _train(tmp_path / "typo", 2, "--resume", capsys=capsys)
    _one_line(status, err, "--resume", "does not exist, there is no run to resume")
    assert not (tmp_path / "typo").exists()
    (tmp_path / "empty").mkdir()
    status, out, err = _train(tmp_path / "empty", 2, "--resume", capsys=capsys)
    _one_line(status, err, "minigen: note:", "holds no run yet; it starts at step 0", code=0)
    assert "step 2" in out


def test_resuming_a_non_finite_checkpoint_is_refused_not_called_good(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, 2, capsys=capsys)[0] == 0
    saved = checkpoint.load(run / "checkpoint.npz")
    next(iter(saved["model"].values()))[...] = np.nan
    checkpoint.save(saved, run / "checkpoint.npz")
    status, _, err = _train(run, 4, "--resume", capsys=capsys)
    _one_line(status, err, "(step 2) is not a good state", "NaN/inf")
    assert "last good" not in err and checkpoint.load(run / "checkpoint.npz")["step"] == 2


def test_demo_into_an_existing_run_names_overwrite_not_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, 2, capsys=capsys)[0] == 0
    status, _, err = _cli(["demo", "--out", run, "--steps", "2", "--quiet"], capsys)
    _one_line(status, err, "already holds a run", "--overwrite")
    assert "--resume" not in err


# --- SIGTERM saves like Ctrl-C ---------------------------------------------------------------
def test_sigterm_on_the_command_line_saves_and_exits_143(tmp_path):
    run = tmp_path / "run"
    process = _popen(["train", "ddpm", "--data", "s_curve", "--out", run, *FAST, *LONG])
    _wait_for(run / "config.json", process)
    _, err = _stop(process, signal.SIGTERM)
    assert process.returncode == 143, err
    step = checkpoint.load(run / "checkpoint.npz")["step"]
    assert f"interrupted (SIGTERM): {run / 'checkpoint.npz'} holds step {step} of 200000" in err
    assert "Traceback" not in err and not [n for n in os.listdir(run) if n.endswith(".tmp")]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_saves_the_step_which_resumes_bit_exactly(tmp_path, signum, request):
    # Python's own SIGINT handler, as in a terminal: a shell starts pytest with SIGINT ignored
    # under `&` or nohup, and the trainer rightly leaves an ignored signal ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    full = LinearFit(tmp_path / "full", 30, seed=4, checkpoint_every=100, progress=False)
    full.fit()

    class Signalled(LinearFit):
        def train_step(self, step):
            if step == 11:
                os.kill(os.getpid(), signum)
                os.kill(os.getpid(), signum)  # a launcher forwarding it again: the same stop
            return super().train_step(step)

    cut = Signalled(tmp_path / "cut", 30, seed=4, checkpoint_every=100, progress=False)
    with pytest.raises(TrainingInterrupted, match="holds step 12 of 30") as stopped:
        cut.fit()
    assert stopped.value.exit_code == 128 + signum
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    resumed = LinearFit(tmp_path / "cut", 30, seed=4, checkpoint_every=100, progress=False)
    resumed.resume().fit()
    assert_bit_identical(final_state(resumed), final_state(full))


class TwoRanks:
    """Rank 0 of 2, seen alone: reductions are the identity, ``abort`` is recorded."""

    rank, size = 0, 2

    def __init__(self):
        self.aborted = []

    def allreduce_(self, buffer):
        return buffer

    def abort(self, code=1):
        self.aborted.append(code)


def test_abort_on_error_never_aborts_an_agreed_interrupt_and_never_swallows():
    comm = TwoRanks()
    with pytest.raises(TrainingInterrupted):
        with distributed.abort_on_error(comm):
            raise TrainingInterrupted("stopped at step 3")
    assert comm.aborted == []
    with pytest.raises(ValueError):  # an abort that returns must not turn into success
        with distributed.abort_on_error(comm):
            raise ValueError("a bug")
    assert comm.aborted == [1]


# --- resume extends a finished run ----------------------------------------------------------
def test_extending_a_run_says_why_it_cannot_match_a_longer_one(tmp_path, capsys):
    warmup = ["--set", "warmup_steps=1"]  # the cosine decay, set by the total, from step 1
    run, whole = tmp_path / "run", tmp_path / "whole"
    assert _train(run, 4, *warmup, capsys=capsys)[0] == 0
    status, _, err = _train(run, 6, "--resume", capsys=capsys)
    _one_line(status, err, "minigen: note:", "planned for 4 steps", "learning rate",
              "cannot equal a 6-step run", code=0)
    assert _train(whole, 6, *warmup, capsys=capsys)[0] == 0
    extended, longer = (checkpoint.load(d / "checkpoint.npz") for d in (run, whole))
    assert extended["history"]["lr"] != longer["history"]["lr"]  # what the note says
    assert _train(run, 6, "--resume", capsys=capsys)[2] == ""  # nothing to extend: no note


def test_extending_a_run_within_its_warm_up_equals_the_longer_run(tmp_path, capsys):
    run, whole = tmp_path / "run", tmp_path / "whole"
    assert _train(run, 4, capsys=capsys)[0] == 0
    status, _, err = _train(run, 6, "--resume", capsys=capsys)
    assert status == 0 and err == ""
    assert _train(whole, 6, capsys=capsys)[0] == 0
    a, b = (checkpoint.load(d / "checkpoint.npz") for d in (run, whole))
    assert a["history"] == b["history"] and a["rng"] == b["rng"]
    for name, value in a["model"].items():
        assert np.array_equal(value, b["model"][name]), name


def test_a_run_without_step_tied_schedules_extends_bit_exactly(tmp_path):
    whole = LinearFit(tmp_path / "whole", 40, seed=1, progress=False)
    whole.fit()
    LinearFit(tmp_path / "run", 20, seed=1, progress=False).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResumeNotice)
        extended = LinearFit(tmp_path / "run", 40, seed=1, progress=False).resume()
    extended.fit()
    assert_bit_identical(final_state(extended), final_state(whole))


def test_run_directory_refusals_read_only(tmp_path):
    run = RunDirectory(tmp_path / "new", distributed.SingleProcess())
    run.check_fresh(False, "")
    assert not (tmp_path / "new").exists()
