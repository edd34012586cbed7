"""Threads for the CPU kernels without oversubscription: one knob, Numba's thread count.

``--threads`` (bench and CLI) sets Numba's thread count and the BLAS threads. Two pools
that spin-wait between calls -- Numba's OpenMP layer and OpenBLAS's pthreads -- take the
cores from each other when a convolution alternates between Numba transforms and BLAS
GEMMs, and a second libgomp in the process also stalls PyTorch's (docs/performance.md has
the measurements). So:

- ``prefer_workqueue`` selects Numba's workqueue layer (its idle threads sleep) unless the
  user chose a layer with ``NUMBA_THREADING_LAYER`` or Numba's threads already run;
- ``matmul`` splits a stack of GEMMs over ``numba.get_num_threads()`` Python threads, each
  calling single-threaded BLAS (threadpoolctl; without it the BLAS pool is left as is).
"""
import concurrent.futures
import functools
import os

import numpy


def prefer_workqueue():
    """Use Numba's workqueue threading layer unless one was chosen or already launched."""
    if "NUMBA_THREADING_LAYER" in os.environ:
        return
    import numba
    from numba.np.ufunc import parallel

    if not parallel._is_initialized:
        numba.config.THREADING_LAYER = "workqueue"


@functools.lru_cache(maxsize=None)
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


@functools.lru_cache(maxsize=None)
def _pool(workers):
    return concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="minigen-gemm")


def workers():
    """The threads the CPU kernels may use: Numba's current thread count."""
    import numba

    return numba.get_num_threads()


def matmul(a, b):
    """numpy.matmul(a, b) of two stacks of matrices (same leading axis), the stack split over
    ``workers()`` threads running single-threaded BLAS when there is more than one."""
    count = min(workers(), a.shape[0])
    controller = _blas_controller()
    if count == 1 or controller is None:
        return numpy.matmul(a, b)
    out = numpy.empty((a.shape[0], a.shape[1], b.shape[2]),
                      dtype=numpy.result_type(a.dtype, b.dtype))
    bounds = numpy.linspace(0, a.shape[0], count + 1).astype(int)
    with controller.limit(limits=1, user_api="blas"):
        jobs = [_pool(count).submit(numpy.matmul, a[lo:hi], b[lo:hi], out=out[lo:hi])
                for lo, hi in zip(bounds[:-1], bounds[1:])]
        for job in jobs:
            job.result()
    return out
