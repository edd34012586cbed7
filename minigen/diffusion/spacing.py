"""Timestep spacing: which of the T trained timesteps a sampler with fewer steps visits.

One function, :func:`spaced_timesteps`, serves DDIM (:mod:`minigen.diffusion.ddim`), SDEdit's
DDIM chain (:mod:`minigen.diffusion.editing`) and DPM-Solver++
(:mod:`minigen.diffusion.dpm_solver`). The spacings are the three that Lin et al. 2024
("Common diffusion noise schedules and sample steps are flawed", Table 2) name, as diffusers'
schedulers compute them.

    >>> spaced_timesteps(1000, 4, "linspace").tolist()
    [0, 333, 666, 999]
    >>> spaced_timesteps(1000, 4, "trailing").tolist()
    [249, 499, 749, 999]
"""
import numpy as np

from minigen.errors import InvalidInput

SPACINGS = ("linspace", "leading", "trailing")


def spaced_timesteps(T, n, spacing="linspace"):
    """``n`` code timesteps in 0..T-1, increasing, as int64 (repeats possible when n is
    close to T; callers take ``np.unique``):

    - ``"linspace"``: round(linspace(0, T - 1, n)), from 0 to T - 1;
    - ``"leading"``: k * (T // n) for k = 0..n-1, from 0;
    - ``"trailing"``: round(arange(T, 0, -T / n)) - 1, reversed, up to T - 1.
    """
    if spacing == "linspace":
        ts = np.round(np.linspace(0, T - 1, n))
    elif spacing == "leading":
        ts = np.arange(n) * (T // n)
    elif spacing == "trailing":
        ts = np.round(np.arange(T, 0, -T / n))[::-1] - 1
    else:
        raise InvalidInput(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    return ts.astype(np.int64)
