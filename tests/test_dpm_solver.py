"""DPM-Solver++(2M) against the exact probability-flow ODE of Gaussian data.

For x0 ~ N(mu, s^2 I) the exact denoiser is known in closed form (tests/test_diffusion.py's
GaussianDenoiser) and the probability-flow ODE is affine: it carries the marginal
N(alpha_a mu, (alpha_a^2 s^2 + sigma_a^2) I) at time a to the one at time b along
x_b = alpha_b mu + sqrt((alpha_b^2 s^2 + sigma_b^2) / (alpha_a^2 s^2 + sigma_a^2))
(x_a - alpha_a mu)
(the unique increasing affine map between the two Gaussians), and to the data (alpha = 1,
sigma = 0) along x_0 = mu + s (x_a - alpha_a mu) / sqrt(alpha_a^2 s^2 + sigma_a^2).
"""
import numpy as np
import pytest

from minigen.diffusion import DDPM, NoiseSchedule
from minigen.diffusion.dpm_solver import dpm_solver_timesteps
from tests.test_diffusion import MU, S, GaussianDenoiser

pytestmark = pytest.mark.usefixtures("one_thread")

LINEAR = NoiseSchedule.linear(1000)
QUADRATIC = NoiseSchedule.quadratic(1000)  # the 2-D default
COSINE = NoiseSchedule.cosine(1000)


def _ode_map(schedule, t_from, x, t_to=None):
    """The exact probability-flow map of x at code timestep t_from to t_to (None: the data)."""
    abar = schedule.alphas_cumprod
    a, b = abar[t_from], (1.0 if t_to is None else abar[t_to])
    return np.sqrt(b) * MU + np.sqrt((b * S**2 + 1 - b) / (a * S**2 + 1 - a)) * (
        x - np.sqrt(a) * MU)


def test_timesteps_follow_diffusers_spacings():
    """diffusers' set_timesteps for 1000 training steps and 20 inference steps."""
    np.testing.assert_array_equal(dpm_solver_timesteps(LINEAR, 20), np.round(np.arange(20, 0, -1)
                                                                            * 49.95))
    assert dpm_solver_timesteps(LINEAR, 20)[[0, 1, -1]].tolist() == [999, 949, 50]
    assert dpm_solver_timesteps(LINEAR, 20, "leading").tolist() == list(range(940, 0, -47))
    assert dpm_solver_timesteps(LINEAR, 20, "trailing").tolist() == list(range(999, 0, -50))
    for spacing in ("linspace", "leading", "trailing", "logsnr"):
        ts = dpm_solver_timesteps(LINEAR, 1000, spacing)
        assert np.all(np.diff(ts) < 0) and ts.min() >= 0 and ts.max() <= 999
    lam = np.log(LINEAR.alphas_cumprod / (1 - LINEAR.alphas_cumprod)) / 2
    ts = dpm_solver_timesteps(LINEAR, 20, "logsnr")
    assert ts[0] == 999 and ts[-1] == 0 and len(ts) == 20
    steps = np.diff(lam[ts])  # uniform in lambda up to rounding t to integers
    assert np.all(steps > 0) and steps.max() / steps.min() < 1.5
    with pytest.raises(ValueError, match="steps"):
        dpm_solver_timesteps(LINEAR, 0)
    with pytest.raises(ValueError, match="spacing"):
        dpm_solver_timesteps(LINEAR, 20, "middle")


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("schedule", [QUADRATIC, COSINE], ids=["quadratic", "cosine"])
def test_20_steps_land_on_the_exact_ode_map(prediction, schedule):
    """20 evaluations: within 0.015 (rms 0.003) of the exact map of x_T to the data, with the
    spread of N(mu, s^2) to 0.5%; DDIM needs more than 50 steps for a spread within 2%."""
    ddpm = DDPM(GaussianDenoiser(schedule, MU, S, prediction), schedule, prediction=prediction)
    x_T = np.random.default_rng(0).standard_normal((4000, 2))
    x = ddpm.dpm_solver_sample((4000, 2), 20, spacing="linspace", progress=False, x_T=x_T,
                               dtype=np.float64)
    exact = _ode_map(schedule, dpm_solver_timesteps(schedule, 20)[0], x_T)
    assert np.abs(x - exact).max() < 0.015
    assert np.sqrt(np.mean((x - exact) ** 2)) < 0.003
    assert x.std(0) == pytest.approx(exact.std(0), rel=5e-3)
    ddim = ddpm.ddim_sample((4000, 2), 50, progress=False, x_T=x_T, dtype=np.float64)
    assert abs(ddim.std(0) / exact.std(0) - 1).min() > 0.02


def test_logsnr_steps_converge_to_the_exact_ode_map():
    """Uniform log-SNR steps spend fewer evaluations where Gaussian data moves (mid noise):
    rms error 0.0054 at 20 steps, 0.0013 at 40 (quadratic schedule)."""
    ddpm = DDPM(GaussianDenoiser(QUADRATIC, MU, S), QUADRATIC)
    x_T = np.random.default_rng(0).standard_normal((4000, 2))
    errors = []
    for steps in (20, 40):
        x = ddpm.dpm_solver_sample((4000, 2), steps, spacing="logsnr", progress=False, x_T=x_T,
                                   dtype=np.float64)
        errors.append(np.sqrt(np.mean((x - _ode_map(QUADRATIC, 999, x_T)) ** 2)))
    assert errors[0] < 0.008 and errors[1] < errors[0] / 3


def test_global_error_is_second_order():
    """On a schedule whose log-SNR lambda is linear in t, linspace steps are uniform in lambda:
    halving the step size divides the error of the state at the last evaluated timestep
    (before the final jump to sigma = 0) by ~4, where DDIM (first order) halves it."""
    T = 1001
    lam = np.linspace(5.0, -5.0, T)
    abar = 1.0 / (1.0 + np.exp(-2.0 * lam))
    schedule = NoiseSchedule(1.0 - abar / np.append(1.0, abar[:-1]))
    np.testing.assert_allclose(schedule.alphas_cumprod, abar, rtol=1e-12)
    ddpm = DDPM(GaussianDenoiser(schedule, MU, S, "v"), schedule, prediction="v")
    x_T = np.random.default_rng(1).standard_normal((200, 2))
    errors = []
    for steps in (20, 40, 80):
        ts = dpm_solver_timesteps(schedule, steps)
        _, trajectory = ddpm.dpm_solver_sample((200, 2), steps, "linspace", progress=False,
                                               x_T=x_T, dtype=np.float64,
                                               return_trajectory=[ts[-1] + 1])
        errors.append(np.abs(trajectory[ts[-1] + 1] - _ode_map(schedule, ts[0], x_T, ts[-1])).max())
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all((3.0 < ratios) & (ratios < 5.0)), (errors, ratios)


def test_float32_trajectory_clipping_and_determinism():
    ddpm = DDPM(GaussianDenoiser(QUADRATIC, MU, S), QUADRATIC)
    x, trajectory = ddpm.dpm_solver_sample((64, 2), 10, progress=False, seed=3,
                                           return_trajectory=True)
    ts = dpm_solver_timesteps(QUADRATIC, 10, "logsnr")
    assert x.dtype == np.float32 and sorted(trajectory) == sorted([0] + [int(t) + 1 for t in ts])
    np.testing.assert_array_equal(trajectory[0], x)
    again = ddpm.dpm_solver_sample((64, 2), 10, progress=False, x_T=trajectory[int(ts[0]) + 1])
    np.testing.assert_array_equal(again, x)
    clipped = DDPM(GaussianDenoiser(QUADRATIC, MU, S), QUADRATIC, clip_x0=1.0)
    y = clipped.dpm_solver_sample((64, 2), 10, progress=False, seed=3)
    assert np.abs(y).max() <= 1.0 + 1e-6 and np.abs(x).max() > 1.2
    with pytest.raises(ValueError, match="steps"):
        ddpm.dpm_solver_sample((4, 2), 0, progress=False)


def test_runs_sample_with_dpm_solver_through_the_api_and_the_cli(tmp_path, capsys):
    from minigen import cli
    from minigen import data as D
    from minigen.diffusion import trainer as T

    run = tmp_path / "run"
    T.train_ddpm(D.moons(200, seed=0), 20, run, progress=False, figures=False,
                 model_config=dict(hidden=(16, 16), time_dim=8), batch_size=32)
    samples = T.sample_run(run, 50, sampler="dpm++2m", steps=8, seed=2)
    ddpm, config = T.load_run(run)
    x_T = np.random.default_rng(2).standard_normal((50, 2), dtype=np.float32)
    direct = T.denormalize(ddpm.dpm_solver_sample((50, 2), 8, progress=False, x_T=x_T),
                           config["normalization"])
    np.testing.assert_array_equal(samples, direct)
    target = str(tmp_path / "samples.npy")
    assert cli.main(["sample", str(run), "--n", "50", "--out", target, "--sampler", "dpm++2m",
                     "--steps", "8", "--seed", "2"]) == 0
    np.testing.assert_array_equal(np.load(target), samples)
    assert "wrote 50 samples" in capsys.readouterr().out
    sde = T.sample_run(run, 50, sampler="dpm++2m-sde", steps=8, seed=2)
    rng = np.random.default_rng(2)
    direct = T.denormalize(ddpm.dpm_solver_sample((50, 2), 8, progress=False, seed=rng, sde=True),
                           config["normalization"])
    np.testing.assert_array_equal(sde, direct)
    assert cli.main(["sample", str(run), "--n", "50", "--out", target, "--sampler",
                     "dpm++2m-sde", "--steps", "8", "--seed", "2", "--overwrite"]) == 0
    np.testing.assert_array_equal(np.load(target), sde)


def test_sde_first_step_is_the_ddpm_posterior_of_the_predicted_x0():
    """A first-order SDE-DPM-Solver++ step from s to t is the DDPM posterior
    q(x_t | x_s, x0_hat) over that jump: DDIM's step with eta = 1 and the same noise."""
    ddpm = DDPM(GaussianDenoiser(QUADRATIC, MU, S), QUADRATIC)
    x_T = np.random.default_rng(0).standard_normal((500, 2))
    ts = dpm_solver_timesteps(QUADRATIC, 5, "logsnr")
    _, trajectory = ddpm.dpm_solver_sample((500, 2), 5, progress=False, x_T=x_T, seed=4,
                                           dtype=np.float64, sde=True,
                                           return_trajectory=[ts[1] + 1])
    z = np.random.default_rng(4).standard_normal((500, 2))
    expected = ddpm.ddim_step(x_T, int(ts[0]), int(ts[1]), eta=1.0, noise=z)
    np.testing.assert_allclose(trajectory[ts[1] + 1], expected, rtol=1e-12, atol=1e-12)


def test_sde_samples_converge_to_the_data_law():
    """On Gaussian data with the exact denoiser, SDE-DPM-Solver++(2M) samples have the data's
    mean and a spread that approaches s as the steps grow (measured excess: 2.6-2.8% at 20
    steps, 0.3-0.5% at 50, 0.2-0.3% at 200, quadratic schedule, 10^5 samples); the solver is
    stochastic (two seeds differ) and reproducible from its seed."""
    ddpm = DDPM(GaussianDenoiser(QUADRATIC, MU, S), QUADRATIC)
    excess = []
    for steps in (20, 200):
        x = ddpm.dpm_solver_sample((40000, 2), steps, progress=False, seed=1, dtype=np.float64,
                                   sde=True)
        assert np.abs(x.mean(0) - MU).max() < 0.012  # s.e. of the mean 0.0025
        excess.append(np.abs(x.std(0) / S - 1).max())
    assert excess[1] < 0.012 and excess[1] < excess[0] / 3, excess
    a = ddpm.dpm_solver_sample((8, 2), 10, progress=False, seed=2, sde=True)
    np.testing.assert_array_equal(a, ddpm.dpm_solver_sample((8, 2), 10, progress=False, seed=2,
                                                            sde=True))
    assert not np.allclose(a, ddpm.dpm_solver_sample((8, 2), 10, progress=False, seed=3,
                                                     sde=True))
