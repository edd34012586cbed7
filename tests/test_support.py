"""Support metrics against cases with known answers: brute-force k-NN balls, fresh data near 1,
shifted / shrunk / blurred sets lower, half the support missing gives recall ~0.5 and an
empty region."""
import numpy as np
import pytest

from minigen.support import (knn_precision_recall, knn_radii, region_shares, support_quality,
                             support_share)


def _square(n, seed):
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, 2))


REFERENCE = _square(200_000, 0)


def _brute_force_precision_recall(real, fake, k):
    """Share of fake points in some real point's ball and of real points in some fake one's,
    one pair at a time."""
    r_real, r_fake = knn_radii(real, k), knn_radii(fake, k)
    precision = np.mean([any(np.linalg.norm(f - r) <= rr for r, rr in zip(real, r_real))
                         for f in fake])
    recall = np.mean([any(np.linalg.norm(r - f) <= rf for f, rf in zip(fake, r_fake))
                      for r in real])
    return precision, recall


def test_knn_radii_and_balls_match_brute_force():
    rng = np.random.default_rng(1)
    real, fake = rng.standard_normal((40, 2)), 0.7 * rng.standard_normal((30, 2)) + 1.0
    for k in (1, 3, 5):
        d = np.sqrt(((real[:, None] - real[None]) ** 2).sum(-1))
        expected = np.sort(d, axis=1)[:, k]  # column 0 is the point itself
        np.testing.assert_allclose(knn_radii(real, k), expected, rtol=1e-12)
    precision, recall = _brute_force_precision_recall(real, fake, 3)
    got = knn_precision_recall(real, fake, k=3)
    assert got == {"precision": pytest.approx(precision), "recall": pytest.approx(recall)}
    assert 0 < precision < 1 and 0 < recall < 1


@pytest.mark.parametrize("d", [8, 128])
def test_knn_precision_recall_in_feature_space_dimensions(d):
    """Any dimension (classifier features have 128): brute-force balls, and a sample collapsed
    near a few real points has high precision and low recall."""
    rng = np.random.default_rng(d)
    real, fake = rng.standard_normal((60, d)), 0.9 * rng.standard_normal((50, d)) + 0.2
    precision, recall = _brute_force_precision_recall(real, fake, 3)
    got = knn_precision_recall(real, fake, k=3)
    assert got == {"precision": pytest.approx(precision), "recall": pytest.approx(recall)}
    collapsed = np.repeat(real[:3], 20, axis=0) + 1e-3 * rng.standard_normal((60, d))
    got = knn_precision_recall(real, collapsed, k=3)
    assert got["precision"] == 1.0 and got["recall"] <= 3 / 60


def test_fresh_data_scores_near_1_and_damaged_sets_lower():
    fresh = support_quality(_square(2500, 2), REFERENCE)
    assert fresh["precision"] > 0.95 and fresh["recall"] > 0.95
    assert fresh["in_support"] > 0.999 and fresh["min_region_ratio"] > 0.8
    shifted = support_quality(_square(2500, 2) + [0.5, 0.0], REFERENCE)
    assert shifted["in_support"] == pytest.approx(0.75, abs=0.03)
    # the left third of the grid keeps only [-0.5, -1/3] of its [-1, -1/3]: ratio 1/4
    assert shifted["recall"] < 0.8 and shifted["min_region_ratio"] == pytest.approx(0.25, abs=0.07)
    shrunk = support_quality(0.5 * _square(2500, 2), REFERENCE)
    assert shrunk["precision"] > 0.95 and shrunk["recall"] == pytest.approx(0.25, abs=0.05)
    # blur 0.05 across a sharp edge: the fine histogram sees it, the k-NN balls barely do
    blurred = _square(2500, 2) + 0.05 * np.random.default_rng(3).standard_normal((2500, 2))
    q = support_quality(blurred, REFERENCE)
    assert q["in_support"] < 0.985 < fresh["in_support"]
    assert q["precision"] > 0.95


def test_half_the_support_missing():
    x = _square(5000, 4)
    half = x[x[:, 0] < 0][:2500]
    q = support_quality(half, REFERENCE)
    assert q["recall"] == pytest.approx(0.5, abs=0.05)
    assert q["precision"] > 0.95 and q["in_support"] > 0.999
    assert q["min_region_ratio"] == 0.0
    r = region_shares(half, REFERENCE)
    assert len(r["ratios"]) == 9 and max(r["ratios"]) == pytest.approx(2.0, rel=0.25)


def test_support_share_and_region_ratios_on_constructed_sets():
    reference = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]] * 10)
    # bins=2 over [0, 1]^2: the four corners fill the four cells, a point in the middle
    # belongs to the upper right cell, a point outside the box to none
    assert support_share([[0.2, 0.2], [2.0, 0.0], [0.5, 0.5], [-0.1, 0.3]], reference,
                         bins=2) == 0.5
    sparse = np.array([[0.0, 0.0], [1.0, 1.0]] * 10)
    assert support_share([[1.0, 0.0], [0.1, 0.1]], sparse, bins=2) == 0.5
    samples = np.array([[0.1, 0.1]] * 4 + [[0.9, 0.1]] * 2 + [[0.1, 0.9]] * 1 + [[0.9, 0.9]] * 1)
    r = region_shares(samples, reference, bins=2, min_share=0.1)
    np.testing.assert_allclose(r["ratios"], [2.0, 0.5, 1.0, 0.5])  # cells (x bin, y bin) in C order
    assert r["min_ratio"] == 0.5 and r["reference_shares"] == [0.25] * 4


def test_support_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="k must be"):
        knn_radii(np.zeros((3, 2)), 3)
    with pytest.raises(ValueError, match="same number of features"):
        support_share(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="bins"):
        region_shares(np.zeros((3, 2)), np.zeros((3, 2)), bins=0)
    with pytest.raises(ValueError, match="min_share"):
        region_shares(np.zeros((3, 2)), np.zeros((3, 2)), min_share=1.5)
    with pytest.raises(ValueError, match="NaN"):
        knn_precision_recall(np.full((5, 2), np.nan), np.zeros((5, 2)))
