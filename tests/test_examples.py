"""The PyTorch-style example scripts (examples/) run end to end at small sizes."""
import importlib.util
import pathlib

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, argv, check", [
    ("ddpm_2d", ["--steps", "30", "--n", "512", "--T", "50", "--samples", "200"],
     lambda out: out[0].shape == (200, 2) and np.isfinite(out[1])),
    ("dcgan_digits", ["--steps", "4", "--batch-size", "16"],
     lambda out: out.shape == (64, 1, 8, 8) and np.all(np.abs(out) <= 1)),
    ("mlp_gan", ["--steps", "30", "--n", "1024", "--batch-size", "64"],
     lambda out: out[0].shape == (2000, 2) and out[1]["n_modes"] == 8),
])
def test_example_runs_at_small_size(name, argv, check, capsys):
    out = _load(name).main(argv)
    assert check(out)
    assert "step" in capsys.readouterr().out
