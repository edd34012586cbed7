"""Numba-CUDA kernels with the same names and signatures as :mod:`kernels.reference`.

Launchers take and return arrays of the kind they are given: CuPy arrays on a real GPU
(passed to the kernels zero-copy through ``__cuda_array_interface__``; results are
allocated with CuPy, so they come back as CuPy arrays) and NumPy arrays in Numba's CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``). Inputs are assumed validated and C-contiguous (the
:mod:`kernels` dispatcher does both).

Per-call work, kept to what Numba needs:

- Streams: kernels launch on CuPy's current stream for CuPy data (the default stream unless
  the caller is inside ``with cupy.cuda.Stream():``), so they stay ordered with the CuPy work
  around them and a CuPy stream capture records them: :func:`capture` turns a sampling step's
  launches into a CUDA graph that replays without any of this per-call work.
- Tables: the per-timestep tables live on the host (float64 NumPy arrays of the schedule);
  :data:`tables` (a :class:`kernels.table_cache.TableCache`) keeps one device copy per
  table, dtype and device, so repeated calls with one schedule copy nothing to the device.
  Device copies are Numba device arrays, which the simulator does not write back either.
- Dispatch: each kernel is specialised once per (dtype, device) at its first launch (Numba
  compiles it then; importing this module compiles nothing and needs no GPU), and later
  launches go to that compiled overload without re-deriving the argument types. This is
  sound because every launcher passes arrays of one layout per dtype: C-contiguous data,
  int64 timesteps and tables in the data's dtype. Numba caches the launch configuration
  per grid and block size.

Kernels:
- ``q_sample`` / ``p_sample_step`` / ``adam_update``: one thread per element (grid-stride loop).
- ``conv2d``: tiled. A block of TILE x TILE threads computes a tile of output pixels of one
  (n, o) plane; for each input channel the block stages the input tile plus its halo and
  the (kh, kw) filter slice in shared memory, then every thread reads its receptive field
  from shared memory only.
- ``conv2d_grad_input`` / ``conv2d_grad_weight``: direct kernels, one thread per element of
  the gradient, each summing its own terms in a fixed order (deterministic, no atomics).
"""
import functools
import math

import numba
import numpy
from numba import cuda

from . import elementwise
from .arrays import array_module, is_cupy, rows
from .reference import adam_scalars
from .table_cache import TableCache

THREADS = 128  # threads per block of the 1-D kernels
TILE = 16  # output tile edge of the conv2d kernel: blocks of TILE x TILE threads
_MAX_BLOCKS = 65535


_q_sample = cuda.jit(device=True)(elementwise.q_sample)
_p_sample = cuda.jit(device=True)(elementwise.p_sample)
_adam = cuda.jit(device=True)(elementwise.adam)


def _blocks(size):
    return max(1, min(_MAX_BLOCKS, math.ceil(size / THREADS)))


def _device(x):
    """The device that holds the data ``x`` (the simulator has one, 0)."""
    return x.device.id if is_cupy(x) else 0


def _upload(table, dtype, device):
    """A device copy of a host table, cast to ``dtype``."""
    with cuda.gpus[device]:
        return cuda.to_device(numpy.ascontiguousarray(table, dtype=dtype))


tables = TableCache(_upload)


def _tables(x, *host_tables):
    """The tables on x's device in x's dtype: cached copies of host tables; a CuPy table is
    used as it is (cast per call when its dtype differs: it may change between calls)."""
    dtype, device = numpy.dtype(x.dtype), _device(x)
    return [array_module(table).ascontiguousarray(table, dtype=dtype) if is_cupy(table)
            else tables(table, dtype, device) for table in host_tables]


def _timesteps(xp, t):
    """t as a C-contiguous int64 array on the data's device (itself when it already is)."""
    return xp.asarray(t, dtype=numpy.int64, order="C")


@functools.lru_cache(maxsize=None)
def _external_stream(ptr):
    return cuda.external_stream(ptr)


def _stream(x):
    """CuPy's current stream for CuPy data (Numba's handle on it), else the default stream."""
    if not is_cupy(x):
        return 0
    ptr = array_module(x).cuda.get_current_stream().ptr
    return _external_stream(ptr) if ptr else 0


_specialized = {}


def _launch(kernel, blocks, threads, x, *args):
    """Launch ``kernel`` on the data ``x``'s stream through its overload for x's dtype and
    device, compiled and looked up once (see the module docstring)."""
    key = (kernel, numpy.dtype(x.dtype), _device(x))
    specialized = _specialized.get(key)
    if specialized is None:
        specialized = _specialized[key] = kernel.specialize(*args)
    specialized[blocks, threads, _stream(x)](*args)


def capture(launch):
    """Record the kernel launches of ``launch()`` in a CUDA graph (CuPy stream capture).

    Returns ``(graph, stream)``; ``graph.launch(stream)`` replays the same kernels on the same
    memory with the same scalar arguments, reading whatever the inputs hold at that time. So
    ``launch`` must read and write CuPy arrays that outlive the graph (``out`` given, ``t``
    already an int64 device array) and call this module's launchers rather than the
    :mod:`kernels` dispatchers, whose checks read ``t`` back to the host (not capturable).
    ``launch()`` runs once eagerly on the stream first, so that compiling, specialising and
    copying tables, none of which can be captured, happen outside the capture. The stream is
    a blocking one: replays wait for work queued before them on the default stream.
    """
    import cupy

    stream = cupy.cuda.Stream()
    with stream:
        launch()
        stream.begin_capture()
        try:
            launch()
        finally:
            graph = stream.end_capture()
    return graph, stream


@cuda.jit
def _q_sample_kernel(x0, noise, t, sqrt_abar, sqrt_one_minus_abar, out):
    features = x0.shape[1]
    for k in range(cuda.grid(1), x0.size, cuda.gridsize(1)):
        n, f = k // features, k % features
        out[n, f] = _q_sample(sqrt_abar[t[n]], sqrt_one_minus_abar[t[n]], x0[n, f], noise[n, f])


def q_sample(x0, noise, t, sqrt_abar, sqrt_one_minus_abar, out=None):
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise (Ho et al. 2020, eq. 4)."""
    xp = array_module(x0)
    out = xp.empty_like(x0) if out is None else out
    if x0.size:
        _launch(_q_sample_kernel, _blocks(x0.size), THREADS, x0,
                rows(x0), rows(noise), _timesteps(xp, t),
                *_tables(x0, sqrt_abar, sqrt_one_minus_abar), rows(out))
    return out


@cuda.jit
def _p_sample_kernel(xt, eps, t, noise, coef_x0_xt, coef_x0_eps, coef_mean_x0, coef_mean_xt, sigma,
                     clipped, clip, out):
    features = xt.shape[1]
    for k in range(cuda.grid(1), xt.size, cuda.gridsize(1)):
        n, f = k // features, k % features
        s = t[n]
        out[n, f] = _p_sample(xt[n, f], eps[n, f], noise[n, f], coef_x0_xt[s], coef_x0_eps[s],
                              coef_mean_x0[s], coef_mean_xt[s], sigma[s], clipped, clip, s == 0)


def p_sample_step(xt, eps, t, noise, coef_x0_xt, coef_x0_eps, coef_mean_x0, coef_mean_xt, sigma,
                  clip=None, out=None):
    """One fused ancestral step through x0_hat and the posterior mean (Ho et al. 2020, eqs.
    7 and 15, Algorithm 2); see :func:`kernels.reference.p_sample_step` for the formula."""
    xp = array_module(xt)
    dtype = numpy.dtype(xt.dtype)
    out = xp.empty_like(xt) if out is None else out
    if xt.size:
        _launch(_p_sample_kernel, _blocks(xt.size), THREADS, xt,
                rows(xt), rows(eps), _timesteps(xp, t), rows(noise),
                *_tables(xt, coef_x0_xt, coef_x0_eps, coef_mean_x0, coef_mean_xt, sigma),
                clip is not None, dtype.type(0 if clip is None else clip), rows(out))
    return out


_conv_kernels = {}


def _conv2d_tiled_kernel(dtype, tile):
    """The tiled forward kernel for one dtype and tile edge (shared arrays need both at
    compile time). Shared memory holds a (3 tile)^2 input patch and as large a filter slice,
    so a block covers ``tile_out`` <= tile output pixels per side, chosen by the launcher
    such that the patch (tile_out - 1) * stride + k fits."""
    key = (dtype, tile)
    if key in _conv_kernels:
        return _conv_kernels[key]
    patch = 3 * tile
    shared_type = numba.from_dtype(dtype)
    zero = numpy.dtype(dtype).type(0)

    @cuda.jit
    def kernel(x, w, stride, padding, tile_out, y):
        n_batch, channels, h, w_in = x.shape
        c_out, kh, kw = w.shape[0], w.shape[2], w.shape[3]
        ho, wo = y.shape[2], y.shape[3]
        x_patch = cuda.shared.array((patch, patch), shared_type)
        w_slice = cuda.shared.array((patch, patch), shared_type)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        thread, threads = ty * tile + tx, tile * tile
        oy0, ox0 = cuda.blockIdx.y * tile_out, cuda.blockIdx.x * tile_out
        oy, ox = oy0 + ty, ox0 + tx
        patch_rows, patch_cols = (tile_out - 1) * stride + kh, (tile_out - 1) * stride + kw
        iy0, ix0 = oy0 * stride - padding, ox0 * stride - padding
        active = ty < tile_out and tx < tile_out and oy < ho and ox < wo
        for plane in range(cuda.blockIdx.z, n_batch * c_out, cuda.gridDim.z):
            n, o = plane // c_out, plane % c_out
            acc = zero
            for c in range(channels):
                for k in range(thread, patch_rows * patch_cols, threads):
                    r, q = k // patch_cols, k % patch_cols
                    iy, ix = iy0 + r, ix0 + q
                    inside = 0 <= iy < h and 0 <= ix < w_in
                    x_patch[r, q] = x[n, c, iy, ix] if inside else zero
                for k in range(thread, kh * kw, threads):
                    w_slice[k // kw, k % kw] = w[o, c, k // kw, k % kw]
                cuda.syncthreads()
                if active:
                    for i in range(kh):
                        for j in range(kw):
                            acc += w_slice[i, j] * x_patch[ty * stride + i, tx * stride + j]
                cuda.syncthreads()
            if active:
                y[n, o, oy, ox] = acc

    _conv_kernels[key] = kernel
    return kernel


def conv2d(x, w, stride=1, padding=0):
    """NCHW cross-correlation without bias through the tiled shared-memory kernel.

    Supports kernels up to 3 * TILE (48) pixels per side; larger ones raise ValueError.
    """
    xp = array_module(x)
    n, _, h, w_in = x.shape
    c_out, _, kh, kw = w.shape
    patch = 3 * TILE
    if max(kh, kw) > patch:
        raise ValueError(f"cuda.conv2d: kernel {kh}x{kw} exceeds the shared-memory patch {patch}")
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (w_in + 2 * padding - kw) // stride + 1
    y = xp.empty((n, c_out, ho, wo), dtype=x.dtype)
    tile_out = min(TILE, (patch - max(kh, kw)) // stride + 1)
    if y.size:
        grid = (math.ceil(wo / tile_out), math.ceil(ho / tile_out), min(n * c_out, _MAX_BLOCKS))
        _launch(_conv2d_tiled_kernel(numpy.dtype(x.dtype), TILE), grid, (TILE, TILE), x,
                x, w, stride, padding, tile_out, y)
    return y


@cuda.jit
def _conv2d_grad_input_kernel(gy, w, stride, padding, zero, gx):
    """gx[n, c, y, x] = sum over (o, i, j) with y = oy*stride + i - padding, x likewise."""
    n_batch, channels, h, w_in = gx.shape
    c_out, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    ho, wo = gy.shape[2], gy.shape[3]
    for k in range(cuda.grid(1), gx.size, cuda.gridsize(1)):
        ix, iy = k % w_in, (k // w_in) % h
        c, n = (k // (w_in * h)) % channels, k // (w_in * h * channels)
        acc = zero
        for o in range(c_out):
            for i in range(kh):
                sy = iy + padding - i
                oy = sy // stride
                if sy < 0 or sy % stride or oy >= ho:
                    continue
                for j in range(kw):
                    sx = ix + padding - j
                    ox = sx // stride
                    if sx < 0 or sx % stride or ox >= wo:
                        continue
                    acc += gy[n, o, oy, ox] * w[o, c, i, j]
        gx[n, c, iy, ix] = acc


@cuda.jit
def _conv2d_grad_weight_kernel(x, gy, stride, padding, zero, gw):
    """gw[o, c, i, j] = sum over (n, oy, ox) of gy[n, o, oy, ox] x[n, c, iy, ix] with
    iy = oy*stride + i - padding, ix = ox*stride + j - padding."""
    n_batch, channels, h, w_in = x.shape
    kh, kw = gw.shape[2], gw.shape[3]
    ho, wo = gy.shape[2], gy.shape[3]
    for k in range(cuda.grid(1), gw.size, cuda.gridsize(1)):
        j, i = k % kw, (k // kw) % kh
        c, o = (k // (kw * kh)) % channels, k // (kw * kh * channels)
        acc = zero
        for n in range(n_batch):
            for oy in range(ho):
                iy = oy * stride + i - padding
                if iy < 0 or iy >= h:
                    continue
                for ox in range(wo):
                    ix = ox * stride + j - padding
                    if 0 <= ix < w_in:
                        acc += gy[n, o, oy, ox] * x[n, c, iy, ix]
        gw[o, c, i, j] = acc


def _direct(kernel, like, shape, *args):
    """Launch a one-thread-per-output-element kernel into a new array of ``shape``."""
    out = array_module(like).empty(tuple(shape), dtype=like.dtype)
    if out.size:
        _launch(kernel, _blocks(out.size), THREADS, like, *args, numpy.dtype(like.dtype).type(0),
                out)
    return out


def conv2d_grad_input(gy, w, x_shape, stride=1, padding=0):
    """dL/dx of :func:`conv2d`, one thread per input element (direct kernel)."""
    return _direct(_conv2d_grad_input_kernel, gy, x_shape, gy, w, stride, padding)


def conv2d_grad_weight(x, gy, w_shape, stride=1, padding=0):
    """dL/dw of :func:`conv2d`, one thread per filter tap (direct kernel)."""
    return _direct(_conv2d_grad_weight_kernel, x, w_shape, x, gy, stride, padding)


@cuda.jit
def _adam_kernel(param, grad, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, l2, decay,
                 step_size, sqrt_bias2, eps):
    for k in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        param[k], m[k], v[k] = _adam(param[k], grad[k], m[k], v[k], beta1, one_minus_beta1, beta2,
                                     one_minus_beta2, l2, decay, step_size, sqrt_bias2, eps)


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, step, weight_decay=0.0, decoupled=False):
    """One fused Adam/AdamW step in place (Kingma & Ba 2015, Algorithm 1; Loshchilov & Hutter
    2019); see :func:`kernels.reference.adam_update` for the formula."""
    scalars = adam_scalars(numpy.dtype(param.dtype), lr, beta1, beta2, eps, step, weight_decay,
                           decoupled)
    if param.size:
        _launch(_adam_kernel, _blocks(param.size), THREADS, param,
                param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1), *scalars)
