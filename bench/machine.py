"""What the numbers were measured on: CPU, cores, load, thread settings, library versions.

Benchmarks on a shared machine are only comparable with their context, so every result file
and table header carries this description. ``set_threads`` applies ``--threads`` to every
thread pool that does work here: BLAS/OpenMP (through threadpoolctl), Numba and PyTorch.
"""
import os
import platform

import numpy as np


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average():
    """The 1, 5 and 15 minute load averages, or None where the OS has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def set_threads(n):
    """Give minigen (:func:`minigen.backend.limit_threads`: Numba and OpenMP ``n``, BLAS 1),
    PyTorch and the peers ``n`` threads for the rest of the process. Returns notes about
    pools that could not be limited (empty when all were)."""
    from minigen import backend

    notes = backend.limit_threads(n)
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(n)
    from bench import peers

    peers.set_threads(n)
    return notes


def blas_pools():
    """The native thread pools NumPy (and PyTorch) loaded, as threadpoolctl reports them."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    keep = ("user_api", "internal_api", "version", "num_threads", "threading_layer", "filepath")
    return [{k: p[k] for k in keep if k in p} for p in threadpool_info()]


def describe(threads=None):
    """A JSON-ready description of the machine and the thread settings in force."""
    info = {
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "os_cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "threads_requested": threads,
        "thread_env": {k: os.environ[k] for k in
                       ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                        "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY",
                        "GOMP_SPINCOUNT") if k in os.environ},
        "blas": blas_pools(),
    }
    try:
        import numba

        info["numba"] = numba.__version__
        info["numba_threads"] = numba.get_num_threads()
    except ImportError:
        info["numba"] = None
    torch = _torch()
    info["torch"] = None if torch is None else torch.__version__
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        info["torch_cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    from minigen import backend

    cp = backend.cupy()
    info["cupy"] = None if cp is None else cp.__version__
    if cp is not None:
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return info


def summary_line(info):
    """One line for the table header: CPU, cores, threads, BLAS, library versions."""
    blas = info["blas"]
    if isinstance(blas, list):
        blas = ", ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} thr)"
                         for p in blas if p.get("user_api") == "blas") or "none found"
    parts = [f"{info['cpu']}, {info['cores']} cores", f"NumPy {info['numpy']} (BLAS: {blas})"]
    if info.get("numba"):
        parts.append(f"Numba {info['numba']} ({info['numba_threads']} thr)")
    if info.get("torch"):
        parts.append(f"PyTorch {info['torch']} ({info['torch_threads']} thr)")
    if info.get("gpu"):
        parts.append(f"GPU {info['gpu']} (CuPy {info['cupy']})")
    return "; ".join(parts)
