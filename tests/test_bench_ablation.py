"""bench/ablation.py's calibration: every variant timed in every round, the fastest round
counted, and the equal-time step counts it gives."""
import numpy as np

from bench import ablation
from minigen import data as datasets


def test_calibration_times_every_variant_in_every_round(one_thread):
    x = datasets.digits(seed=0)[0][:64]
    fastest, rounds, load = ablation.calibrate(x, repeats=2, steps=1)
    assert set(fastest) == set(rounds) == set(ablation.VARIANTS)
    for name, times in rounds.items():
        assert len(times) == 2 and all(t > 0 for t in times)
        assert fastest[name] == min(times)
    assert len(load) == 2 and np.all(np.isfinite(load))
