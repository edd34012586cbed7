"""Data parallelism: the single-process communicator, shard arithmetic, flat buckets, and
(marked ``mpi``) two-rank runs under ``mpiexec`` compared with one process."""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigen as mg
from minigen import backend, distributed, nn
from tests import mpi_ranks

ROOT = Path(__file__).resolve().parents[1]
EPS32 = np.finfo(np.float32).eps


# --- single process ----------------------------------------------------------------------
def without_launcher(monkeypatch):
    for name in distributed.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(distributed, "_world", None)


def test_world_without_launcher_is_single_process(monkeypatch):
    without_launcher(monkeypatch)
    comm = distributed.world()
    assert isinstance(comm, distributed.SingleProcess)
    assert (comm.rank, comm.size) == (0, 1) and distributed.is_main()
    buffer = np.arange(5.0)
    assert comm.allreduce_(buffer) is buffer and comm.broadcast_(buffer) is buffer
    assert np.array_equal(buffer, np.arange(5.0))
    assert distributed.on_main(lambda a, b=0: a + b, 1, b=2) == 3


def test_importing_minigen_never_imports_mpi4py():
    env = {k: v for k, v in os.environ.items() if k not in distributed.LAUNCHER_VARIABLES}
    env["PYTHONPATH"] = str(ROOT)
    code = ("import sys, minigen; from minigen import distributed; distributed.world(); "
            "assert 'mpi4py' not in sys.modules, 'mpi4py imported'")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_launcher_without_mpi4py_names_the_extra(monkeypatch):
    without_launcher(monkeypatch)
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # makes "from mpi4py import MPI" fail
    with pytest.raises(RuntimeError, match=r"mpi4py is not installed.*minigen\[mpi\]"):
        distributed.world()


def test_launched_by_mpi_reads_the_launchers_variables():
    assert not distributed.launched_by_mpi({"SLURM_PROCID": "0", "HOME": "/root"})
    for name in ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE"):
        assert distributed.launched_by_mpi({name: "0"})


def test_single_process_collectives_leave_parameters_and_gradients_alone():
    comm = distributed.SingleProcess()
    model = nn.MLP(2, 2, hidden=(4,))
    grads = {}
    for name, p in model.named_parameters():
        p.grad = np.full(p.shape, 0.5, dtype=p.dtype)
        grads[name] = p.grad
    before = {name: p.data.copy() for name, p in model.named_parameters()}
    distributed.allreduce_gradients(model, comm)
    distributed.broadcast_parameters(model, comm)
    for name, p in model.named_parameters():
        assert p.grad is grads[name] and np.array_equal(p.data, before[name])


def test_abort_on_error_reraises_in_a_single_process():
    with pytest.raises(ValueError, match="boom"):
        with distributed.abort_on_error(distributed.SingleProcess()):
            raise ValueError("boom")


# --- shards --------------------------------------------------------------------------------
@pytest.mark.parametrize("size", range(1, 8))
def test_shards_partition_the_global_batch(size):
    for n in range(size, 40):
        slices = [distributed.shard(n, rank, size) for rank in range(size)]
        assert [i for s in slices for i in range(n)[s]] == list(range(n))
        lengths = [s.stop - s.start for s in slices]
        assert lengths == sorted(lengths, reverse=True) and lengths[0] - lengths[-1] <= 1
        shares = [distributed.share(n, rank, size) for rank in range(size)]
        assert shares == [length / n for length in lengths]
        assert sum(shares) == pytest.approx(1.0)


def test_shard_uneven_example():
    assert [distributed.shard(10, r, 4) for r in range(4)] == [
        slice(0, 3), slice(3, 6), slice(6, 8), slice(8, 10)]


def test_shard_refuses_fewer_examples_than_ranks_and_bad_ranks():
    with pytest.raises(ValueError, match="3 examples cannot give each of 4 ranks"):
        distributed.shard(3, 0, 4)
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\), got 2"):
        distributed.shard(8, 2, 2)


def test_weighted_shard_gradients_sum_to_the_full_batch_mean_gradient():
    """The identity behind uneven shards, checked with autograd in float64: sum_r share_r *
    grad(mean loss on shard r) = grad(mean loss on the whole batch)."""
    mg.manual_seed(0)
    model = nn.MLP(2, 1, hidden=(8,), dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((11, 2))

    def grads(rows):
        model.zero_grad()
        (model(mg.tensor(x[rows])) ** 2).mean().backward()
        return [p.grad.copy() for p in model.parameters()]

    full = grads(slice(None))
    size = 3
    parts = [grads(distributed.shard(11, r, size)) for r in range(size)]
    for i, g in enumerate(full):
        combined = sum(distributed.share(11, r, size) * parts[r][i] for r in range(size))
        np.testing.assert_allclose(combined, g, rtol=1e-12, atol=1e-15)


# --- buckets -------------------------------------------------------------------------------
def mixed_arrays():
    rng = np.random.default_rng(0)
    return [
        rng.standard_normal((3, 4)).astype(np.float32),  # 48 bytes
        rng.standard_normal(5),                          # float64, 40 bytes
        np.float32(2.5) * np.ones((), np.float32),        # 0-d, 4 bytes
        rng.standard_normal((2, 2, 2)).astype(np.float32),  # 32 bytes
        rng.standard_normal(100).astype(np.float32),     # 400 bytes: larger than a bucket
        rng.standard_normal((1, 3)),                     # float64, 24 bytes
        rng.standard_normal(2).astype(np.float32),       # 8 bytes
    ]


def test_buckets_group_by_dtype_and_respect_the_byte_limit():
    arrays = mixed_arrays()
    assert distributed.buckets(arrays, bucket_bytes=64) == [[0, 2], [1, 5], [3], [4], [6]]
    assert distributed.buckets(arrays, bucket_bytes=10**6) == [[0, 2, 3, 4, 6], [1, 5]]
    assert distributed.buckets(arrays, bucket_bytes=1) == [[i] for i in range(len(arrays))]
    with pytest.raises(ValueError, match="bucket_bytes must be >= 1"):
        distributed.buckets(arrays, bucket_bytes=0)


@pytest.mark.parametrize("bucket_bytes", [1, 40, 52, 64, 500, 10**6])
def test_pack_unpack_round_trip_is_exact(bucket_bytes):
    arrays = mixed_arrays()
    for bucket in distributed.buckets(arrays, bucket_bytes):
        parts = [arrays[i] for i in bucket]
        buffer = distributed.pack(parts)
        assert buffer.ndim == 1 and buffer.dtype == parts[0].dtype
        assert buffer.size == sum(a.size for a in parts)
        views = distributed.unpack(buffer, [a.shape for a in parts])
        for a, v in zip(parts, views):
            assert v.shape == a.shape and v.dtype == a.dtype and np.array_equal(v, a)
            assert np.shares_memory(v, buffer)
        scaled = distributed.unpack(distributed.pack(parts, scale=0.25),
                                    [a.shape for a in parts])
        for a, v in zip(parts, scaled):
            assert np.array_equal(v, a * a.dtype.type(0.25))


def test_unpack_checks_the_element_count():
    with pytest.raises(ValueError, match="shapes hold 6 elements, the buffer 7"):
        distributed.unpack(np.zeros(7), [(2, 3)])


class Replicated:
    """A communicator of ``size`` ranks that all hold this rank's buffer: the sum is
    size * buffer. Counts the reductions."""

    rank = 0

    def __init__(self, size):
        self.size, self.calls = size, []

    def allreduce_(self, buffer):
        self.calls.append((buffer.dtype, buffer.size))
        buffer *= self.size
        return buffer


def test_allreduce_gradients_one_reduction_per_bucket_and_none_stays_none():
    mg.manual_seed(0)
    model = nn.MLP(3, 2, hidden=(8, 8))
    params = model.parameters()
    rng = np.random.default_rng(0)
    for p in params[1:]:
        p.grad = rng.standard_normal(p.shape).astype(np.float32)
    params[0].grad = None  # no gradient on any rank
    expected = [p.grad.copy() for p in params[1:]]
    comm = Replicated(size=4)
    distributed.allreduce_gradients(model, comm, bucket_bytes=128)
    assert params[0].grad is None
    for p, g in zip(params[1:], expected):
        assert np.array_equal(p.grad, g)  # (g / 4) * 4: exact in binary
    # one reduction of the 6 has-gradient flags, then one per bucket of <= 128 bytes:
    # weight 0 + bias 1 (96 + 32 bytes), weight 1 (256), bias 2 + weight 2 (8 + 64)
    assert [n for _, n in comm.calls] == [6, 24 + 8, 64, 2 + 16]


# --- two ranks under MPI -------------------------------------------------------------------
MPIEXEC = shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
    reason="needs mpiexec and mpi4py (pip install -e '.[mpi]')",
)


def mpi_command(ranks, *args):
    """(argv, env) that run ``python *args`` on ``ranks`` ranks with this checkout's minigen."""
    env = {k: v for k, v in os.environ.items() if k not in distributed.LAUNCHER_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    return [MPIEXEC, "-n", str(ranks), sys.executable, *map(str, args)], env


def mpiexec(ranks, *args, timeout=60):
    argv, env = mpi_command(ranks, ROOT / "tests" / "mpi_ranks.py", *args)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """The ``compare`` cases run by 2 ranks (saved by rank 0) and by one process here."""
    out = tmp_path_factory.mktemp("mpi") / "two_ranks.npz"
    result = mpiexec(2, "compare", str(out))
    assert result.returncode == 0, result.stderr
    with np.load(out) as saved:
        parallel = dict(saved)
    assert parallel.pop("broadcast_spread") == 0  # ranks initialised apart, equal after it
    single = mpi_ranks.flatten(
        {case: run(distributed.SingleProcess()) for case, run in mpi_ranks.CASES.items()})
    assert parallel.keys() == single.keys()
    return parallel, single


def case(results, name):
    return {k: a for k, a in results.items() if k.startswith(name + "/")}


@needs_mpi
@pytest.mark.mpi
@pytest.mark.parametrize("name, rtol", [
    # float32: reordering a sum of B = 63..64 terms moves it by at most ~B eps Σ|terms|;
    # 1e-5 of each tensor's largest entry is ~B eps (measured: 4e-7)
    ("grad_f32_even", 1e-5), ("grad_f32_uneven", 1e-5),
    # float64: the same algebra, round-off ~1e-16 (measured: 9e-16)
    ("grad_f64_uneven", 1e-13),
])
def test_two_rank_gradient_equals_the_full_batch_gradient(two_ranks, name, rtol):
    parallel, single = two_ranks
    for key, g in case(single, name).items():
        assert np.abs(parallel[key] - g).max() <= rtol * np.abs(g).max(), key


@needs_mpi
@pytest.mark.mpi
@pytest.mark.parametrize("name", ["train_sgd", "train_adam"])
def test_fifty_steps_on_two_ranks_match_one_process(two_ranks, name):
    """Parameters of order 1 after 50 steps: each step's gradient differs by float32
    round-off (~1e-7 relative), 50 such perturbations stay below 1e-5 unless the run
    diverges from the single-process one (measured: 1.2e-7, one ulp at 1)."""
    parallel, single = two_ranks
    for key, p in case(single, name).items():
        np.testing.assert_allclose(parallel[key], p, rtol=0, atol=1e-5, err_msg=key)
    first = next(iter(case(single, name)))
    assert not np.allclose(single[first], mpi_ranks.denoiser(np.float32).layers[0].bias.data)


@needs_mpi
@pytest.mark.mpi
def test_a_failing_rank_ends_the_job_with_its_message(tmp_path):
    result = mpiexec(2, "fail", str(tmp_path / "unused.npz"), timeout=30)
    assert result.returncode != 0
    assert "rank 1 of 2 failed, aborting all ranks" in result.stderr, (
        result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "RuntimeError: rank 1 failed on purpose" in result.stderr


# --- NCCL, one GPU -------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not mg.cuda_available(), reason="needs CuPy and a CUDA GPU")
def test_nccl_on_one_rank_reduces_and_broadcasts_cupy_buffers():
    cp = backend.cupy()
    comm = distributed.NCCLCommunicator(distributed.SingleProcess())
    mg.manual_seed(0)
    model = nn.MLP(2, 2, hidden=(4,), device="cuda")
    for p in model.parameters():
        p.grad = cp.full(p.shape, 3.0, dtype=p.dtype)
    distributed.allreduce_gradients(model, comm, weight=0.5)
    for p in model.parameters():
        assert np.array_equal(backend.to_numpy(p.grad), np.full(p.shape, 1.5, np.float32))
    buffer = cp.arange(4, dtype=cp.float64)
    assert np.array_equal(backend.to_numpy(comm.broadcast_(buffer)), np.arange(4.0))
    with pytest.raises(TypeError, match="buffers must be CuPy arrays"):
        comm.allreduce_(np.zeros(3, np.float32))
