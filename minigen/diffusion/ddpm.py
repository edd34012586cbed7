"""Denoising diffusion probabilistic models (Ho, Jain & Abbeel 2020).

**Timesteps.** The schedule's tables and every ``t`` argument are 0-based: ``t`` = 0..T-1
stands for the paper's step t+1, so a function given ``t`` acts on the paper's x_{t+1}
(``q_sample(x0, t)`` draws it, ``p_sample(x, t)`` maps it to the paper's x_t). States
themselves, as in the keys of a sampling trajectory, carry the paper's index 0..T. Per-sample
timesteps are integer arrays of shape (batch,); a scalar is broadcast.

The paper in the class :class:`DDPM`, in its order:

- eq. 2, q(x_t | x_{t-1}): ``q_step``; eq. 4, q(x_t | x_0): ``q_sample``;
- eqs. 6-7, the posterior q(x_{t-1} | x_t, x_0): ``q_posterior``;
- eq. 15, x_0 from the predicted noise: ``predict_x0``;
- eqs. 1, 11, the reverse step p_theta(x_{t-1} | x_t): ``p_mean_variance``;
- Algorithm 2: ``p_sample`` (lines 3-4), ``p_sample_loop`` and ``sample``;
- Algorithm 1 (eq. 14, L_simple): ``loss`` (optionally min-SNR-gamma weighted, Hang et al.
  2023: ``loss_weights``).

The other samplers and the methods built on a trained DDPM have their own modules (DDIM
:mod:`~minigen.diffusion.ddim`, :mod:`~minigen.diffusion.dpm_solver`, guidance, SDEdit and
RePaint :mod:`~minigen.diffusion.editing`); arguments are checked at each public entry
(:mod:`~minigen.diffusion.inputs`). ``q_sample`` and ``p_sample`` run one fused kernel of
:mod:`kernels` (``fused=True``, the default); ``fused=False`` runs the readable formulas
here, and tests check that both give the same numbers.

    >>> import numpy as np
    >>> ddpm = DDPM(lambda x, t: x * 0.0, NoiseSchedule.linear(100, 1e-3, 0.2))
    >>> x0, eps = np.ones((2, 3)), np.zeros((2, 3))
    >>> ddpm.q_sample(x0, np.array([0, 99]), eps)[:, 0].round(4)   # sqrt(abar_t) x0
    array([0.9995, 0.0045])
"""
import numpy as np
from tqdm.auto import tqdm

import kernels
from minigen import backend
from minigen import functional as F
from minigen.diffusion import ddim, dpm_solver, editing, inputs
from minigen.diffusion.editing import repaint_schedule
from minigen.diffusion.schedule import NoiseSchedule
from minigen.nn.module import eval_mode
from minigen.tensor import Tensor, no_grad

__all__ = ["DDPM", "NoiseSchedule", "repaint_schedule"]


class DDPM:
    """A diffusion model: a network ``model(x_t, t)`` plus a :class:`NoiseSchedule`.

    - ``prediction``: what the network predicts: the noise ``"eps"`` (the paper), the data
      ``"x0"``, or the velocity ``"v"`` = sqrt(abar_t) eps - sqrt(1 - abar_t) x0
      (Salimans & Ho 2022). The loss regresses that target.
    - ``variance``: the reverse-process variance sigma_t^2 (Ho et al. 2020, Sec. 3.2):
      ``"fixed_small"`` = beta_tilde_t (eq. 7, the posterior variance), ``"fixed_large"`` =
      beta_t (their CIFAR-10 setting).
    - ``clip_x0``: None, or c > 0 to clip the predicted x0 to [-c, c] at every sampling step
      (1.0 for images in [-1, 1]; see :meth:`p_mean_variance`).
    - ``min_snr_gamma``: None (the paper's unweighted L_simple), or gamma > 0 to weight each
      sample's loss by min-SNR-gamma (Hang et al. 2023; see :meth:`loss_weights`).
    """

    def __init__(self, model, schedule, variance="fixed_small", clip_x0=None, prediction="eps",
                 min_snr_gamma=None):
        inputs.check_config(schedule, variance, clip_x0, prediction)
        inputs.positive_or_none(min_snr_gamma, "min_snr_gamma", "DDPM")
        self.model, self.schedule = model, schedule
        self.variance, self.prediction = variance, prediction
        self.clip_x0 = None if clip_x0 is None else float(clip_x0)
        self.min_snr_gamma = None if min_snr_gamma is None else float(min_snr_gamma)
        s = schedule
        # x0_hat = coef_x0_xt[t] x_t + coef_x0_out[t] model_output (see predict_x0).
        self.coef_x0_xt, self.coef_x0_out = {
            "eps": (s.sqrt_recip_alphas_cumprod, -s.sqrt_recipm1_alphas_cumprod),
            "x0": (np.zeros(s.T), np.ones(s.T)),
            "v": (s.sqrt_alphas_cumprod, -s.sqrt_one_minus_alphas_cumprod),
        }[prediction]
        if variance == "fixed_small":
            log_variance = s.posterior_log_variance_clipped
        else:  # beta_t; the t = 0 entry is never used (no noise at the last step).
            log_variance = np.log(np.append(s.posterior_variance[1] if s.T > 1 else s.betas[0],
                                            s.betas[1:]))
        self.sigmas = np.exp(0.5 * log_variance)
        # Read-only like the schedule's tables, so the fused CUDA kernels can keep one device
        # copy of each (kernels.table_cache).
        for table in (self.coef_x0_xt, self.coef_x0_out, self.sigmas):
            table.setflags(write=False)

    @property
    def config(self):
        """Everything but the network needed to rebuild this DDPM (stored in checkpoints)."""
        return {"schedule": dict(self.schedule.config), "variance": self.variance,
                "clip_x0": self.clip_x0, "prediction": self.prediction,
                "min_snr_gamma": self.min_snr_gamma}

    # --- the forward process (eqs. 2, 4) and its posterior (eqs. 6-7) ----------------------
    def q_sample(self, x0, t, noise=None, seed=None, fused=True):
        """Draw x_t ~ q(x_t | x_0) = N(sqrt(abar_t) x0, (1 - abar_t) I) (eq. 4) as
        sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, ``noise`` N(0, I) from ``seed`` when None.
        Arrays in, array out; a Tensor x0 gives a Tensor, differentiable when x0 requires
        grad."""
        raw, t = self._checked(x0, t, "q_sample")
        noise = inputs.noise(noise, raw, seed, "q_sample")
        s = self.schedule
        if fused and not (isinstance(x0, Tensor) and x0.requires_grad):
            x_t = kernels.q_sample(raw, noise, t, s.sqrt_alphas_cumprod,
                                   s.sqrt_one_minus_alphas_cumprod)
            return Tensor(x_t) if isinstance(x0, Tensor) else x_t
        x0 = x0 if isinstance(x0, Tensor) else raw
        return (_gather(s.sqrt_alphas_cumprod, t, raw) * x0
                + _gather(s.sqrt_one_minus_alphas_cumprod, t, raw) * noise)

    def q_step(self, x_prev, t, noise=None, seed=None):
        """Draw the paper's x_{t+1} ~ q(x_{t+1} | x_t) = N(sqrt(1 - beta_{t+1}) x_t,
        beta_{t+1} I) (eq. 2, one forward step; ``t`` 0-based as everywhere, so the step uses
        ``betas[t]``): RePaint's way back up the chain. Arrays in, array out."""
        raw, t = self._checked(x_prev, t, "q_step")
        noise = inputs.noise(noise, raw, seed, "q_step")
        betas = self.schedule.betas
        return _gather(np.sqrt(1.0 - betas), t, raw) * raw + _gather(np.sqrt(betas), t, raw) * noise

    def q_posterior(self, x0, xt, t):
        """Mean and variance (shape (batch, 1, ..., 1)) of q(x_{t-1} | x_t, x_0) (eqs. 6-7):
        mu_tilde = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0 + sqrt(alpha_t) (1 - abar_{t-1})
        / (1 - abar_t) x_t, beta_tilde = beta_t (1 - abar_{t-1}) / (1 - abar_t)."""
        raw, t = self._checked(xt, t, "q_posterior")
        s = self.schedule
        mean = (_gather(s.posterior_mean_coef1, t, raw) * x0
                + _gather(s.posterior_mean_coef2, t, raw) * xt)
        return mean, _gather(s.posterior_variance, t, raw)

    # --- the reverse process (eqs. 1, 11, 15) ---------------------------------------------
    def model_output(self, xt, t, y=None, guidance=0.0):
        """The network's output at (x_t, t) as a raw array. ``y``: None (the null class), an
        int, or (batch,) labels in 0..K-1 of a class-conditional model (``model.num_classes``
        = K), or the (batch, ...) integer conditions of a model with a ``null_condition``
        (e.g. token ids of captions); ``guidance`` = w > 0:
        :func:`~minigen.diffusion.editing.classifier_free_guidance`."""
        raw, t = self._checked(xt, t, "model_output")
        y = inputs.labels(self.model, y, len(raw), guidance)
        if guidance and y is not None:
            return editing.classifier_free_guidance(
                lambda x, t, y: self._call_model(x, t, y).data, raw, t, y,
                inputs.null_condition(self.model), guidance)
        return self._call_model(raw, t, y).data

    def predict_x0(self, xt, t, model_output):
        """x0_hat, the data the network output implies at (x_t, t). For eps-prediction eq. 15:
        x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), computed as
        sqrt(1/abar_t) x_t - sqrt(1/abar_t - 1) eps; the output itself for x0-prediction;
        sqrt(abar_t) x_t - sqrt(1 - abar_t) v for v-prediction."""
        raw, t = self._checked(xt, t, "predict_x0")
        return (_gather(self.coef_x0_xt, t, raw) * xt
                + _gather(self.coef_x0_out, t, raw) * model_output)

    def predict_eps(self, xt, t, x0):
        """The noise that takes x0 to x_t: (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t) (eq. 4
        solved for the noise)."""
        raw, t = self._checked(xt, t, "predict_eps")
        s = self.schedule
        return (xt - _gather(s.sqrt_alphas_cumprod, t, raw) * x0) / _gather(
            s.sqrt_one_minus_alphas_cumprod, t, raw)

    def p_mean_variance(self, xt, t, model_output=None, y=None):
        """p_theta(x_{t-1} | x_t) = N(mean, variance) (eq. 1) from the network's output at
        (x_t, t) (computed here, without gradient, when ``model_output`` is None). Returns
        ``(mean, variance, x0_hat)``; the variance has shape (batch, 1, ..., 1).

        The mean is eq. 7's at x0_hat: eq. 11, (x_t - beta_t / sqrt(1 - abar_t) eps) /
        sqrt(alpha_t), unless x0_hat is clipped, as the official code does for images."""
        raw, t = self._checked(xt, t, "p_mean_variance")
        if model_output is None:
            with no_grad(), eval_mode(self.model):
                model_output = self.model_output(raw, t, y)
        # 1. x0_hat from the network output (eq. 15 for eps-prediction).
        x0_hat = self.predict_x0(raw, t, model_output)
        # 2. Optionally clip x0_hat to the data range (the official clip_denoised).
        if self.clip_x0 is not None:
            x0_hat = backend.xp_of(raw).clip(x0_hat, -self.clip_x0, self.clip_x0)
        # 3. The mean: the posterior mean mu_tilde(x_t, x0_hat) of eq. 7, which is eq. 11's
        #    mu_theta(x_t, t) when x0_hat is not clipped.
        mean, _ = self.q_posterior(x0_hat, raw, t)
        # 4. The variance sigma_t^2: beta_tilde_t ("fixed_small") or beta_t (Sec. 3.2).
        variance = _gather(self.sigmas, t, raw) ** 2
        return mean, variance, x0_hat

    # --- Algorithm 2: sampling ---------------------------------------------------------------
    def p_sample(self, xt, t, noise=None, y=None, seed=None, fused=True, guidance=0.0):
        """One ancestral step x_t -> x_{t-1} (Algorithm 2, lines 3-4): x_{t-1} = mean + sigma_t z,
        z = ``noise`` (N(0, I) from ``seed`` when None), 0 at the last step (code t == 0). With
        ``fused``, one kernel computes :meth:`p_mean_variance` and the update."""
        raw, t = self._checked(xt, t, "p_sample")
        noise = inputs.noise(noise, raw, seed, "p_sample")
        with no_grad(), eval_mode(self.model):
            out = self.model_output(raw, t, y, guidance)
            if fused:
                s = self.schedule
                x_prev = kernels.p_sample_step(
                    raw, out, t, noise, self.coef_x0_xt, self.coef_x0_out,
                    s.posterior_mean_coef1, s.posterior_mean_coef2, self.sigmas,
                    clip=self.clip_x0)
            else:
                mean, variance, _ = self.p_mean_variance(raw, t, out)
                z = noise * _per_sample(t > 0, raw)  # line 3: z = 0 at the paper's t = 1
                x_prev = mean + variance ** 0.5 * z  # line 4
        return Tensor(x_prev) if isinstance(xt, Tensor) else x_prev

    def sample(self, shape, progress=True, return_trajectory=False, seed=None, y=None,
               dtype=None, x_T=None, guidance=0.0):
        """Algorithm 2: x_T ~ N(0, I), then :meth:`p_sample` for t = T, ..., 1 down to x_0.

        ``shape`` is (batch, ...); ``dtype`` defaults to the model's; ``seed`` an int or
        Generator (minigen's when None); ``x_T`` the starting noise (drawn from ``seed`` when
        None); ``y`` and ``guidance`` as in :meth:`model_output`. Returns a raw array, or with
        ``return_trajectory`` (True, or a collection of paper timesteps T ... 0)
        ``(x_0, {t: x_t})``."""
        x, rng, keep = inputs.start(self, shape, seed, dtype, return_trajectory, x_T, y,
                                    guidance, "sample")
        out = self.p_sample_loop(x, self.schedule.T, rng, keep, y, guidance, progress)
        return out if return_trajectory is not False else out[0]

    def p_sample_loop(self, x, start, rng, keep=(), y=None, guidance=0.0, progress=False):
        """Algorithm 2's loop: :meth:`p_sample` from the paper's x_start (``x``) down to x_0,
        drawing z from the Generator ``rng``. Returns ``(x_0, {t: x_t for t in keep})``.
        :meth:`sample` and SDEdit check the arguments and call it."""
        trajectory = {start: x.copy()} if start in keep else {}
        xp = backend.xp_of(x)
        with eval_mode(self.model):  # once, not per step
            for i in tqdm(range(start - 1, -1, -1), desc="DDPM sampling", disable=not progress,
                          leave=False):
                z = rng.standard_normal(x.shape, dtype=x.dtype) if i > 0 else xp.zeros_like(x)
                x = self.p_sample(x, np.full(len(x), i, dtype=np.int64), z, y=y,
                                  guidance=guidance)
                if i in keep:
                    trajectory[i] = x.copy()
        return x, trajectory

    # --- Algorithm 1: training ---------------------------------------------------------------
    def loss(self, x0, t=None, noise=None, y=None, seed=None):
        """Algorithm 1: t ~ Uniform and eps ~ N(0, I) per sample (drawn from ``seed`` in that
        order, unless given), and L_simple (eq. 14): the mean squared error between the
        network output at x_t = q_sample(x0, t, eps) and its target (eps, x0 or v), a scalar
        Tensor whose graph runs through the model. ``y``: labels of a conditional model."""
        x0 = inputs.raw(x0)
        device = backend.device_of(x0)
        rng = inputs.generator(seed, device)
        if t is None:  # line 3
            t = rng.integers(0, self.schedule.T, size=len(x0))
        if noise is None:  # line 4
            noise = rng.standard_normal(x0.shape, dtype=x0.dtype)
        noise = backend.to_device(inputs.raw(noise), device).astype(x0.dtype, copy=False)
        x_t = self.q_sample(x0, t, noise)
        if self.prediction == "eps":
            target = noise
        elif self.prediction == "x0":
            target = x0
        else:
            s = self.schedule
            target = (_gather(s.sqrt_alphas_cumprod, t, x0) * noise
                      - _gather(s.sqrt_one_minus_alphas_cumprod, t, x0) * x0)
        # line 5: a gradient step on || target - model(x_t, t) ||^2
        if self.min_snr_gamma is None:
            return F.mse_loss(self._call_model(x_t, t, y), Tensor(target))
        error = (self._call_model(x_t, t, y) - Tensor(target)) ** 2
        return F.mean(error * Tensor(_per_sample(self.loss_weights(t), x0)))

    def loss_weights(self, t):
        """Min-SNR-gamma weights (Hang et al. 2023, Sec. 3.4) of timesteps ``t``, (batch,):
        the loss of x0 weighted by min(SNR_t, gamma), SNR_t = abar_t / (1 - abar_t), so that
        the low-noise steps, whose x0 error is easy to lower, do not dominate the gradient.
        In the network's own target that is min(SNR_t, gamma) / SNR_t for eps (its squared
        error is SNR_t times that of x0), min(SNR_t, gamma) for x0 and
        min(SNR_t, gamma) / (SNR_t + 1) for v."""
        abar = self.schedule.alphas_cumprod[np.asarray(backend.to_numpy(t))]
        snr = abar / (1.0 - abar)
        clipped = np.minimum(snr, self.min_snr_gamma)
        return clipped / {"eps": snr, "x0": 1.0, "v": snr + 1.0}[self.prediction]

    # --- the other samplers and the editing methods (their own modules) -------------------
    def ddim_timesteps(self, steps, spacing="linspace"):
        """:func:`minigen.diffusion.ddim.ddim_timesteps` of this schedule."""
        return ddim.ddim_timesteps(self.schedule.T, steps, spacing)

    def ddim_step(self, xt, t, t_prev, eta=0.0, noise=None, y=None, guidance=0.0):
        """One DDIM step: :func:`minigen.diffusion.ddim.ddim_step`."""
        return ddim.ddim_step(self, xt, t, t_prev, eta, noise, y, guidance)

    def ddim_sample(self, shape, steps, eta=0.0, **options):
        """DDIM samples (Song et al. 2021): :func:`minigen.diffusion.ddim.ddim_sample`."""
        return ddim.ddim_sample(self, shape, steps, eta, **options)

    def dpm_solver_sample(self, shape, steps=20, spacing="logsnr", **options):
        """DPM-Solver++(2M) samples: :func:`minigen.diffusion.dpm_solver.dpm_solver_sample`."""
        return dpm_solver.dpm_solver_sample(self, shape, steps, spacing, **options)

    def edit(self, x, strength, **options):
        """Image-to-image, SDEdit: :func:`minigen.diffusion.editing.sdedit`."""
        return editing.sdedit(self, x, strength, **options)

    def inpaint(self, x_known, mask, **options):
        """Inpainting, RePaint: :func:`minigen.diffusion.editing.repaint`."""
        return editing.repaint(self, x_known, mask, **options)

    # --- helpers -------------------------------------------------------------------------
    def _checked(self, x, t, fn):
        """The raw array behind ``x`` and ``t`` checked against it (the entry ``fn``)."""
        raw = inputs.raw(x)
        return raw, inputs.timesteps(t, raw, self.schedule.T, fn)

    def _call_model(self, x, t, y):
        """The network's output at (x_t, t[, y]) as a Tensor; x_t a raw array."""
        out = self.model(Tensor(x), t) if y is None else self.model(Tensor(x), t, y)
        return inputs.model_output(out, x)


def _gather(table, t, like):
    """table[t] as an array of like's dtype and device, shaped (batch, 1, ..., 1)."""
    return _per_sample(np.asarray(table)[backend.to_numpy(t)], like)


def _per_sample(values, like):
    """A (batch,) host array as like's dtype and device, shaped (batch, 1, ..., 1)."""
    values = backend.to_device(np.asarray(values).astype(like.dtype), backend.device_of(like))
    return values.reshape((-1,) + (1,) * (like.ndim - 1))
