"""Threads for the CPU kernels without oversubscription: one knob, Numba's thread count.

``--threads`` (bench and CLI) sets Numba's thread count and the BLAS threads. A pool that
spin-waits long after each parallel region takes the cores from the next pool that needs
them: OpenBLAS's pthreads between Numba's transforms, or PyTorch's OpenMP pool in the same
process; a pool whose idle threads sleep at once (Numba's workqueue layer) pays a wake-up
at each of the ~70 short parallel regions of a UNet step instead, which cost most of the
second thread's gain and made even one thread slower (docs/performance.md, "Threads and
oversubscription" and "Two threads on an idle machine"). So:

- ``prefer_short_spin_openmp`` selects Numba's OpenMP layer (workqueue where it is missing)
  with libgomp's spin-wait cut to ``GOMP_SPINCOUNT`` spins, unless the user chose a layer
  or a wait policy, or Numba's threads already run;
- BLAS runs single-threaded (``minigen.backend.limit_threads``);
- ``matmul`` splits a stack of GEMMs over ``numba.get_num_threads()`` Python threads, each
  calling single-threaded BLAS (threadpoolctl; without it the BLAS pool is left as is);
- products inside Numba's parallel regions (``numpy.dot`` in a ``prange``, which Numba runs
  on SciPy's BLAS) run under ``single_threaded_blas``.
"""
import concurrent.futures
import contextlib
import functools
import os

import numpy


GOMP_SPINCOUNT = "10000"
"""libgomp's spin-wait iterations before an idle thread sleeps (libgomp's default: 300000)."""


def prefer_short_spin_openmp():
    """Use Numba's OpenMP layer with a short spin-wait unless a layer or wait policy was
    chosen (``NUMBA_THREADING_LAYER``, ``NUMBA_THREADING_LAYER_PRIORITY``, ``OMP_WAIT_POLICY``,
    ``GOMP_SPINCOUNT``) or Numba's threads already run. libgomp reads ``GOMP_SPINCOUNT`` when
    it loads, so it is set in the environment (a PyTorch imported later gets it too)."""
    chosen = {"NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY", "OMP_WAIT_POLICY",
              "GOMP_SPINCOUNT"}
    if chosen & os.environ.keys():
        return
    import numba
    from numba.np.ufunc import parallel

    if not parallel._is_initialized:
        numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]
        os.environ["GOMP_SPINCOUNT"] = GOMP_SPINCOUNT


@functools.lru_cache(maxsize=None)
def numba_blas():
    """Whether Numba's ``numpy.dot`` can run here: it calls SciPy's BLAS
    (``scipy.linalg.cython_blas``). Importing that loads SciPy's BLAS library, so that thread
    limits set afterwards reach it too."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def _blas_controller():
    numba_blas()  # the controller sees only the BLAS libraries loaded when it is made
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


@functools.lru_cache(maxsize=None)
def _pool(workers):
    return concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="minigen-gemm")


def workers():
    """The threads the CPU kernels may use: Numba's current thread count (1 without Numba)."""
    try:
        import numba
    except ImportError:
        return 1
    return numba.get_num_threads()


@contextlib.contextmanager
def single_threaded_blas():
    """BLAS on one thread inside the block when more than one worker runs (threadpoolctl;
    without it the BLAS pool is left as is): for products run by parallel workers."""
    controller = _blas_controller()
    if workers() == 1 or controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


def matmul(a, b):
    """numpy.matmul(a, b) of two stacks of matrices (same leading axis), the stack split over
    ``workers()`` threads running single-threaded BLAS when there is more than one."""
    count = min(workers(), a.shape[0])
    if count == 1 or _blas_controller() is None:
        return numpy.matmul(a, b)
    out = numpy.empty((a.shape[0], a.shape[1], b.shape[2]),
                      dtype=numpy.result_type(a.dtype, b.dtype))
    bounds = numpy.linspace(0, a.shape[0], count + 1).astype(int)
    with single_threaded_blas():
        jobs = [_pool(count).submit(numpy.matmul, a[lo:hi], b[lo:hi], out=out[lo:hi])
                for lo, hi in zip(bounds[:-1], bounds[1:])]
        for job in jobs:
            job.result()
    return out


def map_batch(function, *arrays):
    """[function(*shares) for each share]: the arrays' leading (batch) axis cut into
    ``workers()`` contiguous shares, each computed on its own thread with single-threaded
    BLAS (NumPy's copies and BLAS release the GIL). One share when there is one worker."""
    count = min(workers(), arrays[0].shape[0])
    if count <= 1:
        return [function(*arrays)]
    bounds = numpy.linspace(0, arrays[0].shape[0], count + 1).astype(int)
    with single_threaded_blas():
        jobs = [_pool(count).submit(function, *(a[lo:hi] for a in arrays))
                for lo, hi in zip(bounds[:-1], bounds[1:])]
        return [job.result() for job in jobs]
