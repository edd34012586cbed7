"""The EDM formulation of diffusion (Karras, Aittala, Aila & Laine 2022, "Elucidating the
Design Space of Diffusion-Based Generative Models"), beside the DDPM of Ho et al.
(:mod:`~minigen.diffusion.ddpm`), on the same networks and trainer.

The data x ~ p_data (std ``sigma_data``) are noised as x + sigma n, n ~ N(0, I), for sigma
from 0 to sigma_max; a denoiser D(x; sigma) estimates the clean x, and samples come from
solving the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma (eqs. 1 and 3 with
sigma(t) = t, s(t) = 1) from sigma_max down to 0. The paper's Table 1 ("Ours" column):

==========================================================  =================================
paper                                                       here
==========================================================  =================================
eq. 7, D(x; sigma) = c_skip x + c_out F(c_in x; c_noise)    :meth:`EDM.denoise`
Table 1, skip scaling c_skip (eq. 8 / App. B.6)             :func:`c_skip`
Table 1, output scaling c_out                               :func:`c_out`
Table 1, input scaling c_in                                 :func:`c_in`
Table 1, noise conditioning c_noise = ln(sigma) / 4         :func:`c_noise`
eq. 8, the effective training target of F                   :func:`training_target`
Table 1, ln(sigma) ~ N(P_mean, P_std^2)                     :func:`training_sigmas`
Table 1, loss weighting lambda(sigma) = 1 / c_out^2         :func:`loss_weight`
eq. 2 with lambda(sigma): the training loss                 :meth:`EDM.loss`
eq. 5, the time steps t_i (rho = 7), t_N = 0                :func:`sigma_steps`
Algorithm 1, lines 4-8: one Heun step (Euler at t = 0)      :func:`heun_step`
Algorithm 1, the deterministic sampler                      :func:`heun_sampler`
Algorithm 2, the stochastic sampler (S_churn, ...)          :func:`stochastic_sampler`
Sec. 3 / App. C.1: a VP DDPM as an EDM denoiser             :func:`ddpm_denoiser`
==========================================================  =================================

The samplers take any ``denoise(x, sigma)`` (sigma a float): an :class:`EDM`'s
:meth:`~EDM.denoise`, the exact denoiser of known data in the tests, or a trained DDPM seen
through :func:`ddpm_denoiser`, whose x is the DDPM's x_t / sqrt(abar_t) at
sigma = sqrt(1 - abar_t) / sqrt(abar_t).

The network gets c_noise(sigma) as its time input (minigen's sinusoidal embedding, whose
frequencies run from 1 down to 1e-4, as the paper's own networks embed it).
"""
import numpy as np
from tqdm.auto import tqdm

from minigen import backend
from minigen import functional as F
from minigen.diffusion import editing, inputs
from minigen.errors import InvalidInput
from minigen.nn.module import eval_mode
from minigen.tensor import Tensor, no_grad

__all__ = ["EDM", "c_skip", "c_out", "c_in", "c_noise", "loss_weight", "training_target",
           "training_sigmas", "sigma_steps", "heun_step", "heun_sampler", "stochastic_sampler",
           "ddpm_denoiser"]

SIGMA_DATA = 0.5
"""The data's std that the paper assumes (images in [-1, 1])."""
P_MEAN, P_STD = -1.2, 1.2
"""The log-normal training distribution of sigma (Table 1)."""
SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0
"""The sampler's noise range and the schedule's exponent (eq. 5)."""
STOCHASTIC = dict(S_churn=30.0, S_tmin=0.01, S_tmax=1.0, S_noise=1.007)
"""Algorithm 2's parameters: the paper's for its VP CIFAR-10 model (Table 5)."""
SAMPLERS = ("heun", "stochastic")


# --- Table 1: the preconditioning ---------------------------------------------------------
def c_skip(sigma, sigma_data=SIGMA_DATA):
    """sigma_data^2 / (sigma^2 + sigma_data^2): how much of the noisy input D passes through,
    the choice that minimises the variance of F's target (App. B.6, eq. 131)."""
    return sigma_data**2 / (sigma**2 + sigma_data**2)


def c_out(sigma, sigma_data=SIGMA_DATA):
    """sigma sigma_data / sqrt(sigma^2 + sigma_data^2): the scale of F's output in D, which
    makes the target of F unit-variance (App. B.6, eq. 138)."""
    return sigma * sigma_data / np.sqrt(sigma**2 + sigma_data**2)


def c_in(sigma, sigma_data=SIGMA_DATA):
    """1 / sqrt(sigma^2 + sigma_data^2): makes F's input unit-variance (App. B.6, eq. 119)."""
    return 1.0 / np.sqrt(sigma**2 + sigma_data**2)


def c_noise(sigma):
    """ln(sigma) / 4: the noise level as the network sees it (Table 1)."""
    return np.log(sigma) / 4.0


def loss_weight(sigma, sigma_data=SIGMA_DATA):
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 = 1 / c_out^2: the
    weight of eq. 2 that makes the effective weight of F's loss, lambda c_out^2, one at every
    sigma (App. B.6, eq. 144)."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def training_target(x0, noise, sigma, sigma_data=SIGMA_DATA):
    """F's effective target (eq. 8): (x0 - c_skip (x0 + sigma n)) / c_out. It has unit
    variance at every sigma when x0 has std sigma_data and mean 0 (App. B.6)."""
    return (x0 - c_skip(sigma, sigma_data) * (x0 + sigma * noise)) / c_out(sigma, sigma_data)


def training_sigmas(n, rng, P_mean=P_MEAN, P_std=P_STD):
    """``n`` noise levels with ln(sigma) ~ N(P_mean, P_std^2) (Table 1), drawn from ``rng``
    as float64 on the host."""
    return np.exp(P_mean + P_std * np.asarray(backend.to_numpy(rng.standard_normal(n)),
                                              dtype=np.float64))


# --- eq. 5 and the samplers (Algorithms 1 and 2) ------------------------------------------
def sigma_steps(N, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, rho=RHO):
    """The N + 1 time steps of eq. 5: t_i = (sigma_max^(1/rho) + i / (N - 1)
    (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho for i < N, from sigma_max to sigma_min, and
    t_N = 0 (float64). rho = 7 shortens the steps near sigma_min, where the ODE's curvature
    is (Sec. 3)."""
    inputs.positive_int(N, "N", "sigma_steps")
    if not 0 < sigma_min < sigma_max or not rho > 0:
        raise InvalidInput(f"sigma_steps: need 0 < sigma_min < sigma_max and rho > 0, got "
                           f"sigma_min {sigma_min}, sigma_max {sigma_max}, rho {rho}")
    i = np.arange(N, dtype=np.float64)
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    t = (a + i / max(N - 1, 1) * (b - a)) ** rho
    return np.append(t, 0.0)


def heun_step(denoise, x, t_cur, t_next, second_order=True):
    """One step of the ODE dx/dt = (x - D(x; t)) / t from t_cur to t_next (Algorithm 1,
    lines 4-8): an Euler step, corrected by the slope at its end (Heun's second order
    method) unless t_next = 0 (where the slope is undefined) or ``second_order`` is False
    (the Euler sampler, which on a DDPM's grid is DDIM with eta = 0)."""
    dt = x.dtype.type
    d = (x - denoise(x, t_cur)) / dt(t_cur)  # line 4
    x_next = x + dt(t_next - t_cur) * d  # line 5
    if t_next != 0 and second_order:  # lines 6-8
        d_next = (x_next - denoise(x_next, t_next)) / dt(t_next)
        x_next = x + dt(t_next - t_cur) * (dt(0.5) * d + dt(0.5) * d_next)
    return x_next


def heun_sampler(denoise, x, sigmas, second_order=True, progress=False):
    """Algorithm 1: ``x`` (the state at sigmas[0], x_0 ~ N(0, t_0^2 I) in the paper) taken
    through :func:`heun_step` over the decreasing ``sigmas`` (:func:`sigma_steps`). 2N - 1
    evaluations of ``denoise`` for N steps ending at 0. Returns the last state."""
    for t_cur, t_next in tqdm(list(zip(sigmas[:-1], sigmas[1:])), desc="EDM Heun sampling",
                              disable=not progress, leave=False):
        x = heun_step(denoise, x, float(t_cur), float(t_next), second_order)
    return x


def stochastic_sampler(denoise, x, sigmas, rng, S_churn=STOCHASTIC["S_churn"],
                       S_tmin=STOCHASTIC["S_tmin"], S_tmax=STOCHASTIC["S_tmax"],
                       S_noise=STOCHASTIC["S_noise"], progress=False):
    """Algorithm 2: before each :func:`heun_step`, raise the noise level from t_i to
    t_hat = (1 + gamma_i) t_i by adding fresh noise of std sqrt(t_hat^2 - t_i^2) S_noise
    (lines 4-6), with gamma_i = min(S_churn / N, sqrt(2) - 1) for t_i in [S_tmin, S_tmax],
    else 0. The churn corrects the errors of earlier steps as the reverse SDE would
    (Sec. 4); S_churn = 0 is Algorithm 1. Noise drawn from the Generator ``rng``."""
    N = len(sigmas) - 1
    gamma = min(S_churn / N, np.sqrt(2.0) - 1.0)
    dt = x.dtype.type
    for t_cur, t_next in tqdm(list(zip(sigmas[:-1], sigmas[1:])), desc="EDM stochastic sampling",
                              disable=not progress, leave=False):
        t_cur, t_next = float(t_cur), float(t_next)
        g = gamma if S_tmin <= t_cur <= S_tmax else 0.0  # line 4
        t_hat = t_cur + g * t_cur  # line 5
        if g > 0:  # line 6
            eps = rng.standard_normal(x.shape, dtype=x.dtype) * dt(S_noise)
            x = x + dt(np.sqrt(t_hat**2 - t_cur**2)) * eps
        x = heun_step(denoise, x, t_hat, t_next)  # lines 7-10
    return x


def ddpm_denoiser(ddpm, y=None, guidance=0.0):
    """D(x; sigma) of a trained :class:`~minigen.diffusion.ddpm.DDPM` (any prediction) in
    the EDM's variables (Sec. 3, the VP case): at the DDPM's timestep t with
    sigma = sqrt(1 - abar_t) / sqrt(abar_t), the EDM state x is x_t / sqrt(abar_t), and
    D(x; sigma) is the DDPM's x0_hat at x_t = sqrt(abar_t) x. ``sigma`` must be one of
    :func:`ddpm_sigmas` (to 1e-6 relative)."""
    sigmas = ddpm_sigmas(ddpm)
    sqrt_abar = ddpm.schedule.sqrt_alphas_cumprod

    def denoise(x, sigma):
        t = int(np.argmin(np.abs(np.log(sigmas) - np.log(sigma))))
        if abs(sigmas[t] / sigma - 1) > 1e-6:
            raise InvalidInput(f"ddpm_denoiser: sigma {sigma} is none of the DDPM's noise "
                               "levels (ddpm_sigmas)")
        ts = np.full(len(x), t, dtype=np.int64)
        x_t = x * x.dtype.type(sqrt_abar[t])
        with no_grad(), eval_mode(ddpm.model):
            return ddpm.predict_x0(x_t, ts, ddpm.model_output(x_t, ts, y, guidance))

    return denoise


def ddpm_sigmas(ddpm):
    """sigma_t = sqrt(1 - abar_t) / sqrt(abar_t) of each of the DDPM's timesteps (increasing)."""
    abar = ddpm.schedule.alphas_cumprod
    return np.sqrt((1.0 - abar) / abar)


class EDM:
    """A diffusion model in the EDM formulation: a network ``model(x, t[, y])`` (the MLP or
    UNet that a DDPM uses) preconditioned as D(x; sigma) = c_skip x + c_out F(c_in x;
    c_noise) (eq. 7, Table 1).

    - ``sigma_data``: the data's std (0.5 in the paper, for images in [-1, 1]; 1 for
      vectors normalised to unit std, as minigen's trainer does);
    - ``P_mean``, ``P_std``: the log-normal distribution of training noise levels.
    """

    def __init__(self, model, sigma_data=SIGMA_DATA, P_mean=P_MEAN, P_std=P_STD):
        for name, value in (("sigma_data", sigma_data), ("P_std", P_std)):
            if not (np.isfinite(value) and value > 0):
                raise InvalidInput(f"EDM: {name} must be a positive number, got {value!r}")
        if not np.isfinite(P_mean):
            raise InvalidInput(f"EDM: P_mean must be a finite number, got {P_mean!r}")
        self.model, self.sigma_data = model, float(sigma_data)
        self.P_mean, self.P_std = float(P_mean), float(P_std)

    @property
    def config(self):
        """Everything but the network needed to rebuild this EDM."""
        return {"sigma_data": self.sigma_data, "P_mean": self.P_mean, "P_std": self.P_std}

    # --- eq. 7: the preconditioned denoiser ------------------------------------------------
    def _precondition(self, x, sigma, y):
        """(c_skip x, c_out, F(c_in x; c_noise)) for a raw x and per-sample sigma (batch,):
        F a Tensor whose graph runs through the network."""
        shape = (-1,) + (1,) * (x.ndim - 1)
        sd = self.sigma_data
        per = [_per_sample(c(sigma, sd), x, shape) for c in (c_skip, c_out, c_in)]
        out = self._call_model(x * per[2], c_noise(sigma), y)
        return per[0] * x, per[1], out

    def denoise(self, x, sigma, y=None, guidance=0.0):
        """D(x; sigma) = c_skip x + c_out F(c_in x; c_noise(sigma)) (eq. 7) as a raw array,
        without gradient; ``sigma`` a float or (batch,) floats > 0. ``y`` and ``guidance``:
        labels of a class-conditional network and classifier-free guidance
        (:func:`~minigen.diffusion.editing.classifier_free_guidance`, applied to F: D is
        affine in F at fixed (x, sigma), so the guided F gives the guided D)."""
        x = inputs.raw(x)
        sigma = _sigmas(sigma, len(x), "EDM.denoise")
        y = inputs.labels(self.model, y, len(x), guidance)
        with no_grad(), eval_mode(self.model):
            if guidance and y is not None:
                def network(x2, s2, y2):
                    skip, scale, out = self._precondition(x2, s2, y2)
                    return skip + scale * out.data
                return editing.classifier_free_guidance(network, x, sigma, y,
                                                        self.model.num_classes, guidance)
            skip, scale, out = self._precondition(x, sigma, y)
            return skip + scale * out.data

    # --- eq. 2 with Table 1's noise distribution and weighting: training ---------------------
    def loss(self, x0, sigma=None, noise=None, y=None, seed=None):
        """The training loss (eq. 2): ln(sigma) ~ N(P_mean, P_std^2) and n ~ N(0, I) per
        sample (drawn from ``seed`` in that order, unless given), and the mean over the batch
        and the entries of lambda(sigma) (D(x0 + sigma n; sigma) - x0)^2, a scalar Tensor
        whose graph runs through the model. ``y``: labels of a conditional model."""
        x0 = inputs.raw(x0)
        device = backend.device_of(x0)
        rng = inputs.generator(seed, device)
        if sigma is None:
            sigma = training_sigmas(len(x0), rng, self.P_mean, self.P_std)
        sigma = _sigmas(sigma, len(x0), "EDM.loss")
        noise = inputs.noise(noise, x0, rng, "EDM.loss")
        shape = (-1,) + (1,) * (x0.ndim - 1)
        x = x0 + _per_sample(sigma, x0, shape) * noise
        skip, scale, out = self._precondition(x, sigma, y)
        weight = _per_sample(loss_weight(sigma, self.sigma_data), x0, shape)
        denoised = out * Tensor(scale) + Tensor(skip)
        return F.mean((denoised - Tensor(x0)) ** 2 * Tensor(weight))

    # --- sampling --------------------------------------------------------------------------
    def sample(self, shape, steps=18, sampler="heun", seed=None, y=None, guidance=0.0,
               dtype=None, x_T=None, progress=True, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX,
               rho=RHO, **churn):
        """Samples in ``steps`` steps of the time steps of eq. 5 (2 ``steps`` - 1 network
        evaluations): ``sampler`` "heun" (Algorithm 1) or "stochastic" (Algorithm 2, with
        ``churn``: S_churn, S_tmin, S_tmax, S_noise, default :data:`STOCHASTIC`). ``x_T``:
        the start at sigma_max (sigma_max N(0, I) from ``seed`` when None); the other
        arguments as in :meth:`DDPM.sample`. Returns a raw array."""
        inputs.choice(sampler, SAMPLERS, "sampler", "EDM.sample")
        inputs.positive_int(steps, "steps", "EDM.sample")
        unknown = set(churn) - set(STOCHASTIC)
        if unknown or (churn and sampler != "stochastic"):
            raise InvalidInput(f"EDM.sample: {sorted(churn)} apply to the stochastic sampler "
                               f"(its options: {sorted(STOCHASTIC)})")
        sigmas = sigma_steps(steps, sigma_min, sigma_max, rho)
        x, rng, _ = inputs.start(self, shape, seed, dtype, False, x_T, y, guidance,
                                 "EDM.sample")
        if x_T is None:
            x = x * x.dtype.type(sigmas[0])  # x_0 ~ N(0, t_0^2 I)

        def denoise(x, sigma):
            return self.denoise(x, sigma, y, guidance)

        with eval_mode(self.model):
            if sampler == "heun":
                return heun_sampler(denoise, x, sigmas, progress=progress)
            return stochastic_sampler(denoise, x, sigmas, rng, **{**STOCHASTIC, **churn},
                                      progress=progress)

    def _call_model(self, x, t, y):
        """The network's output at (x, t[, y]) as a Tensor; x a raw array, t (batch,) floats."""
        out = self.model(Tensor(x), t) if y is None else self.model(Tensor(x), t, y)
        return inputs.model_output(out, x)


def _sigmas(sigma, batch, fn):
    """``sigma`` as (batch,) float64 host values > 0 (a scalar is broadcast)."""
    sigma = np.asarray(backend.to_numpy(inputs.raw(sigma)), dtype=np.float64)
    if sigma.ndim == 0:
        sigma = np.full(batch, float(sigma))
    if sigma.shape != (batch,) or not np.all(np.isfinite(sigma)) or not np.all(sigma > 0):
        raise InvalidInput(f"{fn}: sigma must be finite numbers > 0 of shape ({batch},), got "
                           f"shape {sigma.shape}")
    return sigma


def _per_sample(values, like, shape):
    """A (batch,) host array as like's dtype and device, shaped (batch, 1, ..., 1)."""
    return backend.to_device(values.astype(like.dtype), backend.device_of(like)).reshape(shape)
