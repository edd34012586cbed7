"""The per-element formulas of the fused elementwise kernels, written once in plain Python.

:mod:`kernels.cpu` compiles them with ``numba.njit`` and :mod:`kernels.cuda` with
``cuda.jit(device=True)``; the flavours only differ in how they walk the elements. The
whole-array versions in :mod:`kernels.reference` are the truth both are tested against.
"""
import math


def q_sample(sqrt_abar, sqrt_one_minus_abar, x0, noise):
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise (Ho et al. 2020, eq. 4)."""
    return sqrt_abar * x0 + sqrt_one_minus_abar * noise


def p_sample(xt, eps, noise, coef_x0_xt, coef_x0_eps, coef_mean_x0, coef_mean_xt, sigma,
             clipped, clip, last):
    """x_{t-1} through x0_hat (eq. 15), clipped to [-clip, clip] when ``clipped``, the
    posterior mean (eq. 7) and sigma_t z, without noise at the ``last`` step (Algorithm 2)."""
    x0_hat = coef_x0_xt * xt + coef_x0_eps * eps
    if clipped:
        x0_hat = min(max(x0_hat, -clip), clip)
    mean = coef_mean_x0 * x0_hat + coef_mean_xt * xt
    return mean if last else mean + sigma * noise


def adam(param, grad, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, l2, decay,
         step_size, sqrt_bias2, eps):
    """One Adam/AdamW step of one element: returns the new (param, m, v) (see
    :func:`kernels.reference.adam_update`)."""
    g = grad + l2 * param
    m = beta1 * m + one_minus_beta1 * g
    v = beta2 * v + one_minus_beta2 * g * g
    return decay * param - step_size * m / (math.sqrt(v) / sqrt_bias2 + eps), m, v
