"""DPM-Solver++(2M): a second-order multistep solver of the probability-flow ODE, and of the
reverse SDE (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
Probabilistic Models", arXiv:2211.01095), for DDPMs that predict eps, x0 or v.

With alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t) and the half log-SNR
lambda_t = log(alpha_t / sigma_t), the diffusion ODE written for the data prediction
x_theta(x, t) (the DDPM's x0_hat) has the exact solution (Lu et al. 2022, Sec. 4.1)

    x_t = (sigma_t / sigma_s) x_s + sigma_t * integral_{lambda_s}^{lambda_t} e^lambda
          x_theta(x_lambda, lambda) dlambda,

whose integrand is smooth in lambda. Holding x_theta constant over a step of length
h = lambda_t - lambda_s gives the first-order update (DDIM with eta = 0)

    x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) x_theta(x_s, s);

DPM-Solver++(2M) (Algorithm 2) replaces x_theta(x_s, s) by the linear extrapolation through
the two latest evaluations, D = (1 + 1/(2r)) m_0 - (1/(2r)) m_1 with r = h_prev / h
(m_0 at the current time s, m_1 at the previous one, h_prev the step that led to s):
one network evaluation per step, local error O(h^3), global error O(h^2).

SDE-DPM-Solver++(2M) (``sde=True``; diffusers' ``algorithm_type="sde-dpmsolver++"``) solves
the reverse diffusion SDE instead, whose solution in the same variables (variation of
constants, as for the ODE) is

    x_t = (sigma_t / sigma_s) e^{-h} x_s + 2 alpha_t integral_{lambda_s}^{lambda_t}
          e^{-2 (lambda_t - lambda)} x_theta dlambda + sigma_t sqrt(1 - e^{-2h}) z,

so holding x_theta constant gives x_t = (sigma_t / sigma_s) e^{-h} x_s
+ alpha_t (1 - e^{-2h}) x_theta + sigma_t sqrt(1 - e^{-2h}) z: the mean and variance of the
DDPM posterior q(x_t | x_s, x_0 = x_theta) (Ho et al. 2020, eqs. 6-7) over a jump from s to t,
i.e. one ancestral step with a learned x_0. The second-order form uses the same
extrapolation D as above.

Timesteps, first and last steps follow diffusers' ``DPMSolverMultistepScheduler``
(``algorithm_type="dpmsolver++"``, ``solver_order=2``, ``final_sigmas_type="zero"``): the
network is evaluated at ``steps`` integer timesteps spaced by ``"linspace"``, ``"leading"``
or ``"trailing"`` (Lin et al. 2024, Table 2) or uniformly in lambda (``"logsnr"``,
diffusers' ``use_lu_lambdas``), and a last step goes to sigma = 0, i.e. to the data
prediction at the last timestep. The first step (no history yet) and that last step are
first order.
"""
import numpy as np
from tqdm.auto import tqdm

from minigen import backend
from minigen.diffusion import inputs
from minigen.diffusion.spacing import spaced_timesteps
from minigen.nn.module import eval_mode
from minigen.tensor import no_grad

SPACINGS = ("linspace", "leading", "trailing", "logsnr")


def dpm_solver_timesteps(schedule, steps, spacing="linspace"):
    """The decreasing code timesteps (0..T-1) of ``schedule`` at which DPM-Solver++ evaluates
    the network, as diffusers' ``set_timesteps`` spaces them, duplicates removed
    (:func:`~minigen.diffusion.spacing.spaced_timesteps` for the first three):

    - ``"linspace"``: round(linspace(0, T - 1, steps + 1)), reversed, without the final 0;
    - ``"leading"``: k * (T // (steps + 1)) for k = steps, ..., 1;
    - ``"trailing"``: round(arange(T, 0, -T / steps)) - 1 (always starts at T - 1);
    - ``"logsnr"``: uniform in lambda from lambda_{T-1} to lambda_0, each rounded to the
      nearest timestep (diffusers' ``use_lu_lambdas``; the "logSNR" steps that Lu et al. 2022a,
      Sec. 3.3, recommend): the last evaluation is at t = 0, so the final jump to sigma = 0
      starts from the smallest noise the model was trained on. The other spacings end at
      t ~ T/steps, where the noise (std 0.096 for the 2-D default schedule at 20 steps, in
      units of the data's std) can exceed the width of sharp data, and the final jump to the
      denoiser's mean then collapses it.
    """
    T = schedule.T
    inputs.steps(steps, T, "dpm_solver_timesteps")
    inputs.choice(spacing, SPACINGS, "spacing", "dpm_solver_timesteps")
    if spacing == "logsnr":
        lam = _lambdas(schedule.alphas_cumprod)  # decreasing in t
        targets = np.linspace(lam[-1], lam[0], steps)
        ts = np.interp(targets, lam[::-1], np.arange(T - 1, -1, -1, dtype=np.float64)).round()
    elif spacing == "trailing":
        ts = spaced_timesteps(T, steps, spacing)
    else:  # steps + 1 points from t = 0, without the first (the final jump goes to sigma = 0)
        ts = spaced_timesteps(T, steps + 1, spacing)[1:]
    return np.unique(ts.astype(np.int64))[::-1]


def dpm_solver_sample(ddpm, shape, steps=20, spacing="logsnr", progress=True,
                      return_trajectory=False, seed=None, y=None, dtype=None, x_T=None,
                      guidance=0.0, sde=False):
    """Samples of ``ddpm`` by DPM-Solver++(2M) in ``steps`` network evaluations; with ``sde``
    by SDE-DPM-Solver++(2M), which draws fresh noise at each step from ``seed``.

    x_T ~ N(0, I) (or ``x_T``) is taken as the state at the first timestep of
    :func:`dpm_solver_timesteps`. The default ``spacing`` "logsnr" ends at t = 0; diffusers'
    default "linspace" ends at t ~ T/steps, where on sharp 2-D sets the final jump to the
    denoiser's mean collapses narrow modes (measured in docs/tuning.md). x_theta is the
    DDPM's :meth:`~DDPM.predict_x0` of the network output (clipped when ``clip_x0`` is set),
    so eps-, x0- and v-prediction models are all solved in data-prediction form.
    Deterministic given x_T (without ``sde``). Arguments (labels ``y`` and classifier-free
    ``guidance`` included) and the return value as in :meth:`DDPM.sample` (trajectory keys
    are paper timesteps t + 1, and 0 for the samples).
    """
    ts = dpm_solver_timesteps(ddpm.schedule, steps, spacing)
    x, rng, keep = inputs.start(ddpm, shape, seed, dtype, return_trajectory, x_T, y, guidance,
                                "dpm_solver_sample")
    abar = ddpm.schedule.alphas_cumprod[ts]
    alpha, sigma, lam = np.sqrt(abar), np.sqrt(1.0 - abar), _lambdas(abar)
    trajectory = {int(ts[0]) + 1: x.copy()} if int(ts[0]) + 1 in keep else {}
    xp = backend.xp_of(x)
    m_prev = h_prev = None
    with no_grad(), eval_mode(ddpm.model):
        for i in tqdm(range(len(ts)), desc="DPM-Solver++ sampling", disable=not progress,
                      leave=False):
            t = np.full(len(x), ts[i], dtype=np.int64)
            m = ddpm.predict_x0(x, t, ddpm.model_output(x, t, y, guidance))
            if ddpm.clip_x0 is not None:
                m = xp.clip(m, -ddpm.clip_x0, ddpm.clip_x0)
            if i == len(ts) - 1:
                x = m  # the last step, to sigma = 0: h = inf, so x = x_theta (first order).
            else:
                h = lam[i + 1] - lam[i]
                dt = x.dtype.type
                if m_prev is None:
                    d = m
                else:
                    r = h_prev / h
                    d = dt(1.0 + 0.5 / r) * m - dt(0.5 / r) * m_prev
                if sde:
                    z = rng.standard_normal(x.shape, dtype=x.dtype)
                    x = (dt(sigma[i + 1] / sigma[i] * np.exp(-h)) * x
                         - dt(alpha[i + 1] * np.expm1(-2 * h)) * d
                         + dt(sigma[i + 1] * np.sqrt(-np.expm1(-2 * h))) * z)
                else:
                    x = dt(sigma[i + 1] / sigma[i]) * x - dt(alpha[i + 1] * np.expm1(-h)) * d
                m_prev, h_prev = m, h
            previous = int(ts[i + 1]) + 1 if i + 1 < len(ts) else 0
            if previous in keep:
                trajectory[previous] = x.copy()
    return (x, trajectory) if return_trajectory is not False else x


def _lambdas(alphas_cumprod):
    """lambda_t = log(alpha_t / sigma_t) = log(abar_t / (1 - abar_t)) / 2 (half the log-SNR)."""
    return 0.5 * (np.log(alphas_cumprod) - np.log1p(-alphas_cumprod))
