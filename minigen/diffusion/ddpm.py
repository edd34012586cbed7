"""Denoising diffusion probabilistic models (Ho et al. 2020) with DDIM sampling (Song et al.
2021), written in the paper's order: forward process, posterior, reverse step, Algorithms 1-2.

**Timesteps.** The schedule's tables and every ``t`` argument are 0-based: ``t`` = 0..T-1
stands for the paper's step t+1, so a function given ``t`` acts on the paper's x_{t+1}
(``q_sample(x0, t)`` draws it, ``p_sample(x, t)`` maps it to the paper's x_t). States
themselves, as in the keys of a sampling trajectory, carry the paper's index 0..T. Per-sample
timesteps are integer arrays of shape (batch,); a scalar is broadcast.

==========================================  ======================================
Ho et al. 2020 / Song et al. 2021           here
==========================================  ======================================
eq. 4   q(x_t | x_0)                        :meth:`DDPM.q_sample`
eqs. 6-7  q(x_{t-1} | x_t, x_0)             :meth:`DDPM.q_posterior`
eq. 15  x_0 from the predicted noise        :meth:`DDPM.predict_x0`
eqs. 1, 11  p_theta(x_{t-1} | x_t)          :meth:`DDPM.p_mean_variance`
Algorithm 2, lines 3-4                      :meth:`DDPM.p_sample`
Algorithm 2                                 :meth:`DDPM.sample`
Algorithm 1 (eq. 14, L_simple)              :meth:`DDPM.loss`
DDIM eq. 12 (sigma of eq. 16)               :meth:`DDPM.ddim_step`, :meth:`DDPM.ddim_sample`
eq. 2   q(x_t | x_{t-1})                    :meth:`DDPM.q_step`
==========================================  ======================================

=============================================  ===================================
Built on a trained DDPM                        here
=============================================  ===================================
classifier-free guidance (Ho & Salimans 2022)  :meth:`DDPM.model_output` (``guidance``)
SDEdit (Meng et al. 2022)                      :meth:`DDPM.edit`
RePaint (Lugmayr et al. 2022), Algorithm 1     :meth:`DDPM.inpaint`
=============================================  ===================================

Training builds a graph through the model only: x_t is computed on raw arrays (no gradient
flows into the data). Sampling runs under ``mg.no_grad()`` on raw arrays. ``q_sample`` and
``p_sample`` run their arithmetic in one fused kernel of :mod:`kernels` (``fused=True``,
the default); ``fused=False`` runs the readable formulas of this module instead, and the tests
check that both give the same numbers for every prediction type, variance and clipping.

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
from minigen.diffusion.schedule import NoiseSchedule
from minigen.errors import InvalidInput
from minigen.nn.module import eval_mode
from minigen.tensor import Tensor, no_grad

VARIANCES = ("fixed_small", "fixed_large")
PREDICTIONS = ("eps", "x0", "v")
SPACINGS = ("linspace", "leading", "trailing")


class DDPM:
    """A diffusion model: a network ``model(x_t, t)`` plus a :class:`NoiseSchedule`.

    - ``prediction``: what the network predicts: the noise ``"eps"`` (the paper), the data
      ``"x0"``, or the velocity ``"v"`` = sqrt(abar_t) eps - sqrt(1 - abar_t) x0
      (Salimans & Ho 2022). The loss regresses that target.
    - ``variance``: the reverse-process variance sigma_t^2 (Ho et al. 2020, Sec. 3.2):
      ``"fixed_small"`` = beta_tilde_t (eq. 7, the posterior variance), ``"fixed_large"`` =
      beta_t (their CIFAR-10 setting).
    - ``clip_x0``: None, or c > 0 to clip the predicted x0 to [-c, c] at every sampling step
      (1.0 for images in [-1, 1]).

    **Posterior-mean path versus Algorithm 2, line 4.** The reverse step forms x0_hat
    (eq. 15), optionally clips it, and takes the posterior mean mu_tilde(x_t, x0_hat) of
    eq. 7. Without clipping this is algebraically the paper's line 4 (eq. 11),
    x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sigma_t z (a test
    checks it to float round-off). With clipping the two differ: line 4 never forms x0_hat,
    so it cannot clip; the official implementation samples through the clipped x0_hat, which
    keeps image samples in range. That is the path used here.
    """

    def __init__(self, model, schedule, variance="fixed_small", clip_x0=None, prediction="eps"):
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(
                "DDPM: schedule must be a NoiseSchedule, got "
                f"{type(schedule).__name__}"
            )
        if variance not in VARIANCES:
            raise InvalidInput(f"DDPM: variance must be one of {VARIANCES}, got {variance!r}")
        if prediction not in PREDICTIONS:
            raise InvalidInput(f"DDPM: prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if clip_x0 is not None and not (np.isfinite(clip_x0) and clip_x0 > 0):
            raise InvalidInput(f"DDPM: clip_x0 must be None or a positive number, got {clip_x0!r}")
        self.model, self.schedule = model, schedule
        self.variance, self.prediction = variance, prediction
        self.clip_x0 = None if clip_x0 is None else float(clip_x0)
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
                "clip_x0": self.clip_x0, "prediction": self.prediction}

    # --- the forward process (eq. 4) and its posterior (eqs. 6-7) --------------------------
    def q_sample(self, x0, t, noise=None, seed=None, fused=True):
        """Draw x_t ~ q(x_t | x_0) = N(sqrt(abar_t) x0, (1 - abar_t) I) (eq. 4) as
        sqrt(abar_t) x0 + sqrt(1 - abar_t) noise. ``noise`` defaults to N(0, I) from ``seed``
        (minigen's generator when None).

        Arrays in, array out (one fused kernel unless ``fused=False``). A Tensor x0 gives a
        Tensor, differentiable with respect to x0 when x0 requires grad.
        """
        raw = _raw(x0)
        t = self._timesteps(t, raw, "q_sample")
        noise = self._noise(raw, seed) if noise is None else _raw(noise)
        if noise.shape != raw.shape:
            raise InvalidInput(f"DDPM.q_sample: noise shape {noise.shape} != x0 shape {raw.shape}")
        noise = noise.astype(raw.dtype, copy=False)
        s = self.schedule
        if fused and not (isinstance(x0, Tensor) and x0.requires_grad):
            x_t = kernels.q_sample(raw, noise, t, s.sqrt_alphas_cumprod,
                                   s.sqrt_one_minus_alphas_cumprod)
            return Tensor(x_t) if isinstance(x0, Tensor) else x_t
        x0 = x0 if isinstance(x0, Tensor) else raw
        x_t = (_gather(s.sqrt_alphas_cumprod, t, raw) * x0
               + _gather(s.sqrt_one_minus_alphas_cumprod, t, raw) * noise)
        return x_t

    def q_posterior(self, x0, xt, t):
        """Mean and variance of q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde I) (eqs. 6-7):
        mu_tilde = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0
        + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t, beta_tilde = beta_t (1 -
        abar_{t-1}) / (1 - abar_t). The variance has shape (batch, 1, ..., 1)."""
        raw = _raw(xt)
        t = self._timesteps(t, raw, "q_posterior")
        s = self.schedule
        mean = (_gather(s.posterior_mean_coef1, t, raw) * x0
                + _gather(s.posterior_mean_coef2, t, raw) * xt)
        return mean, _gather(s.posterior_variance, t, raw)

    def q_step(self, x_prev, t, noise=None, seed=None):
        """Draw the paper's x_{t+1} ~ q(x_{t+1} | x_t) = N(sqrt(1 - beta_{t+1}) x_t,
        beta_{t+1} I) (eq. 2, one forward step; ``t`` 0-based as everywhere, so the step uses
        ``betas[t]``): RePaint's way back up the chain. Arrays in, array out."""
        raw = _raw(x_prev)
        t = self._timesteps(t, raw, "q_step")
        noise = self._noise(raw, seed) if noise is None else _raw(noise)
        betas = self.schedule.betas
        return _gather(np.sqrt(1.0 - betas), t, raw) * raw + _gather(np.sqrt(betas), t, raw) * noise

    # --- the reverse process ---------------------------------------------------------------
    def model_output(self, xt, t, y=None, guidance=0.0):
        """The network's output at (x_t, t) for labels ``y``, as a raw array, with
        classifier-free guidance (Ho & Salimans 2022, eq. 6) when ``guidance`` = w > 0:
        eps_tilde = (1 + w) eps(x_t, y) - w eps(x_t, null), both terms from one batched call
        (x_t twice, labels y then the null class).

        ``y``: None (the null class: unconditional sampling), an int, or (batch,) integer
        labels in 0..K-1 of a class-conditional model (``model.num_classes`` = K; K itself
        is the null class). For x0- and v-prediction the same combination of the outputs is
        the guided eps exactly: eps is an affine function of the output at fixed (x_t, t)
        (eqs. 4 and 15) and the weights 1 + w and -w sum to 1."""
        raw = _raw(xt)
        t = self._timesteps(t, raw, "model_output")
        y = self._labels(y, len(raw), guidance)
        if not guidance or y is None:
            return self._call_model(raw, t, y).data
        both = self._call_model(backend.xp_of(raw).concatenate([raw, raw]), np.concatenate([t, t]),
                                np.concatenate([y, np.full_like(y, self.model.num_classes)])).data
        conditional, unconditional = both[:len(raw)], both[len(raw):]
        w = raw.dtype.type(guidance)
        return (1 + w) * conditional - w * unconditional

    def predict_x0(self, xt, t, model_output):
        """x0_hat, the data the network output implies at (x_t, t). For eps-prediction eq. 15:
        x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), computed as
        sqrt(1/abar_t) x_t - sqrt(1/abar_t - 1) eps; the output itself for x0-prediction;
        sqrt(abar_t) x_t - sqrt(1 - abar_t) v for v-prediction."""
        raw = _raw(xt)
        t = self._timesteps(t, raw, "predict_x0")
        return (_gather(self.coef_x0_xt, t, raw) * xt
                + _gather(self.coef_x0_out, t, raw) * model_output)

    def predict_eps(self, xt, t, x0):
        """The noise that takes x0 to x_t: (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t) (eq. 4
        solved for the noise)."""
        raw = _raw(xt)
        t = self._timesteps(t, raw, "predict_eps")
        s = self.schedule
        return (xt - _gather(s.sqrt_alphas_cumprod, t, raw) * x0) / _gather(
            s.sqrt_one_minus_alphas_cumprod, t, raw)

    def p_mean_variance(self, xt, t, model_output=None, y=None):
        """p_theta(x_{t-1} | x_t) = N(mean, variance) (eq. 1) from the network's output at
        (x_t, t) (computed here, without gradient, when ``model_output`` is None). Returns
        ``(mean, variance, x0_hat)``; the variance has shape (batch, 1, ..., 1)."""
        raw = _raw(xt)
        t = self._timesteps(t, raw, "p_mean_variance")
        if model_output is None:
            with no_grad(), eval_mode(self.model):
                model_output = self._call_model(raw, t, y).data
        # 1. x0_hat from the network output (eq. 15 for eps-prediction).
        x0_hat = self.predict_x0(raw, t, model_output)
        # 2. Optionally clip x0_hat to the data range (the official implementation's
        #    clip_denoised; see the class docstring).
        if self.clip_x0 is not None:
            x0_hat = backend.xp_of(raw).clip(x0_hat, -self.clip_x0, self.clip_x0)
        # 3. The mean: the posterior mean mu_tilde(x_t, x0_hat) of eq. 7, which is eq. 11's
        #    mu_theta(x_t, t) when x0_hat is not clipped.
        mean, _ = self.q_posterior(x0_hat, raw, t)
        # 4. The variance sigma_t^2: beta_tilde_t ("fixed_small") or beta_t (Sec. 3.2).
        variance = _gather(self.sigmas, t, raw) ** 2
        return mean, variance, x0_hat

    def p_sample(self, xt, t, noise=None, y=None, seed=None, fused=True, guidance=0.0):
        """One ancestral step x_t -> x_{t-1} (Algorithm 2, lines 3-4): z ~ N(0, I) (``noise``,
        drawn from ``seed`` when None), x_{t-1} = mean + sigma_t z with z = 0 at the last
        step (code t == 0). ``y`` (labels) and ``guidance`` as in :meth:`model_output`. With
        ``fused`` one kernel computes :meth:`p_mean_variance` and the update in a single
        pass."""
        with no_grad(), eval_mode(self.model):
            raw = _raw(xt)
            t = self._timesteps(t, raw, "p_sample")
            noise = self._noise(raw, seed) if noise is None else _raw(noise)
            noise = noise.astype(raw.dtype, copy=False)
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

        ``shape`` is (batch, ...) of one sample set; ``dtype`` defaults to the model's. With
        ``return_trajectory`` True (every step) or a collection of paper timesteps (T ... 0),
        returns ``(x_0, {t: x_t})`` where x_T is the starting noise and x_0 the samples.
        ``seed``: an int or Generator (minigen's generator when None); ``x_T``: the starting
        noise (default: drawn from ``seed``). ``y`` (labels) and ``guidance`` as in
        :meth:`model_output`. Returns a raw array.
        """
        x, rng, keep = self._start(shape, seed, dtype, return_trajectory, x_T, "sample")
        self._labels(y, len(x), guidance)  # before the loop: a bad label fails at once
        out = self._ancestral(x, self.schedule.T, rng, keep, y, guidance, progress)
        return out if return_trajectory is not False else out[0]

    def _ancestral(self, x, start, rng, keep, y, guidance, progress):
        """:meth:`p_sample` from the paper's x_start down to x_0: ``(x_0, {t: x_t in keep})``."""
        trajectory = {start: x.copy()} if start in keep else {}
        with eval_mode(self.model):  # once, not per step
            for i in tqdm(range(start - 1, -1, -1), desc="DDPM sampling", disable=not progress,
                          leave=False):
                z = rng.standard_normal(x.shape, dtype=x.dtype) if i > 0 else _zeros_like(x)
                x = self.p_sample(x, np.full(len(x), i, dtype=np.int64), z, y=y,
                                  guidance=guidance)
                if i in keep:
                    trajectory[i] = x.copy()
        return x, trajectory

    # --- training: Algorithm 1 -------------------------------------------------------------
    def loss(self, x0, t=None, noise=None, y=None, seed=None):
        """Algorithm 1: t ~ Uniform, eps ~ N(0, I) per sample (drawn from ``seed``, an int or
        a Generator, in that order), and L_simple (eq. 14): the mean squared error between the
        network output at x_t = q_sample(x0, t, eps) and its target (eps, x0 or v). Returns a
        scalar Tensor whose graph runs through the model's parameters. ``t`` and ``noise``
        may be given (tests, fixed-t diagnostics); ``y`` is passed to class-conditional
        models."""
        x0 = _raw(x0)
        device = backend.device_of(x0)
        rng = _generator(seed, device)
        if t is None:  # line 3
            t = rng.integers(0, self.schedule.T, size=len(x0))
        if noise is None:  # line 4
            noise = rng.standard_normal(x0.shape, dtype=x0.dtype)
        noise = backend.to_device(_raw(noise), device).astype(x0.dtype, copy=False)
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
        return F.mse_loss(self._call_model(x_t, t, y), Tensor(target))

    # --- DDIM (Song et al. 2021) -----------------------------------------------------------
    def ddim_timesteps(self, steps, spacing="linspace"):
        """The increasing code timesteps that DDIM visits (a subsequence of 0..T-1, always
        ending at T-1 for "linspace" and "trailing"). Spacings as named in Lin et al. 2024
        ("Common diffusion noise schedules and sample steps are flawed"), Table 2."""
        T = self.schedule.T
        integer = isinstance(steps, (int, np.integer)) and not isinstance(steps, bool)
        if not integer or not 1 <= steps <= T:
            raise InvalidInput(
                f"DDPM.ddim_timesteps: steps must be an integer in [1, {T}], got "
                f"{steps!r}"
            )
        if spacing == "linspace":
            ts = np.round(np.linspace(0, T - 1, steps)).astype(np.int64)
        elif spacing == "leading":
            ts = np.arange(steps, dtype=np.int64) * (T // steps)
        elif spacing == "trailing":
            ts = np.round(np.arange(T, 0, -T / steps)).astype(np.int64)[::-1] - 1
        else:
            raise InvalidInput(
                f"DDPM.ddim_timesteps: spacing must be one of {SPACINGS}, got "
                f"{spacing!r}"
            )
        return np.unique(ts)

    def ddim_step(self, xt, t, t_prev, eta=0.0, noise=None, y=None, guidance=0.0):
        """One DDIM step from code timestep ``t`` to ``t_prev`` < t (an int; -1 means x_0)
        (Song et al. 2021, eq. 12). ``noise`` is z ~ N(0, I), needed only when sigma > 0;
        ``y`` and ``guidance`` as in :meth:`model_output`."""
        with no_grad(), eval_mode(self.model):
            acp = self.schedule.alphas_cumprod
            abar, abar_prev = acp[t], (acp[t_prev] if t_prev >= 0 else 1.0)
            ts = np.full(len(xt), t, dtype=np.int64)
            # 1. x0_hat from the network output ("predicted x0" of eq. 12), clipped if asked.
            x0_hat = self.predict_x0(xt, ts, self.model_output(xt, ts, y, guidance))
            if self.clip_x0 is not None:
                x0_hat = backend.xp_of(xt).clip(x0_hat, -self.clip_x0, self.clip_x0)
            # 2. eps_hat consistent with x0_hat (eq. 4 solved for the noise).
            eps_hat = self.predict_eps(xt, ts, x0_hat)
            # 3. sigma_t(eta) of eq. 16: eta = 1 is the DDPM posterior's, eta = 0 deterministic.
            sigma = eta * np.sqrt((1 - abar_prev) / (1 - abar)) * np.sqrt(1 - abar / abar_prev)
            # 4. eq. 12: predicted x0, direction pointing to x_t, and random noise.
            direction = np.sqrt(max(1.0 - abar_prev - sigma**2, 0.0))
            dt = xt.dtype.type
            x_prev = dt(np.sqrt(abar_prev)) * x0_hat + dt(direction) * eps_hat
            if sigma > 0:
                x_prev = x_prev + dt(sigma) * noise
        return x_prev

    def ddim_sample(self, shape, steps, eta=0.0, progress=True, return_trajectory=False, seed=None,
                    y=None, dtype=None, spacing="linspace", x_T=None, guidance=0.0):
        """DDIM sampling over ``steps`` timesteps tau_1 < ... < tau_S (:meth:`ddim_timesteps`),
        a loop over :meth:`ddim_step`. eta = 0 is deterministic given x_T; eta = 1 with all T
        steps is the ancestral sampler with "fixed_small" variance. Other arguments and the
        return value as in :meth:`sample` (trajectory keys are paper timesteps tau + 1).
        """
        _check_eta(eta, "ddim_sample")
        ts = self.ddim_timesteps(steps, spacing)
        x, rng, keep = self._start(shape, seed, dtype, return_trajectory, x_T, "ddim_sample")
        self._labels(y, len(x), guidance)
        out = self._ddim(x, ts, eta, rng, keep, y, guidance, progress)
        return out if return_trajectory is not False else out[0]

    def _ddim(self, x, ts, eta, rng, keep, y, guidance, progress):
        """:meth:`ddim_step` over the code timesteps ``ts`` (increasing) from the paper's
        x_{ts[-1] + 1} down to x_0: ``(x_0, {t: x_t in keep})``."""
        first = int(ts[-1]) + 1
        trajectory = {first: x.copy()} if first in keep else {}
        with eval_mode(self.model):
            for k in tqdm(range(len(ts) - 1, -1, -1), desc="DDIM sampling", disable=not progress,
                          leave=False):
                t_prev = int(ts[k - 1]) if k > 0 else -1
                z = rng.standard_normal(x.shape, dtype=x.dtype) if eta > 0 and k > 0 else None
                x = self.ddim_step(x, int(ts[k]), t_prev, eta, z, y, guidance)
                if t_prev + 1 in keep:
                    trajectory[t_prev + 1] = x.copy()
        return x, trajectory

    # --- image-to-image (SDEdit) and inpainting (RePaint) ----------------------------------
    def edit(self, x, strength, sampler="ddpm", steps=50, eta=0.0, y=None, guidance=0.0,
             seed=None, progress=False):
        """SDEdit (Meng et al. 2022, Algorithm 1): noise the inputs ``x`` (model units,
        (batch, ...)) to the paper's t0 = round(strength * T) with q(x_t0 | x_0) (eq. 4,
        :meth:`q_sample`), then run the reverse chain from there: ancestral
        (``sampler="ddpm"``, all t0 steps) or DDIM (``"ddim"``, ``steps`` steps spread over
        0..t0, with ``eta``). ``strength`` in (0, 1]: small keeps the input's content, 1
        forgets it (up to sqrt(abar_T) x). ``y`` and ``guidance`` as in :meth:`model_output`.
        Returns a raw array of x's shape."""
        if not (np.isfinite(strength) and 0 < strength <= 1):
            raise InvalidInput(f"DDPM.edit: strength must lie in (0, 1], got {strength!r}")
        if sampler not in ("ddpm", "ddim"):
            raise InvalidInput(f"DDPM.edit: sampler must be 'ddpm' or 'ddim', got {sampler!r}")
        x0, rng, keep = self._start(_raw(x).shape, seed, None, False, x, "edit")
        self._labels(y, len(x0), guidance)
        start = max(1, int(round(strength * self.schedule.T)))
        x = self.q_sample(x0, start - 1, rng.standard_normal(x0.shape, dtype=x0.dtype))
        if sampler == "ddpm":
            return self._ancestral(x, start, rng, keep, y, guidance, progress)[0]
        _check_eta(eta, "edit")
        if not (isinstance(steps, (int, np.integer)) and steps >= 1):
            raise InvalidInput(f"DDPM.edit: steps must be a positive integer, got {steps!r}")
        ts = np.unique(np.round(np.linspace(0, start - 1, min(steps, start))).astype(np.int64))
        return self._ddim(x, ts, eta, rng, keep, y, guidance, progress)[0]

    def inpaint(self, x_known, mask, resample=1, jump=1, y=None, guidance=0.0, seed=None,
                progress=False):
        """RePaint (Lugmayr et al. 2022, Algorithm 1): complete the entries of ``x_known``
        (model units, (batch, ...)) where ``mask`` (same shape, 1 = known, 0 = unknown) is 0.

        Each reverse step x_t -> x_{t-1} takes the unknown entries from :meth:`p_sample` and
        the known ones from q(x_{t-1} | x_0) of the known values (eq. 4, eq. 8 of RePaint).
        With ``resample`` = R > 1, after every ``jump`` = j reverse steps the chain goes j
        steps back up with q(x_t | x_{t-1}) (eq. 2, :meth:`q_step`) and down again, R - 1
        times (their resampling, Sec. 4.2; j = 1 is Algorithm 1's inner loop), so that the
        generated part has time to agree with the known part; about R T network calls. The
        known entries of the result are ``x_known``'s exactly. ``y`` and ``guidance`` as in
        :meth:`model_output`."""
        x0, rng, _ = self._start(_raw(x_known).shape, seed, None, False, x_known, "inpaint")
        self._labels(y, len(x0), guidance)
        mask = backend.to_numpy(_raw(mask))
        if mask.shape != x0.shape:
            raise InvalidInput(f"DDPM.inpaint: mask has shape {mask.shape}, x_known has "
                             f"{x0.shape}; they must be equal")
        if not np.isin(mask, (0, 1)).all():
            raise InvalidInput("DDPM.inpaint: mask must hold only 0 (unknown) and 1 (known), got "
                             f"values {np.unique(mask)[:5].tolist()}")
        known = backend.to_device(mask.astype(bool), backend.device_of(x0))
        xp = backend.xp_of(x0)
        x = rng.standard_normal(x0.shape, dtype=x0.dtype)  # x_T
        states = repaint_schedule(self.schedule.T, resample, jump)
        with eval_mode(self.model):
            for s, s_next in tqdm(list(zip(states[:-1], states[1:])), desc="RePaint",
                                  disable=not progress, leave=False):
                z = rng.standard_normal(x.shape, dtype=x.dtype)
                ts = np.full(len(x), s - 1, dtype=np.int64)
                if s_next > s:  # back up: x_{s+1} ~ q(x_{s+1} | x_s)
                    x = self.q_step(x, ts + 1, z)
                    continue
                unknown = self.p_sample(x, ts, z if s > 1 else _zeros_like(x), y=y,
                                        guidance=guidance)
                known_part = x0 if s == 1 else self.q_sample(
                    x0, ts - 1, rng.standard_normal(x.shape, dtype=x.dtype))
                x = xp.where(known, known_part, unknown)
        return x

    def dpm_solver_sample(self, shape, steps=20, spacing="logsnr", **kwargs):
        """DPM-Solver++(2M) (Lu et al. 2022) in ``steps`` network evaluations: see
        :func:`minigen.diffusion.dpm_solver.dpm_solver_sample` (same keyword arguments as
        :meth:`sample`)."""
        from minigen.diffusion.dpm_solver import dpm_solver_sample

        return dpm_solver_sample(self, shape, steps, spacing, **kwargs)

    # --- helpers -------------------------------------------------------------------------
    def _labels(self, y, batch, guidance):
        """``y`` as (batch,) int64 host labels (an int is broadcast), checked against the
        model's classes; None stays None (the null class)."""
        if not (np.isfinite(guidance) and guidance >= 0):
            raise InvalidInput(f"DDPM: guidance must be a number >= 0, got {guidance!r}")
        classes = getattr(self.model, "num_classes", None)
        if classes is None and (y is not None or guidance):
            raise InvalidInput("DDPM: labels y and guidance need a class-conditional model "
                             "(trained with labels); this model is unconditional")
        if y is None:
            return None
        y = np.asarray(backend.to_numpy(_raw(y)))
        if y.ndim == 0:
            y = np.full(batch, y)
        if y.dtype.kind not in "iu":
            raise TypeError(f"DDPM: labels y must be integers, got dtype {y.dtype}")
        if y.shape != (batch,):
            raise InvalidInput(f"DDPM: labels y must have shape ({batch},), got {y.shape}")
        if y.size and (y.min() < 0 or y.max() > classes):
            raise InvalidInput(f"DDPM: labels y must lie in [0, {classes - 1}] (or {classes}, the "
                             f"null class), got values in [{y.min()}, {y.max()}]")
        return y.astype(np.int64, copy=False)

    def _start(self, shape, seed, dtype, return_trajectory, x_T, fn):
        shape = tuple(int(n) for n in shape)
        if not shape or min(shape) < 1:
            raise InvalidInput(
                f"DDPM.{fn}: shape must be (batch, ...) with positive sizes, got "
                f"{shape}"
            )
        model_dtype, device = _model_dtype_device(self.model)
        dtype = np.dtype(model_dtype if dtype is None else dtype)
        rng = _generator(seed, device)
        if x_T is None:
            x = rng.standard_normal(shape, dtype=dtype)
        else:
            x = backend.to_device(backend.xp_of(_raw(x_T)).asarray(_raw(x_T), dtype=dtype), device)
            if x.shape != shape:
                raise InvalidInput(f"DDPM.{fn}: x_T has shape {x.shape}, expected {shape}")
        if return_trajectory is True:
            keep = set(range(self.schedule.T + 1))
        elif return_trajectory is False:
            keep = set()
        else:
            keep = {int(t) for t in return_trajectory}
        return x, rng, keep

    def _timesteps(self, t, x, fn):
        """``t`` as an int64 host array of shape (batch,) (a scalar is broadcast), checked."""
        t = np.asarray(backend.to_numpy(t))
        if t.ndim == 0:
            t = np.full(x.shape[0], t)
        if t.dtype.kind not in "iu":
            raise TypeError(f"DDPM.{fn}: t must be integers, got dtype {t.dtype}")
        if t.shape != (x.shape[0],):
            raise InvalidInput(
                f"DDPM.{fn}: t must have shape (batch,) = ({x.shape[0]},), got "
                f"{t.shape}"
            )
        if t.size and (t.min() < 0 or t.max() >= self.schedule.T):
            raise InvalidInput(f"DDPM.{fn}: t must lie in [0, {self.schedule.T}), got values in "
                             f"[{t.min()}, {t.max()}]")
        return t.astype(np.int64, copy=False)

    def _noise(self, x, seed):
        return _generator(seed, backend.device_of(x)).standard_normal(x.shape, dtype=x.dtype)

    def _call_model(self, x, t, y):
        """The network's output at (x_t, t[, y]) as a Tensor; x_t a raw array."""
        args = (Tensor(x), t) if y is None else (Tensor(x), t, y)
        out = self.model(*args)
        out = out if isinstance(out, Tensor) else Tensor(out)
        if out.shape != x.shape:
            raise InvalidInput(
                f"DDPM: the model returned shape {out.shape} for x_t of shape {x.shape}; "
                "it must predict an array of the input's shape"
            )
        return out


def repaint_schedule(T, resample=1, jump=1):
    """The paper states (T ... 0) that :meth:`DDPM.inpaint` visits: down from T one step at a
    time; after every ``jump`` steps down (at states s > 0), ``resample`` - 1 times up
    ``jump`` steps and down again (RePaint, Sec. 4.2 and their ``get_schedule_jump``).

        >>> repaint_schedule(4, resample=2, jump=2)
        [4, 3, 2, 3, 4, 3, 2, 1, 0]
    """
    for name, value in (("resample", resample), ("jump", jump)):
        if not (isinstance(value, (int, np.integer)) and value >= 1):
            raise InvalidInput(f"repaint_schedule: {name} must be a positive integer, got "
                             f"{value!r}")
    states = [T]
    for s in range(T - 1, -1, -1):
        states.append(s)
        if s > 0 and (T - s) % jump == 0:
            for _ in range(resample - 1):
                states += list(range(s + 1, s + jump + 1)) + list(range(s + jump - 1, s - 1, -1))
    return states


def _check_eta(eta, fn):
    if not (np.isfinite(eta) and eta >= 0):
        raise InvalidInput(f"DDPM.{fn}: eta must be a number >= 0, got {eta!r}")


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _gather(table, t, like):
    """table[t] as an array of like's dtype and device, shaped (batch, 1, ..., 1)."""
    return _per_sample(np.asarray(table)[backend.to_numpy(t)], like)


def _per_sample(values, like):
    """A (batch,) host array as like's dtype and device, shaped (batch, 1, ..., 1)."""
    values = backend.to_device(np.asarray(values).astype(like.dtype), backend.device_of(like))
    return values.reshape((-1,) + (1,) * (like.ndim - 1))


def _zeros_like(x):
    return backend.xp_of(x).zeros_like(x)


def _generator(seed, device):
    """A random Generator: minigen's own for ``device`` when seed is None, ``seed`` itself
    when it is a Generator, else a fresh one seeded with it."""
    if seed is None:
        return backend.rng(device)
    if hasattr(seed, "standard_normal"):
        return seed
    return backend.xp_for(device).random.default_rng(seed)


def _model_dtype_device(model):
    params = model.parameters() if hasattr(model, "parameters") else []
    for p in params:
        return p.dtype, p.device
    return np.float32, "cpu"

