"""Denoising diffusion probabilistic models (Ho et al. 2020) and DDIM sampling (Song et al. 2021).

Notation follows the paper with code indices: the schedule's tables are indexed by
t = 0..T-1, and code step t is the paper's step t+1 (so ``q_sample(x0, t)`` draws the
paper's x_{t+1}, and ``p_sample(x, t)`` maps it to x_t). Per-sample timesteps are integer
arrays of shape (batch,).

Training (Algorithm 1) builds a graph through the model only: x_t is computed on raw arrays
(no gradient flows into the data). Sampling (Algorithm 2, DDIM) runs under ``mg.no_grad()``
on raw arrays; the model is called with a Tensor x_t and the raw integer array t (and the
labels ``y`` when given). The per-step arithmetic runs in the fused kernels of
:mod:`kernels` (``MINIGEN_KERNELS=reference`` selects their NumPy formulas).
"""
import contextlib

import numpy as np
from tqdm.auto import tqdm

import kernels
from minigen import backend
from minigen import functional as F
from minigen.diffusion.schedule import NoiseSchedule
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

    **Posterior-mean path versus Algorithm 2, line 4.** ``p_sample`` computes the predicted
    x0_hat (eq. 15 solved for x0), optionally clips it, and returns the posterior mean
    mu_tilde(x_t, x0_hat) of eq. 7 plus sigma_t z. Without clipping this is algebraically
    the paper's line 4, x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) +
    sigma_t z (the tests check it to float round-off). With clipping the two differ: line 4
    never forms x0_hat, so it cannot clip; the official implementation samples through the
    clipped x0_hat, which keeps image samples in range. That is the path used here.
    """

    def __init__(self, model, schedule, variance="fixed_small", clip_x0=None, prediction="eps"):
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(
                "DDPM: schedule must be a NoiseSchedule, got "
                f"{type(schedule).__name__}"
            )
        if variance not in VARIANCES:
            raise ValueError(f"DDPM: variance must be one of {VARIANCES}, got {variance!r}")
        if prediction not in PREDICTIONS:
            raise ValueError(f"DDPM: prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if clip_x0 is not None and not (np.isfinite(clip_x0) and clip_x0 > 0):
            raise ValueError(f"DDPM: clip_x0 must be None or a positive number, got {clip_x0!r}")
        self.model, self.schedule = model, schedule
        self.variance, self.prediction = variance, prediction
        self.clip_x0 = None if clip_x0 is None else float(clip_x0)
        s = schedule
        # x0_hat = coef_x0_xt[t] x_t + coef_x0_out[t] model_output, for each prediction type:
        # eps: eq. 4 solved for x0; x0: the output itself; v: x0 = sqrt(abar) x_t - sqrt(1-abar) v.
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

    @property
    def config(self):
        """Everything but the network needed to rebuild this DDPM (stored in checkpoints)."""
        return {"schedule": dict(self.schedule.config), "variance": self.variance,
                "clip_x0": self.clip_x0, "prediction": self.prediction}

    # --- the forward process and the posterior ---------------------------------------------
    def q_sample(self, x0, t, noise=None, seed=None):
        """Draw x_t ~ q(x_t | x_0): sqrt(abar_t) x0 + sqrt(1 - abar_t) noise (Ho et al. 2020,
        eq. 4). ``noise`` defaults to N(0, I) from ``seed`` (minigen's generator when None).

        Arrays in, array out (one fused kernel). A Tensor x0 gives a Tensor, differentiable
        with respect to x0 when x0 requires grad.
        """
        raw = _raw(x0)
        t = self._timesteps(t, raw, "q_sample")
        noise = self._noise(raw, seed) if noise is None else _raw(noise)
        if noise.shape != raw.shape:
            raise ValueError(f"DDPM.q_sample: noise shape {noise.shape} != x0 shape {raw.shape}")
        s = self.schedule
        if isinstance(x0, Tensor) and x0.requires_grad:
            return (x0 * _gather(s.sqrt_alphas_cumprod, t, raw)
                    + Tensor(_gather(s.sqrt_one_minus_alphas_cumprod, t, raw) * noise))
        x_t = kernels.q_sample(raw, noise.astype(raw.dtype, copy=False), t,
                               s.sqrt_alphas_cumprod, s.sqrt_one_minus_alphas_cumprod)
        return Tensor(x_t) if isinstance(x0, Tensor) else x_t

    def q_posterior(self, x0, xt, t):
        """Mean and variance of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eqs. 6-7):
        mean = coef1_t x0 + coef2_t x_t, variance = beta_tilde_t. The variance has shape
        (batch, 1, ..., 1), broadcastable against the mean."""
        raw = _raw(xt)
        t = self._timesteps(t, raw, "q_posterior")
        s = self.schedule
        mean = (_gather(s.posterior_mean_coef1, t, raw) * x0
                + _gather(s.posterior_mean_coef2, t, raw) * xt)
        return mean, _gather(s.posterior_variance, t, raw)

    def predict_x0(self, xt, t, model_output):
        """x0 implied by the network output at (x_t, t): for eps-prediction
        sqrt(1/abar_t) x_t - sqrt(1/abar_t - 1) eps (eq. 4 solved for x0); the output itself
        for x0-prediction; sqrt(abar_t) x_t - sqrt(1 - abar_t) v for v-prediction."""
        raw = _raw(xt)
        t = self._timesteps(t, raw, "predict_x0")
        return (_gather(self.coef_x0_xt, t, raw) * xt
                + _gather(self.coef_x0_out, t, raw) * model_output)

    def predict_eps(self, xt, t, x0):
        """The noise that takes x0 to x_t: (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t) (eq. 4)."""
        raw = _raw(xt)
        t = self._timesteps(t, raw, "predict_eps")
        s = self.schedule
        return (xt - _gather(s.sqrt_alphas_cumprod, t, raw) * x0) / _gather(
            s.sqrt_one_minus_alphas_cumprod, t, raw)

    # --- training ------------------------------------------------------------------------
    def loss(self, x0, t=None, noise=None, y=None, seed=None):
        """Algorithm 1: t ~ Uniform{0..T-1}, eps ~ N(0, I) per sample, and the mean squared
        error between the network output at x_t = q_sample(x0, t, eps) and its target (eps,
        x0 or v). Returns a scalar Tensor whose graph runs through the model's parameters.
        ``t`` and ``noise`` may be given (tests, fixed-t diagnostics); ``y`` is passed to
        class-conditional models."""
        x0 = _raw(x0)
        rng = _generator(seed, backend.device_of(x0))
        if t is None:
            t = rng.integers(0, self.schedule.T, size=len(x0))
        if noise is None:
            noise = rng.standard_normal(x0.shape, dtype=x0.dtype)
        noise = _raw(noise).astype(x0.dtype, copy=False)
        x_t = self.q_sample(x0, t, noise)
        if self.prediction == "eps":
            target = noise
        elif self.prediction == "x0":
            target = x0
        else:
            s = self.schedule
            target = (_gather(s.sqrt_alphas_cumprod, t, x0) * noise
                      - _gather(s.sqrt_one_minus_alphas_cumprod, t, x0) * x0)
        out = self._call_model(x_t, t, y)
        return F.mse_loss(out, Tensor(target))

    # --- sampling ------------------------------------------------------------------------
    def p_sample(self, xt, t, noise=None, y=None, seed=None):
        """One ancestral step x_t -> x_{t-1} (Algorithm 2, lines 3-4, through the posterior
        mean; see the class docstring): x0_hat from the network, clipped if ``clip_x0``, then
        mu_tilde(x_t, x0_hat) (eq. 7) + sigma_t z, with z = 0 where t == 0."""
        with no_grad(), _eval_mode(self.model):
            raw = _raw(xt)
            t = self._timesteps(t, raw, "p_sample")
            if noise is None:
                noise = self._noise(raw, seed)
            noise = _raw(noise).astype(raw.dtype, copy=False)
            out = self._call_model(raw, t, y).data
            x_prev = self._step(raw, out, t, noise)
        return Tensor(x_prev) if isinstance(xt, Tensor) else x_prev

    def _step(self, xt, out, t, noise):
        s = self.schedule
        return kernels.p_sample_step(xt, out, t, noise, self.coef_x0_xt, self.coef_x0_out,
                                     s.posterior_mean_coef1, s.posterior_mean_coef2, self.sigmas,
                                     clip=self.clip_x0)

    def sample(self, shape, progress=True, return_trajectory=False, seed=None, y=None,
               dtype=None, x_T=None):
        """Algorithm 2: x_T ~ N(0, I), then T ancestral steps down to x_0.

        ``shape`` is (batch, ...) of one sample set; ``dtype`` defaults to the model's. With
        ``return_trajectory`` True (every step) or a collection of paper timesteps (T ... 0),
        returns ``(x_0, {t: x_t})`` where x_T is the starting noise and x_0 the samples.
        ``seed``: an int or Generator (minigen's generator when None); ``x_T``: the starting
        noise (default: drawn from ``seed``). Returns a raw array.
        """
        x, rng, keep = self._start(shape, seed, dtype, return_trajectory, x_T, "sample")
        T = self.schedule.T
        trajectory = {T: x.copy()} if T in keep else {}
        with no_grad(), _eval_mode(self.model):
            for i in tqdm(range(T - 1, -1, -1), desc="DDPM sampling", disable=not progress,
                          leave=False):
                t = np.full(len(x), i, dtype=np.int64)
                noise = rng.standard_normal(x.shape, dtype=x.dtype) if i > 0 else _zeros_like(x)
                x = self._step(x, self._call_model(x, t, y).data, t, noise)
                if i in keep:
                    trajectory[i] = x.copy()
        return (x, trajectory) if return_trajectory is not False else x

    def ddim_timesteps(self, steps, spacing="linspace"):
        """The increasing code timesteps that DDIM visits (a subsequence of 0..T-1, always
        ending at T-1 for "linspace" and "trailing"). Spacings as named in Lin et al. 2024
        ("Common diffusion noise schedules and sample steps are flawed"), Table 2."""
        T = self.schedule.T
        integer = isinstance(steps, (int, np.integer)) and not isinstance(steps, bool)
        if not integer or not 1 <= steps <= T:
            raise ValueError(
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
            raise ValueError(
                f"DDPM.ddim_timesteps: spacing must be one of {SPACINGS}, got "
                f"{spacing!r}"
            )
        return np.unique(ts)

    def ddim_sample(self, shape, steps, eta=0.0, progress=True, return_trajectory=False, seed=None,
                    y=None, dtype=None, spacing="linspace", x_T=None):
        """DDIM (Song et al. 2021, eq. 12) over ``steps`` timesteps tau_1 < ... < tau_S:

        x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_hat + sigma z,
        sigma = eta sqrt((1 - abar_prev)/(1 - abar)) sqrt(1 - abar/abar_prev) (eq. 16),
        abar_prev = 1 after the last step. eta = 0 is deterministic given x_T; eta = 1 with
        all T steps is the ancestral sampler with "fixed_small" variance. x0_hat is clipped
        when ``clip_x0`` is set, and eps_hat recomputed from it (eq. 4). Other arguments and
        the return value as in :meth:`sample` (trajectory keys are paper timesteps tau + 1).
        """
        if not (np.isfinite(eta) and eta >= 0):
            raise ValueError(f"DDPM.ddim_sample: eta must be a number >= 0, got {eta!r}")
        ts = self.ddim_timesteps(steps, spacing)
        x, rng, keep = self._start(shape, seed, dtype, return_trajectory, x_T, "ddim_sample")
        acp = self.schedule.alphas_cumprod
        first = int(ts[-1]) + 1
        trajectory = {first: x.copy()} if first in keep else {}
        with no_grad(), _eval_mode(self.model):
            for k in tqdm(range(len(ts) - 1, -1, -1), desc="DDIM sampling", disable=not progress,
                          leave=False):
                i = int(ts[k])
                abar, abar_prev = acp[i], (acp[ts[k - 1]] if k > 0 else 1.0)
                t = np.full(len(x), i, dtype=np.int64)
                x0_hat = self.predict_x0(x, t, self._call_model(x, t, y).data)
                if self.clip_x0 is not None:
                    x0_hat = backend.xp_of(x).clip(x0_hat, -self.clip_x0, self.clip_x0)
                eps_hat = self.predict_eps(x, t, x0_hat)
                sigma = eta * np.sqrt((1 - abar_prev) / (1 - abar)) * np.sqrt(1 - abar / abar_prev)
                direction = np.sqrt(max(1.0 - abar_prev - sigma**2, 0.0))
                x = (x.dtype.type(np.sqrt(abar_prev)) * x0_hat + x.dtype.type(direction) * eps_hat)
                if sigma > 0:
                    x = x + x.dtype.type(sigma) * rng.standard_normal(x.shape, dtype=x.dtype)
                previous = int(ts[k - 1]) + 1 if k > 0 else 0
                if previous in keep:
                    trajectory[previous] = x.copy()
        return (x, trajectory) if return_trajectory is not False else x

    def dpm_solver_sample(self, shape, steps=20, spacing="logsnr", **kwargs):
        """DPM-Solver++(2M) (Lu et al. 2022) in ``steps`` network evaluations: see
        :func:`minigen.diffusion.dpm_solver.dpm_solver_sample` (same keyword arguments as
        :meth:`sample`)."""
        from minigen.diffusion.dpm_solver import dpm_solver_sample

        return dpm_solver_sample(self, shape, steps, spacing, **kwargs)

    # --- helpers -------------------------------------------------------------------------
    def _start(self, shape, seed, dtype, return_trajectory, x_T, fn):
        shape = tuple(int(n) for n in shape)
        if not shape or min(shape) < 1:
            raise ValueError(
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
                raise ValueError(f"DDPM.{fn}: x_T has shape {x.shape}, expected {shape}")
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
            raise ValueError(
                f"DDPM.{fn}: t must have shape (batch,) = ({x.shape[0]},), got "
                f"{t.shape}"
            )
        if t.size and (t.min() < 0 or t.max() >= self.schedule.T):
            raise ValueError(f"DDPM.{fn}: t must lie in [0, {self.schedule.T}), got values in "
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
            raise ValueError(
                f"DDPM: the model returned shape {out.shape} for x_t of shape {x.shape}; "
                "it must predict an array of the input's shape"
            )
        return out


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _gather(table, t, like):
    """table[t] as an array of like's dtype and device, shaped (batch, 1, ..., 1)."""
    coef = np.asarray(table)[backend.to_numpy(t)].astype(like.dtype)
    coef = backend.to_device(coef, backend.device_of(like))
    return coef.reshape((-1,) + (1,) * (like.ndim - 1))


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


@contextlib.contextmanager
def _eval_mode(model):
    """The model in eval mode (no dropout) for sampling, its previous mode restored after."""
    was_training = getattr(model, "training", None)
    if hasattr(model, "eval"):
        model.eval()
    try:
        yield
    finally:
        if was_training and hasattr(model, "train"):
            model.train(True)
