"""Noise schedules: the betas of the forward process and every table derived from them.

A schedule is fixed by its betas beta_t, t = 0..T-1 (code index t is the paper's step t+1).
All tables are computed once, in float64, so that products over 1000 steps lose nothing;
samplers cast the entries they gather to the data's dtype.
"""
import math
import warnings

import numpy as np

from minigen.errors import InvalidInput

MAX_FINAL_ALPHA_CUMPROD = 1e-2
"""A schedule whose alphas_cumprod[-1] exceeds this warns: x_T still carries
sqrt(alphas_cumprod[-1]) of the data, so sampling from x_T ~ N(0, I) starts off the
distribution the model was trained on (e.g. the linear schedule with T = 50 and the
T = 1000 betas keeps alphas_cumprod[-1] ~ 0.60)."""


class NoiseSchedule:
    """The variance schedule beta_1..beta_T of Ho et al. 2020 and its derived tables.

    Attributes (float64 NumPy arrays of length T, index t = 0..T-1):

    - ``betas``; ``alphas`` = 1 - betas; ``alphas_cumprod`` = prod_{s<=t} alphas_s (abar_t);
      ``alphas_cumprod_prev`` = abar_{t-1} with abar_{-1} = 1;
    - ``sqrt_alphas_cumprod``, ``sqrt_one_minus_alphas_cumprod`` (eq. 4);
      ``sqrt_recip_alphas_cumprod`` = sqrt(1/abar_t), ``sqrt_recipm1_alphas_cumprod`` =
      sqrt(1/abar_t - 1) (x0 from eps, eq. 15 solved for x0);
    - ``posterior_variance`` = beta_tilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t) (eq. 7),
      ``posterior_log_variance_clipped`` (log beta_tilde, with beta_tilde_1 in place of the
      zero at t = 0), ``posterior_mean_coef1`` = beta_t sqrt(abar_{t-1}) / (1 - abar_t) and
      ``posterior_mean_coef2`` = (1 - abar_{t-1}) sqrt(alpha_t) / (1 - abar_t) (eq. 7).

    ``T`` is the number of steps; ``config`` a dict that :meth:`from_config` turns back into
    the same schedule (stored in checkpoints).
    """

    def __init__(self, betas, config=None):
        betas = np.array(betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size == 0:
            raise InvalidInput(
                "NoiseSchedule: betas must be a non-empty 1-D array, got shape "
                f"{betas.shape}"
            )
        if not np.all(np.isfinite(betas)) or betas.min() <= 0.0 or betas.max() >= 1.0:
            raise InvalidInput(
                "NoiseSchedule: betas must lie in (0, 1), got values in "
                f"[{betas.min()}, {betas.max()}]"
            )
        if config is None:
            config = {"kind": "custom", "betas": betas.tolist()}
        self.config = dict(config)
        self.T = len(betas)
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(self.alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        # Ho et al. 2020, eq. 4: q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I).
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1.0)
        # Ho et al. 2020, eqs. 6-7: q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde I).
        one_minus = 1.0 - self.alphas_cumprod
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / one_minus
        floor = self.posterior_variance[1] if self.T > 1 else betas[0]
        self.posterior_log_variance_clipped = np.log(np.append(floor, self.posterior_variance[1:]))
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / one_minus
        self.posterior_mean_coef2 = ((1.0 - self.alphas_cumprod_prev) * np.sqrt(self.alphas)
                                     / one_minus)
        for table in self._tables():
            table.setflags(write=False)
        final = self.alphas_cumprod[-1]
        if final > MAX_FINAL_ALPHA_CUMPROD:
            warnings.warn(
                f"NoiseSchedule: alphas_cumprod[-1] = {final:.3g} (T = {self.T}) is far from 0, so "
                f"x_T keeps {math.sqrt(final):.0%} of the data and sampling from N(0, I) "
                "starts off "
                "the trained distribution. Use more steps, betas scaled to T (e.g. linear with "
                "beta_start=1e-4*1000/T, beta_end=0.02*1000/T) or NoiseSchedule.cosine(T).",
                stacklevel=3,
            )

    def _tables(self):
        return [v for v in vars(self).values() if isinstance(v, np.ndarray)]

    def __len__(self):
        return self.T

    def __repr__(self):
        params = ", ".join(f"{k}={v}" for k, v in self.config.items() if k not in ("kind", "betas"))
        return (f"NoiseSchedule.{self.config['kind']}({params}): "
                f"alphas_cumprod[-1] = {self.alphas_cumprod[-1]:.3g}")

    # --- the schedules ---------------------------------------------------------------------
    @classmethod
    def linear(cls, T=1000, beta_start=1e-4, beta_end=0.02):
        """Ho et al. 2020, Sec. 4: betas linear from beta_start to beta_end (T = 1000 in the
        paper, giving alphas_cumprod[-1] ~ 4.04e-5)."""
        T = _steps("linear", T)
        betas = np.linspace(beta_start, beta_end, T, dtype=np.float64)
        return cls(betas, {"kind": "linear", "T": T, "beta_start": beta_start,
                           "beta_end": beta_end})

    @classmethod
    def quadratic(cls, T=1000, beta_start=1e-4, beta_end=0.02):
        """betas = linspace(sqrt(beta_start), sqrt(beta_end), T)^2 (the "quadratic" schedule
        of the DDPM-derived codebases): smaller steps early than the linear one."""
        T = _steps("quadratic", T)
        betas = np.linspace(math.sqrt(beta_start), math.sqrt(beta_end), T, dtype=np.float64) ** 2
        return cls(betas, {"kind": "quadratic", "T": T, "beta_start": beta_start,
                           "beta_end": beta_end})

    @classmethod
    def cosine(cls, T=1000, s=0.008, max_beta=0.999):
        """Nichol & Dhariwal 2021, eq. 17: abar(t) = f(t)/f(0), f(t) = cos^2(((t/T) + s)/(1 + s)
        * pi/2), beta_t = min(1 - abar(t+1)/abar(t), max_beta) (the clip avoids the
        singularity at t = T)."""
        T = _steps("cosine", T)
        steps = np.arange(T + 1, dtype=np.float64) / T
        f = np.cos((steps + s) / (1.0 + s) * math.pi / 2.0) ** 2
        abar = f / f[0]
        betas = np.minimum(1.0 - abar[1:] / abar[:-1], max_beta)
        return cls(betas, {"kind": "cosine", "T": T, "s": s, "max_beta": max_beta})

    @classmethod
    def sigmoid(cls, T=1000, beta_start=1e-4, beta_end=0.02, start=-6.0, end=6.0):
        """betas = beta_start + (beta_end - beta_start) sigmoid(linspace(start, end, T))
        (the sigmoid schedule of Xu et al. 2022, GeoDiff): flat at both ends, steep midway."""
        T = _steps("sigmoid", T)
        ramp = 1.0 / (1.0 + np.exp(-np.linspace(start, end, T, dtype=np.float64)))
        betas = beta_start + (beta_end - beta_start) * ramp
        return cls(betas, {"kind": "sigmoid", "T": T, "beta_start": beta_start,
                           "beta_end": beta_end, "start": start, "end": end})

    @classmethod
    def from_config(cls, config):
        """The schedule described by ``config`` (a schedule's ``.config``)."""
        config = dict(config)
        kind = config.pop("kind", None)
        if kind == "custom":
            return cls(config["betas"])
        if kind not in ("linear", "quadratic", "cosine", "sigmoid"):
            raise InvalidInput(
                f"NoiseSchedule.from_config: unknown kind {kind!r}; expected linear, quadratic, "
                "cosine, sigmoid or custom"
            )
        return getattr(cls, kind)(**config)


def _steps(name, T):
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise InvalidInput(f"NoiseSchedule.{name}: T must be a positive integer, got {T!r}")
    return int(T)
