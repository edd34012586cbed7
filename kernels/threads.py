"""Threads for the CPU kernels without oversubscription: one knob, Numba's thread count.

``set_threads(n)`` gives Numba's parallel kernels and the OpenMP pools ``n`` threads and
BLAS one (minigen applies it at import with :func:`wished_threads`, and through
``minigen.set_num_threads`` and ``--threads``). A pool that spin-waits long after each
parallel region takes the cores from the next pool that needs them: OpenBLAS's pthreads
between Numba's transforms, or PyTorch's OpenMP pool in the same process; a pool whose
idle threads sleep at once (Numba's workqueue layer) pays a wake-up
at each of the ~70 short parallel regions of a UNet step instead, which cost most of the
second thread's gain and made even one thread slower
(docs/history.md#threads-and-oversubscription and
docs/history.md#two-threads-on-an-idle-machine). So:

- ``prefer_short_spin_openmp`` selects Numba's OpenMP layer (workqueue where it is missing)
  with libgomp's spin-wait cut to ``GOMP_SPINCOUNT`` spins, unless the user chose a layer
  or a wait policy, or Numba's threads already run;
- BLAS runs single-threaded (``set_threads``; a BLAS library loaded later, such as SciPy's
  by ``numba_blas``, is capped when it loads);
- ``matmul`` splits a stack of GEMMs over ``numba.get_num_threads()`` shares of one Numba
  parallel region (:mod:`kernels.stacked`), each calling single-threaded BLAS;
- ``map_batch`` runs a NumPy function on shares of a batch in Python threads (the im2col
  convolutions), and ``gemm`` one large product in blocks of rows (a linear layer's
  GEMMs; each row's sums are those of one BLAS call), both through ``run_shares``: the
  last share on the calling thread, which also runs every share no pooled thread has
  started, so that a share never waits for a thread the system has not scheduled;
- products inside Numba's parallel regions (``numpy.dot`` in a ``prange``, which Numba runs
  on SciPy's BLAS) run under ``single_threaded_blas`` (threadpoolctl; without it the BLAS
  pool is left as is).
"""
import concurrent.futures
import contextlib
import functools
import itertools
import os
import sys

import numpy


GOMP_SPINCOUNT = "10000"
"""libgomp's spin-wait iterations before an idle thread sleeps (libgomp's default: 300000)."""

LAYER_PRIORITY = ("omp", "workqueue", "tbb")
"""Numba's threading layers in the order ``prefer_short_spin_openmp`` asks for them."""

THREAD_VARIABLES = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS")
"""The conventional variables through which a user asks for a thread count."""

_capped = None  # the n of the last set_threads: numba_blas caps the BLAS it loads to match


def usable_cores():
    """The cores this process may run on (its CPU affinity; all cores where the OS has none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def wished_threads(environ=os.environ):
    """The thread count the user asks for: the smallest positive integer among the
    :data:`THREAD_VARIABLES` that are set (any of them names the whole process's share of
    the cores), at most :func:`usable_cores`; the usable cores when none is set."""
    wishes = [int(environ[name]) for name in THREAD_VARIABLES
              if environ.get(name, "").strip().isdigit() and int(environ[name]) >= 1]
    return min([usable_cores(), *wishes])


def _numba_started():
    """Whether Numba's thread pool runs (its size is fixed from then on)."""
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    return parallel is not None and parallel._is_initialized


def prefer_short_spin_openmp():
    """Use Numba's OpenMP layer with a short spin-wait unless a layer or wait policy was
    chosen (``NUMBA_THREADING_LAYER``, ``NUMBA_THREADING_LAYER_PRIORITY``, ``OMP_WAIT_POLICY``,
    ``GOMP_SPINCOUNT``) or Numba's threads already run. Numba and libgomp read these
    variables when they load (Numba again at each compilation), so they are set in the
    environment, without importing Numba; a PyTorch imported later gets the spin count too."""
    chosen = {"NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY", "OMP_WAIT_POLICY",
              "GOMP_SPINCOUNT"}
    if chosen & os.environ.keys() or _numba_started():
        return
    os.environ["NUMBA_THREADING_LAYER_PRIORITY"] = " ".join(LAYER_PRIORITY)
    os.environ["GOMP_SPINCOUNT"] = GOMP_SPINCOUNT
    config = sys.modules.get("numba.core.config")
    if config is not None:
        config.THREADING_LAYER_PRIORITY = list(LAYER_PRIORITY)


def set_threads(n):
    """Numba's parallel kernels and the OpenMP pools get ``n`` threads, BLAS one, for the
    rest of the process. Before Numba's pool starts (at the first parallel kernel) its size
    becomes ``n`` (``NUMBA_NUM_THREADS``, so that every thread defaults to ``n``) on the
    short-spin OpenMP layer; once it runs, the calling thread uses ``min(n, pool size)``.
    Starting no pool here keeps a later ``fork`` safe. The caps need ``threadpoolctl``.
    Returns notes on what could not be set (empty when all was)."""
    prefer_short_spin_openmp()
    if _numba_started():
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    else:
        os.environ["NUMBA_NUM_THREADS"] = str(n)
        config = sys.modules.get("numba.core.config")
        if config is not None:
            config.NUMBA_NUM_THREADS = n
        parallel = sys.modules.get("numba.np.ufunc.parallel")
        if parallel is not None:
            parallel.NUM_THREADS = n
    global _capped
    _capped = n
    return _cap_native_pools(n)


def _cap_native_pools(n):
    """OpenMP libraries loaded now get ``n`` threads, BLAS libraries one (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return ["BLAS threads not set: threadpoolctl is not installed"]
    threadpool_limits(n, user_api="openmp")
    threadpool_limits(1, user_api="blas")
    return []


def get_threads():
    """The threads the CPU kernels use in this thread: Numba's count once its pool runs,
    else the size its pool will start with (without starting it)."""
    if _numba_started():
        return workers()
    config = sys.modules.get("numba.core.config")
    if config is not None:
        return config.NUMBA_NUM_THREADS
    return _capped or usable_cores()  # Numba's own default: the usable cores


@functools.lru_cache(maxsize=None)
def numba_blas():
    """Whether Numba's ``numpy.dot`` can run here: it calls SciPy's BLAS
    (``scipy.linalg.cython_blas``). Importing that loads SciPy's BLAS library, which gets
    one thread when ``set_threads`` capped BLAS before it loaded."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:
        return False
    if _capped is not None:
        _cap_native_pools(_capped)
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
    without it the BLAS pool is left as is): for products run by parallel workers. Only
    libraries not already on one thread are switched (after ``limit_threads`` none is), so
    the usual cost is one thread-count query per library."""
    controller = _blas_controller()
    if workers() == 1 or controller is None:
        yield
        return
    switched = [(library, library.num_threads) for library in controller.lib_controllers
                if library.user_api == "blas" and library.num_threads != 1]
    for library, _ in switched:
        library.set_num_threads(1)
    try:
        yield
    finally:
        for library, count in switched:
            library.set_num_threads(count)


def matmul(a, b):
    """numpy.matmul(a, b) of two stacks of matrices (same leading axis, or one stack of
    length 1), the stack split over ``workers()`` threads in one Numba parallel region, each
    product on single-threaded BLAS (:mod:`kernels.stacked`), when there is more than one
    worker and the operands are float32 or float64 of one dtype; numpy.matmul otherwise."""
    count = min(workers(), max(a.shape[0], b.shape[0]))
    stacks = a.ndim == b.ndim == 3 and (a.shape[0] == b.shape[0] or 1 in (a.shape[0], b.shape[0]))
    if (count == 1 or not stacks or a.shape[2] != b.shape[1] or a.size == 0 or b.size == 0
            or a.dtype != b.dtype
            or a.dtype not in (numpy.float32, numpy.float64) or not numba_blas()):
        return numpy.matmul(a, b)
    from . import stacked

    with single_threaded_blas():
        return stacked.matmul(a, b, count)


GEMM_MIN_MACS = 1 << 23
"""Products of fewer multiply-adds run as one BLAS call: below it a fork-join costs more
than the second thread saves once the cores are shared (the 2-D MLP's training step at
batch 256 stays on one thread; docs/performance.md)."""

GEMM_TASKS_PER_THREAD = 4
"""Row blocks per thread of a split product (each at least ``GEMM_MIN_ROWS`` rows), so that
a thread held off its core holds up a small block only (:func:`run_shares`)."""

GEMM_MIN_ROWS = 32
"""Rows per thread at least when a product is split: OpenBLAS computes a row block of
fewer rows (or a product below its small-matrix size) with other kernels, whose sums may
round differently from the whole product's."""


def gemm(a, b, bias=None):
    """a @ b (+ bias) of 2-D float matrices of one dtype (bias of shape (N,)): when there is
    more than one worker and the product has at least ``GEMM_MIN_MACS`` multiply-adds, a's
    rows are cut into blocks (``GEMM_TASKS_PER_THREAD`` per worker, at least
    ``GEMM_MIN_ROWS`` rows each) that the workers multiply on single-threaded BLAS
    (:func:`run_shares`): the same values as ``a @ b + bias``. NumPy otherwise."""
    m, k = a.shape
    n = b.shape[1]
    count = min(workers(), m // GEMM_MIN_ROWS)
    if (count < 2 or m * k * n < GEMM_MIN_MACS or a.dtype != b.dtype
            or a.dtype not in (numpy.float32, numpy.float64)
            or (bias is not None and bias.dtype != a.dtype)):
        y = a @ b
        if bias is None or numpy.result_type(y, bias) != y.dtype:
            return y if bias is None else y + bias
        return numpy.add(y, bias, out=y)  # in place: no second array of y's size
    out = numpy.empty((m, n), dtype=a.dtype)
    tasks = min(m // GEMM_MIN_ROWS, GEMM_TASKS_PER_THREAD * count)

    def block(task):
        rows = slice(m * task // tasks, m * (task + 1) // tasks)
        numpy.matmul(a[rows], b, out=out[rows])
        if bias is not None:
            numpy.add(out[rows], bias, out=out[rows])

    with single_threaded_blas():
        run_shares(block, count, tasks)
    return out


def run_shares(function, count, tasks=None):
    """[function(0), ..., function(tasks - 1)] (tasks: ``count`` by default) on the calling
    thread and count - 1 pooled ones, each thread claiming the next task until none is left.
    A pooled thread's job that has not started when the caller runs out of tasks is
    cancelled, so the caller waits only for tasks already running: when other processes
    hold the other cores, it does the work alone instead of waiting for a thread the system
    has not scheduled (the wait that made two-thread regions slower than one thread on a
    shared machine), and with tasks > count a thread held off its core mid-way holds up
    one small task at most."""
    tasks = count if tasks is None else tasks
    claims, results = itertools.count(), [None] * tasks

    def work():
        while (task := next(claims)) < tasks:
            results[task] = function(task)

    jobs = [_pool(count - 1).submit(work) for _ in range(count - 1)]
    work()
    for job in jobs:
        if not job.cancel():
            job.result()
    return results


def map_batch(function, *arrays):
    """[function(*shares) for each share]: the arrays' leading (batch) axis cut into
    ``workers()`` contiguous shares, computed by :func:`run_shares` with single-threaded
    BLAS (NumPy's copies and BLAS release the GIL). One share when there is one worker."""
    count = min(workers(), arrays[0].shape[0])
    if count <= 1:
        return [function(*arrays)]
    bounds = [arrays[0].shape[0] * k // count for k in range(count + 1)]
    with single_threaded_blas():
        return run_shares(lambda k: function(*(a[bounds[k]:bounds[k + 1]] for a in arrays)),
                          count)
