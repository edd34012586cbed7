"""DDIM sampling (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models") of a trained
:class:`~minigen.diffusion.ddpm.DDPM`: the same network, a non-Markovian reverse process
that jumps over timesteps.

With abar the DDPM's alphas_cumprod, one step from timestep t to an earlier t_prev is eq. 12,

    x_{t_prev} = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_hat + sigma z,

with x0_hat the predicted data, eps_hat the noise consistent with it, and sigma of eq. 16,
sigma = eta sqrt((1 - abar_prev) / (1 - abar)) sqrt(1 - abar / abar_prev): eta = 0 is
deterministic given x_T, eta = 1 is the DDPM posterior's spread. The sampler visits
``steps`` timesteps spaced by :func:`~minigen.diffusion.spacing.spaced_timesteps`.

The DDPM's methods ``ddim_timesteps``, ``ddim_step`` and ``ddim_sample`` call these
functions.
"""
import numpy as np
from tqdm.auto import tqdm

from minigen import backend
from minigen.diffusion import inputs
from minigen.diffusion.spacing import SPACINGS, spaced_timesteps
from minigen.nn.module import eval_mode
from minigen.tensor import no_grad


def ddim_timesteps(T, steps, spacing="linspace"):
    """The increasing code timesteps that DDIM visits: ``steps`` of 0..T-1 (always ending at
    T - 1 for "linspace" and "trailing")."""
    inputs.steps(steps, T, "DDPM.ddim_timesteps")
    inputs.choice(spacing, SPACINGS, "spacing", "DDPM.ddim_timesteps")
    return np.unique(spaced_timesteps(T, steps, spacing))


def ddim_step(ddpm, xt, t, t_prev, eta=0.0, noise=None, y=None, guidance=0.0):
    """One DDIM step of ``ddpm`` from code timestep ``t`` to ``t_prev`` < t (ints; -1 means
    x_0), eq. 12. ``noise`` is z ~ N(0, I), needed only when sigma > 0."""
    with no_grad(), eval_mode(ddpm.model):
        acp = ddpm.schedule.alphas_cumprod
        abar, abar_prev = acp[t], (acp[t_prev] if t_prev >= 0 else 1.0)
        ts = np.full(len(xt), t, dtype=np.int64)
        # 1. x0_hat from the network output ("predicted x0" of eq. 12), clipped if asked.
        x0_hat = ddpm.predict_x0(xt, ts, ddpm.model_output(xt, ts, y, guidance))
        if ddpm.clip_x0 is not None:
            x0_hat = backend.xp_of(xt).clip(x0_hat, -ddpm.clip_x0, ddpm.clip_x0)
        # 2. eps_hat consistent with x0_hat (eq. 4 solved for the noise).
        eps_hat = ddpm.predict_eps(xt, ts, x0_hat)
        # 3. sigma_t(eta) of eq. 16: eta = 1 is the DDPM posterior's, eta = 0 deterministic.
        sigma = eta * np.sqrt((1 - abar_prev) / (1 - abar)) * np.sqrt(1 - abar / abar_prev)
        # 4. eq. 12: predicted x0, direction pointing to x_t, and random noise.
        direction = np.sqrt(max(1.0 - abar_prev - sigma**2, 0.0))
        dt = xt.dtype.type
        x_prev = dt(np.sqrt(abar_prev)) * x0_hat + dt(direction) * eps_hat
        if sigma > 0:
            x_prev = x_prev + dt(sigma) * noise
    return x_prev


def ddim_sample(ddpm, shape, steps, eta=0.0, progress=True, return_trajectory=False, seed=None,
                y=None, dtype=None, spacing="linspace", x_T=None, guidance=0.0):
    """DDIM samples of ``ddpm`` over ``steps`` timesteps tau_1 < ... < tau_S
    (:func:`ddim_timesteps`), a loop over :func:`ddim_step`. Arguments and return value as
    in :meth:`DDPM.sample` (trajectory keys are paper timesteps tau + 1)."""
    inputs.eta(eta, "ddim_sample")
    ts = ddim_timesteps(ddpm.schedule.T, steps, spacing)
    x, rng, keep = inputs.start(ddpm, shape, seed, dtype, return_trajectory, x_T, y, guidance,
                                "ddim_sample")
    out = ddim_loop(ddpm, x, ts, eta, rng, keep, y, guidance, progress)
    return out if return_trajectory is not False else out[0]


def ddim_loop(ddpm, x, ts, eta, rng, keep, y=None, guidance=0.0, progress=False):
    """:func:`ddim_step` over the code timesteps ``ts`` (increasing) from the paper's
    x_{ts[-1] + 1} down to x_0: ``(x_0, {t: x_t for t in keep})``. Arguments as checked by
    the callers (:func:`ddim_sample`, SDEdit)."""
    first = int(ts[-1]) + 1
    trajectory = {first: x.copy()} if first in keep else {}
    with eval_mode(ddpm.model):
        for k in tqdm(range(len(ts) - 1, -1, -1), desc="DDIM sampling", disable=not progress,
                      leave=False):
            t_prev = int(ts[k - 1]) if k > 0 else -1
            z = rng.standard_normal(x.shape, dtype=x.dtype) if eta > 0 and k > 0 else None
            x = ddim_step(ddpm, x, int(ts[k]), t_prev, eta, z, y, guidance)
            if t_prev + 1 in keep:
                trajectory[t_prev + 1] = x.copy()
    return x, trajectory
