"""The thread policy minigen sets at import (``minigen.backend.limit_threads`` with
``default_threads``), checked in fresh interpreters: the caps are per process. No timings:
what is checked is the configuration that the measurements in docs/performance.md
("Defaults") found fast, a Numba pool sized to the wished threads, BLAS on one thread."""
import json
import os
import subprocess
import sys

import pytest

from kernels import threads

pytest.importorskip("threadpoolctl")
pytest.importorskip("numba")

PROBE = """
import json, os, sys
first = sys.argv[1]
if first == "torch":
    import torch
    torch.ones(2) @ torch.ones(2)  # loads its libraries and OpenMP runtime
elif first == "numba":
    import numba
    numba.get_num_threads()  # Numba's pool starts before minigen is imported
import minigen as mg
from numba.np.ufunc import parallel
started_at_import = parallel._is_initialized
from kernels import threads
threads.numba_blas()  # loads SciPy's BLAS, the one Numba's numpy.dot calls
import numba, threadpoolctl
info = threadpoolctl.threadpool_info()
print(json.dumps({
    "started_at_import": started_at_import,
    "get_num_threads": mg.get_num_threads(),
    "numba_threads": numba.get_num_threads(),
    "pool": numba.config.NUMBA_NUM_THREADS,
    "layer": numba.threading_layer(),
    "blas": sorted({p["num_threads"] for p in info if p["user_api"] == "blas"}),
    "blas_libraries": len([p for p in info if p["user_api"] == "blas"]),
}))
"""


def probe(first="minigen", **variables):
    """The policy's outcome in a fresh interpreter with only ``variables`` among the
    conventional thread variables and Numba's layer settings (others removed)."""
    env = {k: v for k, v in os.environ.items()
           if k not in threads.THREAD_VARIABLES and not k.startswith(("NUMBA_", "GOMP_", "OMP_"))}
    env.update({k: str(v) for k, v in variables.items()})
    run = subprocess.run([sys.executable, "-c", PROBE, first], env=env, capture_output=True,
                         text=True, check=False)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


CORES = threads.usable_cores()


@pytest.mark.parametrize("variables, expected", [
    ({}, CORES),
    ({"OMP_NUM_THREADS": 1}, 1),
    ({"OMP_NUM_THREADS": 2, "OPENBLAS_NUM_THREADS": 2, "NUMBA_NUM_THREADS": 2,
      "MKL_NUM_THREADS": 2}, min(2, CORES)),
    ({"OPENBLAS_NUM_THREADS": 1}, 1),
    ({"NUMBA_NUM_THREADS": 64}, CORES),
])
def test_import_sizes_numba_pool_to_the_wished_threads_and_puts_blas_on_one(variables, expected):
    """After ``import minigen``: Numba's pool (not yet started, so a fork stays safe) has
    the smallest thread count among the variables set, at most the usable cores; every
    BLAS library, SciPy's loaded later included, runs on one thread; Numba runs on a
    threading layer that sleeps soon after a parallel region (OpenMP with a short spin)."""
    got = probe(**variables)
    assert got["started_at_import"] is False
    assert got["get_num_threads"] == got["numba_threads"] == got["pool"] == expected
    assert got["blas"] == [1] and got["blas_libraries"] >= 1
    assert got["layer"] in ("omp", "workqueue")


def test_policy_holds_with_pytorch_imported_first():
    """PyTorch loads its own OpenMP runtime before minigen: the pool and the BLAS caps are
    the same as without it."""
    pytest.importorskip("torch")
    assert probe("torch") == probe()
    two = {"OMP_NUM_THREADS": 2, "OPENBLAS_NUM_THREADS": 2, "NUMBA_NUM_THREADS": 2}
    got = probe("torch", **two)
    assert got["numba_threads"] == min(2, CORES) and got["blas"] == [1]


def test_a_running_numba_pool_gets_the_wished_count_in_the_importing_thread():
    """Numba's pool already running (started at its full size) cannot shrink: the thread
    that imports minigen uses the wished count."""
    got = probe("numba", OMP_NUM_THREADS=1)
    assert got["started_at_import"] is True
    assert got["numba_threads"] == got["get_num_threads"] == 1
    assert got["blas"] == [1]


def test_wished_threads_reads_the_smallest_valid_variable():
    assert threads.wished_threads({}) == CORES
    assert threads.wished_threads({"MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "3"}) == 1
    assert threads.wished_threads({"OMP_NUM_THREADS": "0", "OPENBLAS_NUM_THREADS": "x"}) == CORES
    assert threads.wished_threads({"OMP_NUM_THREADS": str(CORES + 5)}) == CORES


def test_set_num_threads_changes_the_count_and_rejects_bad_input():
    code = ("import minigen as mg, numba; mg.set_num_threads(1); a = mg.get_num_threads(); "
            "numba.get_num_threads(); mg.set_num_threads(1); print(a, mg.get_num_threads(), "
            "numba.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["1", "1", "1"]
    import minigen as mg

    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="set_num_threads: n must be a positive integer"):
            mg.set_num_threads(bad)


@pytest.mark.parametrize("command", [["sample", "no-such-run", "--out", "x.npy"], ["demo"],
                                     ["train", "ddpm", "--data", "s_curve", "--steps", "1"]])
def test_every_command_takes_threads(command, tmp_path):
    """``--threads N`` is read by every command (here before each fails on its other
    arguments: a missing run, a run directory that is a file) and sets the policy's count."""
    (tmp_path / "taken").write_text("")
    argv = [*command, "--threads", "1", "--out", str(tmp_path / "taken")]
    code = ("import sys, minigen as mg; from minigen import cli; "
            f"status = cli.main({argv!r}); print(status, mg.get_num_threads())")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert run.stdout.split() == ["2", "1"], run.stderr


def test_bench_command_forwards_every_option():
    """``minigen bench --threads 1 --help`` is ``python -m bench --threads 1 --help``."""
    run = subprocess.run([sys.executable, "-m", "minigen", "bench", "--threads", "1", "--help"],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: python -m bench")
