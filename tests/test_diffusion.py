"""DDPM maths against independent formulas: schedules, forward chain, posterior (Bayes' rule),
Algorithm 2 line 4, and the samplers checked end to end with the exact denoiser of Gaussian
data (no training needed: a broken sampler does not return the data distribution)."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigen as mg
from minigen import backend, nn
from minigen.diffusion import DDPM, NoiseSchedule

LINEAR = NoiseSchedule.linear(1000)


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- schedules


def test_linear_schedule_matches_the_paper():
    assert LINEAR.alphas_cumprod[-1] == pytest.approx(4.04e-5, rel=2e-3)
    betas = 1e-4 + (0.02 - 1e-4) * np.arange(1000) / 999
    np.testing.assert_allclose(LINEAR.betas, betas, rtol=1e-12)
    product = 1.0
    for t in range(1000):
        product *= 1.0 - betas[t]
        if t in (0, 1, 499, 999):
            assert LINEAR.alphas_cumprod[t] == pytest.approx(product, rel=1e-12)
    assert LINEAR.alphas_cumprod_prev[0] == 1.0
    np.testing.assert_array_equal(LINEAR.alphas_cumprod_prev[1:], LINEAR.alphas_cumprod[:-1])


@pytest.mark.parametrize("kind", ["linear", "quadratic", "cosine", "sigmoid"])
def test_every_table_is_float64_length_T_and_read_only(kind):
    s = getattr(NoiseSchedule, kind)(T=200 if kind == "cosine" else 1000)
    names = ["betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
             "sqrt_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
             "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
             "posterior_mean_coef1", "posterior_mean_coef2"]
    for name in names:
        table = getattr(s, name)
        assert table.dtype == np.float64 and table.shape == (s.T,), name
        assert np.all(np.isfinite(table)), name
        with pytest.raises(ValueError):
            table[0] = 0.5
    assert np.all(np.diff(s.alphas_cumprod) < 0)
    assert s.alphas_cumprod[-1] < 1e-2
    assert NoiseSchedule.from_config(s.config).betas.tolist() == s.betas.tolist()


def test_cosine_schedule_follows_nichol_dhariwal_eq_17():
    T, s = 1000, 0.008
    sched = NoiseSchedule.cosine(T, s=s)

    def f(t):
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    for t in (0, 10, 500, 900):  # betas below the 0.999 clip: abar_t = f(t+1)/f(0)
        assert sched.alphas_cumprod[t] == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert sched.betas.max() == pytest.approx(0.999)  # the clip bites at t = T


def test_quadratic_and_sigmoid_schedules():
    q = NoiseSchedule.quadratic(100, beta_start=1e-3, beta_end=0.1)
    np.testing.assert_allclose(np.sqrt(q.betas), np.linspace(math.sqrt(1e-3), math.sqrt(0.1), 100))
    sg = NoiseSchedule.sigmoid(1000)
    assert np.all(np.diff(sg.betas) > 0)
    assert sg.betas[500] == pytest.approx(1e-4 + (0.02 - 1e-4) / (1 + math.exp(-6 / 999)), rel=1e-9)


def test_short_unscaled_schedule_warns_and_scaled_one_does_not():
    with pytest.warns(UserWarning, match="alphas_cumprod"):
        s = NoiseSchedule.linear(50)
    assert s.alphas_cumprod[-1] == pytest.approx(0.60, abs=0.01)  # REFERENCES.md
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NoiseSchedule.linear(50, beta_start=1e-4 * 20, beta_end=0.02 * 20)
        NoiseSchedule.cosine(50)
        for kind in ("linear", "quadratic", "cosine", "sigmoid"):
            getattr(NoiseSchedule, kind)(1000)


def test_schedule_rejects_bad_input():
    with pytest.raises(ValueError, match="T must be a positive integer"):
        NoiseSchedule.linear(0)
    with pytest.raises(ValueError, match=r"betas must lie in \(0, 1\)"):
        NoiseSchedule([0.1, 1.0])
    with pytest.raises(ValueError, match="unknown kind"):
        NoiseSchedule.from_config({"kind": "exponential"})


# ---------------------------------------------------------------- forward process


def _ddpm(model=None, schedule=LINEAR, **kw):
    return DDPM(model if model is not None else (lambda x, t: x * 0.0), schedule, **kw)


def test_q_sample_marginal_equals_the_iterated_one_step_chain():
    """Ho et al. eq. 2 iterated t+1 times (x_s = sqrt(1 - beta_s) x_{s-1} + sqrt(beta_s) z)
    has the law of eq. 4 in one step: compare means and variances on many samples."""
    n, rng = 20_000, np.random.default_rng(0)
    x0 = np.array([1.5, -2.0])
    ddpm = _ddpm()
    for t in (0, 40, 400, 999):
        chain = np.broadcast_to(x0, (n, 2)).copy()
        for s in range(t + 1):
            z = rng.standard_normal((n, 2))
            chain = math.sqrt(1 - LINEAR.betas[s]) * chain + math.sqrt(LINEAR.betas[s]) * z
        direct = ddpm.q_sample(np.broadcast_to(x0, (n, 2)).copy(), np.full(n, t), seed=1)
        mean, var = math.sqrt(LINEAR.alphas_cumprod[t]) * x0, 1 - LINEAR.alphas_cumprod[t]
        for sample in (chain, direct):
            np.testing.assert_allclose(sample.mean(0), mean, atol=5 * math.sqrt(var / n))
            np.testing.assert_allclose(sample.var(0), var, rtol=5 * math.sqrt(2 / n))
        np.testing.assert_allclose(chain.mean(0), direct.mean(0), atol=6 * math.sqrt(var / n))


def test_q_sample_formula_dtype_and_tensor_gradient():
    ddpm = _ddpm()
    rng = np.random.default_rng(3)
    x0, noise = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    t = np.array([0, 5, 500, 999])
    expected = (LINEAR.sqrt_alphas_cumprod[t, None] * x0
                + LINEAR.sqrt_one_minus_alphas_cumprod[t, None] * noise)
    np.testing.assert_allclose(ddpm.q_sample(x0, t, noise), expected, rtol=1e-12)
    out32 = ddpm.q_sample(x0.astype(np.float32), t, noise.astype(np.float32))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, expected, rtol=1e-5, atol=1e-6)
    x = mg.tensor(x0, requires_grad=True)
    y = ddpm.q_sample(x, t, noise)
    np.testing.assert_allclose(y.data, expected, rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.broadcast_to(LINEAR.sqrt_alphas_cumprod[t, None], (4, 3)))


# ---------------------------------------------------------------- posterior


@given(t=st.integers(1, 999), x0=st.floats(-3, 3), xt=st.floats(-3, 3))
def test_posterior_matches_bayes_rule_on_a_grid(t, x0, xt):
    """q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0), normalised numerically."""
    ddpm = _ddpm()
    mean, var = ddpm.q_posterior(np.array([[x0]]), np.array([[xt]]), np.array([t]))
    alpha, abar_prev = LINEAR.alphas[t], LINEAR.alphas_cumprod_prev[t]
    # Closed-form Gaussian conditioning (precision-weighted), independent of eq. 7's form.
    precision = 1 / (1 - abar_prev) + alpha / LINEAR.betas[t]
    ref_var = 1 / precision
    ref_mean = ref_var * (math.sqrt(abar_prev) * x0 / (1 - abar_prev)
                          + math.sqrt(alpha) * xt / LINEAR.betas[t])
    assert mean.item() == pytest.approx(ref_mean, rel=1e-9, abs=1e-12)
    assert var.item() == pytest.approx(ref_var, rel=1e-9)
    # Numerical Bayes on a grid around the posterior.
    sd = math.sqrt(ref_var)
    grid = np.linspace(ref_mean - 12 * sd, ref_mean + 12 * sd, 20001)
    log_w = (-(xt - math.sqrt(alpha) * grid) ** 2 / (2 * LINEAR.betas[t])
             - (grid - math.sqrt(abar_prev) * x0) ** 2 / (2 * (1 - abar_prev)))
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    grid_mean = np.sum(w * grid)
    assert mean.item() == pytest.approx(grid_mean, abs=1e-6 * sd + 1e-9)
    assert var.item() == pytest.approx(np.sum(w * (grid - grid_mean) ** 2), rel=1e-5)


def test_posterior_at_the_first_step_is_x0():
    ddpm = _ddpm()
    mean, var = ddpm.q_posterior(np.array([[0.7]]), np.array([[-1.0]]), np.array([0]))
    assert mean.item() == pytest.approx(0.7) and var.item() == 0.0


@given(t=st.integers(0, 999), prediction=st.sampled_from(["eps", "x0", "v"]))
def test_predict_x0_inverts_the_forward_process(t, prediction):
    rng = np.random.default_rng(t)
    x0, eps = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    ddpm = _ddpm(prediction=prediction)
    ts = np.full(3, t)
    xt = ddpm.q_sample(x0, ts, eps)
    abar = LINEAR.alphas_cumprod[t]
    v = math.sqrt(abar) * eps - math.sqrt(1 - abar) * x0
    output = {"eps": eps, "x0": x0, "v": v}[prediction]
    np.testing.assert_allclose(ddpm.predict_x0(xt, ts, output), x0, rtol=1e-6,
                               atol=1e-6 / math.sqrt(abar))
    np.testing.assert_allclose(ddpm.predict_eps(xt, ts, x0), eps, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------- Algorithm 2


def _wiggly_eps(x, t):
    """A fixed nonlinear 'network' (so that the tests exercise non-trivial outputs)."""
    xp = backend.xp_of(x.data)
    return mg.Tensor((xp.sin(3 * x.data) + 0.001 * xp.asarray(t)[:, None]).astype(x.data.dtype))


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_posterior_mean_path_equals_algorithm_2_line_4_without_clipping(variance):
    ddpm = _ddpm(_wiggly_eps, variance=variance)
    rng = np.random.default_rng(0)
    t = np.array([999, 600, 37, 1, 0, 250])
    xt, z = rng.standard_normal((6, 2)), rng.standard_normal((6, 2))
    eps = _wiggly_eps(mg.tensor(xt), t).data
    beta, alpha = LINEAR.betas[t, None], LINEAR.alphas[t, None]
    abar = LINEAR.alphas_cumprod[t, None]
    sigma2 = LINEAR.posterior_variance[t, None] if variance == "fixed_small" else beta
    z_used = z * (t[:, None] > 0)  # z = 0 at the last step
    line4 = (xt - beta / np.sqrt(1 - abar) * eps) / np.sqrt(alpha) + np.sqrt(sigma2) * z_used
    np.testing.assert_allclose(ddpm.p_sample(xt, t, z), line4, rtol=1e-10, atol=1e-12)
    # With clipping the path goes through the clipped x0_hat: it no longer equals line 4.
    clipped = _ddpm(_wiggly_eps, variance=variance, clip_x0=1.0)
    x0_hat = np.clip(np.sqrt(1 / abar) * xt - np.sqrt(1 / abar - 1) * eps, -1, 1)
    mean = LINEAR.posterior_mean_coef1[t, None] * x0_hat + LINEAR.posterior_mean_coef2[t, None] * xt
    expected = mean + np.sqrt(sigma2) * z * (t[:, None] > 0)
    got = clipped.p_sample(xt, t, z)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert np.abs(got - line4).max() > 1e-3


class GaussianDenoiser:
    """The exact minimiser of the DDPM loss when x0 ~ N(mu, s^2 I): E[target | x_t] in closed
    form. With x_t = sqrt(abar) x0 + sqrt(1-abar) eps, Var x_t = abar s^2 + 1 - abar, so
    E[eps | x_t] = sqrt(1-abar)(x_t - sqrt(abar) mu)/(abar s^2 + 1 - abar) and
    E[x0 | x_t] = mu + sqrt(abar) s^2 (x_t - sqrt(abar) mu)/(abar s^2 + 1 - abar)."""

    def __init__(self, schedule, mu, s, prediction="eps"):
        self.schedule, self.mu, self.s, self.prediction = schedule, np.asarray(mu), s, prediction

    def __call__(self, x, t):
        x = x.data
        abar = self.schedule.alphas_cumprod[t][:, None]
        centred = (x - np.sqrt(abar) * self.mu) / (abar * self.s**2 + 1 - abar)
        eps = np.sqrt(1 - abar) * centred
        x0 = self.mu + np.sqrt(abar) * self.s**2 * centred
        v = np.sqrt(abar) * eps - np.sqrt(1 - abar) * x0
        out = {"eps": eps, "x0": x0, "v": v}[self.prediction]
        return mg.tensor(out, dtype=x.dtype)


MU, S, N = np.array([1.5, -0.5]), 0.5, 3000
SHORT = NoiseSchedule.linear(200, beta_start=1e-4 * 5, beta_end=0.02 * 5)  # betas scaled to T


def _exact_law(sched, timesteps, eta=None, variance="fixed_small", mu=MU, s=S):
    """Mean and variance of a sampler's output for x0 ~ N(mu, s^2 I) and the exact denoiser,
    by pushing N(0, I) through the sampler's affine steps (scalar recursions written from
    the papers' formulas, not from the schedule's derived tables).

    With Dt = abar s^2 + 1 - abar: x0_hat - mu = sqrt(abar) s^2 (x - sqrt(abar) mu)/Dt and
    eps_hat = sqrt(1 - abar)(x - sqrt(abar) mu)/Dt. ``eta=None``: Algorithm 2 through the
    posterior mean (eq. 7), sigma^2 = beta_tilde or beta; else DDIM (Song et al. eq. 12)."""
    betas = np.asarray(sched.betas)
    abars = np.cumprod(1 - betas)
    m, v = np.zeros_like(mu), 1.0
    ts = list(timesteps)
    for k in range(len(ts) - 1, -1, -1):
        t = ts[k]
        abar, abar_prev = abars[t], (abars[ts[k - 1]] if k > 0 else 1.0)
        dt = abar * s**2 + 1 - abar
        centred = m - math.sqrt(abar) * mu
        if eta is None:
            c1 = betas[t] * math.sqrt(abar_prev) / (1 - abar)
            c2 = (1 - abar_prev) * math.sqrt(1 - betas[t]) / (1 - abar)
            gain = c1 * math.sqrt(abar) * s**2 / dt + c2
            m = c1 * (mu + math.sqrt(abar) * s**2 * centred / dt) + c2 * m
            sigma2 = 0.0 if t == 0 else (
                betas[t] * (1 - abar_prev) / (1 - abar) if variance == "fixed_small" else betas[t])
        else:
            sigma2 = eta**2 * (1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)
            direction = math.sqrt(1 - abar_prev - sigma2)
            gain = (math.sqrt(abar_prev) * math.sqrt(abar) * s**2
                    + direction * math.sqrt(1 - abar)) / dt
            m = math.sqrt(abar_prev) * mu + gain * centred
        v = gain**2 * v + sigma2
    return m, math.sqrt(v)


def _assert_law(x, mean, std, n=N):
    np.testing.assert_allclose(x.mean(0), mean, atol=4.5 * std / math.sqrt(n))
    np.testing.assert_allclose(x.std(0), std, rtol=4.5 / math.sqrt(2 * n))


def test_the_samplers_limit_is_the_data_distribution():
    """The exact laws: with T = 1000 both the ancestral sampler and DDIM with enough steps
    return N(mu, s^2) (fixed_small slightly under-disperses, fixed_large over-disperses;
    DDIM with eta = 0 carries the small mismatch of x_T ~ N(0, I) into the mean); DDIM's error
    with few deterministic steps is first order in the step size."""
    for variance, (lo, hi) in {"fixed_small": (0.99, 1.0), "fixed_large": (1.0, 1.01)}.items():
        mean, std = _exact_law(LINEAR, range(1000), variance=variance)
        np.testing.assert_allclose(mean, MU, atol=2e-3)
        assert lo * S < std < hi * S
    mean, std = _exact_law(LINEAR, range(1000), eta=0.0)
    np.testing.assert_allclose(mean, MU, atol=1e-2)
    assert std == pytest.approx(S, rel=5e-3)
    errors = [abs(_exact_law(LINEAR, _ddpm().ddim_timesteps(k), eta=0.0)[1] - S)
              for k in (25, 50, 100)]
    assert errors[0] > errors[1] > errors[2] and errors[1] / errors[2] == pytest.approx(2, rel=0.15)


def test_ancestral_sampler_returns_the_data_distribution():
    ddpm = DDPM(GaussianDenoiser(LINEAR, MU, S), LINEAR)
    x = ddpm.sample((N, 2), progress=False, seed=0, dtype=np.float64)
    _assert_law(x, MU, S)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_ancestral_sampler_follows_its_exact_law(prediction, variance):
    ddpm = DDPM(GaussianDenoiser(SHORT, MU, S, prediction), SHORT, variance=variance,
                prediction=prediction)
    x = ddpm.sample((N, 2), progress=False, seed=0)
    assert x.dtype == np.float32
    _assert_law(x, *_exact_law(SHORT, range(200), variance=variance))


def test_a_wrong_denoiser_fails_the_gaussian_check():
    """The check bites: the exact denoiser of N(mu, (1.3 s)^2) gives the wrong spread."""
    ddpm = DDPM(GaussianDenoiser(SHORT, MU, 1.3 * S), SHORT)
    x = ddpm.sample((N, 2), progress=False, seed=0)
    with pytest.raises(AssertionError):
        _assert_law(x, *_exact_law(SHORT, range(200)))


def test_ddim_returns_the_data_distribution():
    ddpm = DDPM(GaussianDenoiser(LINEAR, MU, S), LINEAR)
    x = ddpm.ddim_sample((N, 2), 250, eta=0.0, progress=False, seed=1, dtype=np.float64)
    _assert_law(x, MU, S)


@pytest.mark.parametrize("steps,eta,spacing", [(10, 0.0, "linspace"), (50, 0.0, "trailing"),
                                               (40, 1.0, "leading"), (200, 0.5, "linspace")])
def test_ddim_follows_its_exact_law(steps, eta, spacing):
    ddpm = DDPM(GaussianDenoiser(SHORT, MU, S), SHORT)
    x = ddpm.ddim_sample((N, 2), steps, eta=eta, progress=False, seed=1, spacing=spacing)
    _assert_law(x, *_exact_law(SHORT, ddpm.ddim_timesteps(steps, spacing), eta=eta))


def test_ddim_eta_0_is_deterministic_given_x_T():
    ddpm = DDPM(_wiggly_eps, LINEAR)
    x_T = np.random.default_rng(0).standard_normal((64, 2))
    a = ddpm.ddim_sample((64, 2), 25, eta=0.0, progress=False, seed=1, x_T=x_T)
    b = ddpm.ddim_sample((64, 2), 25, eta=0.0, progress=False, seed=2, x_T=x_T)
    np.testing.assert_array_equal(a, b)
    c = ddpm.ddim_sample((64, 2), 25, eta=1.0, progress=False, seed=1, x_T=x_T)
    d = ddpm.ddim_sample((64, 2), 25, eta=1.0, progress=False, seed=2, x_T=x_T)
    assert np.abs(c - d).max() > 1e-2


def test_ddim_with_all_steps_and_eta_1_is_ancestral_sampling():
    """Song et al.: eta = 1 over every step gives sigma_t^2 = beta_tilde_t and eq. 12's mean
    equals eq. 7's, i.e. the 'fixed_small' ancestral sampler: with the same random stream the
    two agree sample by sample, and in distribution both follow the same law."""
    ddpm = DDPM(GaussianDenoiser(SHORT, MU, S), SHORT)
    ddim = ddpm.ddim_sample((N, 2), 200, eta=1.0, progress=False, seed=5, dtype=np.float64)
    ancestral = ddpm.sample((N, 2), progress=False, seed=5, dtype=np.float64)
    np.testing.assert_allclose(ddim, ancestral, rtol=1e-7, atol=1e-7)
    other = ddpm.sample((N, 2), progress=False, seed=6, dtype=np.float64)
    np.testing.assert_allclose(ddim.mean(0), other.mean(0), atol=6 * S / math.sqrt(N))
    np.testing.assert_allclose(ddim.std(0), other.std(0), rtol=0.06)


def test_ddim_timestep_spacings():
    ddpm = _ddpm()
    np.testing.assert_array_equal(ddpm.ddim_timesteps(5), [0, 250, 500, 749, 999])
    np.testing.assert_array_equal(ddpm.ddim_timesteps(4, "leading"), [0, 250, 500, 750])
    np.testing.assert_array_equal(ddpm.ddim_timesteps(4, "trailing"), [249, 499, 749, 999])
    for spacing in ("linspace", "leading", "trailing"):
        np.testing.assert_array_equal(ddpm.ddim_timesteps(1000, spacing), np.arange(1000))
    with pytest.raises(ValueError, match="steps must be an integer"):
        ddpm.ddim_timesteps(1001)
    with pytest.raises(ValueError, match="spacing"):
        ddpm.ddim_timesteps(10, "middle")


def test_trajectory_keys_and_dtype():
    ddpm = DDPM(_wiggly_eps, NoiseSchedule.linear(100, 1e-3, 0.2))
    x, traj = ddpm.sample((8, 2), progress=False, seed=0, return_trajectory=[100, 50, 0])
    assert sorted(traj) == [0, 50, 100] and x.dtype == np.float32
    np.testing.assert_array_equal(traj[0], x)
    x, traj = ddpm.sample((8, 2), progress=False, seed=0, return_trajectory=True)
    assert sorted(traj) == list(range(101))
    x, traj = ddpm.ddim_sample((8, 2), 10, progress=False, seed=0, return_trajectory=True)
    assert sorted(traj) == [0] + [int(t) + 1 for t in ddpm.ddim_timesteps(10)]
    np.testing.assert_array_equal(traj[0], x)


# ---------------------------------------------------------------- Algorithm 1


class TinyEps(nn.Module):
    def __init__(self):
        self.layer = nn.Linear(3, 2, dtype=np.float64)

    def forward(self, x, t):
        return self.layer(mg.cat([x, mg.tensor(t[:, None] / 1000.0, dtype=np.float64)], axis=1))


def test_loss_is_algorithm_1_and_reaches_its_minimum_with_the_exact_denoiser():
    rng = np.random.default_rng(0)
    n = 50_000
    x0 = MU + S * rng.standard_normal((n, 2))
    ddpm = DDPM(GaussianDenoiser(LINEAR, MU, S), LINEAR)
    for t in (10, 300, 900):
        noise = rng.standard_normal((n, 2))
        loss = ddpm.loss(x0, t=np.full(n, t), noise=noise)
        pred = GaussianDenoiser(LINEAR, MU, S)(mg.tensor(ddpm.q_sample(x0, np.full(n, t), noise)),
                                               np.full(n, t)).data
        assert loss.item() == pytest.approx(np.mean((noise - pred) ** 2), rel=1e-10)
        abar = LINEAR.alphas_cumprod[t]
        minimum = abar * S**2 / (abar * S**2 + 1 - abar)  # Var[eps | x_t]
        assert loss.item() == pytest.approx(minimum, rel=0.03)


def test_loss_backpropagates_into_the_model_and_targets_follow_the_prediction():
    model = TinyEps()
    rng = np.random.default_rng(1)
    x0, noise = rng.standard_normal((16, 2)), rng.standard_normal((16, 2))
    t = rng.integers(0, 1000, 16)
    for prediction in ("eps", "x0", "v"):
        ddpm = DDPM(model, LINEAR, prediction=prediction)
        model.zero_grad()
        loss = ddpm.loss(x0, t=t, noise=noise)
        loss.backward()
        assert model.layer.weight.grad is not None and np.abs(model.layer.weight.grad).sum() > 0
        abar = LINEAR.alphas_cumprod[t, None]
        v = np.sqrt(abar) * noise - np.sqrt(1 - abar) * x0
        target = {"eps": noise, "x0": x0, "v": v}[prediction]
        with mg.no_grad():
            out = model(mg.tensor(ddpm.q_sample(x0, t, noise)), t).data
        assert loss.item() == pytest.approx(np.mean((out - target) ** 2), rel=1e-10)


def test_sampling_uses_eval_mode_and_restores_training_mode():
    seen = []

    class Probe(TinyEps):
        def forward(self, x, t):
            seen.append(self.training)
            return super().forward(x, t)

    model = Probe()
    DDPM(model, NoiseSchedule.linear(10, 0.01, 0.5)).sample((4, 2), progress=False, seed=0)
    assert seen and not any(seen) and model.training


def test_ddpm_rejects_bad_arguments():
    with pytest.raises(ValueError, match="variance"):
        _ddpm(variance="learned")
    with pytest.raises(ValueError, match="prediction"):
        _ddpm(prediction="score")
    with pytest.raises(ValueError, match="clip_x0"):
        _ddpm(clip_x0=-1.0)
    with pytest.raises(TypeError, match="NoiseSchedule"):
        DDPM(_wiggly_eps, LINEAR.betas)
    ddpm = _ddpm()
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1000\)"):
        ddpm.q_sample(np.zeros((2, 2)), np.array([0, 1000]))
    with pytest.raises(ValueError, match=r"t must have shape \(batch,\)"):
        ddpm.q_sample(np.zeros((2, 2)), np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integers"):
        ddpm.q_sample(np.zeros((2, 2)), np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="model returned shape"):
        DDPM(lambda x, t: mg.zeros(len(t), 3), LINEAR).sample((2, 2), progress=False)
    with pytest.raises(ValueError, match="eta"):
        ddpm.ddim_sample((2, 2), 10, eta=-1.0)


KERNEL_FLAVOURS = ["reference", "auto"]  # MINIGEN_KERNELS: NumPy formulas, Numba-CPU


def _xp_for(device):
    if device == "cpu":
        return np
    cupy = pytest.importorskip("cupy")
    if not backend.cuda_available():
        pytest.skip("needs a CUDA GPU")
    return cupy


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("flavour", KERNEL_FLAVOURS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("clip_x0", [None, 1.0])
def test_kernel_path_equals_the_readable_path(monkeypatch, device, flavour, dtype, prediction,
                                              variance, clip_x0):
    """p_sample and q_sample through the fused kernels (fused=True, what sampling and training
    run) give the numbers of this module's readable formulas (fused=False: p_mean_variance,
    q_posterior, predict_x0), for every prediction type, variance and clipping, including
    the last step (t = 0, no noise)."""
    xp = _xp_for(device)
    monkeypatch.setenv("MINIGEN_KERNELS", flavour)
    ddpm = _ddpm(_wiggly_eps, prediction=prediction, variance=variance, clip_x0=clip_x0)
    rng = np.random.default_rng(0)
    x = xp.asarray(rng.standard_normal((64, 3)).astype(dtype))
    z = xp.asarray(rng.standard_normal((64, 3)).astype(dtype))
    t = np.append(rng.integers(0, 1000, 62), [0, 1])
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for fn in (ddpm.p_sample, ddpm.q_sample):
        fused, readable = fn(x, t, z, fused=True), fn(x, t, z, fused=False)
        assert fused.dtype == readable.dtype == dtype
        assert backend.device_of(fused) == device
        np.testing.assert_allclose(backend.to_numpy(fused), backend.to_numpy(readable), **tol)
    if clip_x0 is not None:  # the clip acts: without it the step would differ
        unclipped = _ddpm(_wiggly_eps, prediction=prediction, variance=variance)
        assert not np.allclose(backend.to_numpy(unclipped.p_sample(x, t, z)),
                               backend.to_numpy(ddpm.p_sample(x, t, z, fused=False)))


