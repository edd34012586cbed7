"""Built on a trained :class:`~minigen.diffusion.ddpm.DDPM`: classifier-free guidance,
image-to-image (SDEdit) and inpainting (RePaint). The DDPM's methods ``model_output(...,
guidance=w)``, ``edit`` and ``inpaint`` call these functions.

=============================================  ======================================
paper                                          here
=============================================  ======================================
Ho & Salimans 2022, eq. 6                      :func:`classifier_free_guidance`
Meng et al. 2022 (SDEdit), Algorithm 1         :func:`sdedit`
Lugmayr et al. 2022 (RePaint), Algorithm 1     :func:`repaint`, :func:`repaint_schedule`
=============================================  ======================================
"""
import numpy as np
from tqdm.auto import tqdm

from minigen import backend
from minigen.diffusion import inputs
from minigen.diffusion.ddim import ddim_loop
from minigen.diffusion.spacing import spaced_timesteps
from minigen.nn.module import eval_mode

SAMPLERS = ("ddpm", "ddim")


def classifier_free_guidance(network, x, t, y, null, w):
    """eps_tilde = (1 + w) eps(x_t, y) - w eps(x_t, null) (Ho & Salimans 2022, eq. 6), both
    terms from one batched call of ``network(x, t, y)`` (x_t twice, the conditions y then the
    null condition ``null`` for every row). A condition is a class label (``null`` the null
    class) or any per-sample array, such as a caption's token ids (``null`` the empty
    caption's, broadcast over the batch). For x0- and v-prediction the same combination of
    the outputs is the guided eps exactly: eps is an affine function of the output at fixed
    (x_t, t) and the weights 1 + w and -w sum to 1."""
    both = network(backend.xp_of(x).concatenate([x, x]), np.concatenate([t, t]),
                   np.concatenate([y, np.broadcast_to(np.asarray(null, y.dtype), y.shape)]))
    conditional, unconditional = both[:len(x)], both[len(x):]
    w = x.dtype.type(w)
    return (1 + w) * conditional - w * unconditional


def sdedit(ddpm, x, strength, sampler="ddpm", steps=50, eta=0.0, y=None, guidance=0.0,
           seed=None, progress=False):
    """SDEdit (Meng et al. 2022, Algorithm 1), ``ddpm.edit``: noise the inputs ``x`` (model
    units, (batch, ...)) to the paper's t0 = round(strength * T) with q(x_t0 | x_0) (eq. 4),
    then run the reverse chain from there: ancestral (``sampler="ddpm"``, all t0 steps) or
    DDIM (``"ddim"``, ``steps`` steps spread over 0..t0, with ``eta``). ``strength`` in
    (0, 1]: small keeps the input's content, 1 forgets it (up to sqrt(abar_T) x). ``y`` and
    ``guidance`` as in ``DDPM.model_output``. Returns a raw array of x's shape."""
    inputs.strength(strength)
    inputs.choice(sampler, SAMPLERS, "sampler", "DDPM.edit")
    inputs.eta(eta, "edit")
    inputs.positive_int(steps, "steps", "DDPM.edit")
    x0, rng, _ = inputs.start(ddpm, inputs.raw(x).shape, seed, None, False, x, y, guidance,
                              "edit")
    # 1. The paper's t0 = round(strength T) (at least one step).
    t0 = max(1, int(round(strength * ddpm.schedule.T)))
    # 2. x_{t0} ~ q(x_{t0} | x_0) (eq. 4; code timestep t0 - 1).
    x = ddpm.q_sample(x0, t0 - 1, rng.standard_normal(x0.shape, dtype=x0.dtype))
    # 3. The reverse chain from x_{t0} to x_0: all t0 ancestral steps, or DDIM over at most
    #    ``steps`` of the code timesteps 0..t0-1.
    if sampler == "ddpm":
        return ddpm.p_sample_loop(x, t0, rng, y=y, guidance=guidance, progress=progress)[0]
    ts = np.unique(spaced_timesteps(t0, min(steps, t0), "linspace"))
    return ddim_loop(ddpm, x, ts, eta, rng, set(), y, guidance, progress)[0]


def repaint(ddpm, x_known, mask, resample=1, jump=1, y=None, guidance=0.0, seed=None,
            progress=False):
    """RePaint (Lugmayr et al. 2022, Algorithm 1), ``ddpm.inpaint``: complete the entries of
    ``x_known`` (model units, (batch, ...)) where ``mask`` (same shape, 1 = known,
    0 = unknown) is 0.

    Each reverse step x_t -> x_{t-1} takes the unknown entries from ``ddpm.p_sample`` and the
    known ones from q(x_{t-1} | x_0) of the known values (eq. 4, eq. 8 of RePaint). With
    ``resample`` = R > 1, after every ``jump`` = j reverse steps the chain goes j steps back
    up with q(x_t | x_{t-1}) (eq. 2, ``ddpm.q_step``) and down again, R - 1 times (their
    resampling, Sec. 4.2; j = 1 is Algorithm 1's inner loop), so that the generated part has
    time to agree with the known part; about R T network calls. The known entries of the
    result are ``x_known``'s exactly. ``y`` and ``guidance`` as in ``DDPM.model_output``."""
    x0, rng, _ = inputs.start(ddpm, inputs.raw(x_known).shape, seed, None, False, x_known, y,
                              guidance, "inpaint")
    known = inputs.mask(mask, x0)
    states = repaint_schedule(ddpm.schedule.T, resample, jump)
    xp = backend.xp_of(x0)
    x = rng.standard_normal(x0.shape, dtype=x0.dtype)  # x_T ~ N(0, I)
    with eval_mode(ddpm.model):
        for s, s_next in tqdm(list(zip(states[:-1], states[1:])), desc="RePaint",
                              disable=not progress, leave=False):
            z = rng.standard_normal(x.shape, dtype=x.dtype)
            ts = np.full(len(x), s - 1, dtype=np.int64)
            if s_next > s:  # back up: x_{s+1} ~ q(x_{s+1} | x_s) (eq. 2)
                x = ddpm.q_step(x, ts + 1, z)
                continue
            # Down: the unknown entries from p(x_{s-1} | x_s) (z = 0 at the last step), the
            # known ones from q(x_{s-1} | x_0) (RePaint eq. 8), exactly x_0 at the last step.
            unknown = ddpm.p_sample(x, ts, z if s > 1 else xp.zeros_like(x), y=y,
                                    guidance=guidance)
            known_part = x0 if s == 1 else ddpm.q_sample(
                x0, ts - 1, rng.standard_normal(x.shape, dtype=x.dtype))
            x = xp.where(known, known_part, unknown)
    return x


def repaint_schedule(T, resample=1, jump=1):
    """The paper states (T ... 0) that :func:`repaint` visits: down from T one step at a
    time; after every ``jump`` steps down (at states s > 0), ``resample`` - 1 times up
    ``jump`` steps and down again (RePaint, Sec. 4.2 and their ``get_schedule_jump``).

        >>> repaint_schedule(4, resample=2, jump=2)
        [4, 3, 2, 3, 4, 3, 2, 1, 0]
    """
    inputs.positive_int(resample, "resample", "repaint_schedule")
    inputs.positive_int(jump, "jump", "repaint_schedule")
    states = [T]
    for s in range(T - 1, -1, -1):
        states.append(s)
        if s > 0 and (T - s) % jump == 0:
            for _ in range(resample - 1):
                states += list(range(s + 1, s + jump + 1)) + list(range(s + jump - 1, s - 1, -1))
    return states
