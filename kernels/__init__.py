"""Fused kernels for minigen's hot paths, one dispatch function per kernel.

Each dispatch function validates its arguments once (:mod:`kernels.validation`), makes the
input arrays C-contiguous, and runs the kernel of the same name and signature in the
flavour that :func:`backend_for` picks, the one selection rule:

- :mod:`kernels.reference`: plain array formulas (NumPy or CuPy), every kernel. They define
  what each kernel computes; every other flavour is tested against them. They run when
  ``MINIGEN_KERNELS=reference`` is set (read at call time), on empty arrays, when Numba is
  not importable, and for any kernel that the array's flavour does not have;
- :mod:`kernels.cpu` (Numba ``@njit``) for NumPy arrays: every kernel;
- :mod:`kernels.cuda` (Numba-CUDA) for CuPy arrays: q_sample, p_sample_step, adam_update
  and the three convolutions (add, gemm, erf, group_norm, silu and window_max run on CuPy
  through the reference);
- :mod:`kernels.conv_cpu` for the three convolutions on NumPy arrays under "auto" (the
  default): Winograd (:mod:`kernels.winograd`, chosen by :mod:`kernels.conv_algorithm`) for
  stride-1 3x3 convolutions, one GEMM for 1x1, im2col + BLAS otherwise. On CuPy arrays,
  convolutions under "auto" run the im2col reference on cuBLAS; ``MINIGEN_KERNELS=numba``
  runs the Numba direct-convolution kernels of cpu and cuda instead.

Importing this package imports neither Numba nor CuPy; the flavours are loaded on first use
(a flavour that fails to import is skipped with a warning naming why, e.g. numba-cuda
0.30 on NumPy 2.5, which removed the ``numpy.row_stack`` that numba-cuda overloads).

Adding a fused kernel ``k``:

1. ``reference.k``: the formula in plain array code, citing its equation;
2. the fast flavours with the same signature: ``cpu.k`` (and ``cuda.k`` where the GPU needs
   it; a scalar formula shared by both goes in :mod:`kernels.elementwise`);
3. the dispatch function ``k`` here: argument checks (:mod:`kernels.validation`),
   ``check.contiguous``, then ``_run("k", x, ...)``; its name in ``__all__``;
4. the caller in minigen (a ``Function`` in ``minigen/functional/``) calls ``kernels.k``
   and keeps its readable formula as the documentation of what ``k`` computes;
5. tests: ``tests/test_kernels.py`` (each flavour equals ``reference.k``, float32 to its
   rounding and float64 to 1e-12, plus the argument errors), ``tests/test_kernels_cuda.py``
   (the simulator: ``NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim
   tests/test_kernels_cuda.py``) when there is a ``cuda.k``, and a gradient check of the
   minigen op that calls it.
"""
import functools
import importlib
import os
import warnings

from . import reference
from . import validation as check
from .arrays import is_cupy
from .conv_algorithm import get_conv_algorithm, set_conv_algorithm

__all__ = [
    "q_sample", "p_sample_step", "conv2d", "conv2d_grad_input", "conv2d_grad_weight",
    "adam_update", "adam_update_many", "add", "gemm", "window_max", "erf", "group_norm", "group_norm_backward",
    "silu", "silu_backward", "available",
    "backend_for", "requested_backend", "get_conv_algorithm", "set_conv_algorithm",
]

_CHOICES = ("auto", "reference", "numba")


def requested_backend():
    """``MINIGEN_KERNELS``: "reference" (plain array formulas everywhere), "numba" (Numba
    kernels everywhere, convolutions included) or "auto" (the default: Numba for the fused
    elementwise kernels, kernels.conv_cpu / cuBLAS for convolutions)."""
    value = os.environ.get("MINIGEN_KERNELS", "auto") or "auto"
    if value not in _CHOICES:
        raise ValueError(f"MINIGEN_KERNELS must be one of {_CHOICES}, got {value!r}")
    return value


@functools.lru_cache(maxsize=None)
def _flavour(name):
    """The flavour module ``kernels.<name>``, or None when it cannot be imported (a warning
    names the error when Numba is installed but broken, e.g. a version clash with NumPy)."""
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ImportError:
        return None
    except Exception as error:  # noqa: BLE001 (any failure inside Numba's import)
        warnings.warn(f"kernels: the {name} flavour could not be imported ({error!r}); "
                      "its calls use the reference kernels", RuntimeWarning, stacklevel=2)
        return None


def available():
    """Which flavours can run here: {"reference": True, "cpu": bool, "cuda": bool}.

    "cuda" means Numba-CUDA is importable and reports a usable device (a GPU, or the
    simulator when ``NUMBA_ENABLE_CUDASIM=1``).
    """
    cuda_module = _flavour("cuda")
    cuda_ok = cuda_module is not None and cuda_module.cuda.is_available()
    return {"reference": True, "cpu": _flavour("cpu") is not None, "cuda": cuda_ok}


_CONVOLUTIONS = frozenset({"conv2d", "conv2d_grad_input", "conv2d_grad_weight"})


def backend_for(x, kernel=None):
    """The flavour module that runs ``kernel`` (a name of ``__all__``) on data array ``x``:
    the one selection rule of every dispatch function.

    - ``MINIGEN_KERNELS=reference``, or an empty ``x``: :mod:`kernels.reference`;
    - a convolution under "auto": :mod:`kernels.conv_cpu` for NumPy arrays, the reference
      (cuBLAS through CuPy's matmul) for CuPy arrays;
    - otherwise :mod:`kernels.cuda` for CuPy arrays and :mod:`kernels.cpu` for NumPy arrays,
      where that flavour imports and has the kernel; else the reference.

    Without ``kernel``, the flavour for x's array type (convolutions aside)."""
    mode = requested_backend()
    if mode == "reference" or (kernel is not None and x.size == 0):
        return reference
    if mode == "auto" and kernel in _CONVOLUTIONS:
        name = None if is_cupy(x) else "conv_cpu"
    else:
        name = "cuda" if is_cupy(x) else "cpu"
    flavour = None if name is None else _flavour(name)
    if flavour is None or (kernel is not None and not hasattr(flavour, kernel)):
        return reference
    return flavour


def _run(kernel, x, *args, **kwargs):
    """``kernel(*args, **kwargs)`` of the flavour that :func:`backend_for` picks for ``x``."""
    return getattr(backend_for(x, kernel), kernel)(*args, **kwargs)


def q_sample(x0, noise, t, sqrt_abar, sqrt_one_minus_abar, out=None):
    """x_t = sqrt_abar[t] x0 + sqrt_one_minus_abar[t] noise per sample (Ho et al. 2020, eq. 4).

    x0, noise: (batch, ...) float arrays of one dtype; t: (batch,) integers in [0, T);
    tables: 1-D float arrays of length T (float64 from the schedule, cast to x0's dtype).
    Writes into ``out`` (C-contiguous, x0's shape and dtype; may be x0 itself) when given.
    """
    name = "q_sample"
    xp = check.arrays(name, x0=x0, noise=noise)
    dtype = check.floating(name, x0=x0, noise=noise)
    check.same_shape(name, "x0", x0, noise=noise)
    T = check.tables(name, xp, sqrt_abar=sqrt_abar, sqrt_one_minus_abar=sqrt_one_minus_abar)
    check.timesteps(name, t, check.batched(name, "x0", x0), T, xp)
    check.out_array(name, out, x0.shape, dtype, xp)
    x0, noise = check.contiguous(xp, x0, noise)
    return _run(name, x0, x0, noise, t, sqrt_abar, sqrt_one_minus_abar, out=out)


def p_sample_step(xt, eps, t, noise, coef_x0_xt, coef_x0_eps, coef_mean_x0, coef_mean_xt, sigma,
                  clip=None, out=None):
    """One fused ancestral step x_t -> x_{t-1} (Ho et al. 2020, eqs. 7 and 15, Algorithm 2).

    x0_hat = coef_x0_xt[t] xt + coef_x0_eps[t] eps, clipped to [-clip, clip] unless clip is
    None; mean = coef_mean_x0[t] x0_hat + coef_mean_xt[t] xt; result mean + sigma[t] noise,
    or mean where t == 0. See :func:`kernels.reference.p_sample_step` for the tables.
    """
    name = "p_sample_step"
    xp = check.arrays(name, xt=xt, eps=eps, noise=noise)
    dtype = check.floating(name, xt=xt, eps=eps, noise=noise)
    check.same_shape(name, "xt", xt, eps=eps, noise=noise)
    T = check.tables(name, xp, coef_x0_xt=coef_x0_xt, coef_x0_eps=coef_x0_eps,
                     coef_mean_x0=coef_mean_x0, coef_mean_xt=coef_mean_xt, sigma=sigma)
    check.timesteps(name, t, check.batched(name, "xt", xt), T, xp)
    check.clip_value(name, clip)
    check.out_array(name, out, xt.shape, dtype, xp)
    xt, eps, noise = check.contiguous(xp, xt, eps, noise)
    return _run(name, xt, xt, eps, t, noise, coef_x0_xt, coef_x0_eps, coef_mean_x0, coef_mean_xt,
                sigma, clip=clip, out=out)


def conv2d(x, w, stride=1, padding=0):
    """NCHW cross-correlation without bias: x (N, C, H, W), w (Cout, C, kh, kw) ->
    (N, Cout, Ho, Wo), Ho = (H + 2 padding - kh) // stride + 1 (likewise Wo)."""
    name = "conv2d"
    xp = check.arrays(name, x=x, w=w)
    check.floating(name, x=x, w=w)
    check.conv_geometry(name, x.shape, w.shape, stride, padding)
    x, w = check.contiguous(xp, x, w)
    return _run(name, x, x, w, int(stride), int(padding))


def conv2d_grad_input(gy, w, x_shape, stride=1, padding=0):
    """dL/dx of :func:`conv2d` given gy = dL/dy of shape (N, Cout, Ho, Wo); returns x_shape."""
    name = "conv2d_grad_input"
    xp = check.arrays(name, gy=gy, w=w)
    check.floating(name, gy=gy, w=w)
    x_shape = check.shape_tuple(name, "x_shape", x_shape)
    _check_gy(name, gy, check.conv_geometry(name, x_shape, w.shape, stride, padding))
    gy, w = check.contiguous(xp, gy, w)
    return _run(name, gy, gy, w, x_shape, int(stride), int(padding))


def conv2d_grad_weight(x, gy, w_shape, stride=1, padding=0):
    """dL/dw of :func:`conv2d` given gy = dL/dy of shape (N, Cout, Ho, Wo); returns w_shape."""
    name = "conv2d_grad_weight"
    xp = check.arrays(name, x=x, gy=gy)
    check.floating(name, x=x, gy=gy)
    w_shape = check.shape_tuple(name, "w_shape", w_shape)
    _check_gy(name, gy, check.conv_geometry(name, x.shape, w_shape, stride, padding))
    x, gy = check.contiguous(xp, x, gy)
    return _run(name, x, x, gy, w_shape, int(stride), int(padding))


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, step, weight_decay=0.0, decoupled=False):
    """One fused Adam step in place on param, m and v (Kingma & Ba 2015, Algorithm 1); with
    ``decoupled`` the weight decay is AdamW's (Loshchilov & Hutter 2019), otherwise an L2
    term added to the gradient. ``step`` counts from 1. param, m and v must be C-contiguous
    (they are updated in place); see :func:`kernels.reference.adam_update` for the formula."""
    _adam_updates([param], [grad], [m], [v], lr, beta1, beta2, eps, [step], weight_decay,
                  decoupled)


def adam_update_many(params, grads, ms, vs, lr, beta1, beta2, eps, steps, weight_decay=0.0,
                     decoupled=False):
    """:func:`adam_update` of every (param, grad, m, v, step) of the lists, the shared
    hyper-parameters checked once: an optimizer's step over all its parameters."""
    _adam_updates(params, grads, ms, vs, lr, beta1, beta2, eps, steps, weight_decay, decoupled)


def _adam_updates(params, grads, ms, vs, lr, beta1, beta2, eps, steps, weight_decay, decoupled):
    name = "adam_update"
    check.number(name, "lr", lr, lambda a: a >= 0, ">= 0")
    check.number(name, "beta1", beta1, lambda a: 0 <= a < 1, "in [0, 1)")
    check.number(name, "beta2", beta2, lambda a: 0 <= a < 1, "in [0, 1)")
    check.number(name, "eps", eps, lambda a: a > 0, "> 0")
    check.number(name, "weight_decay", weight_decay, lambda a: a >= 0, ">= 0")
    if not len(params) == len(grads) == len(ms) == len(vs) == len(steps):
        raise ValueError(f"{name}: {len(params)} params, {len(grads)} grads, {len(ms)} m, "
                         f"{len(vs)} v and {len(steps)} steps: the lists must match")
    flavours = {}  # array module -> flavour, chosen once per call
    for param, grad, m, v, step in zip(params, grads, ms, vs, steps):
        xp = check.arrays(name, param=param, grad=grad, m=m, v=v)
        check.floating(name, param=param, grad=grad, m=m, v=v)
        check.same_shape(name, "param", param, grad=grad, m=m, v=v)
        check.writable(name, param=param, m=m, v=v)
        step = check.integer(name, "step", step, 1)
        (grad,) = check.contiguous(xp, grad)
        if xp not in flavours:
            flavours[xp] = backend_for(param, name)
        flavours[xp].adam_update(param, grad, m, v, lr, beta1, beta2, eps, step,
                                 weight_decay=weight_decay, decoupled=bool(decoupled))


def add(a, b):
    """a + b of two arrays with NumPy's broadcasting. On the CPU, float arrays of one dtype
    whose shapes match, or where the smaller is a bias over a block of the larger's axes
    ((1, C, 1, 1) or (N, C, 1, 1) against (N, C, H, W)), are added on Numba's threads, bit
    for bit the same sums (:func:`kernels.cpu.add`); everything else is NumPy's or CuPy's
    ``a + b``."""
    check.arrays("add", a=a, b=b)
    return _run("add", a, a, b)


def gemm(a, b, bias=None):
    """a @ b (+ bias) of an (M, K) and a (K, N) matrix, bias of shape (N,): a linear layer's
    products. On the CPU, float matrices of one dtype whose product is large are computed in
    row blocks on Numba's threads, the same values (:func:`kernels.cpu.gemm`); otherwise
    NumPy's or CuPy's ``a @ b + bias``."""
    named = dict(a=a, b=b) if bias is None else dict(a=a, b=b, bias=bias)
    check.arrays("gemm", **named)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"gemm: a {a.shape} and b {b.shape} are not matrices with a's "
                         "columns matching b's rows")
    if bias is not None and bias.shape != (b.shape[1],):
        raise ValueError(f"gemm: bias has shape {bias.shape}, expected ({b.shape[1]},)")
    return _run("gemm", a, a, b, bias)


def window_max(x):
    """Max pooling over windows that tile the input: x (R, kh, S, kw) holds the windows
    x[r, :, s, :]; returns their maxima (R, 1, S, 1) and each entry's share of its window's
    gradient (1 / ties at the maxima, else 0; :func:`kernels.reference.window_max`). Numba
    on NumPy float arrays (one pass, parallel over r), the reference formulas otherwise."""
    xp = check.arrays("window_max", x=x)
    check.floating("window_max", x=x)
    if x.ndim != 4:
        raise ValueError(f"window_max: x must be (R, kh, S, kw), got shape {x.shape}")
    (x,) = check.contiguous(xp, x)
    return _run("window_max", x, x)


def erf(x):
    """erf(x) elementwise in x's dtype (exact GELU's CDF). Numba-CPU ufunc for NumPy arrays;
    CuPy has its own erf ufunc (``cupyx.scipy.special``), which the reference calls."""
    check.arrays("erf", x=x)
    if x.dtype.kind != "f":
        raise TypeError(f"erf: x must be a floating-point array, got dtype {x.dtype}")
    return _run("erf", x, x)


def group_norm(x, weight, bias, groups, eps):
    """Group normalisation of x (N, C, ...) with a per-channel affine map: returns (y, mean,
    rstd), the statistics of shape (N, groups) in x's dtype (see
    :func:`kernels.reference.group_norm`)."""
    name = "group_norm"
    xp = check.arrays(name, x=x, weight=weight, bias=bias)
    check.floating(name, x=x, weight=weight, bias=bias)
    _check_groups(name, x, weight, bias, groups)
    x, weight, bias = check.contiguous(xp, x, weight, bias)
    return _run(name, x, x, weight, bias, int(groups), float(eps))


def group_norm_backward(gy, x, weight, mean, rstd):
    """(gx, gweight, gbias) of :func:`group_norm` given gy = dL/dy and its statistics."""
    name = "group_norm_backward"
    xp = check.arrays(name, gy=gy, x=x, weight=weight, mean=mean, rstd=rstd)
    check.floating(name, gy=gy, x=x, weight=weight, mean=mean, rstd=rstd)
    check.same_shape(name, "x", x, gy=gy)
    _check_groups(name, x, weight, weight, mean.shape[1] if mean.ndim == 2 else 0)
    check.same_shape(name, "mean", mean, rstd=rstd)
    if mean.shape != (x.shape[0], mean.shape[1]):
        raise ValueError(f"{name}: mean has shape {mean.shape}, expected (N, groups) with N = "
                         f"{x.shape[0]}")
    gy, x, weight, mean, rstd = check.contiguous(xp, gy, x, weight, mean, rstd)
    return _run(name, x, gy, x, weight, mean, rstd)


def silu(x):
    """(x sigmoid(x), sigmoid(x)) of a float array: SiLU's output and the sigmoid that its
    gradient (:func:`silu_backward`) reuses (see :func:`kernels.reference.silu`)."""
    xp = check.arrays("silu", x=x)
    check.floating("silu", x=x)
    (x,) = check.contiguous(xp, x)
    return _run("silu", x, x)


def silu_backward(x, s, gy):
    """dL/dx of x sigmoid(x) given s = sigmoid(x) and gy = dL/dy: gy s (1 + x (1 - s))."""
    name = "silu_backward"
    xp = check.arrays(name, x=x, s=s, gy=gy)
    check.floating(name, x=x, s=s, gy=gy)
    check.same_shape(name, "x", x, s=s, gy=gy)
    x, s, gy = check.contiguous(xp, x, s, gy)
    return _run(name, x, x, s, gy)


def _check_groups(name, x, weight, bias, groups):
    if x.ndim < 2 or groups < 1 or x.shape[1] % groups:
        raise ValueError(f"{name}: x {x.shape} must be (N, C, ...) with C divisible into "
                         f"{groups} groups")
    if weight.shape != (x.shape[1],) or bias.shape != (x.shape[1],):
        raise ValueError(f"{name}: weight {weight.shape} and bias {bias.shape} must be "
                         f"({x.shape[1]},)")


def _check_gy(name, gy, y_shape):
    if gy.shape != y_shape:
        raise ValueError(
            f"{name}: gy has shape {gy.shape}, expected the conv2d output shape {y_shape}"
        )
