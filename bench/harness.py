"""The measuring machinery: the columns of the table, the kernel switch, the timer.

A column is one way to run a workload: minigen on NumPy or CuPy with the reference or the
Numba kernels, PyTorch on CPU or CUDA, or a from-scratch peer (:mod:`bench.peers`). Columns that cannot run here report why ("n/a: no
GPU") instead of failing. Timings are medians of ``reps`` runs after ``warmup`` runs, all in
this process, the columns of a workload timed round-robin (``measure_interleaved``); on a
GPU the device is synchronised before every clock read, so a run's time includes its queued
kernels.
"""
import collections
import contextlib
import os
import statistics
import time
from dataclasses import dataclass

import kernels
from bench import peers
from minigen import backend


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    framework: str  # "minigen", "torch" or one of the peers (bench.peers.FRAMEWORKS)
    device: str  # "cpu" or "cuda"
    kernels: str = "auto"  # MINIGEN_KERNELS while a minigen column runs: "reference" or "auto"

    @property
    def baseline(self):
        """The column this one's ratio is taken against (PyTorch on the same device)."""
        return None if self.framework == "torch" else f"torch-{self.device}"


COLUMNS = (
    Column("numpy-ref", "minigen NumPy (reference kernels)", "minigen", "cpu", "reference"),
    Column("numba-cpu", "minigen NumPy + Numba-CPU kernels", "minigen", "cpu", "auto"),
    Column("cupy-ref", "minigen CuPy (reference kernels)", "minigen", "cuda", "reference"),
    Column("cupy-numba-cuda", "minigen CuPy + Numba-CUDA kernels", "minigen", "cuda", "auto"),
    Column("torch-cpu", "PyTorch CPU", "torch", "cpu"),
    Column("torch-cuda", "PyTorch CUDA", "torch", "cuda"),
    Column("dezero", "DeZero", "dezero", "cpu"),
    Column("tinygrad", "tinygrad CPU", "tinygrad", "cpu"),
    Column("jax-cpu", "JAX CPU (jit)", "jax", "cpu"),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)

# The fused kernels that minigen calls through ``kernels.<name>`` (counted per workload).
KERNEL_NAMES = ("q_sample", "p_sample_step", "conv2d", "conv2d_grad_input", "conv2d_grad_weight",
                "adam_update", "adam_update_many")


def torch_module():
    try:
        import torch
    except ImportError:
        return None
    return torch


def unavailable(column, workload=None):
    """Why ``column`` cannot run (workload ``workload``) on this machine ("n/a: ..."), or
    None when it can."""
    if column.framework in peers.FRAMEWORKS:
        return peers.unavailable(column.framework, workload)
    if column.framework == "torch":
        torch = torch_module()
        if torch is None:
            return "n/a: torch not installed"
        if column.device == "cuda" and not torch.cuda.is_available():
            return "n/a: no GPU"
        return None
    if column.device == "cuda" and not backend.cuda_available():
        return "n/a: no GPU"
    if column.kernels == "auto":
        flavour = "cuda" if column.device == "cuda" else "cpu"
        if not kernels.available()[flavour]:
            return f"n/a: Numba-{flavour.upper()} not available"
    return None


@contextlib.contextmanager
def kernel_mode(mode):
    """Run the block with ``MINIGEN_KERNELS`` set to ``mode`` ("reference") or unset ("auto").

    The kernels package reads the variable at call time, so this switches every dispatch
    inside the block; the previous value is restored afterwards.
    """
    previous = os.environ.get("MINIGEN_KERNELS")
    if mode == "reference":
        os.environ["MINIGEN_KERNELS"] = "reference"
    else:
        os.environ.pop("MINIGEN_KERNELS", None)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MINIGEN_KERNELS", None)
        else:
            os.environ["MINIGEN_KERNELS"] = previous


def synchronizer(column):
    """A function that waits for the column's device to finish its queued work."""
    if column.device != "cuda":
        return lambda: None
    if column.framework == "torch":
        return torch_module().cuda.synchronize
    return backend.cupy().cuda.Device().synchronize


def summarize(times, warmup):
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "reps": len(times), "warmup": warmup, "times_s": list(times)}


def timed_call(step, sync):
    """Seconds taken by one call of ``step``, its device work included."""
    start = time.perf_counter()
    step()
    sync()
    return time.perf_counter() - start


def measure(step, reps, warmup, sync):
    """Timing summary of ``reps`` calls of ``step`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    sync()
    return summarize([timed_call(step, sync) for _ in range(reps)], warmup)


def measure_interleaved(runs, reps, on_error):
    """Time several ready (warmed-up) runs of one workload round-robin: repetition i times
    every run once, in alternating order, so that a change in the machine's load hits all
    columns alike and their ratios stay meaningful on a shared machine.

    ``runs``: {key: (step, sync, kernels_mode)}. A run that raises is dropped from the
    rotation and reported through ``on_error(key, exception)``. Returns {key: [seconds]}.
    """
    times = {key: [] for key in runs}
    active = list(runs)
    for i in range(reps):
        for key in list(active if i % 2 == 0 else active[::-1]):
            step, sync, mode = runs[key]
            try:
                with kernel_mode(mode):
                    times[key].append(timed_call(step, sync))
            except Exception as error:  # noqa: BLE001 (reported, the other columns go on)
                on_error(key, error)
                active.remove(key)
                del times[key]
    return times


@contextlib.contextmanager
def count_kernel_calls():
    """Count the calls of the fused kernels (``kernels.<name>``) made inside the block.

    minigen calls them as attributes of the ``kernels`` module, so wrapping those attributes
    sees every call; the originals are restored on exit.
    """
    calls = collections.Counter()
    originals = {name: getattr(kernels, name) for name in KERNEL_NAMES if hasattr(kernels, name)}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            if name == "adam_update_many":  # counted as its per-parameter updates
                calls["adam_update"] += len(args[0])
            else:
                calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    for name, fn in originals.items():
        setattr(kernels, name, counted(name, fn))
    try:
        yield calls
    finally:
        for name, fn in originals.items():
            setattr(kernels, name, fn)
