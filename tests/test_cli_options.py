"""Every trainer option reaches the trainers from the command line: named flags and
``--set key=value`` (dotted keys inside dict options), each checked with the valid choices
named in a one-line error."""
import json

import pytest

from minigen import cli

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(run):
    with open(run / "config.json") as f:
        return json.load(f)


def test_ddpm_flags_and_set_reach_the_run_config(tmp_path):
    run = tmp_path / "d"
    assert cli.main(["train", "ddpm", "--data", "moons", "--steps", "2", "--out", str(run),
                     "--quiet", "--no-figures", "--schedule", "cosine", "--T", "200",
                     "--prediction", "v", "--variance", "fixed_large", "--clip-x0", "3",
                     "--ema-decay", "0.9", "--warmup-steps", "7", "--hidden", "[16,16]",
                     "--set", "grad_clip=null", "--set", "model_config.activation=gelu"]) == 0
    c = _config(run)
    assert c["schedule"]["kind"] == "cosine" and c["schedule"]["T"] == 200
    assert (c["prediction"], c["variance"], c["clip_x0"]) == ("v", "fixed_large", 3.0)
    assert (c["ema_decay"], c["warmup_steps"], c["grad_clip"]) == (0.9, 7, None)
    assert c["model_config"]["hidden"] == [16, 16]
    assert c["model_config"]["activation"] == "gelu" and c["model_config"]["time_dim"] == 16


def test_gan_flags_and_set_reach_the_run_config(tmp_path):
    run = tmp_path / "g"
    assert cli.main(["train", "gan", "--data", "ring8", "--steps", "2", "--out", str(run),
                     "--quiet", "--no-figures", "--preset", "paper", "--penalty", "r1",
                     "--penalty-weight", "0.5", "--pack", "2", "--top-k", "0.7",
                     "--set", "lr=0.002"]) == 0
    c = _config(run)
    assert (c["penalty"], c["penalty_weight"], c["pack"], c["top_k"], c["lr"]) == (
        "r1", 0.5, 2, 0.7, 0.002)
    assert c["optimizer"] == "sgd"  # the paper preset under the flags


@pytest.mark.parametrize("kind,extra,fragment", [
    ("ddpm", ["--set", "bogus=1"], "valid options are ['batch_size'"),
    ("ddpm", ["--set", "prediction=foo"], "prediction must be one of ('eps', 'x0', 'v')"),
    ("ddpm", ["--set", "nonsense"], "--set expects KEY=VALUE"),
    ("ddpm", ["--schedule", "zigzag"], "invalid choice: 'zigzag'"),
    ("gan", ["--penalty", "l2"], "invalid choice: 'l2'"),
    ("gan", ["--set", "noise=laplace"], "noise"),
])
def test_bad_options_give_one_line_and_status_2(kind, extra, fragment, tmp_path, capsys):
    status = cli.main(["train", kind, "--data", "ring8", "--steps", "2", "--out",
                       str(tmp_path / "r"), "--quiet", "--no-figures"] + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and fragment in err[0], err


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "ddpm", "--help"])
    out = capsys.readouterr().out
    for text in ("default 1000", "default eps", "default fixed_small", "default 0.995", "--set"):
        assert text in out, text
