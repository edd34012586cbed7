"""Plain array formulas for every kernel: the truth the Numba kernels are tested against.

Written with whole-array operations only, so they run unchanged on NumPy and CuPy arrays
(the array module is taken from the data). Per-timestep coefficients are gathered from the
float64 tables and cast to the data dtype before use, exactly as the fused kernels do.
"""
import functools
import math

import numpy

from .arrays import array_module


def _per_sample(xp, table, t, x):
    """table[t] in x's dtype, shaped (batch, 1, ..., 1) to broadcast over the non-batch axes."""
    coef = xp.asarray(table).astype(x.dtype)[xp.asarray(t)]
    return coef.reshape((x.shape[0],) + (1,) * (x.ndim - 1))


def _store(result, out):
    if out is None:
        return result
    out[...] = result
    return out


def q_sample(x0, noise, t, sqrt_abar, sqrt_one_minus_abar, out=None):
    """Diffuse x0 to step t: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise (Ho et al. 2020,
    eq. 4)."""
    xp = array_module(x0)
    x_t = (_per_sample(xp, sqrt_abar, t, x0) * x0
           + _per_sample(xp, sqrt_one_minus_abar, t, x0) * noise)
    return _store(x_t, out)


def p_sample_step(xt, eps, t, noise, coef_x0_xt, coef_x0_eps, coef_mean_x0, coef_mean_xt, sigma,
                  clip=None, out=None):
    """One ancestral sampling step x_t -> x_{t-1} through the predicted x0.

    x0_hat = coef_x0_xt[t] x_t + coef_x0_eps[t] eps; for eps-prediction the tables are
    sqrt(1/abar_t) and -sqrt(1/abar_t - 1) (Ho et al. 2020, eq. 15 solved for x0); other
    tables give x0- and v-prediction. Optionally x0_hat is clipped to [-clip, clip]. Then
    mean = coef_mean_x0[t] x0_hat + coef_mean_xt[t] x_t is the posterior mean (eq. 7) and
    x_{t-1} = mean + sigma[t] noise, without noise where t == 0 (Algorithm 2, z = 0 at the
    last step). With clipping this posterior-mean path differs from Algorithm 2 line 4, which
    never forms x0_hat; without clipping the two agree.
    """
    xp = array_module(xt)
    x0_hat = _per_sample(xp, coef_x0_xt, t, xt) * xt + _per_sample(xp, coef_x0_eps, t, xt) * eps
    if clip is not None:
        x0_hat = xp.clip(x0_hat, -clip, clip)
    mean = _per_sample(xp, coef_mean_x0, t, xt) * x0_hat + _per_sample(xp, coef_mean_xt, t, xt) * xt
    last_step = (xp.asarray(t) == 0).reshape((xt.shape[0],) + (1,) * (xt.ndim - 1))
    x_prev = xp.where(last_step, mean, mean + _per_sample(xp, sigma, t, xt) * noise)
    return _store(x_prev, out)


def _windows(xp, x, kh, kw, stride, padding):
    """im2col as a strided view: (N, C, Ho, Wo, kh, kw) with [n, c, y, x, i, j] =
    x_padded[n, c, y * stride + i, x * stride + j]. No copy until the GEMM needs one."""
    if padding:
        x = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    x = xp.ascontiguousarray(x)
    n, c, h, w = x.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    sn, sc, sh, sw = x.strides
    return xp.lib.stride_tricks.as_strided(
        x, shape=(n, c, ho, wo, kh, kw), strides=(sn, sc, sh * stride, sw * stride, sh, sw)
    )


def _columns(xp, x, kh, kw, stride, padding):
    """The im2col matrix (C*kh*kw, N*Ho*Wo), copied in (c, i, j, n, y, x) order: the inner
    copy runs along image rows, the cache-friendly order for NCHW data."""
    cols = _windows(xp, x, kh, kw, stride, padding)
    n, c, ho, wo = cols.shape[:4]
    return xp.ascontiguousarray(cols.transpose(1, 4, 5, 0, 2, 3)).reshape(c * kh * kw, n * ho * wo)


def _channels_first(xp, a):
    """(N, C, H, W) -> contiguous (C, N*H*W)."""
    return xp.ascontiguousarray(a.transpose(1, 0, 2, 3)).reshape(a.shape[1], -1)


def _image_columns(xp, x, kh, kw, stride, padding):
    """im2col per image: (N, C*kh*kw, Ho*Wo), copied in (n, c, i, j, y, x) order."""
    cols = _windows(xp, x, kh, kw, stride, padding)
    n, c, ho, wo = cols.shape[:4]
    return xp.ascontiguousarray(cols.transpose(0, 1, 4, 5, 2, 3)).reshape(n, c * kh * kw, ho * wo)


def conv2d(x, w, stride=1, padding=0):
    """NCHW cross-correlation without bias: y[n, o, y, x] =
    sum_{c, i, j} w[o, c, i, j] x_padded[n, c, y*stride + i, x*stride + j].

    im2col per image (a strided view of the padded input, copied once) and one GEMM per
    image, (Cout, C*kh*kw) @ (C*kh*kw, Ho*Wo): the output comes out in NCHW order and each
    image's columns are small enough to stay in cache (faster than one GEMM over the whole
    batch plus a transpose; docs/history.md#what-was-tried).
    """
    xp = array_module(x)
    n, cout = x.shape[0], w.shape[0]
    ho = (x.shape[2] + 2 * padding - w.shape[2]) // stride + 1
    wo = (x.shape[3] + 2 * padding - w.shape[3]) // stride + 1
    cols = _image_columns(xp, x, w.shape[2], w.shape[3], stride, padding)
    return xp.matmul(w.reshape(cout, -1), cols).reshape(n, cout, ho, wo)


def conv2d_grad_input(gy, w, x_shape, stride=1, padding=0):
    """Gradient of :func:`conv2d` with respect to x, given gy = dL/dy.

    Stride 1 (square kernel) with gy at least the kernel's size: a full convolution with the
    flipped kernel. Otherwise one GEMM back to columns, (C, kh, kw, N, Ho, Wo), then col2im:
    scatter-add each kernel offset (i, j) into the strided slice of the padded input it was
    read from, looping over the kh * kw offsets only. (On a gy smaller than the kernel, the
    full convolution would mostly multiply its zero padding, as in a transposed convolution
    from 1x1 to 4x4; docs/performance.md has the timing.)
    """
    xp = array_module(gy)
    n, c, h, w_ = x_shape
    cout, _, kh, kw = w.shape
    ho, wo = gy.shape[2], gy.shape[3]
    if stride == 1 and kh == kw and padding <= kh - 1 and min(ho, wo) >= kh:
        # stride 1: the adjoint is a "full" convolution of gy with the flipped, transposed
        # kernel (one GEMM, no scatter-add)
        w_flipped = xp.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        return conv2d(gy, w_flipped, 1, kh - 1 - padding)
    cols = (w.reshape(cout, -1).T @ _channels_first(xp, gy)).reshape(c, kh, kw, n, ho, wo)
    gx = xp.zeros((c, n, h + 2 * padding, w_ + 2 * padding), dtype=gy.dtype)
    for i in range(kh):
        for j in range(kw):
            gx[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride] += cols[:, i, j]
    return xp.ascontiguousarray(gx[:, :, padding:padding + h, padding:padding + w_].transpose(1, 0, 2, 3))


def conv2d_grad_weight(x, gy, w_shape, stride=1, padding=0):
    """Gradient of :func:`conv2d` with respect to w: gw[o, c, i, j] =
    sum_{n, y, x} gy[n, o, y, x] x_padded[n, c, y*stride + i, x*stride + j] (one GEMM)."""
    xp = array_module(x)
    cols = _columns(xp, x, w_shape[2], w_shape[3], stride, padding)
    return (_channels_first(xp, gy) @ cols.T).reshape(w_shape)


@functools.lru_cache(maxsize=64)
def adam_scalars(dtype, lr, beta1, beta2, eps, step, weight_decay, decoupled):
    """The per-step scalars of :func:`adam_update`, in ``dtype``, shared by every flavour:
    (beta1, 1 - beta1, beta2, 1 - beta2, l2, decay, step_size, sqrt_bias2, eps) with
    step_size = lr / (1 - beta1^step) and sqrt_bias2 = sqrt(1 - beta2^step). Cached: an
    optimizer's step asks for the same scalars once per parameter."""
    l2, decay = (0.0, 1.0 - lr * weight_decay) if decoupled else (weight_decay, 1.0)
    values = (beta1, 1.0 - beta1, beta2, 1.0 - beta2, l2, decay, lr / (1.0 - beta1**step),
              math.sqrt(1.0 - beta2**step), eps)
    return tuple(dtype.type(value) for value in values)


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, step, weight_decay=0.0, decoupled=False):
    """One Adam step in place on param, m and v (Kingma & Ba 2015, Algorithm 1).

    g = grad + weight_decay param (L2 penalty) unless ``decoupled``, in which case the
    decay is applied to the parameter directly, param <- (1 - lr weight_decay) param
    (AdamW, Loshchilov & Hutter 2019, Algorithm 2, with the decay scaled by lr as in
    PyTorch's AdamW: the paper's lambda is lr * weight_decay at schedule multiplier 1). Then
    m <- beta1 m + (1 - beta1) g,  v <- beta2 v + (1 - beta2) g^2,
    param <- param - lr / (1 - beta1^step) m / (sqrt(v) / sqrt(1 - beta2^step) + eps),
    which is Algorithm 1's lr m_hat / (sqrt(v_hat) + eps) with the bias corrections folded
    into two scalars. ``step`` counts from 1.
    """
    xp = array_module(param)
    b1, rb1, b2, rb2, l2, decay, step_size, sqrt_bias2, eps = adam_scalars(
        param.dtype, lr, beta1, beta2, eps, step, weight_decay, decoupled)
    g = grad + l2 * param
    m[...] = b1 * m + rb1 * g
    v[...] = b2 * v + rb2 * g * g
    param[...] = decay * param - step_size * m / (xp.sqrt(v) / sqrt_bias2 + eps)


def erf(x):
    """The error function erf(x) = 2/sqrt(pi) int_0^x exp(-t^2) dt, elementwise, in x's dtype.
    NumPy has no erf ufunc, so the reference calls ``math.erf`` per element (a Python-speed
    loop); CuPy arrays go through ``cupyx.scipy.special.erf``."""
    xp = array_module(x)
    if xp.__name__ == "cupy":
        from cupyx.scipy import special

        return special.erf(x)
    return xp.asarray(xp.frompyfunc(math.erf, 1, 1)(x), dtype=x.dtype)


def _grouped(a, groups):
    return a.reshape(a.shape[0], groups, -1)


def _per_channel(a, ndim):
    return a.reshape((1, -1) + (1,) * (ndim - 2))


def group_norm(x, weight, bias, groups, eps):
    """Group normalisation (Wu & He 2018, eq. 1-3) with a per-channel affine map:
    y = (x - mean) * rstd * weight + bias, with mean and rstd = 1 / sqrt(var + eps) per
    sample and group of channels/groups channels and all positions. Returns (y, mean,
    rstd); the statistics have shape (N, groups) and x's dtype."""
    xp = array_module(x)
    xg = _grouped(x, groups)
    mean = xg.mean(axis=2)
    d = xg - mean[..., None]
    variance = xp.einsum("ngk,ngk->ng", d, d) / d.shape[2]  # no d * d temporary
    rstd = (1.0 / xp.sqrt(variance + eps)).astype(x.dtype)
    d *= rstd[..., None]
    y = d.reshape(x.shape) * _per_channel(weight, x.ndim)
    y += _per_channel(bias, x.ndim)
    return y, mean, rstd


def group_norm_backward(gy, x, weight, mean, rstd):
    """(gx, gweight, gbias) of :func:`group_norm` for the output gradient gy. Per group, with
    xhat = (x - mean) rstd: dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),
    dxhat = gy weight; gweight = sum(gy xhat), gbias = sum(gy) over samples and positions."""
    xp = array_module(gy)
    groups = mean.shape[1]
    xhat = _grouped(x, groups) - mean[..., None]
    xhat *= rstd[..., None]
    per_channel = (gy.shape[0], gy.shape[1], -1)  # reductions over contiguous rows
    gweight = xp.einsum("nck,nck->nc", gy.reshape(per_channel),
                        xhat.reshape(per_channel)).sum(axis=0)
    gbias = gy.reshape(per_channel).sum(axis=2).sum(axis=0)
    gxhat = _grouped(gy * _per_channel(weight, gy.ndim), groups)
    mean_gxhat_xhat = xp.einsum("ngk,ngk->ng", gxhat, xhat)[..., None] / xhat.shape[2]
    gx = xhat * mean_gxhat_xhat
    xp.subtract(gxhat, gx, out=gx)
    gx -= gxhat.mean(axis=2, keepdims=True)
    gx *= rstd[..., None]
    return gx.reshape(gy.shape), gweight, gbias


def add(a, b):
    """a + b with NumPy's broadcasting (the definition :func:`kernels.cpu.add` parallelises)."""
    return a + b


def window_max(x):
    """The maxima of the windows x[r, :, s, :] of x (R, kh, S, kw) (max pooling's windows
    that tile the input, reshaped), shape (R, 1, S, 1), and each entry's share of the
    window's gradient: 1 / (the window's ties) at its maxima, 0 elsewhere. The maximum is
    the fold y = maximum(y, x[r, i, s, j]) over i, then j: a NaN wins (and the NaN entries
    are the hits), and of equal values the later one stays (NumPy's maximum returns its
    second argument on a tie, which tells 0.0 from -0.0)."""
    xp = array_module(x)
    y = x[:, :1, :, :1]
    for i in range(x.shape[1]):
        for j in range(x.shape[3]):
            if i or j:
                y = xp.maximum(y, x[:, i:i + 1, :, j:j + 1])
    hits = ((x == y) | (x != x) & (y != y)).astype(x.dtype)
    return y, hits / hits.sum(axis=(1, 3), keepdims=True)


def gemm(a, b, bias=None):
    """a @ b (+ bias) of two matrices, a linear layer's product (y = x W^T + b, and its
    gradients x^T gy and gy W without the bias): the definition :func:`kernels.cpu.gemm`
    splits over threads."""
    y = a @ b
    return y if bias is None else y + bias


def sigmoid(x, out=None):
    """1 / (1 + e^-x) of a float array, into ``out`` when given: accurate to a few ulp in both
    tails wherever the result is a normal float (a tanh form rounds sigmoid(-20) to 0 in
    float32). e^-x overflows to inf only where the result is below the smallest normal
    float (x < -88 in float32), and then gives 0, as PyTorch's does."""
    xp = array_module(x)
    s = xp.negative(x, out=xp.empty_like(x) if out is None else out)  # an array for 0-d x too
    with numpy.errstate(over="ignore"):  # NumPy warns on the overflow; CuPy does not
        xp.exp(s, out=s)
    s += 1
    return xp.divide(1, s, out=s)  # 1 / (1 + e^-x) in one buffer


def silu(x):
    """(x sigmoid(x), sigmoid(x)): SiLU's output and the sigmoid its gradient reuses."""
    s = sigmoid(x)
    return array_module(x).multiply(x, s, out=array_module(x).empty_like(s)), s


def silu_backward(x, s, gy):
    """d/dx [x sigmoid(x)] times gy, given s = sigmoid(x): gy s (1 + x (1 - s))."""
    g = 1 - s
    g *= x
    g += 1
    g *= s
    g *= gy
    return g
