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
convolution the NumPy dispatch uses (measurements in docs/performance.md).
"""
import math

import numpy
from numba import njit, prange, vectorize

from . import elementwise
from .arrays import rows
from .reference import adam_scalars

# Elementwise kernels are memory-bound single passes: they run serially, because starting
# and joining threads cost more than they save (docs/performance.md). The convolutions do
# enough arithmetic per byte to gain from prange.
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


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, step, weight_decay=0.0, decoupled=False):
    """One fused Adam/AdamW step in place (Kingma & Ba 2015, Algorithm 1; Loshchilov & Hutter
    2019); see :func:`kernels.reference.adam_update` for the formula."""
    scalars = adam_scalars(param.dtype, lr, beta1, beta2, eps, step, weight_decay, decoupled)
    _adam_flat(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1), *scalars)


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
