"""The EDM formulation (Karras et al. 2022; minigen/diffusion/edm.py): Table 1 against the
paper's derivations, the samplers against exact solutions of the probability-flow ODE of
Gaussian data, a DDPM sampled through the EDM sampler against DDIM, gradients of the
preconditioned loss against finite differences, and the trainer and CLI plumbing."""
import numpy as np
import pytest

from minigen import functional as F
from minigen import manual_seed, nn
from minigen.diffusion import edm
from minigen.diffusion.ddpm import DDPM
from minigen.diffusion.edm import EDM
from minigen.diffusion.schedule import NoiseSchedule
from minigen.diffusion.trainer import load_run, sample_run, train_ddpm
from minigen.errors import InvalidInput
from minigen.tensor import Tensor
from minigen.testing import gradcheck


def gaussian_denoiser(s):
    """The exact D(x; sigma) = E[x0 | x0 + sigma n = x] of data N(0, s^2 I)."""
    return lambda x, sigma: x * (s**2 / (s**2 + sigma**2))


def gaussian_flow(x, sigma_from, sigma_to, s):
    """The exact solution of dx/dsigma = (x - D(x; sigma)) / sigma = sigma x / (s^2 + sigma^2)
    for data N(0, s^2 I): x scales by sqrt((s^2 + sigma^2) / (s^2 + sigma_from^2))."""
    return x * np.sqrt((s**2 + sigma_to**2) / (s**2 + sigma_from**2))


def _mlp(seed, **config):
    """A 2-D time-conditioned MLP with weights drawn from ``seed``."""
    manual_seed(seed)
    return nn.MLP(2, 2, **config)


def slope(ns, errors):
    """The exponent p of errors ~ N^-p, fitted in log-log."""
    return -np.polyfit(np.log(ns), np.log(errors), 1)[0]


# --- Table 1 -------------------------------------------------------------------------------
def test_preconditioning_matches_table_1():
    sigma, sd = np.array([0.01, 0.3, 0.5, 2.0, 80.0]), 0.5
    np.testing.assert_allclose(edm.c_skip(sigma, sd), 0.25 / (sigma**2 + 0.25))
    np.testing.assert_allclose(edm.c_out(sigma, sd), sigma * 0.5 / np.sqrt(0.25 + sigma**2))
    np.testing.assert_allclose(edm.c_in(sigma, sd), 1 / np.sqrt(sigma**2 + 0.25))
    np.testing.assert_allclose(edm.c_noise(sigma), 0.25 * np.log(sigma))
    # lambda(sigma) c_out(sigma)^2 = 1: every noise level weighs the same in F's loss
    np.testing.assert_allclose(edm.loss_weight(sigma, sd) * edm.c_out(sigma, sd) ** 2, 1.0)


@pytest.mark.parametrize("law", ["gaussian", "uniform"])
def test_training_target_has_unit_variance_only_for_data_of_std_sigma_data(law):
    """App. B.6: c_skip and c_out make F's target (x0 - c_skip (x0 + sigma n)) / c_out
    unit-variance at every sigma, for any data of std sigma_data; for data of std s the
    variance is (sigma^2 s^2 + sd^4) / (sd^2 (sd^2 + sigma^2)), 1 only at the extremes."""
    rng = np.random.default_rng(0)
    sd, n = 0.5, 400_000
    unit = rng.standard_normal(n) if law == "gaussian" else rng.uniform(-1, 1, n) * np.sqrt(3)
    noise = rng.standard_normal(n)
    for s in (sd, 2 * sd):
        x0 = s * unit
        for sigma in np.geomspace(0.002, 80, 9):
            var = edm.training_target(x0, noise, sigma, sd).var()
            expected = (sigma**2 * s**2 + sd**4) / (sd**2 * (sd**2 + sigma**2))
            assert abs(var - expected) < 0.02 * expected, (s, sigma, var, expected)
            if s == sd:
                assert abs(var - 1) < 0.02, (sigma, var)
    # data of twice the std: far from unit variance in the middle of the range (2.5 at sd)
    assert edm.training_target(2 * sd * unit, noise, sd, sd).var() > 2.0


def test_training_sigmas_are_log_normal():
    rng = np.random.default_rng(1)
    log_sigma = np.log(edm.training_sigmas(200_000, rng))
    assert abs(log_sigma.mean() - edm.P_MEAN) < 0.01
    assert abs(log_sigma.std() - edm.P_STD) < 0.01


def test_sigma_steps_follow_eq_5():
    t = edm.sigma_steps(18)
    assert len(t) == 19 and t[-1] == 0
    np.testing.assert_allclose(t[[0, 17]], [80.0, 0.002])
    i = np.arange(18)
    rho = 7
    expected = (80 ** (1 / rho) + i / 17 * (0.002 ** (1 / rho) - 80 ** (1 / rho))) ** rho
    np.testing.assert_allclose(t[:-1], expected)
    assert np.all(np.diff(t) < 0)
    with pytest.raises(InvalidInput, match="sigma_min < sigma_max"):
        edm.sigma_steps(5, sigma_min=1.0, sigma_max=0.5)


# --- the samplers against the exact ODE of Gaussian data -----------------------------------
def test_heun_sampler_is_second_order_and_euler_first_order():
    """With the exact denoiser of N(0, s^2 I), the error at sigma_min after N steps of the
    rho = 7 schedule falls as N^-2 for Heun (Algorithm 1) and N^-1 for Euler."""
    s = 0.5
    x = np.random.default_rng(0).standard_normal((64, 2)) * 80.0
    ns = np.array([8, 16, 32, 64])
    errors = {True: [], False: []}
    for n in ns:
        sigmas = edm.sigma_steps(n)[:-1]  # stop at sigma_min, where the exact flow is known
        exact = gaussian_flow(x, sigmas[0], sigmas[-1], s)
        for second in (True, False):
            out = edm.heun_sampler(gaussian_denoiser(s), x, sigmas, second_order=second)
            errors[second].append(np.abs(out - exact).max() / np.abs(exact).max())
    assert 1.8 < slope(ns, errors[True]) < 2.3, errors[True]
    assert 0.8 < slope(ns, errors[False]) < 1.2, errors[False]
    assert errors[True][-1] < 0.01 < errors[False][-1]


def test_samplers_end_at_the_data_law():
    """From x ~ N(0, sigma_max^2 I), Heun over 64 steps ends at the exact flow's end (std s of
    the data), the stochastic sampler (Algorithm 2) at std s too; with S_churn = 0 the
    stochastic sampler is Heun exactly."""
    s = 0.5
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20_000, 2)) * 80.0
    sigmas = edm.sigma_steps(64)
    heun = edm.heun_sampler(gaussian_denoiser(s), x, sigmas)
    np.testing.assert_allclose(heun, gaussian_flow(x, 80.0, 0.0, s), rtol=0.006)
    stochastic = edm.stochastic_sampler(gaussian_denoiser(s), x, sigmas, rng)
    assert abs(stochastic.std() / s - 1) < 0.035, stochastic.std()
    unchurned = edm.stochastic_sampler(gaussian_denoiser(s), x, sigmas, rng, S_churn=0.0)
    np.testing.assert_array_equal(unchurned, heun)


# --- a VP DDPM through the EDM sampler (Sec. 3) ----------------------------------------------
def _ddpm_of(model, T=200):
    return DDPM(model, NoiseSchedule.linear(T, 5e-4, 0.1))


def test_euler_on_a_ddpms_grid_is_ddim_with_eta_0():
    """Karras et al. Sec. 3 (and Song et al. 2021, eq. 14): DDIM with eta = 0 is Euler's
    method on the EDM ODE in x / sqrt(abar) at sigma = sqrt(1 - abar) / sqrt(abar); the two
    agree to rounding for any network (here a random MLP in float64)."""
    model = _mlp(3, hidden=(16, 16), time_dim=8, dtype="float64")
    ddpm = _ddpm_of(model)
    ts = ddpm.ddim_timesteps(10)
    x_T = np.random.default_rng(4).standard_normal((32, 2))
    ddim = ddpm.ddim_sample(x_T.shape, 10, x_T=x_T, progress=False)
    sigmas = np.append(edm.ddpm_sigmas(ddpm)[ts[::-1]], 0.0)
    x = x_T / ddpm.schedule.sqrt_alphas_cumprod[ts[-1]]
    euler = edm.heun_sampler(edm.ddpm_denoiser(ddpm), x, sigmas, second_order=False)
    np.testing.assert_allclose(euler, ddim, rtol=1e-10, atol=1e-10)
    heun = edm.heun_sampler(edm.ddpm_denoiser(ddpm), x, sigmas)
    assert np.abs(heun - ddim).max() > 1e-3  # the second-order correction is not a no-op


def test_heun_on_a_ddpm_agrees_with_the_ddpm_ode():
    """The exact eps-prediction of N(0, s^2 I) data as a DDPM (Ho et al.'s linear schedule,
    T = 1000): Heun in the EDM variables, on the DDPM's noise levels nearest to the rho = 7
    steps, and DDIM (eta = 0, the DDPM's probability-flow ODE) over all T steps reach the
    exact solution of the ODE; Heun's error falls about as N^-2 (18 -> 50 steps)."""
    s = 0.5
    schedule = NoiseSchedule.linear(1000, 1e-4, 0.02)
    abar = schedule.alphas_cumprod

    def eps(x, t):  # E[eps | x_t] for x0 ~ N(0, s^2 I)
        a = abar[np.asarray(t)][:, None]
        return Tensor(np.sqrt(1 - a) * x.data / (a * s**2 + 1 - a))

    ddpm = DDPM(eps, schedule)
    x_T = np.random.default_rng(5).standard_normal((256, 2))
    sigma = edm.ddpm_sigmas(ddpm)
    x = x_T / np.sqrt(abar[-1])  # the EDM state at sigma_T
    exact = gaussian_flow(x, sigma[-1], 0.0, s)

    def error(out):
        return np.abs(out - exact).max() / np.abs(exact).max()

    assert error(ddpm.ddim_sample(x_T.shape, 1000, x_T=x_T, progress=False)) < 0.005
    errors = []
    for n in (18, 50):
        steps = edm.sigma_steps(n, sigma[0], sigma[-1])[:-1]
        ts = np.unique(np.abs(np.log(sigma)[:, None] - np.log(steps)).argmin(0))[::-1]
        errors.append(error(edm.heun_sampler(edm.ddpm_denoiser(ddpm), x,
                                             np.append(sigma[ts], 0.0))))
    assert errors[1] < 0.01 and errors[0] > 5 * errors[1], errors
    with pytest.raises(InvalidInput, match="none of the DDPM's noise levels"):
        edm.ddpm_denoiser(ddpm)(x_T, 0.123)


# --- the model: eq. 7, the loss and its gradient --------------------------------------------
def test_denoise_is_eq_7_and_the_loss_its_weighted_error():
    model = _mlp(6, hidden=(8,), time_dim=8, dtype="float64")
    model_edm = EDM(model, sigma_data=0.7)
    rng = np.random.default_rng(7)
    x0, noise = rng.standard_normal((16, 2)), rng.standard_normal((16, 2))
    sigma = np.exp(rng.standard_normal(16))
    x = x0 + sigma[:, None] * noise
    out = model(Tensor(x * edm.c_in(sigma, 0.7)[:, None]), np.log(sigma) / 4).data
    D = edm.c_skip(sigma, 0.7)[:, None] * x + edm.c_out(sigma, 0.7)[:, None] * out
    np.testing.assert_allclose(model_edm.denoise(x, sigma), D, rtol=1e-12)
    loss = model_edm.loss(x0, sigma=sigma, noise=noise).item()
    expected = np.mean(edm.loss_weight(sigma, 0.7)[:, None] * (D - x0) ** 2)
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    # the same as F's unit-weighted error against its effective target (eq. 8)
    target = edm.training_target(x0, noise, sigma[:, None], 0.7)
    np.testing.assert_allclose(loss, np.mean((out - target) ** 2), rtol=1e-10)


def test_preconditioned_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(8)
    x0, noise = rng.standard_normal((6, 2)), rng.standard_normal((6, 2))
    sigma = np.exp(1.2 * rng.standard_normal(6) - 1.2)
    w0, b0 = rng.standard_normal((3, 2)), rng.standard_normal(2)

    def loss(w, b):
        def network(x, t):  # a tiny F with a noise-level input: tanh([x, t] W) + b
            return F.tanh(x @ w[:2] + Tensor(t[:, None]) * w[2:3]) + b
        return EDM(network).loss(x0, sigma=sigma, noise=noise)

    assert gradcheck(loss, [Tensor(w0, requires_grad=True), Tensor(b0, requires_grad=True)])


def test_guided_denoiser_combines_the_conditional_and_unconditional_ones():
    model = _mlp(9, hidden=(8,), time_dim=8, num_classes=3, dtype="float64")
    model_edm = EDM(model)
    x = np.random.default_rng(10).standard_normal((5, 2))
    y = np.array([0, 1, 2, 1, 0])
    conditional, unconditional = model_edm.denoise(x, 0.7, y), model_edm.denoise(x, 0.7, 3)
    np.testing.assert_allclose(model_edm.denoise(x, 0.7, y, guidance=2.0),
                               3 * conditional - 2 * unconditional, rtol=1e-10)


def test_bad_arguments_give_one_line_errors():
    model_edm = EDM(_mlp(0, hidden=(8,), time_dim=8))
    with pytest.raises(InvalidInput, match="sigma_data must be a positive number"):
        EDM(model_edm.model, sigma_data=0.0)
    with pytest.raises(InvalidInput, match="sigma must be finite numbers > 0"):
        model_edm.denoise(np.zeros((2, 2), np.float32), -1.0)
    with pytest.raises(InvalidInput, match="sampler must be one of"):
        model_edm.sample((2, 2), sampler="ddim", progress=False)
    with pytest.raises(InvalidInput, match="apply to the stochastic sampler"):
        model_edm.sample((2, 2), sampler="heun", S_churn=5, progress=False)


# --- the trainer and the run directory ------------------------------------------------------
def test_edm_run_trains_samples_and_refuses_ddpm_options(tmp_path):
    """An EDM run through the DDPM trainer: its loss falls, it reloads as an EDM, samples with
    Heun and the stochastic sampler land near ring8's modes, DDPM-only options and samplers
    are refused."""
    data = np.random.default_rng(0).standard_normal((512, 2)).astype(np.float32) * 0.05
    data[:256] += 2.0
    trainer = train_ddpm(data, 600, str(tmp_path / "r"), progress=False, figures=False,
                         formulation="edm", checkpoint_every=600)
    losses = trainer.history["loss"]
    assert np.mean(losses[-50:]) < 0.5 * np.mean(losses[:50])
    model_edm, config = load_run(str(tmp_path / "r"))
    assert isinstance(model_edm, EDM) and config["formulation"] == "edm"
    for sampler in ("heun", "stochastic"):
        x = sample_run(str(tmp_path / "r"), 400, sampler=sampler, steps=12)
        near = np.minimum(np.linalg.norm(x, axis=1), np.linalg.norm(x - 2.0, axis=1)) < 0.3
        assert near.mean() > 0.9, (sampler, near.mean())
    with pytest.raises(InvalidInput, match="sampler must be one of 'heun', 'stochastic'"):
        sample_run(str(tmp_path / "r"), 10, sampler="ddim")
    with pytest.raises(InvalidInput, match="prediction: not an option of formulation='edm'"):
        train_ddpm(data, 2, str(tmp_path / "s"), progress=False, figures=False,
                   formulation="edm", prediction="v")
    with pytest.raises(InvalidInput, match="sigma_data: not an option of formulation='ddpm'"):
        train_ddpm(data, 2, str(tmp_path / "t"), progress=False, figures=False, sigma_data=0.3)


def test_cli_trains_and_samples_an_edm_run(tmp_path, capsys):
    from minigen import cli

    run, out = str(tmp_path / "r"), str(tmp_path / "x.npy")
    assert cli.main(["train", "ddpm", "--data", "ring8", "--steps", "3", "--out", run,
                     "--formulation", "edm", "--quiet", "--no-figures"]) == 0
    assert cli.main(["sample", run, "--n", "7", "--out", out, "--steps", "3"]) == 0
    assert np.load(out).shape == (7, 2)
    assert cli.main(["sample", run, "--n", "7", "--out", out, "--overwrite", "--sampler",
                     "stochastic", "--steps", "3"]) == 0
    capsys.readouterr()
    assert cli.main(["sample", run, "--from", out, "--out", str(tmp_path / "e.npy")]) == 2
    assert "works on DDPM runs" in capsys.readouterr().err


# --- min-SNR-gamma weighting of the DDPM loss (Hang et al. 2023) ---------------------------
@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_min_snr_gamma_weights_the_x0_error_by_min_snr_gamma(prediction):
    """Whatever the network predicts, the weighted loss is the mean of
    min(SNR_t, gamma) (x0 - x0_hat)^2 (Hang et al. 2023, Sec. 3.4), computed here
    from the implied x0_hat; without gamma the loss is the paper's L_simple."""
    model = _mlp(11, hidden=(8,), time_dim=8, dtype="float64")
    schedule = NoiseSchedule.linear(1000, 1e-4, 0.02)
    rng = np.random.default_rng(12)
    x0, noise = rng.standard_normal((64, 2)), rng.standard_normal((64, 2))
    t = rng.integers(0, 1000, 64)
    weighted = DDPM(model, schedule, prediction=prediction, min_snr_gamma=5.0)
    plain = DDPM(model, schedule, prediction=prediction)
    x_t = plain.q_sample(x0, t, noise)
    x0_hat = plain.predict_x0(x_t, t, model(Tensor(x_t), t).data)
    abar = schedule.alphas_cumprod[t]
    snr = abar / (1 - abar)
    expected = np.mean(np.minimum(snr, 5.0)[:, None] * (x0 - x0_hat) ** 2)
    np.testing.assert_allclose(weighted.loss(x0, t, noise).item(), expected, rtol=1e-9)
    assert abs(plain.loss(x0, t, noise).item() - expected) > 1e-3 * expected
    if prediction == "eps":  # gamma above every SNR: weight 1, L_simple
        huge = DDPM(model, schedule, min_snr_gamma=1e12)
        np.testing.assert_allclose(huge.loss(x0, t, noise).item(),
                                   plain.loss(x0, t, noise).item(), rtol=1e-12)
    with pytest.raises(InvalidInput, match="min_snr_gamma must be None or a number > 0"):
        DDPM(model, schedule, min_snr_gamma=0.0)


def test_edm_run_resumes_bit_exactly(tmp_path):
    """The sigma and noise of each step come from the trainer's generator, as DDPM's t and
    noise do: a run stopped and resumed ends with the weights of an uninterrupted one."""
    data = np.random.default_rng(13).standard_normal((300, 2)).astype(np.float32)
    tiny = dict(formulation="edm", batch_size=32, model_config={"hidden": [16]})
    whole = train_ddpm(data, 30, str(tmp_path / "whole"), seed=3, progress=False,
                       figures=False, checkpoint_every=15, **tiny)
    train_ddpm(data, 15, str(tmp_path / "split"), seed=3, progress=False, figures=False,
               checkpoint_every=15, **tiny)
    resumed = train_ddpm(data, 30, str(tmp_path / "split"), resume=True, progress=False,
                         figures=False, checkpoint_every=15)
    assert resumed.step == 30 and whole.history == resumed.history
    for (name, a), (_, b) in zip(sorted(whole.state()["model"].items()),
                                 sorted(resumed.state()["model"].items())):
        np.testing.assert_array_equal(a, b, err_msg=name)
