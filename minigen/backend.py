"""Array backend: which array module (NumPy or CuPy) holds the data, devices and RNGs.

Every op finds its array module from the arrays it is given (``xp_of``), never from a global
flag, so CPU and GPU tensors can live side by side. CuPy is optional: it is imported on first
use and its absence only matters when a ``"cuda"`` device is asked for.
"""
import warnings

import numpy as np

_cupy = None
_cupy_checked = False


def cupy():
    """The ``cupy`` module, or None when it is not installed or no GPU is usable."""
    global _cupy, _cupy_checked
    if not _cupy_checked:
        _cupy_checked = True
        try:
            import cupy as cp

            cp.cuda.runtime.getDeviceCount()
            _cupy = cp
        except Exception:  # ImportError, or CUDA driver/runtime errors without a GPU
            _cupy = None
    return _cupy


def cuda_available():
    return cupy() is not None


def _unwrap(a):
    """The raw array of a Tensor; arrays pass through (a CuPy array's own ``.data`` is its
    memory pointer, so arrays are recognised by their array interfaces first)."""
    if hasattr(a, "__array_interface__") or hasattr(a, "__cuda_array_interface__"):
        return a
    return getattr(a, "data", a)


def xp_of(*arrays):
    """The array module of the given arrays (Tensors are unwrapped); NumPy by default."""
    for a in arrays:
        if type(a) is not np.ndarray and type(_unwrap(a)).__module__.startswith("cupy"):
            return cupy()
    return np


def device_of(array):
    return "cuda" if type(array).__module__.startswith("cupy") else "cpu"


def xp_for(device):
    """Array module for a device name; a clear error when CUDA is asked for but missing."""
    if device in (None, "cpu"):
        return np
    if device in ("cuda", "gpu") or str(device).startswith("cuda"):
        cp = cupy()
        if cp is None:
            raise RuntimeError(
                "device 'cuda' requested but CuPy with a working GPU is not available "
                "(install the extra: pip install 'minigen[gpu]')"
            )
        return cp
    raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")


def device(name):
    """PyTorch's ``torch.device(name)`` as minigen's device string: 'cpu' or 'cuda' ('cuda:0'
    and 'gpu' name the GPU). Checks the name only; using 'cuda' needs CuPy and a GPU."""
    name = str(name)
    if name == "cpu":
        return "cpu"
    if name in ("cuda", "gpu") or name.startswith("cuda:"):
        return "cuda"
    raise ValueError(f"unknown device {name!r}: expected 'cpu' or 'cuda'")


def normalize_device(device):
    return "cpu" if device in (None, "cpu") else ("cuda" if xp_for(device) is not np else "cpu")


def to_device(array, device):
    """Copy ``array`` to ``device`` (a no-op when it is already there)."""
    if normalize_device(device) == device_of(array):
        return array
    if device_of(array) == "cuda":
        return array.get()
    return xp_for(device).asarray(array)


def to_numpy(array):
    """A NumPy array of ``array`` (a Tensor, CuPy or NumPy array), copied from the GPU."""
    array = _unwrap(array)
    return array.get() if device_of(array) == "cuda" else np.asarray(array)


# --- random numbers: one Generator per device, reseeded together by manual_seed ---------
_rngs = {}
_seed = None


def manual_seed(seed):
    """Seed every random number minigen draws (parameters init, noise, dropout, batches)."""
    global _seed
    _seed = int(seed)
    _rngs.clear()


def rng(device="cpu"):
    """The Generator of ``device`` (NumPy's on the CPU, CuPy's on the GPU)."""
    device = normalize_device(device)
    if device not in _rngs:
        xp = xp_for(device)
        _rngs[device] = xp.random.default_rng(_seed)
    return _rngs[device]


def get_rng_state():
    """Picklable state of the CPU generator (for exact resume)."""
    return rng("cpu").bit_generator.state


def set_rng_state(state):
    rng("cpu").bit_generator.state = state


MMAP_THRESHOLD = 32 << 20
"""Allocations below this size come from glibc's heap after ``keep_freed_memory`` (32 MiB:
glibc's largest dynamic threshold), so their pages are reused instead of mapped afresh."""
TRIM_THRESHOLD = 1 << 30
"""Free memory at the top of a glibc heap that is kept rather than returned (1 GiB)."""


def keep_freed_memory():
    """Keep freed array memory in the process (glibc's ``mallopt``), so that the next array
    reuses pages already mapped instead of faulting in new ones. A UNet training step frees
    and allocates hundreds of arrays of a few MiB, many inside Numba's worker threads, whose
    glibc arenas otherwise hand memory back to the system after a free, so that it comes
    back as page faults (measured in docs/history.md#what-was-tried). The price: the process
    keeps its peak memory.
    Returns whether the settings were taken (False where the C library has no mallopt)."""
    import ctypes

    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the process runs on
    except (AttributeError, OSError, TypeError):  # not glibc (macOS, Windows)
        return False
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(
        mallopt(m_trim_threshold, TRIM_THRESHOLD))


def limit_threads(n):
    """Use ``n`` threads for the rest of the process: Numba's parallel kernels and the native
    OpenMP pools get ``n``, BLAS gets one (:func:`kernels.threads.set_threads`), and freed
    memory stays in the process (:func:`keep_freed_memory`). minigen's CPU kernels spread
    their work over the ``n`` threads themselves (per image, and stacks of GEMMs split
    across threads, :mod:`kernels.threads`); the remaining products are small (at most a
    few hundred rows wide), where a threaded BLAS gains little and its spin-waiting pool
    stalls the other threads as soon as the cores are shared
    (docs/history.md#threads-and-oversubscription). The BLAS cap needs ``threadpoolctl`` (a
    dependency). Returns notes on what could not be capped (empty when all was)."""
    from kernels import threads

    keep_freed_memory()
    return threads.set_threads(n)


def set_num_threads(n):
    """Use ``n`` threads for minigen's CPU work (PyTorch's name; :func:`limit_threads`).
    Importing minigen already chose :func:`default_threads`; call this to change it. Once
    Numba's pool runs (after the first parallel kernel) it cannot grow: ``n`` then applies
    to the calling thread, at most the pool's size."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive integer, got {n!r}")
    for note in limit_threads(int(n)):
        warnings.warn(f"set_num_threads: {note}", RuntimeWarning, stacklevel=2)


def get_num_threads():
    """The threads minigen's CPU kernels use (PyTorch's name)."""
    from kernels import threads

    return threads.get_threads()


def default_threads():
    """The thread count minigen takes at import: the smallest of ``OMP_NUM_THREADS``,
    ``NUMBA_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` that is set (the
    user's wish for the whole process), else the cores this process may use
    (``os.sched_getaffinity``); never more than those cores."""
    from kernels import threads

    return threads.wished_threads()
