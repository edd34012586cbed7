"""Synchronous data parallelism over a communicator: P processes train one model.

Every rank holds the same parameters (``broadcast_parameters`` from rank 0 at the start),
draws the same *global* batch from the shared seed, keeps its ``shard`` of it, computes the
mean loss and its gradient on that shard, and ``allreduce_gradients`` turns the P shard
gradients into the gradient of the full-batch mean loss on every rank. The optimizer, gradient
clipping and EMA then run unchanged and identically everywhere, so the update equals the
single-process one up to the order of the floating-point sums.

Uneven batches are split, not refused: with B = q P + r, ranks 0..r-1 take q + 1 examples and
the others q. The full-batch mean loss is L = sum_r (n_r / B) L_r, where L_r is rank r's shard
mean, so each rank weights its gradient by its ``share`` n_r / B before the sum.

A communicator is any object with ``rank``, ``size``, ``allreduce_(buffer)`` (in-place sum of
a contiguous array over the ranks), ``broadcast_(buffer, root)`` (in place) and
``abort(code)``: ``SingleProcess`` (no MPI at all), ``MPICommunicator`` (mpi4py) and
``NCCLCommunicator`` (CuPy's NCCL bindings for GPU buffers). mpi4py is imported only when the
process was started by an MPI launcher, so importing minigen never needs it.
"""
import contextlib
import math
import os
import sys
import traceback

import numpy as np

from minigen import backend
from minigen.errors import UserError
from minigen.nn.utils import named_parameter_list
from minigen.stopping import TrainingInterrupted

LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE")
"""Set in every process by MPICH's and Intel MPI's ``mpiexec`` (PMI_RANK, PMI_SIZE), Open MPI's
``mpirun`` (OMPI_COMM_WORLD_SIZE) and PMIx launchers such as Slurm's ``srun --mpi=pmix``
(PMIX_RANK). Slurm's own SLURM_* variables are not used: a batch script sets them too."""

DEFAULT_BUCKET_BYTES = 4 * 2**20


class SingleProcess:
    """The communicator of a run without MPI: one rank, reductions are the identity."""

    rank, size = 0, 1

    def allreduce_(self, buffer):
        return buffer

    def broadcast_(self, buffer, root=0):
        return buffer

    def abort(self, code=1):
        sys.exit(code)


class MPICommunicator:
    """An mpi4py communicator (``MPI.COMM_WORLD`` by default). CuPy buffers go through host
    memory, so a plain (not CUDA-aware) MPI works; ``NCCLCommunicator`` is the GPU path."""

    def __init__(self, comm=None):
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def _on_host(self, op, buffer):
        if backend.device_of(buffer) == "cpu":
            op(buffer)
        else:
            host = buffer.get()
            op(host)
            buffer.set(host)
        return buffer

    def allreduce_(self, buffer):
        return self._on_host(
            lambda b: self.comm.Allreduce(self.MPI.IN_PLACE, b, op=self.MPI.SUM), buffer
        )

    def broadcast_(self, buffer, root=0):
        return self._on_host(lambda b: self.comm.Bcast(b, root=root), buffer)

    def abort(self, code=1):
        self.comm.Abort(code)


class NCCLCommunicator:
    """NCCL (``cupy.cuda.nccl``) over the ranks of ``host`` (a communicator used once, to hand
    out NCCL's unique id); one GPU per rank, chosen as rank modulo the number of GPUs. Buffers
    must be CuPy arrays. Never run on a GPU during development: unmeasured."""

    def __init__(self, host):
        cp = backend.cupy()
        if cp is None:
            raise RuntimeError("NCCLCommunicator: needs CuPy with a working GPU")
        from cupy.cuda import nccl

        self.nccl, self.host = nccl, host
        self.rank, self.size = host.rank, host.size
        cp.cuda.Device(host.rank % cp.cuda.runtime.getDeviceCount()).use()
        uid = host.broadcast_(np.asarray(nccl.get_unique_id(), dtype=np.int8))
        self.comm = nccl.NcclCommunicator(host.size, tuple(int(b) for b in uid), host.rank)
        self.types = {np.dtype(np.float32): nccl.NCCL_FLOAT32,
                      np.dtype(np.float64): nccl.NCCL_FLOAT64,
                      np.dtype(np.int32): nccl.NCCL_INT32}

    def _args(self, buffer):
        if backend.device_of(buffer) != "cuda":
            raise TypeError("NCCLCommunicator: buffers must be CuPy arrays on the GPU")
        stream = backend.cupy().cuda.get_current_stream()
        return buffer.data.ptr, buffer.size, self.types[buffer.dtype], stream.ptr

    def allreduce_(self, buffer):
        ptr, count, dtype, stream = self._args(buffer)
        self.comm.allReduce(ptr, ptr, count, dtype, self.nccl.NCCL_SUM, stream)
        return buffer

    def broadcast_(self, buffer, root=0):
        ptr, count, dtype, stream = self._args(buffer)
        self.comm.bcast(ptr, count, dtype, root, stream)
        return buffer

    def abort(self, code=1):
        self.host.abort(code)


def launched_by_mpi(environ=None):
    """True when an MPI launcher started this process (see ``LAUNCHER_VARIABLES``)."""
    environ = os.environ if environ is None else environ
    return any(name in environ for name in LAUNCHER_VARIABLES)


_world = None


def world():
    """This process's communicator: ``MPICommunicator`` over all ranks when started by an MPI
    launcher, ``SingleProcess`` otherwise. Created once."""
    global _world
    if _world is None:
        if not launched_by_mpi():
            _world = SingleProcess()
        else:
            try:
                _world = MPICommunicator()
            except ImportError as error:
                raise RuntimeError(
                    "started by an MPI launcher but mpi4py is not installed: "
                    "pip install 'minigen[mpi]'"
                ) from error
    return _world


def is_main(comm=None):
    """True on rank 0, the rank that writes checkpoints, figures, logs and progress bars."""
    return (world() if comm is None else comm).rank == 0


def on_main(fn, *args, comm=None, **kwargs):
    """``fn(*args, **kwargs)`` on rank 0 only (IO); its result there, None on other ranks."""
    return fn(*args, **kwargs) if is_main(comm) else None



def any_rank(flag, comm=None):
    """True when ``flag`` is true on any rank: one one-number reduction, so it is also the
    point where all ranks agree (e.g. that a run directory may be written, or that Ctrl-C
    reached one of them and every rank stops at the same step). One process: ``flag``."""
    comm = world() if comm is None else comm
    if comm.size == 1:
        return bool(flag)
    return bool(comm.allreduce_(np.array([float(bool(flag))]))[0] > 0)

# --- the global batch ------------------------------------------------------------------
def shard(n_global, rank, size):
    """The slice of a global batch of ``n_global`` examples that ``rank`` of ``size`` keeps:
    contiguous, the first ``n_global % size`` ranks one example longer."""
    if not 0 <= rank < size:
        raise ValueError(f"shard: rank must be in [0, {size}), got {rank}")
    if n_global < size:
        raise ValueError(
            f"shard: a global batch of {n_global} examples cannot give each of {size} ranks one"
        )
    q, r = divmod(n_global, size)
    start = rank * q + min(rank, r)
    return slice(start, start + q + (rank < r))


def share(n_global, rank, size):
    """n_r / B, the weight of rank's shard-mean gradient in the full-batch mean gradient."""
    s = shard(n_global, rank, size)
    return (s.stop - s.start) / n_global


def packed_shard(n_global, group, comm):
    """``(rows, weight)`` of this rank in a global batch of ``n_global`` rows that the model
    sees in groups of ``group`` consecutive rows (PacGAN packs; 1 = no groups): the rows it
    keeps (a slice of whole groups) and its ``share`` of the groups. With one process,
    ``(slice(0, n_global), 1.0)``."""
    s = shard(n_global // group, comm.rank, comm.size)
    return slice(s.start * group, s.stop * group), share(n_global // group, comm.rank, comm.size)


# --- flat buckets ----------------------------------------------------------------------
def buckets(arrays, bucket_bytes=DEFAULT_BUCKET_BYTES):
    """Indices of ``arrays`` grouped into buckets: one device and dtype per bucket, in order,
    each at most ``bucket_bytes`` unless a single array is larger (it gets its own)."""
    if bucket_bytes < 1:
        raise ValueError(f"buckets: bucket_bytes must be >= 1, got {bucket_bytes}")
    open_buckets, done = {}, []
    for i, a in enumerate(arrays):
        key = (backend.device_of(a), np.dtype(a.dtype).str)
        current = open_buckets.get(key)
        if current is not None and current[1] + a.nbytes > bucket_bytes:
            done.append(current[0])
            current = None
        if current is None:
            current = open_buckets[key] = [[], 0]
        current[0].append(i)
        current[1] += a.nbytes
    done.extend(c[0] for c in open_buckets.values())
    return sorted(done, key=lambda b: b[0])


def pack(arrays, scale=None):
    """One new contiguous 1-D buffer holding ``arrays`` (same device and dtype) raveled one
    after the other, each multiplied by ``scale`` when given."""
    xp = backend.xp_of(arrays[0])
    buffer = xp.empty(sum(a.size for a in arrays), dtype=arrays[0].dtype)
    offset = 0
    for a in arrays:
        view = buffer[offset: offset + a.size]
        if scale is None:
            view[...] = a.ravel()
        else:
            xp.multiply(a.ravel(), buffer.dtype.type(scale), out=view)
        offset += a.size
    return buffer


def unpack(buffer, shapes):
    """Views of ``buffer`` shaped like ``shapes`` (the inverse of ``pack``)."""
    views, offset = [], 0
    for shape in shapes:
        size = math.prod(shape)
        views.append(buffer[offset: offset + size].reshape(shape))
        offset += size
    if offset != buffer.size:
        raise ValueError(f"unpack: shapes hold {offset} elements, the buffer {buffer.size}")
    return views


# --- collectives on parameters ---------------------------------------------------------
def allreduce_gradients(params, comm=None, weight=None, bucket_bytes=DEFAULT_BUCKET_BYTES):
    """Replace each gradient by sum over ranks of ``weight`` * gradient: the full-batch mean
    gradient when ``weight`` is this rank's ``share`` (default 1 / size, for even shards).

    ``params``: a Module, (name, Parameter) pairs or Parameters, in the same order on every
    rank. Gradients travel in flat buckets of at most ``bucket_bytes`` (one reduction per
    bucket); a parameter without a gradient on this rank contributes zeros, and one small
    reduction of has-gradient flags first keeps ``grad=None`` where no rank has a gradient
    (as a single process would leave it, so optimizers skip it alike). The new gradients are
    views of fresh buffers. Every rank must call this at the same point of the step."""
    comm = world() if comm is None else comm
    if comm.size == 1 and weight in (None, 1):
        return
    tensors = [p for _, p in named_parameter_list(params, "allreduce_gradients")]
    weight = 1.0 / comm.size if weight is None else weight
    xp = backend.xp_of(tensors[0].data)
    flags = xp.asarray([p.grad is not None for p in tensors], dtype=np.int32)
    flags = comm.allreduce_(flags)
    active = [p for p, f in zip(tensors, backend.to_numpy(flags)) if f > 0]
    grads = [xp.zeros_like(p.data) if p.grad is None else p.grad for p in active]
    for bucket in buckets(grads, bucket_bytes):
        reduced = comm.allreduce_(pack([grads[i] for i in bucket], scale=weight))
        for i, view in zip(bucket, unpack(reduced, [grads[i].shape for i in bucket])):
            active[i].grad = view


def weighted_sum(values, weight, comm=None):
    """``{name: sum over ranks of weight * value}`` for a dict of floats, in one small float64
    reduction: the full-batch mean of shard means (losses, mean D outputs) when ``weight`` is
    this rank's ``share``, so the metrics a trainer records and checks are the same on every
    rank and equal the single-process ones. One process with weight 1: ``values`` itself."""
    comm = world() if comm is None else comm
    if comm.size == 1 and weight == 1:
        return values
    names = list(values)
    buffer = np.array([weight * float(values[name]) for name in names], dtype=np.float64)
    return dict(zip(names, comm.allreduce_(buffer).tolist()))


def broadcast_parameters(params, comm=None, root=0, bucket_bytes=DEFAULT_BUCKET_BYTES):
    """Copy rank ``root``'s parameter values into every rank's parameters, in place (so an
    optimizer built on them keeps its references), bucket by bucket."""
    comm = world() if comm is None else comm
    if comm.size == 1:
        return
    tensors = [p for _, p in named_parameter_list(params, "broadcast_parameters")]
    for bucket in buckets([p.data for p in tensors], bucket_bytes):
        buffer = comm.broadcast_(pack([tensors[i].data for i in bucket]), root=root)
        for i, view in zip(bucket, unpack(buffer, [tensors[i].shape for i in bucket])):
            tensors[i].data[...] = view


@contextlib.contextmanager
def abort_on_error(comm=None):
    """Turn an exception on one rank into the end of the whole job: print it with the rank on
    stderr (one line for a ``minigen.errors.UserError``, the traceback for anything else) and
    ``comm.abort``, instead of leaving the other ranks waiting forever in their next
    collective (status 2 for a user error, as the command line's, else 1). A single process
    just re-raises, and so does every rank for a ``TrainingInterrupted``: the ranks agreed on
    that stop and each ends by itself, after rank 0 saved (an abort could kill that save)."""
    comm = world() if comm is None else comm
    try:
        yield comm
    except TrainingInterrupted:
        raise
    except BaseException as error:
        user_error = isinstance(error, UserError)
        exit_code = error.code if isinstance(error, SystemExit) else 2 if user_error else 1
        if isinstance(error, KeyboardInterrupt):
            exit_code = 130  # a signal that stopped one rank at once: the others cannot go on
        if comm.size == 1 or not exit_code:
            raise
        what = (f"error: {' '.join(str(error).split())}\n" if user_error else
                "".join(traceback.format_exception(type(error), error, error.__traceback__)))
        sys.stderr.write(f"minigen: rank {comm.rank} of {comm.size} failed, aborting all "
                         f"ranks:\n{what}")
        sys.stderr.flush()
        comm.abort(exit_code if isinstance(exit_code, int) else 1)
        raise  # in case the abort returns: the error must not pass as success
