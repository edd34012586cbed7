"""The bench sections with their own command line: ``bench.defaults`` (what users get
without thread settings) and ``bench.scaling`` (cost against size): their tables, JSON,
fits and figure, and one real point of each run in a fresh process."""
import importlib.util
import json

import numpy as np
import pytest

from bench import defaults, scaling
from bench.__main__ import main as bench_main


def test_defaults_ratios_are_to_the_best_explicit_setting_of_the_same_case():
    times = {"idle": {"script": {"untouched": [2.0, 4.0, 3.0], "explicit 1": [2.0],
                                 "explicit 2": [1.5]}},
             "shared": {"script": {"untouched": [3.0], "explicit 1": [2.0], "explicit 2": [6.0]}}}
    rows = {(r["condition"], r["setting"]): r for r in defaults.summarize(times)}
    assert rows["idle", "untouched"]["median_s"] == 3.0
    assert rows["idle", "untouched"]["ratio"] == 2.0 and rows["idle", "untouched"]["best_explicit"] == "explicit 2"
    assert rows["shared", "untouched"]["ratio"] == 1.5
    assert rows["shared", "explicit 1"]["ratio"] == 1.0
    table = defaults.markdown({"rows": list(rows.values()), "mode": "quick", "machine": "m",
                               "load_before": [0], "load_after": [0], "sizes": {"rounds": 3}})
    assert "| script | untouched | 3.00 | 2.00 | 3.00 | 1.50 |" in table


def test_defaults_runs_clear_the_parents_thread_settings(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.setenv("GOMP_SPINCOUNT", "1")
    env = defaults.clean_environment({"MKL_NUM_THREADS": "2"})
    assert "OMP_NUM_THREADS" not in env and "GOMP_SPINCOUNT" not in env
    assert env["MKL_NUM_THREADS"] == "2"
    names = defaults.settings("script", 2)
    torch_first = ["torch first"] if importlib.util.find_spec("torch") else []
    assert list(names) == ["untouched", "env 2", *torch_first, "explicit 1", "explicit 2"]
    assert "torch first" not in defaults.settings("cli", 2)


@pytest.mark.slow
def test_defaults_quick_run_writes_the_table_and_json(tmp_path, capsys):
    """One workload, one condition: each setting ran in its own process (one with PyTorch
    imported first, where PyTorch is installed) and has a time."""
    assert bench_main(["defaults", "--quick", "--only", "script", "--conditions", "idle",
                       "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "defaults.json").read_text())
    settings = [r["setting"] for r in results["rows"]]
    assert settings == list(defaults.settings("script", defaults.threads.usable_cores()))
    assert all(r["median_s"] > 0 for r in results["rows"])
    assert min(r["ratio"] for r in results["rows"] if r["setting"].startswith("explicit")) == 1.0
    assert (tmp_path / "defaults.md").read_text() in capsys.readouterr().out


def test_scaling_exponent_is_the_log_log_slope():
    points = [{"value": v, "seconds": 3e-3 * v ** 1.5} for v in (1, 4, 16, 64)]
    assert scaling.exponent(points) == pytest.approx(1.5)
    assert scaling.exponent(points[:1] + [{"value": 2, "na": "error"}]) is None


def test_scaling_point_runs_in_a_fresh_process_and_reports_memory():
    point = {**scaling.BASE, "batch": 2, "image": 8, "width": 8}
    got = scaling.run_point("minigen", "train", point, warmup=0, reps=1)
    assert got["seconds"] > 0
    assert 0 < got["rss_before_mb"] <= got["peak_rss_mb"]
    sample = scaling.run_point("minigen", "sample", {**point, "steps": 2, "images": 2}, 0, 1)
    assert sample["seconds"] > 0


def test_scaling_figure_has_one_panel_per_sweep(tmp_path):
    curves = [{"sweep": s, "task": "train", "framework": f, "unit": "seconds per step",
               "points": [{"value": v, "seconds": v * k} for v in (1, 2, 4)], "exponent": 1.0}
              for s in ("batch", "width") for f, k in (("minigen", 1.0), ("torch", 2.0))]
    results = {"curves": curves, "mode": "quick", "machine": "m", "load_before": [0.5],
               "load_after": [0.5]}
    scaling.figure(results, tmp_path / "scaling.png")
    assert (tmp_path / "scaling.png").stat().st_size > 0
    assert scaling.summary(results).count("exponent 1.00") == 4
    assert np.isfinite([c["exponent"] for c in curves]).all()


def test_algorithms_runs_each_column_under_its_algorithm_and_restores_the_choice():
    """bench.algorithms: each minigen column runs with its conv algorithm set, the choice
    before the run comes back, and each column has its medians."""
    import types

    import kernels
    from bench import algorithms

    seen = []
    fake = types.SimpleNamespace(key="W0", sizes={}, build=lambda sizes, device: (
        lambda: seen.append(kernels.get_conv_algorithm())))
    medians = algorithms.compare(fake, ["im2col", "winograd"], reps=2, with_torch=False)
    assert seen == ["im2col", "winograd"] * 3  # a warm-up and two rounds
    assert kernels.get_conv_algorithm() == "auto"
    assert set(medians) == {"im2col", "winograd"}
    assert all(cpu >= 0 and wall >= 0 for cpu, wall in medians.values())
    rows = algorithms.report("W0", {**medians, "torch": (1.0, 1.0)})
    assert rows[0].startswith("| W0 | im2col |") and rows[2].endswith("| - |")
