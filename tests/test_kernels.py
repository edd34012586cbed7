"""Kernels against the NumPy reference, the reference against independent definitions
(explicit loops, Ho et al. 2020 Algorithm 2, the adjoint identity), the MINIGEN_KERNELS
switch and every validation error of the dispatch layer."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kernels
from kernels import conv_cpu, cpu, reference
from tests.references import conv2d_loop

DTYPES = [np.float32, np.float64]
# Elementwise kernels repeat the reference's arithmetic; convolutions sum in another order.
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}
CONV_TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}
# Flavours under test: the Numba-CPU module directly and the dispatch layer (NumPy -> cpu).
FLAVOURS = [pytest.param(cpu, id="cpu"), pytest.param(kernels, id="dispatch")]


def ddpm_tables(T):
    """Eps-prediction tables for a linear schedule (Ho et al. 2020; REFERENCES.md)."""
    betas = np.linspace(1e-4, 0.02, T) if T > 1 else np.array([1e-4])
    alphas = 1.0 - betas
    abar = np.cumprod(alphas)
    abar_prev = np.append(1.0, abar[:-1])
    return dict(
        betas=betas, alphas=alphas, abar=abar,
        sqrt_abar=np.sqrt(abar), sqrt_one_minus_abar=np.sqrt(1.0 - abar),
        coef_x0_xt=np.sqrt(1.0 / abar), coef_x0_eps=-np.sqrt(1.0 / abar - 1.0),
        coef_mean_x0=betas * np.sqrt(abar_prev) / (1.0 - abar),
        coef_mean_xt=(1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar),
        sigma=np.sqrt(betas),  # "fixed_large"
    )


def step_tables(tab):
    return (tab["coef_x0_xt"], tab["coef_x0_eps"], tab["coef_mean_x0"], tab["coef_mean_xt"],
            tab["sigma"])


@st.composite
def diffusion_case(draw):
    dtype = draw(st.sampled_from(DTYPES))
    batch = draw(st.integers(1, 4))
    feature_shape = tuple(draw(st.lists(st.integers(1, 5), max_size=3)))
    T = draw(st.integers(1, 40))
    t = np.array(draw(st.lists(st.integers(0, T - 1), min_size=batch, max_size=batch)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    arrays = [rng.standard_normal((batch,) + feature_shape).astype(dtype) for _ in range(3)]
    return dtype, t, ddpm_tables(T), arrays


# ---------------------------------------------------------------- q_sample

def test_reference_q_sample_is_eq4_per_sample():
    tab = ddpm_tables(50)
    rng = np.random.default_rng(0)
    x0, noise = rng.standard_normal((2, 4, 3, 3, 3))
    t = np.array([0, 49, 7, 25])
    got = reference.q_sample(x0, noise, t, tab["sqrt_abar"], tab["sqrt_one_minus_abar"])
    for n in range(4):
        abar = tab["abar"][t[n]]
        np.testing.assert_allclose(got[n], np.sqrt(abar) * x0[n] + np.sqrt(1 - abar) * noise[n],
                                   rtol=1e-14)


@pytest.mark.parametrize("flavour", FLAVOURS)
@given(case=diffusion_case())
def test_q_sample_matches_reference(flavour, case):
    dtype, t, tab, (x0, noise, _) = case
    tables = (tab["sqrt_abar"], tab["sqrt_one_minus_abar"])
    want = reference.q_sample(x0, noise, t, *tables)
    got = flavour.q_sample(x0, noise, t, *tables)
    assert got.dtype == dtype and got.shape == x0.shape
    np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_q_sample_first_and_last_step_and_out(flavour, dtype):
    T = 1000
    tab = ddpm_tables(T)
    rng = np.random.default_rng(1)
    x0, noise = rng.standard_normal((2, 3, 8)).astype(dtype)
    t = np.array([0, T - 1, 0])
    out = np.empty_like(x0)
    got = flavour.q_sample(x0, noise, t, tab["sqrt_abar"], tab["sqrt_one_minus_abar"], out=out)
    assert got is out
    np.testing.assert_allclose(got, reference.q_sample(x0, noise, t, tab["sqrt_abar"],
                                                       tab["sqrt_one_minus_abar"]), **TOL[dtype])
    # abar_T ~ 4.04e-5 for T = 1000 (REFERENCES.md): the last step is almost pure noise.
    np.testing.assert_allclose(got[1], noise[1], atol=0.02)
    assert np.abs(got[0] - x0[0]).max() > 1e-6  # t = 0 still adds beta_1 worth of noise


def test_q_sample_in_place_on_x0():
    tab = ddpm_tables(10)
    rng = np.random.default_rng(2)
    x0, noise = rng.standard_normal((2, 3, 4)).astype(np.float32)
    t = np.array([3, 9, 0])
    want = reference.q_sample(x0, noise, t, tab["sqrt_abar"], tab["sqrt_one_minus_abar"])
    got = kernels.q_sample(x0, noise, t, tab["sqrt_abar"], tab["sqrt_one_minus_abar"], out=x0)
    assert got is x0
    np.testing.assert_allclose(x0, want, **TOL[np.float32])


# ---------------------------------------------------------------- p_sample_step

def test_reference_p_sample_step_is_algorithm2_without_clip():
    """Posterior-mean path == Algorithm 2 line 4 when x0_hat is not clipped."""
    T = 100
    tab = ddpm_tables(T)
    rng = np.random.default_rng(3)
    xt, eps, z = rng.standard_normal((3, 5, 2, 4))
    t = np.array([0, 1, 50, T - 1, 7])
    got = reference.p_sample_step(xt, eps, t, z, *step_tables(tab))
    for n, s in enumerate(t):
        beta, alpha, abar = tab["betas"][s], tab["alphas"][s], tab["abar"][s]
        line4 = (xt[n] - beta / np.sqrt(1 - abar) * eps[n]) / np.sqrt(alpha)
        want = line4 + (np.sqrt(beta) * z[n] if s > 0 else 0.0)
        np.testing.assert_allclose(got[n], want, rtol=1e-9, atol=1e-9)


def test_reference_p_sample_step_clips_x0_hat():
    tab = ddpm_tables(20)
    rng = np.random.default_rng(4)
    xt, eps, z = 3 * rng.standard_normal((3, 2, 16))
    t = np.array([19, 0])
    got = reference.p_sample_step(xt, eps, t, z, *step_tables(tab), clip=1.0)
    x0_hat = np.clip(tab["coef_x0_xt"][t, None] * xt + tab["coef_x0_eps"][t, None] * eps, -1, 1)
    mean = tab["coef_mean_x0"][t, None] * x0_hat + tab["coef_mean_xt"][t, None] * xt
    want = mean + np.array([1.0, 0.0])[:, None] * tab["sigma"][t, None] * z
    np.testing.assert_allclose(got, want, rtol=1e-12)
    unclipped = reference.p_sample_step(xt, eps, t, z, *step_tables(tab))
    assert np.abs(got - unclipped).max() > 1e-3


@pytest.mark.parametrize("flavour", FLAVOURS)
@given(case=diffusion_case(), clip=st.sampled_from([None, 0.5, 1.0]))
def test_p_sample_step_matches_reference(flavour, case, clip):
    dtype, t, tab, (xt, eps, z) = case
    want = reference.p_sample_step(xt, eps, t, z, *step_tables(tab), clip=clip)
    got = flavour.p_sample_step(xt, eps, t, z, *step_tables(tab), clip=clip)
    assert got.dtype == dtype and got.shape == xt.shape
    np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_p_sample_step_no_noise_at_t0_and_out(flavour, dtype):
    T = 1000
    tab = ddpm_tables(T)
    rng = np.random.default_rng(5)
    xt, eps = rng.standard_normal((2, 4, 6)).astype(dtype)
    t = np.array([0, T - 1, 0, 1])
    z = np.full_like(xt, np.inf)
    z[1], z[3] = rng.standard_normal((2, 6))
    out = np.empty_like(xt)
    got = flavour.p_sample_step(xt, eps, t, z, *step_tables(tab), clip=1.0, out=out)
    assert got is out
    assert np.isfinite(got).all()  # the (infinite) noise is not touched where t == 0
    np.testing.assert_allclose(got, reference.p_sample_step(xt, eps, t, z, *step_tables(tab),
                                                            clip=1.0), **TOL[dtype])


# ---------------------------------------------------------------- conv2d

@st.composite
def conv_case(draw, max_batch=3, max_channels=3, max_k=4, max_extra=5):
    dtype = draw(st.sampled_from(DTYPES))
    n, c, c_out = (draw(st.integers(1, m)) for m in (max_batch, max_channels, max_channels))
    kh, kw = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * padding), kh + max_extra))
    w_in = draw(st.integers(max(1, kw - 2 * padding), kw + max_extra))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c, h, w_in)).astype(dtype)
    w = rng.standard_normal((c_out, c, kh, kw)).astype(dtype)
    return x, w, stride, padding


@pytest.mark.parametrize("flavour", [reference, *[p.values[0] for p in FLAVOURS]])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_erf_is_math_erf(flavour, dtype):
    x = np.concatenate([np.linspace(-6, 6, 2001), [0.0, -0.0, np.inf, -np.inf, np.nan]])
    x = x.astype(dtype)
    y = flavour.erf(x)
    expected = np.array([math.erf(float(v)) for v in x])
    assert y.dtype == dtype and y.shape == x.shape
    ulp = float(np.finfo(dtype).eps)  # |erf| <= 1: one ulp of the largest values
    np.testing.assert_allclose(y.astype(np.float64), expected, rtol=0, atol=2 * ulp)
    assert flavour.erf(np.array(0.5, dtype))[()] == pytest.approx(math.erf(0.5), abs=2 * ulp)
    assert flavour.erf(np.zeros((2, 0), dtype)).shape == (2, 0)


def test_erf_refuses_integers():
    with pytest.raises(TypeError, match="erf: x must be a floating-point array"):
        kernels.erf(np.arange(3))


@given(case=conv_case(max_batch=2, max_channels=2, max_k=3, max_extra=3))
def test_reference_conv2d_is_the_loop_definition(case):
    x, w, stride, padding = case
    got = reference.conv2d(x, w, stride, padding)
    assert got.dtype == x.dtype
    np.testing.assert_allclose(got, conv2d_loop(x, w, None, stride, padding), **CONV_TOL[x.dtype.type])


@given(case=conv_case())
def test_reference_conv2d_gradients_are_adjoints(case):
    """<conv(x, w), gy> = <x, grad_input(gy)> = <w, grad_weight(x, gy)> (conv is bilinear)."""
    x, w, stride, padding = (a.astype(np.float64) if i < 2 else a for i, a in enumerate(case))
    y = reference.conv2d(x, w, stride, padding)
    gy = np.random.default_rng(0).standard_normal(y.shape)
    gx = reference.conv2d_grad_input(gy, w, x.shape, stride, padding)
    gw = reference.conv2d_grad_weight(x, gy, w.shape, stride, padding)
    assert gx.shape == x.shape and gw.shape == w.shape
    inner = np.vdot(y, gy)
    np.testing.assert_allclose(np.vdot(x, gx), inner, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.vdot(w, gw), inner, rtol=1e-10, atol=1e-10)


def test_reference_conv2d_gradients_match_finite_differences():
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 2))
    stride, padding = 2, 1
    gy = rng.standard_normal(reference.conv2d(x, w, stride, padding).shape)
    gx = reference.conv2d_grad_input(gy, w, x.shape, stride, padding)
    gw = reference.conv2d_grad_weight(x, gy, w.shape, stride, padding)
    h = 1e-6
    for array, grad in ((x, gx), (w, gw)):
        numeric = np.zeros_like(array)
        for k in np.ndindex(array.shape):
            saved = array[k]
            array[k] = saved + h
            up = np.vdot(reference.conv2d(x, w, stride, padding), gy)
            array[k] = saved - h
            down = np.vdot(reference.conv2d(x, w, stride, padding), gy)
            array[k] = saved
            numeric[k] = (up - down) / (2 * h)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("flavour", FLAVOURS)
@given(case=conv_case())
def test_conv2d_and_gradients_match_reference(flavour, case):
    x, w, stride, padding = case
    tol = CONV_TOL[x.dtype.type]
    y = flavour.conv2d(x, w, stride, padding)
    np.testing.assert_allclose(y, reference.conv2d(x, w, stride, padding), **tol)
    assert y.dtype == x.dtype
    gy = np.random.default_rng(7).standard_normal(y.shape).astype(x.dtype)
    gx = flavour.conv2d_grad_input(gy, w, x.shape, stride, padding)
    gw = flavour.conv2d_grad_weight(x, gy, w.shape, stride, padding)
    assert gx.dtype == gw.dtype == x.dtype
    want_gx = reference.conv2d_grad_input(gy, w, x.shape, stride, padding)
    want_gw = reference.conv2d_grad_weight(x, gy, w.shape, stride, padding)
    np.testing.assert_allclose(gx, want_gx, **tol)
    np.testing.assert_allclose(gw, want_gw, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_realistic_shape(dtype):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((8, 16, 16, 16)).astype(dtype)
    w = rng.standard_normal((16, 16, 3, 3)).astype(dtype)
    y = kernels.conv2d(x, w, 1, 1)
    gy = rng.standard_normal(y.shape).astype(dtype)
    tol = dict(rtol=1e-4, atol=5e-4) if dtype == np.float32 else CONV_TOL[dtype]
    np.testing.assert_allclose(y, reference.conv2d(x, w, 1, 1), **tol)
    np.testing.assert_allclose(kernels.conv2d_grad_input(gy, w, x.shape, 1, 1),
                               reference.conv2d_grad_input(gy, w, x.shape, 1, 1), **tol)
    np.testing.assert_allclose(kernels.conv2d_grad_weight(x, gy, w.shape, 1, 1),
                               reference.conv2d_grad_weight(x, gy, w.shape, 1, 1),
                               **(dict(rtol=1e-4, atol=5e-3) if dtype == np.float32 else tol))


def test_dispatch_accepts_non_contiguous_inputs():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((5, 5, 3, 2)).transpose(3, 2, 1, 0)  # (2, 3, 5, 5), F-ordered
    w = np.asfortranarray(rng.standard_normal((2, 3, 3, 2)))
    assert not x.flags.c_contiguous and not w.flags.c_contiguous
    want = reference.conv2d(np.ascontiguousarray(x), np.ascontiguousarray(w), 1, 1)
    np.testing.assert_allclose(kernels.conv2d(x, w, 1, 1), want, rtol=1e-12, atol=1e-12)
    tab = ddpm_tables(10)
    x0 = rng.standard_normal((6, 4))[::2]
    noise = rng.standard_normal((4, 3)).T
    t = np.array([1, 9, 0])
    np.testing.assert_allclose(
        kernels.q_sample(x0, noise, t, tab["sqrt_abar"], tab["sqrt_one_minus_abar"]),
        reference.q_sample(x0, noise, t, tab["sqrt_abar"], tab["sqrt_one_minus_abar"]), rtol=1e-12)


# ---------------------------------------------------------------- adam_update

def adam_textbook(theta, grads, lr, beta1, beta2, eps, weight_decay, decoupled):
    """Kingma & Ba 2015, Algorithm 1 (AdamW: Loshchilov & Hutter 2019), written out."""
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        if not decoupled:
            g = g + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        decay = lr * weight_decay * theta if decoupled else 0.0
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps) - decay
    return theta, m, v


@pytest.mark.parametrize("weight_decay, decoupled", [(0.0, False), (0.1, False), (0.1, True)])
def test_reference_adam_is_algorithm1(weight_decay, decoupled):
    rng = np.random.default_rng(11)
    theta0 = rng.standard_normal((3, 4))
    grads = rng.standard_normal((5, 3, 4))
    hyper = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8)
    want = adam_textbook(theta0, grads, weight_decay=weight_decay, decoupled=decoupled, **hyper)
    param, m, v = theta0.copy(), np.zeros_like(theta0), np.zeros_like(theta0)
    for step, g in enumerate(grads, start=1):
        assert reference.adam_update(param, g, m, v, step=step, weight_decay=weight_decay,
                                     decoupled=decoupled, **hyper) is None
    for got, expected in zip((param, m, v), want):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert np.abs(param - theta0).max() > 1e-3


@pytest.mark.parametrize("flavour", FLAVOURS)
@given(dtype=st.sampled_from(DTYPES), shape=st.lists(st.integers(1, 6), max_size=3),
       step=st.integers(1, 10_000), weight_decay=st.sampled_from([0.0, 0.01]),
       decoupled=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_adam_update_matches_reference(flavour, dtype, shape, step, weight_decay, decoupled, seed):
    rng = np.random.default_rng(seed)
    param, grad, m = (rng.standard_normal(tuple(shape)).astype(dtype) for _ in range(3))
    v = rng.random(tuple(shape)).astype(dtype)
    hyper = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=step,
                 weight_decay=weight_decay, decoupled=decoupled)
    want = [a.copy() for a in (param, m, v)]
    reference.adam_update(want[0], grad, want[1], want[2], **hyper)
    flavour.adam_update(param, grad, m, v, **hyper)
    for got, expected in zip((param, m, v), want):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, expected, **TOL[dtype])


# ---------------------------------------------------------------- group norm, SiLU gradient

def test_reference_group_norm_is_eq1_3_per_group():
    rng = np.random.default_rng(5)
    x, gamma, beta = rng.standard_normal((3, 6, 4, 5)), rng.standard_normal(6), rng.standard_normal(6)
    y, mean, rstd = reference.group_norm(x, gamma, beta, 2, 1e-5)
    for n in range(3):
        for g in range(2):
            block = x[n, 3 * g:3 * g + 3]
            mu, var = block.sum() / block.size, ((block - block.sum() / block.size) ** 2).mean()
            assert mean[n, g] == pytest.approx(mu, rel=1e-13)
            assert rstd[n, g] == pytest.approx(1 / math.sqrt(var + 1e-5), rel=1e-13)
            want = (block - mu) / math.sqrt(var + 1e-5) * gamma[3 * g:3 * g + 3, None, None]
            np.testing.assert_allclose(y[n, 3 * g:3 * g + 3],
                                       want + beta[3 * g:3 * g + 3, None, None], rtol=1e-12)


def test_reference_group_norm_backward_is_the_vjp_of_its_forward():
    """<gy, dy> for a step (dx, dweight, dbias) equals the central difference of the forward."""
    rng = np.random.default_rng(6)
    x, gamma, beta = rng.standard_normal((2, 4, 3, 3)), rng.standard_normal(4), rng.standard_normal(4)
    gy = rng.standard_normal(x.shape)
    _, mean, rstd = reference.group_norm(x, gamma, beta, 2, 1e-5)
    gx, gw, gb = reference.group_norm_backward(gy, x, gamma, mean, rstd)
    dx, dw, db = rng.standard_normal(x.shape), rng.standard_normal(4), rng.standard_normal(4)
    h = 1e-6
    plus = reference.group_norm(x + h * dx, gamma + h * dw, beta + h * db, 2, 1e-5)[0]
    minus = reference.group_norm(x - h * dx, gamma - h * dw, beta - h * db, 2, 1e-5)[0]
    numeric = (gy * (plus - minus)).sum() / (2 * h)
    assert (gx * dx).sum() + gw @ dw + gb @ db == pytest.approx(numeric, rel=1e-7)


@st.composite
def group_norm_case(draw):
    groups = draw(st.integers(1, 3))
    shape = (draw(st.integers(1, 3)), groups * draw(st.integers(1, 3)),
             *draw(st.lists(st.integers(1, 19), max_size=2)))
    return groups, shape, draw(st.sampled_from(DTYPES)), draw(st.integers(0, 2**32 - 1))


@pytest.mark.parametrize("flavour", FLAVOURS)
@given(case=group_norm_case())
def test_group_norm_and_backward_match_reference(flavour, case):
    """The Numba kernels sum in float64 lanes and scale by rstd * weight in one product, so
    they agree with the reference's float32 formulas to a few units of float32 roundoff."""
    groups, shape, dtype, seed = case
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 10).astype(dtype)  # an offset mean: cancellation
    gamma, beta = (rng.standard_normal(shape[1]).astype(dtype) for _ in range(2))
    gy = rng.standard_normal(shape).astype(dtype)
    want = reference.group_norm(x, gamma, beta, groups, 1e-5)
    got = flavour.group_norm(x, gamma, beta, groups, 1e-5)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else TOL[dtype]
    for a, b in zip(got, want):
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, **tol)
    rstd = want[2]
    want = reference.group_norm_backward(gy, x, gamma, *want[1:])
    got = flavour.group_norm_backward(gy, x, gamma, *got[1:])
    # Each result is a sum of terms that may cancel: compare on the scale of those terms
    # (gx: rstd |gamma gy|; gweight: |gy| |xhat| summed, |xhat| <= sqrt(group size); gbias: |gy|).
    summed = np.abs(gy).reshape(shape[0], shape[1], -1).sum(axis=(0, 2)).max()
    scales = (3 * rstd.max() * np.abs(gy).max() * np.abs(gamma).max(),
              summed * math.sqrt(x[0].size / groups), summed)
    for a, b, scale in zip(got, want, scales):
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=tol["rtol"], atol=tol["atol"] * scale)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (3, 5, 4), (2, 16385)])  # 16385: two parallel chunks
def test_silu_backward_is_the_reference_bit_for_bit(flavour, dtype, shape):
    rng = np.random.default_rng(8)
    x, gy = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_array_equal(flavour.silu_backward(x, s, gy), reference.silu_backward(x, s, gy))
    np.testing.assert_allclose(reference.silu_backward(x, s, gy), gy * s * (1 + x * (1 - s)),
                               **TOL[dtype])


ADD_SHAPES = [  # (a, b): same shapes, biases over blocks of axes, NumPy fallbacks
    ((64, 32, 16, 16), (64, 32, 16, 16)), ((64, 32, 16, 16), (1, 32, 1, 1)),
    ((64, 32, 16, 16), (64, 32, 1, 1)), ((32, 1, 1), (64, 32, 16, 16)),
    ((3, 5, 4), (3, 5, 4)), ((40, 1024), (1024,)), ((40, 1024), (40, 1)), ((2, 3, 4096), ()),
    ((64, 1, 16, 16), (1, 32, 1, 1)), ((8, 4, 2, 1024), (4, 1, 1)),
]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("dtype", DTYPES + [np.int64])
@pytest.mark.parametrize("shapes", ADD_SHAPES, ids=str)
def test_add_is_numpy_addition_bit_for_bit(flavour, dtype, shapes):
    """kernels.add: Numba's threads on large float arrays of one dtype (same shape, or a
    bias over a block of axes), a + b otherwise; the same sums in every case."""
    rng = np.random.default_rng(11)
    a, b = (np.asarray(rng.standard_normal(s) * 100).astype(dtype) for s in shapes)
    want = a + b
    for x, y in ((a, b), (b, a)):
        got = flavour.add(x, y)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    mixed = flavour.add(a, b.astype(np.float32 if dtype == np.float64 else np.float64))
    assert mixed.dtype == (a + b.astype(mixed.dtype)).dtype  # NumPy's promotion
    strided = a[..., ::-1] if a.ndim else a
    np.testing.assert_array_equal(flavour.add(strided, b), strided + b)


# (M, K, N): a linear layer's products in the bench's networks (the 2-D MLP at 2000
# points, the MNIST CNN's 9216 -> 128 layer forward and both gradients), and a small one
GEMM_SHAPES = [(2000, 128, 128), (64, 9216, 128), (128, 64, 9216), (64, 128, 9216), (5, 3, 4)]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GEMM_SHAPES, ids=str)
def test_gemm_is_numpy_matmul_bit_for_bit(flavour, dtype, shape):
    """kernels.gemm: a @ b + bias, large products in row blocks on the threads: the same
    values, with b transposed (a weight W^T) or not and a transposed (x^T gy)."""
    rng = np.random.default_rng(sum(shape))
    m, k, n = shape
    a = rng.standard_normal((m, k)).astype(dtype)
    w = rng.standard_normal((n, k)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    a_t = np.ascontiguousarray(a.T).T
    for x, y, b in ((a, w.T, bias), (a, w.T, None), (a_t, np.ascontiguousarray(w.T), None)):
        want = x @ y if b is None else x @ y + b
        got = flavour.gemm(x, y, b)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("flavour", FLAVOURS)
@given(dtype=st.sampled_from(DTYPES), r=st.integers(1, 5), kh=st.integers(1, 3),
       s=st.integers(1, 4), kw=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_window_max_is_the_reference_bit_for_bit(flavour, dtype, r, kh, s, kw, seed):
    """kernels.window_max: the maxima and the tie shares of the reference's fold, ties,
    NaN and signed zeros included (values drawn from a few, so windows tie)."""
    rng = np.random.default_rng(seed)
    values = np.array([-1.0, 0.0, -0.0, 2.0, np.nan, 2.0, 0.5], dtype=dtype)
    x = rng.choice(values, size=(r, kh, s, kw))
    got, want = flavour.window_max(x), reference.window_max(x)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)
        np.testing.assert_array_equal(np.signbit(g), np.signbit(w))


@pytest.mark.parametrize("dtype", DTYPES)
def test_window_max_on_threads_is_the_reference(dtype):
    """From PARALLEL_MIN_SIZE entries the windows' rows run on Numba's threads: the same
    values (the MNIST CNN's pooling shape, with ties)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((64 * 8 * 12, 2, 12, 2)).astype(dtype).round(1)
    assert x.size >= cpu.PARALLEL_MIN_SIZE
    for got, want in zip(cpu.window_max(x), reference.window_max(x)):
        np.testing.assert_array_equal(got, want)


def _ulps(got, truth, dtype):
    """|got - truth| in units of the spacing of dtype at the truth (float64 truth)."""
    return np.abs(got.astype(np.float64) - truth) / np.spacing(np.abs(truth).astype(dtype))


EXP_POINTS = np.concatenate([
    np.linspace(-110, 110, 400_001, dtype=np.float32),  # both tails and the overflow edge
    np.random.default_rng(9).standard_normal(100_000).astype(np.float32) * 4,
    np.float32([0, -0.0, 1e-30, -1e-30, -86, 86, -87.5, 87.5, 88.72, -88.72, 88.73, -88.73,
                103.9, -103.9]),
])


def test_exp32_sigmoid_is_within_3_ulp():
    """The vectorised float32 sigmoid (kernels.exp32) against the float64 truth, wherever the
    result is a normal float32; NumPy's five-pass formula (the reference) is measured beside it
    and must not be more accurate by more than an ulp (it reaches 3.3 ulp on these points)."""
    x = EXP_POINTS
    y, s = cpu.silu(x)
    with np.errstate(over="ignore"):
        truth = 1 / (1 + np.exp(-x.astype(np.float64)))
    normal = truth >= np.finfo(np.float32).tiny
    err = _ulps(s[normal], truth[normal], np.float32)
    reference_err = _ulps(reference.sigmoid(x)[normal], truth[normal], np.float32)
    assert err.max() <= 3 and err.max() <= reference_err.max() + 1, (err.max(), reference_err.max())
    # below the normal range (x < -87.3): the reference's subnormals, 0 once e^-x overflows
    np.testing.assert_allclose(s[~normal], reference.sigmoid(x)[~normal], rtol=0, atol=2.0 ** -148)
    assert (s[x < -88.73] == 0).all()
    product = normal & (np.abs(x) > 1e-30)
    assert _ulps(y[product], x[product] * truth[product], np.float32).max() <= 4
    assert s.dtype == y.dtype == np.float32


def test_silu_special_values_match_the_reference():
    x = np.float32([np.inf, -np.inf, np.nan, 0.0, -0.0, 88.8, -88.8, 1e4, -1e4])
    with np.errstate(invalid="ignore"):  # silu(-inf) = -inf * 0 = nan, as in PyTorch
        want_both = reference.silu(x)
    for got, want in zip(cpu.silu(x), want_both):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (7,), (3, 5, 4), (2, 16385)])  # 16385: two chunks
def test_silu_matches_the_reference(flavour, dtype, shape):
    """float64 is the reference itself; float32 runs kernels.exp32 (within 3 ulp above)."""
    x = np.asarray(np.random.default_rng(10).standard_normal(shape) * 5, dtype=dtype)
    got, want = flavour.silu(x), reference.silu(x)
    for a, b in zip(got, want):
        assert a.dtype == dtype and a.shape == shape
        if dtype == np.float64:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=4 * 2.0 ** -23, atol=0)


# ---------------------------------------------------------------- backend selection

def test_numpy_arrays_dispatch_to_numba_cpu(monkeypatch):
    monkeypatch.delenv("MINIGEN_KERNELS", raising=False)
    assert kernels.available()["cpu"] and kernels.available()["reference"]
    assert kernels.backend_for(np.zeros(1)) is cpu


def test_auto_runs_convolutions_on_conv_cpu_and_numba_mode_on_numba(monkeypatch):
    monkeypatch.delenv("MINIGEN_KERNELS", raising=False)
    assert kernels.backend_for(np.zeros(1), "conv2d") is conv_cpu
    monkeypatch.setenv("MINIGEN_KERNELS", "numba")
    assert kernels.backend_for(np.zeros(1), "conv2d") is cpu
    assert kernels.backend_for(np.zeros(1)) is cpu
    calls = []
    monkeypatch.setattr(cpu, "conv2d", lambda *a: calls.append(a) or reference.conv2d(*a))
    rng = np.random.default_rng(11)
    kernels.conv2d(rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((3, 2, 3, 3)), 1, 1)
    assert len(calls) == 1


def test_one_selection_rule_picks_a_flavour_that_has_the_kernel(monkeypatch):
    """backend_for(x, kernel): every kernel of __all__ runs in a flavour that defines it;
    empty arrays and kernels missing from the array's flavour take the reference."""
    import types

    monkeypatch.delenv("MINIGEN_KERNELS", raising=False)
    names = [k for k in kernels.__all__ if hasattr(reference, k)]
    assert len(names) >= 12
    for name in names:
        assert hasattr(kernels.backend_for(np.ones(2), name), name)
        assert kernels.backend_for(np.zeros(0), name) is reference
    monkeypatch.setattr(kernels, "_flavour", lambda name: types.SimpleNamespace(q_sample=None))
    assert kernels.backend_for(np.ones(2), "silu") is reference
    assert kernels.backend_for(np.ones(2), "q_sample") is not reference


def test_reference_switch(monkeypatch):
    monkeypatch.setenv("MINIGEN_KERNELS", "reference")
    assert kernels.backend_for(np.zeros(1)) is reference

    def fail(*args, **kwargs):
        raise AssertionError("the Numba flavour must not run under MINIGEN_KERNELS=reference")

    monkeypatch.setattr(cpu, "conv2d", fail)
    monkeypatch.setattr(cpu, "q_sample", fail)
    rng = np.random.default_rng(10)
    x, w = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((3, 2, 3, 3))
    np.testing.assert_array_equal(kernels.conv2d(x, w, 1, 1), reference.conv2d(x, w, 1, 1))
    tab = ddpm_tables(5)
    x0 = rng.standard_normal((2, 3))
    kernels.q_sample(x0, x0, np.array([0, 4]), tab["sqrt_abar"], tab["sqrt_one_minus_abar"])


def test_reference_fallback_without_numba(monkeypatch):
    monkeypatch.delenv("MINIGEN_KERNELS", raising=False)
    monkeypatch.setattr(kernels, "_flavour", lambda name: None)
    assert kernels.backend_for(np.zeros(1)) is reference
    assert kernels.available() == {"reference": True, "cpu": False, "cuda": False}


def test_a_broken_numba_install_warns_and_falls_back(monkeypatch):
    """An import that fails with something other than ImportError (seen: numba-cuda 0.30 on
    NumPy 2.5, AttributeError) makes the flavour unavailable, with a warning naming why."""
    def broken(name):
        raise AttributeError("module 'numpy' has no attribute 'row_stack'")

    monkeypatch.setattr(kernels.importlib, "import_module", broken)
    kernels._flavour.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="cuda flavour could not be imported.*row_stack"):
            assert kernels._flavour("cuda") is None
    finally:
        kernels._flavour.cache_clear()


def test_unknown_backend_request_raises(monkeypatch):
    monkeypatch.setenv("MINIGEN_KERNELS", "fortran")
    with pytest.raises(ValueError, match="MINIGEN_KERNELS.*fortran"):
        kernels.conv2d(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3, 3)))


# ---------------------------------------------------------------- validation

def _q_args(**changes):
    tab = ddpm_tables(10)
    args = dict(x0=np.zeros((2, 3), np.float32), noise=np.zeros((2, 3), np.float32),
                t=np.array([0, 9]), sqrt_abar=tab["sqrt_abar"],
                sqrt_one_minus_abar=tab["sqrt_one_minus_abar"])
    args.update(changes)
    return args


def _p_args(**changes):
    tab = ddpm_tables(10)
    args = dict(xt=np.zeros((2, 3)), eps=np.zeros((2, 3)), t=np.array([0, 9]),
                noise=np.zeros((2, 3)), coef_x0_xt=tab["coef_x0_xt"],
                coef_x0_eps=tab["coef_x0_eps"], coef_mean_x0=tab["coef_mean_x0"],
                coef_mean_xt=tab["coef_mean_xt"], sigma=tab["sigma"])
    args.update(changes)
    return args


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_update_on_threads_gives_the_serial_values(dtype):
    """A parameter of PARALLEL_MIN_SIZE entries or more is updated in chunks on Numba's
    threads: the same values as the serial pass over slices below that size."""
    rng = np.random.default_rng(3)
    n = 3 * cpu.PARALLEL_MIN_SIZE + 7
    grad = rng.standard_normal(n).astype(dtype)
    start = [rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype),
             rng.random(n).astype(dtype)]
    hyper = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=3, weight_decay=0.01,
                 decoupled=True)
    whole, sliced = [a.copy() for a in start], [a.copy() for a in start]
    cpu.adam_update(*whole[:1], grad, *whole[1:], **hyper)
    size = cpu.PARALLEL_MIN_SIZE - 1
    for lo in range(0, n, size):
        part = slice(lo, lo + size)
        cpu.adam_update(sliced[0][part], grad[part], sliced[1][part], sliced[2][part], **hyper)
    for got, want in zip(whole, sliced):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(whole[0], start[0])


def test_adam_update_many_is_adam_update_of_each_parameter():
    """One call over parameters of different shapes, dtypes and step counts (what an
    optimizer's step passes) equals adam_update on each; the lists must match in length."""
    rng = np.random.default_rng(12)
    shapes, dtypes, steps = [(3, 4), (7,), (2, 2, 2)], [np.float32, np.float64, np.float32], [1, 5, 2]
    groups = [[rng.standard_normal(s).astype(d) for _ in range(3)] + [rng.random(s).astype(d)]
              for s, d in zip(shapes, dtypes)]
    hyper = dict(lr=1e-2, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1, decoupled=True)
    want = [[a.copy() for a in group] for group in groups]
    for (param, grad, m, v), step in zip(want, steps):
        kernels.adam_update(param, grad, m, v, step=step, **hyper)
    params, grads, ms, vs = (list(arrays) for arrays in zip(*groups))
    kernels.adam_update_many(params, grads, ms, vs, steps=steps, **hyper)
    for got, expected in zip(groups, want):
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="the lists must match"):
        kernels.adam_update_many(params, grads, ms, vs[:2], steps=steps, **hyper)


def _adam_args(**changes):
    args = dict(param=np.zeros((2, 3), np.float32), grad=np.zeros((2, 3), np.float32),
                m=np.zeros((2, 3), np.float32), v=np.zeros((2, 3), np.float32), lr=1e-3,
                beta1=0.9, beta2=0.999, eps=1e-8, step=1)
    args.update(changes)
    return args


X = np.zeros((2, 3, 5, 5), np.float32)
W = np.zeros((4, 3, 3, 3), np.float32)
GY = np.zeros((2, 4, 3, 3), np.float32)

INVALID = [
    # q_sample
    (kernels.q_sample, _q_args(noise=np.zeros((2, 4), np.float32)), ValueError,
     r"q_sample: noise has shape \(2, 4\), expected x0's shape \(2, 3\)"),
    (kernels.q_sample, _q_args(x0=[[0.0] * 3] * 2), TypeError, "q_sample: x0 must be a numpy"),
    (kernels.q_sample, _q_args(x0=np.zeros((2, 3), np.int32), noise=np.zeros((2, 3), np.int32)),
     TypeError, "q_sample: x0 must be float32 or float64, got dtype int32"),
    (kernels.q_sample, _q_args(noise=np.zeros((2, 3), np.float64)), TypeError,
     "q_sample: dtypes differ"),
    (kernels.q_sample, _q_args(x0=np.float32(0.0)), TypeError, "q_sample: x0 must be a numpy"),
    (kernels.q_sample, _q_args(x0=np.zeros((), np.float32), noise=np.zeros((), np.float32)),
     ValueError, "q_sample: x0 must have a batch axis"),
    (kernels.q_sample, _q_args(t=np.array([0.0, 1.0])), TypeError,
     "q_sample: t must have an integer dtype, got float64"),
    (kernels.q_sample, _q_args(t=np.array([[0, 1]])), ValueError,
     r"q_sample: t must have shape \(batch,\) = \(2,\), got \(1, 2\)"),
    (kernels.q_sample, _q_args(t=np.array([0, 1, 2])), ValueError, r"got \(3,\)"),
    (kernels.q_sample, _q_args(t=np.array([0, 10])), ValueError,
     r"q_sample: t must lie in \[0, 10\), got values in \[0, 10\]"),
    (kernels.q_sample, _q_args(t=np.array([-1, 3])), ValueError, r"got values in \[-1, 3\]"),
    (kernels.q_sample, _q_args(t=[0, 1]), TypeError, "q_sample: t must be a numpy or cupy"),
    (kernels.q_sample, _q_args(sqrt_abar=np.ones(9)), ValueError,
     "q_sample: tables have different lengths"),
    (kernels.q_sample, _q_args(sqrt_abar=np.ones((10, 1))), ValueError,
     "q_sample: sqrt_abar must be a non-empty 1-D table"),
    (kernels.q_sample, _q_args(sqrt_abar=np.ones(10, np.int64)), TypeError,
     "q_sample: sqrt_abar must be a floating table"),
    (kernels.q_sample, _q_args(out=np.zeros((3, 2), np.float32)), ValueError,
     r"q_sample: out has shape \(3, 2\), expected \(2, 3\)"),
    (kernels.q_sample, _q_args(out=np.zeros((2, 3), np.float64)), TypeError,
     "q_sample: out has dtype float64, expected float32"),
    (kernels.q_sample, _q_args(out=np.zeros((3, 2), np.float32).T), ValueError,
     "q_sample: out must be C-contiguous"),
    (kernels.q_sample, _q_args(out=[0.0]), TypeError, "q_sample: out must be a numpy array"),
    # p_sample_step
    (kernels.p_sample_step, _p_args(eps=np.zeros((2, 2))), ValueError,
     r"p_sample_step: eps has shape \(2, 2\), expected xt's shape"),
    (kernels.p_sample_step, _p_args(noise=np.zeros((2, 3), np.float32)), TypeError,
     "p_sample_step: dtypes differ"),
    (kernels.p_sample_step, _p_args(t=np.array([5, 12])), ValueError,
     r"p_sample_step: t must lie in \[0, 10\)"),
    (kernels.p_sample_step, _p_args(sigma=np.ones(11)), ValueError,
     "p_sample_step: tables have different lengths"),
    (kernels.p_sample_step, _p_args(clip=-1.0), ValueError,
     "p_sample_step: clip must be a finite number > 0, got -1.0"),
    (kernels.p_sample_step, _p_args(clip=float("nan")), ValueError, "p_sample_step: clip must be"),
    (kernels.p_sample_step, _p_args(clip="1"), TypeError,
     "p_sample_step: clip must be None or a real"),
    (kernels.p_sample_step, _p_args(out=np.zeros((2, 3), np.float32)), TypeError,
     "p_sample_step: out has dtype float32, expected float64"),
    # conv2d
    (kernels.conv2d, dict(x=X, w=np.zeros((4, 2, 3, 3), np.float32)), ValueError,
     r"conv2d: input has 3 channels but weight expects 2"),
    (kernels.conv2d, dict(x=X[0], w=W), ValueError, r"conv2d: input must be 4-D \(N, C, H, W\)"),
    (kernels.conv2d, dict(x=X, w=W[0]), ValueError, "conv2d: weight must be 4-D"),
    (kernels.conv2d, dict(x=X, w=W.astype(np.float64)), TypeError, "conv2d: dtypes differ"),
    (kernels.conv2d, dict(x=X.astype(np.int64), w=W), TypeError,
     "conv2d: x must be float32 or float64"),
    (kernels.conv2d, dict(x=X, w=W, stride=0), ValueError, "conv2d: stride must be >= 1, got 0"),
    (kernels.conv2d, dict(x=X, w=W, stride=1.5), TypeError, "conv2d: stride must be an int"),
    (kernels.conv2d, dict(x=X, w=W, padding=-1), ValueError,
     "conv2d: padding must be >= 0, got -1"),
    (kernels.conv2d, dict(x=X, w=np.zeros((4, 3, 6, 3), np.float32)), ValueError,
     r"conv2d: kernel 6x3 is larger than the padded input 5x5"),
    (kernels.conv2d, dict(x=X, w=np.zeros((4, 3, 0, 3), np.float32)), ValueError,
     "conv2d: kernel size must be >= 1"),
    # conv2d gradients
    (kernels.conv2d_grad_input, dict(gy=GY, w=W, x_shape=(2, 3, 5, 6)), ValueError,
     r"conv2d_grad_input: gy has shape \(2, 4, 3, 3\), expected the conv2d output shape "
     r"\(2, 4, 3, 4\)"),
    (kernels.conv2d_grad_input, dict(gy=GY, w=W, x_shape=(2, 3, 5)), ValueError,
     "conv2d_grad_input: x_shape must be a 4-tuple"),
    (kernels.conv2d_grad_input, dict(gy=GY, w=W, x_shape=(2, 2, 5, 5)), ValueError,
     "conv2d_grad_input: input has 2 channels but weight expects 3"),
    (kernels.conv2d_grad_input, dict(gy=GY, w=W, x_shape=X.shape, stride=0), ValueError,
     "conv2d_grad_input: stride must be >= 1"),
    (kernels.conv2d_grad_weight, dict(x=X, gy=GY, w_shape=(4, 3, 3, 3), padding=1), ValueError,
     r"conv2d_grad_weight: gy has shape \(2, 4, 3, 3\), expected the conv2d output shape "
     r"\(2, 4, 5, 5\)"),
    (kernels.conv2d_grad_weight, dict(x=X, gy=GY.astype(np.float64), w_shape=W.shape), TypeError,
     "conv2d_grad_weight: dtypes differ"),
    (kernels.conv2d_grad_weight, dict(x=X, gy=GY, w_shape=(4, 3, 7, 3)), ValueError,
     "conv2d_grad_weight: kernel 7x3 is larger than the padded input"),
    # adam_update
    (kernels.adam_update, _adam_args(grad=np.zeros(3, np.float32)), ValueError,
     r"adam_update: grad has shape \(3,\), expected param's shape \(2, 3\)"),
    (kernels.adam_update, _adam_args(v=np.zeros((2, 3))), TypeError, "adam_update: dtypes differ"),
    (kernels.adam_update, _adam_args(m=np.zeros((3, 2), np.float32).T), ValueError,
     "adam_update: m must be C-contiguous"),
    (kernels.adam_update, _adam_args(lr=-1.0), ValueError,
     "adam_update: lr must be >= 0, got -1.0"),
    (kernels.adam_update, _adam_args(beta1=1.0), ValueError,
     r"adam_update: beta1 must be in \[0, 1\), got 1.0"),
    (kernels.adam_update, _adam_args(beta2=-0.1), ValueError, "adam_update: beta2 must be in"),
    (kernels.adam_update, _adam_args(eps=0.0), ValueError, "adam_update: eps must be > 0"),
    (kernels.adam_update, _adam_args(weight_decay=-0.1), ValueError,
     "adam_update: weight_decay must be >= 0"),
    (kernels.adam_update, _adam_args(lr="0.1"), TypeError, "adam_update: lr must be a real number"),
    (kernels.adam_update, _adam_args(step=0), ValueError, "adam_update: step must be >= 1, got 0"),
    (kernels.adam_update, _adam_args(step=1.0), TypeError, "adam_update: step must be an int"),
    # group_norm, group_norm_backward, silu_backward
    (kernels.group_norm, dict(x=X, weight=np.ones(3, np.float32), bias=np.zeros(3, np.float32),
                              groups=2, eps=1e-5), ValueError,
     r"group_norm: x \(2, 3, 5, 5\) must be \(N, C, ...\) with C divisible into 2 groups"),
    (kernels.group_norm, dict(x=X, weight=np.ones(4, np.float32), bias=np.zeros(3, np.float32),
                              groups=3, eps=1e-5), ValueError,
     r"group_norm: weight \(4,\) and bias \(3,\) must be \(3,\)"),
    (kernels.group_norm, dict(x=X, weight=np.ones(3), bias=np.zeros(3), groups=3, eps=1e-5),
     TypeError, "group_norm: dtypes differ"),
    (kernels.group_norm_backward, dict(gy=GY, x=X, weight=np.ones(3, np.float32),
                                       mean=np.zeros((2, 3), np.float32),
                                       rstd=np.ones((2, 3), np.float32)), ValueError,
     r"group_norm_backward: gy has shape \(2, 4, 3, 3\), expected x's shape"),
    (kernels.group_norm_backward, dict(gy=X, x=X, weight=np.ones(3, np.float32),
                                       mean=np.zeros((3, 3), np.float32),
                                       rstd=np.ones((3, 3), np.float32)), ValueError,
     r"group_norm_backward: mean has shape \(3, 3\), expected \(N, groups\) with N = 2"),
    (kernels.silu_backward, dict(x=X, s=X, gy=GY), ValueError,
     r"silu_backward: gy has shape \(2, 4, 3, 3\), expected x's shape"),
    (kernels.add, dict(a=X, b=1.0), TypeError, "add: b must be a numpy or cupy array, got float"),
    (kernels.window_max, dict(x=X[0]), ValueError,
     r"window_max: x must be \(R, kh, S, kw\), got shape \(3, 5, 5\)"),
    (kernels.window_max, dict(x=X.astype(np.int64)), TypeError, "window_max: x must be float"),
    (kernels.gemm, dict(a=np.zeros((2, 3)), b=np.zeros((4, 5))), ValueError,
     r"gemm: a \(2, 3\) and b \(4, 5\) are not matrices with a's columns matching b's rows"),
    (kernels.gemm, dict(a=np.zeros((2, 3)), b=np.zeros((3, 5)), bias=np.zeros(4)), ValueError,
     r"gemm: bias has shape \(4,\), expected \(5,\)"),
    (kernels.silu, dict(x=X.astype(np.int64)), TypeError,
     "silu: x must be float32 or float64, got dtype int64"),
    (kernels.silu_backward, dict(x=X.astype(np.int32), s=X, gy=X), TypeError,
     "silu_backward: x must be float32 or float64, got dtype int32"),
]


@pytest.mark.parametrize("function, args, error, message", INVALID,
                         ids=[f"{i}-{case[0].__name__}" for i, case in enumerate(INVALID)])
def test_validation_errors(function, args, error, message):
    with pytest.raises(error, match=message):
        function(**args)
