"""bench/tradeoff.py (``python -m bench.compare --tradeoff``) on a tiny budget: the report's
points, curves and numbers, and the real point scored as the metrics say it must be."""
import json

import numpy as np
import pytest

from bench import compare, tradeoff


@pytest.mark.slow
def test_tradeoff_writes_every_point_with_errors(tmp_path, one_thread):
    out = tmp_path / "out"
    report = compare.main(["--tradeoff", "--data", "mixture", "--seeds", "2", "--ddpm-steps",
                           "20", "--classifier-steps", "10", "--gan-steps", "10", "--samples",
                           "60", "--out", str(out), "--work", str(tmp_path / "work")])
    mixture = report["mixture"]
    expected = {"real"} | {f"{knob}={v}" for knob, values in tradeoff.KNOBS.items()
                           for v in values}
    assert set(mixture["points"]) == expected
    real = mixture["points"]["real"]
    assert real["agreement"][0] > 85 and real["precision"][0] > 80 and real["recall"][0] > 80
    assert all(se >= 0 for point in mixture["points"].values() for _, se in point.values())
    assert set(mixture["nfe_to_match_gan"]) == {"dpm++2m", "ddim"}
    assert all(rate[0] > 0 for rate in mixture["samples_per_s"].values())
    assert (out / "tradeoff.png").stat().st_size > 10_000
    text = (out / "report.md").read_text()
    assert "±" in text and "Steps to match the GAN's Fréchet distance" in text
    assert json.loads((out / "report.json").read_text())["mixture"]["steps"]["gan"] == 10
    # a second call with the same steps loads the runs (same numbers, seed by seed)
    again = tradeoff.main(["--data", "mixture", "--seeds", "2", "--ddpm-steps", "20",
                           "--classifier-steps", "10", "--gan-steps", "10", "--samples", "60",
                           "--out", str(out), "--work", str(tmp_path / "work")])
    np.testing.assert_allclose(again["mixture"]["points"]["truncation psi=0.5"]["frechet"],
                               mixture["points"]["truncation psi=0.5"]["frechet"])


def test_real_sample_scores_as_the_bayes_classifier_says():
    data = tradeoff.LabelledSet("mixture", 0, 2000)
    score = data.score(data.real, data.real_y)
    modes, std = tradeoff.MIXTURE.modes, tradeoff.MIXTURE.std
    rng = np.random.default_rng(9)
    y = rng.integers(8, size=200000)
    x = modes[y] + std * rng.standard_normal((200000, 2))
    bayes = (np.linalg.norm(x[:, None] - modes[None], axis=2).argmin(1) == y).mean()
    assert abs(score["agreement"] / 100 - bayes) < 4 * np.sqrt(bayes * (1 - bayes) / 2000)
    assert score["frechet"] < 0.05 and score["precision"] > 90 and score["recall"] > 90
    shuffled = data.score(data.real, np.roll(data.real_y, 1))
    assert shuffled["agreement"] < 25
