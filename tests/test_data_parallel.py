"""Data-parallel training through the trainers: what a rank other than 0 writes (nothing), and
(marked ``mpi``) ``mpiexec -n 2`` runs of ``minigen train`` and of ``train_ddpm``/``train_gan``
compared with the same run in one process, resumed at another number of processes, and a run
whose rank is killed.

Tolerance. The P = 2 and P = 1 runs draw the same global batches (the random stream is one
stream, bit for bit) and differ only in the order of float32 sums: each rank sums its shard,
then the two partial gradients are added. That moves a gradient by ~1e-7 of its scale per
step (tests/test_distributed.py measures 4e-7); after 50 optimizer steps the parameters, of
order 1, are measured 6e-8..1.2e-7 apart, one or two ulps. ``ATOL`` = 1e-5 leaves room for
50 such perturbations and still fails a wrong shard, weight or reduction by orders of
magnitude. This holds while no ReLU / LeakyReLU pre-activation lies within round-off of 0:
one that does takes the other slope on the other run, and an adversarial game amplifies that
(measured: the default GAN options with Adam, 50 steps on ring8, drifted to 3e-3 after a
pre-activation of 4e-8 in D changed sign at step 7; with SGD and R1, one weight ended 1.1e-5
apart), so the GAN cases use SiLU networks and SGD; the DDPM models (SiLU MLP, UNet) are
smooth and train with Adam."""
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from minigen import checkpoint, distributed
from minigen import data as datasets
from minigen.diffusion.trainer import DDPMTrainer, train_ddpm
from tests import mpi_ranks
from tests.test_distributed import ROOT, mpi_command, needs_mpi

ATOL = 1e-5
RUN_FILES = {"checkpoint.npz", "config.json", "history.json"}


class Replicated:
    """A communicator of ``size`` ranks that all hold this rank's buffer (the sum is size *
    buffer), seen from ``rank``: enough to run one rank's side of a step in one process."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def allreduce_(self, buffer):
        buffer *= self.size
        return buffer


# --- one process ---------------------------------------------------------------------------
def test_only_rank_zero_writes_the_run_directory(tmp_path):
    x = datasets.load_dataset("ring8", seed=0)[:200]
    options = dict(model_config=dict(hidden=(16,), time_dim=8), batch_size=9, figures=False,
                   progress=False, checkpoint_every=1)
    for rank in (1, 0):
        trainer = DDPMTrainer(x, tmp_path / str(rank), 3, comm=Replicated(rank, 2), **options)
        trainer.fit()
        assert trainer.step == 3 and trainer.is_main == (rank == 0)
    assert not (tmp_path / "1").exists()
    assert {p.name for p in (tmp_path / "0").iterdir()} == RUN_FILES


def test_packed_shard_and_weighted_sum():
    one = distributed.SingleProcess()
    assert distributed.packed_shard(10, 1, one) == (slice(0, 10), 1.0)
    # 66 samples in 33 packs of 2 on 2 ranks: 17 packs and 16 packs
    assert distributed.packed_shard(66, 2, Replicated(0, 2)) == (slice(0, 34), 17 / 33)
    assert distributed.packed_shard(66, 2, Replicated(1, 2)) == (slice(34, 66), 16 / 33)
    metrics = {"loss": 0.25, "d_real": 0.5}
    assert distributed.weighted_sum(metrics, 1.0, one) is metrics
    assert distributed.weighted_sum(metrics, 0.5, Replicated(1, 2)) == metrics  # 2 * 0.5 * v
    assert distributed.weighted_sum(metrics, 0.25, Replicated(0, 2)) == {"loss": 0.125,
                                                                         "d_real": 0.25}


def test_minibatch_draws_are_the_rows_of_the_one_process_draw():
    """Each rank's draws (a size of the global batch or of the rank's rows) are its rows of
    what one process draws, in whole groups; the stream advances alike; other sizes are
    plain draws. ``ddpm.loss`` draws t and eps through it."""
    from minigen import backend
    from minigen.minibatch import Minibatch

    def draws(comm, group=2):
        backend.manual_seed(3)
        batch = Minibatch(10, group, comm)
        return [batch.integers(0, 100, size=10), batch.standard_normal((batch.count, 3)),
                batch.uniform(-1, 1, size=(10, 2)), batch.random(7), backend.rng().random()]

    one = draws(distributed.SingleProcess())
    parts = [draws(Replicated(rank, 2)) for rank in (0, 1)]  # 5 packs of 2: 3 and 2
    for i in range(3):
        np.testing.assert_array_equal(np.concatenate([p[i] for p in parts]), one[i])
        assert len(parts[0][i]) == 6
    for i in (3, 4):  # not of the batch's size: the same plain draw on every rank
        np.testing.assert_array_equal(parts[0][i], one[i])
        np.testing.assert_array_equal(parts[1][i], one[i])


class OtherRank:
    """Rank 1 of 2, the other rank contributing ``others`` to every reduction (its logits)."""

    rank, size = 1, 2

    def __init__(self, others):
        self.others = others

    def allreduce_(self, buffer):
        buffer += self.others.astype(buffer.dtype)
        return buffer


@pytest.mark.parametrize("others, chosen", [(+100.0, 0), (-100.0, 2)])
def test_top_k_is_chosen_over_the_global_batch(tmp_path, others, chosen):
    """A batch of 8 on 2 ranks, keep 1/4: the 2 best of 8. When the other rank's 4 fakes are
    all rated better, this rank has none of them and weight 0 (its loss stays finite); when
    they are all worse, it has both, weight 1, and its loss is the mean over its 2 best."""
    from minigen.gan import GANTrainer

    x = datasets.load_dataset("ring8", seed=0)[:64]
    trainer = GANTrainer(x, tmp_path, 1, progress=False, figures=False, batch_size=8, hidden=8,
                         depth=1, comm=OtherRank(np.r_[np.full(4, others), np.zeros(4)]))
    trainer.gan.keep = 0.25
    fake = trainer.generator(trainer.gan.noise(8))
    assert fake.shape == (4, 2)  # this rank's shard
    loss = trainer.gan._generator_loss(fake)
    assert trainer.gan.minibatch.weight == chosen / 2 and np.isfinite(loss.item())
    if chosen:
        logits = trainer.gan.D(fake).numpy()[:, 0].astype(np.float64)
        expected = np.log1p(np.exp(-np.sort(logits)[-2:])).mean()  # nonsaturating
        assert loss.item() == pytest.approx(expected, rel=1e-5)


# --- two ranks under MPI -------------------------------------------------------------------
def train_cli(ranks, *args, timeout=120):
    """``mpiexec -n ranks python -m minigen train *args``; asserts it succeeded."""
    argv, env = mpi_command(ranks, "-m", "minigen", "train", *args, "--quiet", "--no-figures")
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                            cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def train_runner(ranks, out, spec, timeout=120):
    """``train_ddpm``/``train_gan`` on ``ranks`` ranks (tests/mpi_ranks.py train)."""
    argv, env = mpi_command(ranks, ROOT / "tests" / "mpi_ranks.py", "train", out,
                            json.dumps(spec))
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr


def assert_same_run(a, b, parts):
    """The runs in directories ``a`` and ``b`` agree: the step, the random stream (exactly)
    and the tensors of ``parts`` of their checkpoints (to ``ATOL`` times the tensor's largest
    entry, at least 1: optimizer moments are on the scale of the gradients)."""
    saved_a, saved_b = (checkpoint.load(os.path.join(d, "checkpoint.npz")) for d in (a, b))
    assert saved_a["step"] == saved_b["step"] and saved_a["rng"] == saved_b["rng"]
    np.testing.assert_allclose(saved_a["history"]["step"], saved_b["history"]["step"])
    for part in parts:
        flat_a, flat_b = flatten(saved_a[part], part), flatten(saved_b[part], part)
        assert flat_a.keys() == flat_b.keys()
        for key, value in flat_a.items():
            if value.dtype.kind in "fiu":
                scale = max(1.0, float(np.abs(value).max(initial=0)))  # moments: grad scale
                np.testing.assert_allclose(flat_b[key], value, rtol=0, atol=ATOL * scale,
                                           err_msg=key)
            else:
                assert np.array_equal(flat_b[key], value), key


def flatten(state, prefix):
    """{path: array} of the numbers in a nested state dict (parameters, moments, counters)."""
    if isinstance(state, dict):
        return {k: v for name, sub in state.items() for k, v in
                flatten(sub, f"{prefix}/{name}").items()}
    return {prefix: np.asarray(state)}


def single(kind, out, spec):
    """The run of ``spec`` in this process (``distributed.SingleProcess``)."""
    return mpi_ranks.train_run(distributed.SingleProcess(), str(out), json.dumps(
        {"kind": kind, **spec}))


@needs_mpi
@pytest.mark.mpi
@pytest.mark.parametrize("batch", [64, 63])  # 63: uneven shards of 32 and 31, weighted
def test_ddpm_mlp_on_two_ranks_matches_one_process(tmp_path, batch):
    train_cli(2, "ddpm", "--data", "ring8", "--steps", "50", "--batch-size", str(batch),
              "--checkpoint-every", "25", "--out", tmp_path / "two")
    one = single("ddpm", tmp_path / "one", dict(data="ring8", steps=50, batch_size=batch,
                                                checkpoint_every=25))
    assert_same_run(tmp_path / "one", tmp_path / "two", ["model", "ema"])
    history = json.loads((tmp_path / "two" / "history.json").read_text())
    np.testing.assert_allclose(history["loss"], one.history["loss"], rtol=1e-5)
    assert {p.name for p in (tmp_path / "two").iterdir()} == RUN_FILES
    assert (json.loads((tmp_path / "two" / "config.json").read_text())
            == json.loads((tmp_path / "one" / "config.json").read_text()))


@needs_mpi
@pytest.mark.mpi
def test_unet_ddpm_on_digits_two_ranks_match_one_process(tmp_path):
    pytest.importorskip("sklearn")
    train_cli(2, "ddpm", "--data", "digits", "--steps", "3", "--batch-size", "16",
              "--out", tmp_path / "two")
    single("ddpm", tmp_path / "one", dict(data="digits", steps=3, batch_size=16))
    assert_same_run(tmp_path / "one", tmp_path / "two", ["model", "ema"])


GAN_CASES = {
    # top-k on a 200-point set (kept fraction down to 0.85: the global top-k over both
    # ranks' logits), PacGAN packs of 2, 66 samples = 33 packs split 17 / 16
    "top_k_pack_uneven": dict(lr=0.05, pack=2, batch_size=66, top_k=0.5, top_k_until=1.0),
    "wgan_gp_simultaneous": dict(lr=0.01, loss="wasserstein", penalty="wgan-gp",
                                 simultaneous=True, batch_size=64),
    "r1_k2": dict(lr=0.05, penalty="r1", k=2, batch_size=64),
}
"""SGD and SiLU networks: no kinks and no Adam normalisation of near-zero gradients, the two
ways round-off can be amplified beyond round-off (see the module docstring)."""


@needs_mpi
@pytest.mark.mpi
@pytest.mark.parametrize("case", list(GAN_CASES))
def test_gan_on_two_ranks_matches_one_process(tmp_path, case):
    data = tmp_path / "ring8.npy"
    np.save(data, datasets.load_dataset("ring8", seed=0)[:200])
    spec = dict(data=str(data), steps=50, optimizer="sgd", activation="silu", hidden=[64, 64],
                **GAN_CASES[case])
    train_runner(2, tmp_path / "two", {"kind": "gan", **spec})
    one = single("gan", tmp_path / "one", spec)
    if case == "top_k_pack_uneven":
        assert int(one.kept_fraction(49) * 33) < 30
    assert_same_run(tmp_path / "one", tmp_path / "two",
                    ["generator", "discriminator", "g_optimizer", "d_optimizer"])


@needs_mpi
@pytest.mark.mpi
def test_resume_at_another_number_of_processes(tmp_path):
    """20 steps on 2 ranks resumed to 40 on one, and the other way round, against 40 steps on
    one process (all inside the 100-step warm-up, whose lr does not depend on the total)."""
    spec = dict(data="ring8", batch_size=64, checkpoint_every=20)
    single("ddpm", tmp_path / "whole", dict(steps=40, **spec))
    args = ["ddpm", "--data", "ring8", "--batch-size", "64", "--checkpoint-every", "20"]

    train_cli(2, *args, "--steps", "20", "--out", tmp_path / "two_then_one")
    resumed = single("ddpm", tmp_path / "two_then_one", dict(steps=40, resume=True, **spec))
    assert resumed.step == 40

    single("ddpm", tmp_path / "one_then_two", dict(steps=20, **spec))
    train_cli(2, *args, "--steps", "40", "--resume", "--out", tmp_path / "one_then_two")
    for split in ("two_then_one", "one_then_two"):
        assert_same_run(tmp_path / "whole", tmp_path / split, ["model", "ema"])


def descendants(pid):
    """The process ids below ``pid`` (Linux /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (ValueError, OSError):
            continue
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def rank_of(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            variables = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
    except OSError:
        return None
    rank = variables.get(b"PMI_RANK")
    return None if rank is None else int(rank)


@needs_mpi
@pytest.mark.mpi
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the ranks through /proc")
def test_a_killed_rank_ends_the_job_and_the_last_checkpoint_resumes(tmp_path):
    out = tmp_path / "run"
    argv, env = mpi_command(2, "-m", "minigen", "train", "ddpm", "--data", "ring8", "--steps",
                            "100000", "--batch-size", "64", "--checkpoint-every", "10",
                            "--quiet", "--no-figures", "--out", out)
    job = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "checkpoint.npz").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (out / "checkpoint.npz").exists(), "no checkpoint within 60 s"
        time.sleep(1.0)  # a few more checkpoints: the kill may land in the middle of one
        victim = [p for p in descendants(job.pid) if rank_of(p) == 1 and
                  os.path.basename(os.readlink(f"/proc/{p}/exe")).startswith("python")]
        assert victim, "rank 1 not found"
        os.kill(victim[0], signal.SIGKILL)
        output, _ = job.communicate(timeout=30)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    assert job.returncode != 0, output
    saved = checkpoint.load(out / "checkpoint.npz")
    step = int(saved["step"])
    assert step >= 10 and step % 10 == 0 and len(saved["history"]["step"]) == step
    resumed = train_ddpm("ring8", step + 5, out, resume=True, progress=False, figures=False,
                         checkpoint_every=10)
    assert resumed.step == step + 5


@needs_mpi
@pytest.mark.mpi
def test_an_error_under_mpiexec_ends_the_job_with_the_ranks_message(tmp_path):
    single("gan", tmp_path, dict(data="ring8", steps=1))
    argv, env = mpi_command(2, "-m", "minigen", "train", "ddpm", "--data", "ring8", "--steps",
                            "2", "--resume", "--quiet", "--out", tmp_path)
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode != 0
    assert "of 2 failed, aborting all ranks" in result.stderr, (
        result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "holds a 'gan' run, not a 'ddpm' run" in result.stderr


@needs_mpi
@pytest.mark.mpi
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the ranks through /proc")
@pytest.mark.parametrize("signum, target", [(signal.SIGINT, "job"), (signal.SIGTERM, "job"),
                                            (signal.SIGINT, "rank 1")])
def test_a_stop_signal_to_the_job_saves_the_agreed_step_on_every_rank(tmp_path, signum, target):
    """Ctrl-C in a terminal (SIGINT to the launcher's process group, which forwards it to the
    ranks), a scheduler's SIGTERM, or a signal to one rank alone: the ranks agree on one
    step, rank 0 saves it, the job exits 128 + signal, and the one message names the step
    that is on disk."""
    out = tmp_path / "run"
    argv, env = mpi_command(2, "-m", "minigen", "train", "ddpm", "--data", "s_curve", "--steps",
                            "4000", "--batch-size", "64", "--quiet", "--no-figures", "--out", out)
    job = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "config.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (out / "config.json").exists(), "the run did not start within 60 s"
        time.sleep(1.0)
        if target == "job":
            os.killpg(job.pid, signum)
        else:
            os.kill(next(p for p in descendants(job.pid) if rank_of(p) == 1 and os.path.basename(
                os.readlink(f"/proc/{p}/exe")).startswith("python")), signum)
        _, err = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    assert job.returncode == 128 + signum, err
    step = int(checkpoint.load(out / "checkpoint.npz")["step"])
    name = signal.Signals(signum).name
    assert err.count(f"interrupted ({name}): {out / 'checkpoint.npz'} holds step {step} of "
                     "4000") == 1, err
    assert "Traceback" not in err and "aborting" not in err, err
    assert sorted(os.listdir(out)) == sorted(RUN_FILES)  # no temporary file, no lock left
    resumed = train_ddpm("s_curve", step + 2, out, resume=True, progress=False, figures=False)
    assert resumed.step == step + 2
