"""SDEdit and RePaint (minigen/diffusion/editing.py) checked exactly, without training: a
recording stub network logs every (x_t, t) it is called with, so the tests assert which
timesteps each method visits, from which state it starts, and what it returns."""
import numpy as np
import pytest

from minigen.diffusion import DDPM, NoiseSchedule
from minigen.diffusion.editing import repaint_schedule
from minigen.diffusion.spacing import spaced_timesteps

T = 40


class Recorder:
    """A stand-in eps network: returns 0.3 x_t + 0.1 and records each call's (x_t, t)."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t):
        self.calls.append((x.data.copy(), np.array(t)))
        return x * 0.3 + 0.1

    def timesteps(self):
        """The timestep of each call (all rows share it in these samplers)."""
        for _, t in self.calls:
            assert np.all(t == t[0])
        return [int(t[0]) for _, t in self.calls]


def _ddpm():
    model = Recorder()
    return DDPM(model, NoiseSchedule.cosine(T)), model


def _inputs(seed=0):
    return np.random.default_rng(seed).standard_normal((5, 3)).astype(np.float32)


@pytest.mark.parametrize("strength", [0.05, 0.3, 0.5, 0.77, 1.0])
def test_sdedit_starts_at_round_strength_T_and_walks_every_step_down_to_0(strength):
    ddpm, model = _ddpm()
    x = _inputs()
    ddpm.edit(x, strength, seed=7)
    t0 = round(strength * T)
    assert model.timesteps() == list(range(t0 - 1, -1, -1))
    # The first network call sees x_{t0} = q_sample(x, t0 - 1, z), z the first draw of seed.
    z = np.random.default_rng(7).standard_normal(x.shape, dtype=np.float32)
    abar = ddpm.schedule.alphas_cumprod[t0 - 1]
    np.testing.assert_allclose(model.calls[0][0], np.sqrt(abar) * x + np.sqrt(1 - abar) * z,
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("strength, steps", [(0.5, 5), (0.8, 50), (1.0, 7)])
def test_sdedit_with_ddim_visits_the_spaced_timesteps_below_t0(strength, steps):
    ddpm, model = _ddpm()
    ddpm.edit(_inputs(), strength, sampler="ddim", steps=steps, seed=1)
    t0 = round(strength * T)
    expected = np.unique(spaced_timesteps(t0, min(steps, t0)))[::-1]
    assert model.timesteps() == expected.tolist()
    assert expected[0] == t0 - 1 and expected[-1] == 0


def test_sdedit_at_the_smallest_strength_takes_one_step():
    ddpm, model = _ddpm()
    ddpm.edit(_inputs(), 1e-3, seed=0)
    assert model.timesteps() == [0]


@pytest.mark.parametrize("resample, jump", [(1, 1), (2, 3), (3, 5)])
def test_inpaint_returns_the_known_entries_exactly(resample, jump):
    ddpm, model = _ddpm()
    x = _inputs(1) * 5.0  # far from anything the stub network would produce
    mask = np.zeros_like(x)
    mask[:, 0] = 1
    mask[2] = 1
    out = ddpm.inpaint(x, mask, resample=resample, jump=jump, seed=4)
    np.testing.assert_array_equal(out[mask == 1], x[mask == 1])
    assert not np.allclose(out[mask == 0], x[mask == 0])
    # One network call per step down of the RePaint schedule, at code timestep s - 1.
    states = repaint_schedule(T, resample, jump)
    down = [s - 1 for s, s_next in zip(states[:-1], states[1:]) if s_next < s]
    assert model.timesteps() == down

