"""Quality numbers for samples of a known dataset (used by the CLI, the demo and the tests).

Structure, not only distance (issue 4): for sets drawn from a known curve, the precision and
coverage of :func:`minigen.metrics.curve_quality` against the curve itself; for the PacGAN
mixtures, :func:`minigen.metrics.mode_coverage`; for any vectors, the energy distance to
fresh (or training) data; for the 8x8 digits, the scores of the reference classifier of
:mod:`minigen.diffusion.classifier`.
"""
import functools

import numpy as np

from minigen import data as datasets
from minigen import metrics

CURVES = {"s_curve": datasets.S_CURVE, "swiss_roll": datasets.SWISS_ROLL, "moons": datasets.MOONS}
MIXTURES = {"ring8": datasets.RING8, "grid25": datasets.GRID25}
CURVE_NOISE = 0.05
"""The noise std of the generated curves (``minigen.data`` default)."""


def evaluate_samples(samples, data_name=None, reference=None, seed=0):
    """A flat dict of quality numbers for ``samples``: vectors (n, d), or digits (n, 1, 8, 8).

    ``data_name`` selects the protocol of a known set; otherwise (or in addition) the energy
    distance to ``reference`` (e.g. the training data) is reported, and for known sets the
    energy distance to a fresh draw of the same size (``energy_distance``)."""
    samples = np.asarray(samples, dtype=np.float64)
    out = {}
    if data_name in CURVES:
        q = metrics.curve_quality(samples, *CURVES[data_name].polyline(), noise_std=CURVE_NOISE)
        out.update(precision=q["precision"], coverage=q["coverage"], reverse_kl=q["reverse_kl"])
    elif data_name in MIXTURES:
        mixture = MIXTURES[data_name]
        q = metrics.mode_coverage(samples, mixture.modes, mixture.std)
        out.update(modes_covered=q["modes_covered"], high_quality=q["high_quality"],
                   reverse_kl=q["reverse_kl"])
    if data_name in CURVES or data_name in MIXTURES:
        fresh = datasets.load_dataset(data_name, n=max(len(samples), 2000), seed=seed + 12345)
        out["energy_distance"] = metrics.energy_distance(samples, fresh)
    elif reference is not None and np.ndim(reference) == 2:
        out["energy_distance"] = metrics.energy_distance(samples, reference)
    if data_name == "digits" and samples.shape[1:] == (1, 8, 8):
        classifier = digits_classifier()
        scores = classifier.score(samples)
        del scores["class_counts"]
        out.update(scores, classifier_accuracy=classifier.accuracy)
    return out


@functools.lru_cache(maxsize=1)
def digits_classifier():
    """The reference digits classifier, trained once per process (a few seconds)."""
    from minigen.diffusion.classifier import train_digits_classifier

    return train_digits_classifier()
