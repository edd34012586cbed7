"""bench/coverage.py's tables from run records (mean ± s.e. over seeds, the seeds column, row
order, the compact form of docs/results.md) and its real-vs-real baseline."""
import json

import numpy as np
import pytest

from bench import coverage, sets2d


def record(model, name, seed, **metrics):
    return {"model": model, "set": name, "seed": seed, "steps": 100, "seconds": 10.0 + seed,
            "precision": 90.0, "recall": 80.0, "in_support": 95.0, "min_region_ratio": 85.0,
            **metrics}


RUNS = [  # grid25 first, the DDPM before the GAN: the table reorders them
    record("DDPM (ancestral 1000)", "grid25", 0, modes=25, high_quality=99.0, reverse_kl=0.01),
    record("GAN", "ring8", 0, modes=8, high_quality=95.0, reverse_kl=0.01, recall=81.0),
    record("GAN", "ring8", 1, modes=7, high_quality=97.0, reverse_kl=0.03, recall=84.0),
    record("DDPM (ancestral 1000)", "ring8", 0, modes=8, high_quality=99.5, reverse_kl=0.002),
    {"model": coverage.REAL, "set": "ring8", "seed": 0, "precision": 97.0, "recall": 97.0,
     "in_support": 100.0, "min_region_ratio": 92.0, "modes": 8, "high_quality": 99.0,
     "reverse_kl": 0.001},
]


def rows(text):
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()[2:]]


def test_summaries_give_mean_and_standard_error_per_group_in_table_order():
    results = coverage.summaries(RUNS)
    assert [k[:2] for k in results] == [(coverage.REAL, "ring8"), ("GAN", "ring8"),
                                        ("DDPM (ancestral 1000)", "ring8"),
                                        ("DDPM (ancestral 1000)", "grid25")]
    gan = results[("GAN", "ring8", 100)]
    assert gan["seeds"] == 2
    assert gan["high_quality"]["mean"] == pytest.approx(96.0)
    # s.e. = std (ddof 1) / sqrt(n): values 81 and 84 -> std 3 / sqrt(2), s.e. 1.5
    assert gan["recall"]["se"] == pytest.approx(1.5)
    assert np.isnan(results[("DDPM (ancestral 1000)", "ring8", 100)]["recall"]["se"])


def test_full_table_has_every_metric_the_seeds_and_the_published_rows():
    out = rows(coverage.table(coverage.summaries(RUNS)))
    gan = next(r for r in out if r[:2] == ["GAN", "ring8"])
    assert gan[2:] == ["100", "7.5 ± 0.5 / 8", "96.0 ± 1.0", "0.020 ± 0.010", "90.0 ± 0.0",
                       "82.5 ± 1.5", "95.0 ± 0.0", "85.0 ± 0.0", "10", "2"]
    real = next(r for r in out if r[0] == coverage.REAL)
    assert real[2] == "" and real[-2:] == ["", "1"]  # no steps, no training time
    assert ["GAN (PacGAN Table 1)", "grid25"] in [r[:2] for r in out]


def test_compact_table_names_each_set_once_with_the_readme_columns():
    text = coverage.table(coverage.summaries(RUNS), compact=True)
    assert text.splitlines()[0] == ("| set | model | modes | high quality % | in support % | "
                                    "precision % | recall % | train s | seeds |")
    out = rows(text)
    assert [r[0] for r in out] == ["ring8", "", "", "grid25"]
    assert out[1] == ["", "GAN", "7.5 ± 0.5 / 8", "96.0 ± 1.0", "95.0 ± 0.0", "90.0 ± 0.0",
                      "82.5 ± 1.5", "10", "2"]
    assert out[3][2:4] == ["25.0 / 25", "99.0"]  # one seed: the mean alone
    assert "PacGAN" not in text


def test_table_option_prints_the_table_of_a_records_file(tmp_path, capsys):
    log = tmp_path / "runs.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in RUNS) + "\n")
    coverage.main(["--table", str(log), "--compact"])
    assert capsys.readouterr().out.strip() == coverage.table(coverage.summaries(RUNS),
                                                             compact=True)


def test_real_vs_real_scores_a_fresh_sample_like_the_data():
    """The baseline sample is neither the training data nor the reference, and scores as fresh
    data does (docs/tuning.md: k-NN precision/recall 95-98%, in support >= 99.7%)."""
    real = sets2d.real_sample("ring8", 0, coverage.N_SAMPLES)
    points = set(map(bytes, real))
    assert points.isdisjoint(map(bytes, sets2d.training_data("ring8", 0)))
    assert points.isdisjoint(map(bytes, sets2d.reference("ring8")))
    [(r, samples)] = coverage.run_task((coverage.REAL, "ring8", 0, None, None, None))
    assert np.array_equal(samples, real) and r["model"] == coverage.REAL and "seconds" not in r
    assert r["modes"] == 8 and r["high_quality"] > 97 and r["in_support"] > 99.5
    assert 95 < r["precision"] < 99.5 and 95 < r["recall"] < 99.5


def test_a_kept_ddpm_run_samples_again_as_the_bench_sampled_it(tmp_path):
    """--keep-runs copies the trained run; sampling the copy with the bench's sampler and seed
    gives the bench's samples (so more samplers can be scored later on the same models)."""
    from minigen.diffusion.trainer import sample_run

    [(record, samples)] = coverage.run_task(("DDPM", "ring8", 0, 30, ["dpm++2m-sde:5"],
                                             str(tmp_path)))
    assert record["model"] == "DDPM (SDE-DPM-Solver++ 5)" and record["steps"] == 30
    again = sample_run(tmp_path / "DDPM-ring8-0", coverage.N_SAMPLES, sampler="dpm++2m-sde",
                       steps=5, seed=1000)
    np.testing.assert_array_equal(again, samples)


def test_paired_differences_compare_each_sampler_with_ancestral_on_the_same_run(tmp_path,
                                                                                  capsys):
    anc, fast = "DDPM (ancestral 1000)", "DDPM (DPM-Solver++ 20)"
    runs = [{"model": anc, "set": "ring8", "seed": 0, "in_support": 99.0, "recall": 90.0},
            {"model": fast, "set": "ring8", "seed": 0, "in_support": 97.0, "recall": 91.0},
            {"model": anc, "set": "ring8", "seed": 1, "in_support": 98.0, "recall": 92.0},
            {"model": fast, "set": "ring8", "seed": 1, "in_support": 97.0, "recall": 92.0},
            {"model": anc, "set": "annulus", "seed": 0, "in_support": 99.5, "recall": 95.0},
            {"model": fast, "set": "annulus", "seed": 0, "in_support": 99.5, "recall": 97.0},
            {"model": fast, "set": "annulus", "seed": 1, "in_support": 50.0, "recall": 50.0}]
    diffs = coverage.paired(runs)  # annulus seed 1 has no ancestral run: left out
    assert diffs[(fast, "ring8")]["in_support"]["mean"] == pytest.approx(-1.5)
    assert diffs[(fast, "ring8")]["in_support"]["se"] == pytest.approx(0.5)
    assert diffs[(fast, "annulus")]["pairs"] == 1
    assert diffs[(fast, "all")]["pairs"] == 3
    assert diffs[(fast, "all")]["recall"]["mean"] == pytest.approx(1.0)
    log = tmp_path / "runs.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in runs))
    coverage.main(["--paired", str(log)])
    out = capsys.readouterr().out
    assert "| DDPM (DPM-Solver++ 20) | ring8 |  | -1.5 ± 0.5 |" in out


def test_from_runs_samples_the_kept_runs_without_training(tmp_path, capsys):
    coverage.run_task(("DDPM", "ring8", 0, 30, ["dpm++2m:5"], str(tmp_path)))
    first = json.loads(capsys.readouterr().out.splitlines()[-1])
    coverage.main(["--from-runs", str(tmp_path), "--ddpm-samplers", "dpm++2m:5",
                   "dpm++2m-sde:5"])
    again, sde = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert again["model"] == first["model"] and again["seed"] == 0
    assert all(again[k] == first[k] for k in ("in_support", "precision", "recall"))
    assert sde["model"] == "DDPM (SDE-DPM-Solver++ 5)" and sde["set"] == "ring8"


def test_keep_runs_refuses_a_taken_path_and_from_runs_an_empty_directory(tmp_path, capsys):
    (tmp_path / "DDPM-ring8-0").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        coverage.main(["--sets", "ring8", "--seeds", "1", "--no-gan", "--keep-runs",
                       str(tmp_path)])
    assert exit_info.value.code == 2
    assert "DDPM-ring8-0 already exists" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit):
        coverage.main(["--from-runs", str(empty)])
    assert "no kept DDPM runs" in capsys.readouterr().err


def test_edm_and_option_variants_are_labelled_with_their_evaluations_and_options():
    """--edm trains the EDM formulation and names each sampler's network evaluations
    (2 steps - 1); --ddpm-options name the options in the model's label."""
    [(record, _)] = coverage.run_task(("EDM", "ring8", 0, 20, ["heun:3"], None))
    assert record["model"] == "EDM (Heun 3 steps, 5 NFE)"
    [(record, _)] = coverage.run_task(("DDPM", "ring8", 0, 20, ["dpm++2m:3"], None,
                                       {"min_snr_gamma": 5}))
    assert record["model"] == "DDPM [min_snr_gamma=5] (DPM-Solver++ 3)"
