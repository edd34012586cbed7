"""bench.graphs: its table, its refusal without a GPU, and (on a GPU) a quick measurement."""
import pytest

from bench import graphs
from minigen import backend

GPU = backend.cuda_available()


def test_table_gives_ratios_to_pytorch_and_errors():
    results = {"W4": {"ddpm": {"latency_s": 4e-4, "burst_s": 3e-4},
                      "graph": {"error": "CUDARuntimeError: capture failed"},
                      "torch": {"latency_s": 1e-4, "burst_s": 2e-5}},
               "W5": {"launcher": {"latency_s": 2e-4, "burst_s": 1e-4}}}
    lines = graphs.markdown(results).splitlines()
    assert lines[2] == "| W4 | ddpm | 0.4000 | 0.3000 | 4.00x |"
    assert lines[3] == "| W4 | graph | CUDARuntimeError: capture failed | | |"
    assert lines[4] == "| W4 | torch | 0.1000 | 0.0200 | 1.00x |"
    assert lines[5] == "| W5 | launcher | 0.2000 | 0.1000 | n/a |"
    assert len(lines) == 6


@pytest.mark.skipif(GPU, reason="checks the message shown without a GPU")
def test_refuses_without_a_gpu(capsys, tmp_path):
    assert graphs.main(["--out", str(tmp_path)]) == 2
    assert "needs CuPy and a CUDA GPU" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.gpu
@pytest.mark.skipif(not GPU, reason="needs CuPy and a CUDA GPU")
def test_quick_measurement_on_a_gpu(tmp_path):
    assert graphs.main(["--quick", "--out", str(tmp_path)]) == 0
    for key in ("W4", "W5"):
        runs = graphs.measure(key, quick=True)
        for run in ("ddpm", "launcher", "graph"):
            assert runs[run]["latency_s"] > 0 and runs[run]["burst_s"] > 0, (key, run, runs)
    assert (tmp_path / "graphs.md").read_text().count("| W") >= 6
