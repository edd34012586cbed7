"""Numba-CPU kernels (``@njit``, cached to disk; convolutions parallel over output slices).

Same names and signatures as :mod:`kernels.reference`. Inputs are assumed validated and
C-contiguous (the :mod:`kernels` dispatcher does both). The per-timestep tables are cast to
the data dtype before the launch and gathered inside the kernel; ``fastmath`` stays off so
results follow IEEE arithmetic in the same order as the reference formulas.

The convolutions are direct loops (no im2col buffer). The innermost loop always runs over a
channel axis made contiguous by a channels-last copy of the small operand: one input value
times a row of weights accumulated into a row of outputs, a rank-1 update that LLVM turns
into SIMD code without reassociating any sum (so it vectorises with fastmath off). Every
parallel task owns a disjoint slice of the result: an output row (n, y) for the forward
pass, an input row (n, y) for the input gradient, one filter tap (c, i, j) for the weight
gradient. No atomics, deterministic results. The :mod:`kernels` docstring says which
convolution the NumPy dispatch uses (measurements in docs/history.md#what-was-tried).
"""
import math

import numpy
from numba import njit, prange, vectorize

from . import elementwise, reference, threads
from .arrays import rows
from .exp32 import OPTIONS as _VECTOR, exp32
from .reference import adam_scalars

# The DDPM kernels are memory-bound single passes and run serially: a prange over
# q_sample's rows gained nothing from a second thread (docs/history.md#what-was-tried).
# The convolutions, group norm, the SiLU and add passes, and Adam on parameters of
# PARALLEL_MIN_SIZE entries or more (a dense layer's million weights) gain from prange.
_SERIAL = dict(cache=True, fastmath=False)
_PARALLEL = dict(parallel=True, cache=True, fastmath=False)


_q_sample = njit(**_SERIAL)(elementwise.q_sample)
_p_sample = njit(**_SERIAL)(elementwise.p_sample)
_adam = njit(**_SERIAL)(elementwise.adam)


def _cast(table, dtype):
    return numpy.ascontiguousarray(table, dtype=dtype)


def _output(out, like):
    return numpy.empty_like(like) if out is None else out


@njit(**_SERIAL)
def _q_sample_rows(x0, noise, t, sqrt_abar, sqrt_one_minus_abar, out):
    for n in range(x0.shape[0]):
        a = sqrt_abar[t[n]]
        b = sqrt_one_minus_abar[t[n]]
        for k in range(x0.shape[1]):
            out[n, k] = _q_sample(a, b, x0[n, k], noise[n, k])


def q_sample(x0, noise, t, sqrt_abar, sqrt_one_minus_abar, out=None):
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise in one pass (Ho et al. 2020, eq. 4)."""
    out = _output(out, x0)
    _q_sample_rows(rows(x0), rows(noise), numpy.asarray(t, dtype=numpy.int64),
                   _cast(sqrt_abar, x0.dtype), _cast(sqrt_one_minus_abar, x0.dtype), rows(out))
    return out


@njit(**_SERIAL)
def _p_sample_rows(xt, eps, t, noise, coef_x0_xt, coef_x0_eps, coef_mean_x0, coef_mean_xt, sigma,
                   clipped, clip, out):
    for n in range(xt.shape[0]):
        s = t[n]
        a, b = coef_x0_xt[s], coef_x0_eps[s]
        c, d, e = coef_mean_x0[s], coef_mean_xt[s], sigma[s]
        for k in range(xt.shape[1]):
            out[n, k] = _p_sample(xt[n, k], eps[n, k], noise[n, k], a, b, c, d, e, clipped, clip,
                                  s == 0)


def p_sample_step(xt, eps, t, noise, coef_x0_xt, coef_x0_eps, coef_mean_x0, coef_mean_xt, sigma,
                  clip=None, out=None):
    """One fused ancestral step through x0_hat and the posterior mean (Ho et al. 2020, eqs.
    7 and 15, Algorithm 2); see :func:`kernels.reference.p_sample_step` for the formula."""
    dtype = xt.dtype
    out = _output(out, xt)
    bound = dtype.type(0 if clip is None else clip)
    _p_sample_rows(rows(xt), rows(eps), numpy.asarray(t, dtype=numpy.int64), rows(noise),
                   _cast(coef_x0_xt, dtype), _cast(coef_x0_eps, dtype), _cast(coef_mean_x0, dtype),
                   _cast(coef_mean_xt, dtype), _cast(sigma, dtype), clip is not None, bound,
                   rows(out))
    return out


@njit(cache=True)
def _valid(offset, stride, padding, size, out_size):
    """Output positions o with 0 <= o*stride + offset - padding < size, as a range [lo, hi)."""
    lo = max(0, -((offset - padding) // stride))
    hi = min(out_size, (size - 1 + padding - offset) // stride + 1)
    return lo, max(lo, hi)


@njit(**_PARALLEL)
def _conv2d_forward(x, w_last, stride, padding, y_last):
    """y_last[n, y, x, :] += x[n, c, y*stride + i - padding, x*stride + j - padding]
    * w_last[c, i, j, :] with w_last = w as (C, kh, kw, Cout), y_last = y as (N, Ho, Wo, Cout)."""
    n_batch, channels, h, w_in = x.shape
    kh, kw = w_last.shape[1], w_last.shape[2]
    ho, wo = y_last.shape[1], y_last.shape[2]
    for task in prange(n_batch * ho):
        n, oy = task // ho, task % ho
        out_row = y_last[n, oy]
        out_row[:, :] = 0
        for c in range(channels):
            for i in range(kh):
                iy = oy * stride + i - padding
                if iy < 0 or iy >= h:
                    continue
                in_row = x[n, c, iy]
                for j in range(kw):
                    x_lo, x_hi = _valid(j, stride, padding, w_in, wo)
                    taps = w_last[c, i, j]
                    for ox in range(x_lo, x_hi):
                        value = in_row[ox * stride + j - padding]
                        out_pixel = out_row[ox]
                        for o in range(taps.shape[0]):
                            out_pixel[o] += value * taps[o]


@njit(**_PARALLEL)
def _conv2d_backward_input(gy, w_last, stride, padding, gx_last):
    """gx_last[n, y, x, :] += gy[n, o, oy, ox] * w_last[o, i, j, :] over every (o, i, j, oy, ox)
    that read input pixel (y, x); w_last = w as (Cout, kh, kw, C), gx_last = gx as (N, H, W, C)."""
    n_batch, c_out, ho, wo = gy.shape
    kh, kw = w_last.shape[1], w_last.shape[2]
    h, w_in = gx_last.shape[1], gx_last.shape[2]
    for task in prange(n_batch * h):
        n, iy = task // h, task % h
        in_row = gx_last[n, iy]
        in_row[:, :] = 0
        for i in range(kh):
            shifted = iy + padding - i
            oy = shifted // stride
            if shifted < 0 or shifted % stride or oy >= ho:
                continue
            for j in range(kw):
                x_lo, x_hi = _valid(j, stride, padding, w_in, wo)
                for o in range(c_out):
                    taps = w_last[o, i, j]
                    for ox in range(x_lo, x_hi):
                        grad = gy[n, o, oy, ox]
                        in_pixel = in_row[ox * stride + j - padding]
                        for c in range(taps.shape[0]):
                            in_pixel[c] += grad * taps[c]


@njit(**_PARALLEL)
def _conv2d_backward_weight(x, gy_last, stride, padding, gw_last):
    """gw_last[c, i, j, :] += x[n, c, y*stride + i - padding, x*stride + j - padding]
    * gy_last[n, y, x, :] with gy_last = gy as (N, Ho, Wo, Cout), gw_last = gw as
    (C, kh, kw, Cout)."""
    n_batch, channels, h, w_in = x.shape
    ho, wo = gy_last.shape[1], gy_last.shape[2]
    kh, kw = gw_last.shape[1], gw_last.shape[2]
    for task in prange(channels * kh * kw):
        c, i, j = task // (kh * kw), (task // kw) % kh, task % kw
        taps = gw_last[c, i, j]
        taps[:] = 0
        y_lo, y_hi = _valid(i, stride, padding, h, ho)
        x_lo, x_hi = _valid(j, stride, padding, w_in, wo)
        for n in range(n_batch):
            for oy in range(y_lo, y_hi):
                in_row = x[n, c, oy * stride + i - padding]
                for ox in range(x_lo, x_hi):
                    value = in_row[ox * stride + j - padding]
                    grads = gy_last[n, oy, ox]
                    for o in range(taps.shape[0]):
                        taps[o] += value * grads[o]


def _channels_last(a, axes):
    return numpy.ascontiguousarray(a.transpose(axes))


def conv2d(x, w, stride=1, padding=0):
    """NCHW cross-correlation without bias, direct loops (see the module docstring)."""
    n, _, h, w_in = x.shape
    ho = (h + 2 * padding - w.shape[2]) // stride + 1
    wo = (w_in + 2 * padding - w.shape[3]) // stride + 1
    y_last = numpy.empty((n, ho, wo, w.shape[0]), dtype=x.dtype)
    _conv2d_forward(x, _channels_last(w, (1, 2, 3, 0)), stride, padding, y_last)
    return _channels_last(y_last, (0, 3, 1, 2))


def conv2d_grad_input(gy, w, x_shape, stride=1, padding=0):
    """dL/dx of :func:`conv2d`, gathered per input row (see the module docstring)."""
    n, c, h, w_in = x_shape
    gx_last = numpy.empty((n, h, w_in, c), dtype=gy.dtype)
    _conv2d_backward_input(gy, _channels_last(w, (0, 2, 3, 1)), stride, padding, gx_last)
    return _channels_last(gx_last, (0, 3, 1, 2))


def conv2d_grad_weight(x, gy, w_shape, stride=1, padding=0):
    """dL/dw of :func:`conv2d`, one filter tap (c, i, j) per task (see the module docstring)."""
    c_out, c, kh, kw = w_shape
    gw_last = numpy.empty((c, kh, kw, c_out), dtype=x.dtype)
    _conv2d_backward_weight(x, _channels_last(gy, (0, 2, 3, 1)), stride, padding, gw_last)
    return _channels_last(gw_last, (3, 0, 1, 2))


@njit(**_SERIAL)
def _adam_flat(param, grad, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, l2, decay,
               step_size, sqrt_bias2, eps):
    for k in range(param.size):
        param[k], m[k], v[k] = _adam(param[k], grad[k], m[k], v[k], beta1, one_minus_beta1, beta2,
                                     one_minus_beta2, l2, decay, step_size, sqrt_bias2, eps)


@njit(**_PARALLEL)
def _adam_chunks(param, grad, m, v, *scalars):
    for chunk in prange(-(-param.size // CHUNK)):
        lo, hi = chunk * CHUNK, min(param.size, (chunk + 1) * CHUNK)
        _adam_flat(param[lo:hi], grad[lo:hi], m[lo:hi], v[lo:hi], *scalars)


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, step, weight_decay=0.0, decoupled=False):
    """One fused Adam/AdamW step in place (Kingma & Ba 2015, Algorithm 1; Loshchilov & Hutter
    2019); see :func:`kernels.reference.adam_update` for the formula. Parameters of at least
    ``PARALLEL_MIN_SIZE`` entries are updated in chunks on Numba's threads (elementwise, so
    the same values)."""
    scalars = adam_scalars(param.dtype, lr, beta1, beta2, eps, step, weight_decay, decoupled)
    update = _adam_flat if param.size < PARALLEL_MIN_SIZE else _adam_chunks
    update(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1), *scalars)


@vectorize(["float32(float32)", "float64(float64)"], cache=True)
def _erf(x):
    return math.erf(x)


def erf(x):
    """erf elementwise (see :func:`kernels.reference.erf`): ``math.erf`` compiled into a
    NumPy ufunc for float32 and float64, a few ns an element."""
    if x.dtype not in (numpy.float32, numpy.float64):
        from . import reference

        return reference.erf(x)
    return numpy.asarray(_erf(x))


# Group norm and SiLU's gradient: one parallel task per (sample, group) row, or per chunk of
# elements. Sums run in float64 over LANES independent partial sums: the lanes are
# elementwise additions, which LLVM vectorises with fastmath off, where one running sum
# would not. The elementwise loops are functions of 1-D spans: a loop with computed bounds
# inside the prange body was not vectorised (docs/history.md#what-was-tried).
LANES = 16
CHUNK = 16384  # elements per task of an elementwise kernel


@njit(cache=True)
def _affine(x, mean, scale, shift, y):
    for i in range(x.size):
        y[i] = (x[i] - mean) * scale + shift


@njit(cache=True)
def _deviation_sum(row, shift, power, lanes):
    """sum((row - shift) ** power) for power 1 or 2, in float64 (lanes: LANES scratch)."""
    lanes[:] = 0
    full = row.size - row.size % LANES
    for i in range(0, full, LANES):
        for lane in range(LANES):
            d = row[i + lane] - shift
            lanes[lane] += d * d if power == 2 else d
    total = lanes.sum()
    for i in range(full, row.size):
        d = row[i] - shift
        total += d * d if power == 2 else d
    return total


@njit(cache=True)
def _gradient_sums(gy, x, mean, rstd, lanes):
    """(sum(gy), sum(gy xhat)) with xhat = (x - mean) rstd, in float64 (lanes: 2 x LANES
    scratch)."""
    lanes[:] = 0
    g_lanes, gx_lanes = lanes[0], lanes[1]
    full = x.size - x.size % LANES
    for i in range(0, full, LANES):
        for lane in range(LANES):
            g = numpy.float64(gy[i + lane])
            g_lanes[lane] += g
            gx_lanes[lane] += g * ((x[i + lane] - mean) * rstd)
    g_sum, gx_sum = g_lanes.sum(), gx_lanes.sum()
    for i in range(full, x.size):
        g_sum += gy[i]
        gx_sum += gy[i] * ((x[i] - mean) * rstd)
    return g_sum, gx_sum


@njit(**_PARALLEL)
def _group_norm_rows(x, weight, bias, eps, y, mean, rstd):
    """x, y: (N * groups, channels/groups, positions); mean, rstd: (N * groups,)."""
    groups = weight.size // x.shape[1]
    t = x.dtype.type
    for row in prange(x.shape[0]):
        flat = x[row].reshape(x[row].size)
        lanes = numpy.empty(LANES)
        mu = _deviation_sum(flat, 0.0, 1, lanes) / flat.size
        r = 1.0 / numpy.sqrt(_deviation_sum(flat, mu, 2, lanes) / flat.size + eps)
        mean[row], rstd[row] = mu, r
        mu_t, r_t = t(mu), t(r)
        for c in range(x.shape[1]):
            channel = (row % groups) * x.shape[1] + c
            _affine(x[row, c], mu_t, r_t * weight[channel], bias[channel], y[row, c])


@njit(cache=True)
def _input_gradient(gy, x, mean, rstd, weight, mean_gxhat, mean_gxhat_xhat, gx):
    """gx = rstd (weight gy - mean(gxhat) - xhat mean(gxhat xhat)), xhat = (x - mean) rstd."""
    for i in range(x.size):
        xhat = (x[i] - mean) * rstd
        gx[i] = rstd * (weight * gy[i] - mean_gxhat - xhat * mean_gxhat_xhat)


@njit(**_PARALLEL)
def _group_norm_backward_rows(gy, x, weight, mean, rstd, gx, gweight, gbias):
    """The rows of _group_norm_rows; gweight, gbias: (N, C) float64 per-sample partial sums."""
    per, positions = x.shape[1], x.shape[2]
    groups = weight.size // per
    t = x.dtype.type
    for row in prange(x.shape[0]):
        n, g = row // groups, row % groups
        mu, r = numpy.float64(mean[row]), numpy.float64(rstd[row])
        mean_gxhat, mean_gxhat_xhat = 0.0, 0.0
        lanes = numpy.empty((2, LANES))
        for c in range(per):
            channel = g * per + c
            g_sum, gx_sum = _gradient_sums(gy[row, c], x[row, c], mu, r, lanes)
            gbias[n, channel], gweight[n, channel] = g_sum, gx_sum
            mean_gxhat += weight[channel] * g_sum
            mean_gxhat_xhat += weight[channel] * gx_sum
        m1, m2 = t(mean_gxhat / (per * positions)), t(mean_gxhat_xhat / (per * positions))
        mu_t, r_t = t(mu), t(r)
        for c in range(per):
            _input_gradient(gy[row, c], x[row, c], mu_t, r_t, weight[g * per + c], m1, m2,
                            gx[row, c])


def _group_rows(a, groups):
    return a.reshape(a.shape[0] * groups, a.shape[1] // groups, -1)


GROUP_NORM_MIN_POSITIONS = 16
"""Positions per channel below which group norm runs the reference formulas: the kernels
make a call per channel, which costs more than NumPy's whole pass on short channels (2-D
and 3-D inputs; docs/history.md#what-was-tried)."""


def _short_channels(x):
    return x[0].size < GROUP_NORM_MIN_POSITIONS * x.shape[1]


def group_norm(x, weight, bias, groups, eps):
    """:func:`kernels.reference.group_norm`, one pass per statistic and one for y."""
    if _short_channels(x):
        return reference.group_norm(x, weight, bias, groups, eps)
    n = x.shape[0]
    y = numpy.empty_like(x)
    mean, rstd = numpy.empty(n * groups, x.dtype), numpy.empty(n * groups, x.dtype)
    _group_norm_rows(_group_rows(x, groups), weight, bias, eps, _group_rows(y, groups), mean, rstd)
    return y, mean.reshape(n, groups), rstd.reshape(n, groups)


def group_norm_backward(gy, x, weight, mean, rstd):
    """:func:`kernels.reference.group_norm_backward`: one pass for the sums, one for gx."""
    if _short_channels(x):
        return reference.group_norm_backward(gy, x, weight, mean, rstd)
    groups = mean.shape[1]
    gx = numpy.empty_like(gy)
    gweight, gbias = numpy.empty(gy.shape[:2]), numpy.empty(gy.shape[:2])
    _group_norm_backward_rows(_group_rows(gy, groups), _group_rows(x, groups), weight,
                              mean.reshape(-1), rstd.reshape(-1), _group_rows(gx, groups),
                              gweight, gbias)
    return gx, gweight.sum(axis=0).astype(x.dtype), gbias.sum(axis=0).astype(x.dtype)


PARALLEL_MIN_SIZE = 4 * CHUNK
"""Sizes below which the elementwise kernels run on the calling thread (:func:`add` as
NumPy's ``a + b``): two chunks per thread at least, or the fork-join costs more than the
second thread saves, and far more when the cores are shared (the join waits for a worker
that another process holds off its core)."""


@njit(**_VECTOR)
def _add_values(a, b, out):
    for i in range(a.size):
        out[i] = a[i] + b[i]


@njit(**_VECTOR)
def _add_scalar(a, value, out):
    for i in range(a.size):
        out[i] = a[i] + value


@njit(**_PARALLEL, error_model="numpy")
def _add_flat(a, b, out):
    for chunk in prange(-(-a.size // CHUNK)):
        lo, hi = chunk * CHUNK, min(a.size, (chunk + 1) * CHUNK)
        _add_values(a[lo:hi], b[lo:hi], out[lo:hi])


@njit(**_PARALLEL, error_model="numpy")
def _add_rows(a, b, out):
    """out[r] = a[r] + b[r % b.size] for the rows r of a (R, K)."""
    for r in prange(a.shape[0]):
        _add_scalar(a[r], b[r % b.size], out[r])


def _row_block(a_shape, b_shape):
    """k when b broadcasts against a as a block of a's axes j..k-1 between ones (a bias of
    shape (1, C, 1, 1) or (N, C, 1, 1) against (N, C, H, W)), else None."""
    b_shape = (1,) * (len(a_shape) - len(b_shape)) + tuple(b_shape)
    kept = [i for i, n in enumerate(b_shape) if n != 1]
    if not kept or any(b_shape[i] != a_shape[i] for i in range(kept[0], kept[-1] + 1)):
        return None
    return kept[-1] + 1


def add(a, b):
    """:func:`kernels.reference.add` (a + b) on Numba's threads, bit for bit, when a and b
    are float arrays of one dtype, the larger has at least ``PARALLEL_MIN_SIZE`` elements and the
    other has its shape or is a bias over a block of its axes (:func:`_row_block`); NumPy's
    ``a + b`` otherwise."""
    if a.size < b.size:
        a, b = b, a  # addition commutes, bit for bit
    if (a.size < PARALLEL_MIN_SIZE or a.dtype != b.dtype
            or a.dtype not in (numpy.float32, numpy.float64) or b.ndim > a.ndim
            or not (a.flags.c_contiguous and b.flags.c_contiguous)):
        return a + b
    out = numpy.empty_like(a)
    if a.shape == b.shape:
        _add_flat(a.reshape(-1), b.reshape(-1), out.reshape(-1))
        return out
    k = _row_block(a.shape, b.shape)
    if k is None or k == a.ndim:
        return a + b
    rows = math.prod(a.shape[:k])
    _add_rows(a.reshape(rows, -1), b.reshape(-1), out.reshape(rows, -1))
    return out


@njit(**_SERIAL)
def _window_max_row(x, r, y, share):
    """:func:`kernels.reference.window_max` of the windows of row r: the fold's maximum,
    then each entry's share of the ties."""
    one = x.dtype.type(1)
    for s in range(x.shape[2]):
        m = x[r, 0, s, 0]
        for i in range(x.shape[1]):
            for j in range(x.shape[3]):
                v = x[r, i, s, j]
                if not (m > v or m != m):  # NumPy's maximum(m, v)
                    m = v
        ties = x.dtype.type(0)
        for i in range(x.shape[1]):
            for j in range(x.shape[3]):
                v = x[r, i, s, j]
                if v == m or (v != v and m != m):
                    ties += one
        for i in range(x.shape[1]):
            for j in range(x.shape[3]):
                v = x[r, i, s, j]
                hit = v == m or (v != v and m != m)
                share[r, i, s, j] = one / ties if hit else x.dtype.type(0)
        y[r, 0, s, 0] = m


@njit(**_SERIAL)
def _window_max_rows(x, y, share):
    for r in range(x.shape[0]):
        _window_max_row(x, r, y, share)


@njit(**_PARALLEL)
def _window_max_parallel(x, y, share):
    for r in prange(x.shape[0]):
        _window_max_row(x, r, y, share)


def window_max(x):
    """:func:`kernels.reference.window_max` in one pass per window (on Numba's threads from
    ``PARALLEL_MIN_SIZE`` entries): the same values."""
    y = numpy.empty((x.shape[0], 1, x.shape[2], 1), dtype=x.dtype)
    share = numpy.empty_like(x)
    (_window_max_rows if x.size < PARALLEL_MIN_SIZE else _window_max_parallel)(x, y, share)
    return y, share


def gemm(a, b, bias=None):
    """:func:`kernels.reference.gemm`, a large product's rows split over Numba's threads
    (:func:`kernels.threads.gemm`): the same values."""
    return threads.gemm(a, b, bias)


@njit(**_VECTOR)
def _silu_values(x, s, y):
    one = numpy.float32(1)
    for i in range(x.size):
        s[i] = one / (one + exp32(-x[i]))
        y[i] = x[i] * s[i]


@njit(**_PARALLEL, error_model="numpy")
def _silu_flat(x, s, y):
    for chunk in prange(-(-x.size // CHUNK)):
        lo, hi = chunk * CHUNK, min(x.size, (chunk + 1) * CHUNK)
        _silu_values(x[lo:hi], s[lo:hi], y[lo:hi])


def silu(x):
    """:func:`kernels.reference.silu` in one pass: float32 through :func:`kernels.exp32.exp32`
    (vectorised, within 3 ulp), float64 through the reference (NumPy's exp)."""
    if x.dtype != numpy.float32:
        return reference.silu(x)
    s, y = numpy.empty_like(x), numpy.empty_like(x)
    silu_pass = _silu_values if x.size < PARALLEL_MIN_SIZE else _silu_flat
    silu_pass(x.reshape(-1), s.reshape(-1), y.reshape(-1))
    return y, s


@njit(cache=True)
def _silu_gradient(x, s, gy, g):
    one = x.dtype.type(1)
    for i in range(x.size):
        g[i] = ((one - s[i]) * x[i] + one) * s[i] * gy[i]


@njit(**_PARALLEL)
def _silu_backward_flat(x, s, gy, g):
    for chunk in prange(-(-x.size // CHUNK)):
        lo, hi = chunk * CHUNK, min(x.size, (chunk + 1) * CHUNK)
        _silu_gradient(x[lo:hi], s[lo:hi], gy[lo:hi], g[lo:hi])


def silu_backward(x, s, gy):
    """:func:`kernels.reference.silu_backward` in one pass, the same operations in order."""
    g = numpy.empty_like(gy)
    gradient_pass = _silu_gradient if x.size < PARALLEL_MIN_SIZE else _silu_backward_flat
    gradient_pass(x.reshape(-1), s.reshape(-1), gy.reshape(-1), g.reshape(-1))
    return g
