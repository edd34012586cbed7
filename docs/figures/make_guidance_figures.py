"""Regenerate docs/figures/guidance_2d.png: classifier-free guidance, SDEdit and RePaint on one
class-conditional DDPM trained on four labelled Gaussian modes (the run of
tests/test_guidance.py: modes at distance 2 from the origin, std 0.1, 2000 steps).

Run from the repository root (about a minute on one core; the run is reused if present):
    python docs/figures/make_guidance_figures.py [run directory, default runs/guidance_2d]
"""
import os
import pathlib
import sys

import numpy as np

from minigen.diffusion import trainer as T

FIGURE = pathlib.Path(__file__).with_name("guidance_2d.png")
MODES = np.array([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])
STD = 0.1
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def train(run_dir):
    """The labelled mixture and a conditional run on it (trained unless ``run_dir`` has one)."""
    rng = np.random.default_rng(0)
    y = rng.integers(len(MODES), size=4000)
    x = (MODES[y] + STD * rng.standard_normal((4000, 2))).astype(np.float32)
    if not os.path.exists(os.path.join(run_dir, "config.json")):
        T.train_ddpm(x, 2000, run_dir, seed=0, labels=y, conditional=True, progress=False,
                     figures=False)
    return x


def main(run_dir="runs/guidance_2d"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = train(run_dir)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax in axes:
        ax.scatter(data[:, 0], data[:, 1], s=1, c="0.8")
        ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal")

    ax = axes[0]
    for k, colour in enumerate(COLOURS):
        s = T.sample_run(run_dir, 200, seed=k, label=k, guidance=3.0)
        ax.scatter(s[:, 0], s[:, 1], s=4, c=colour, label=f"--label {k}")
    ax.set_title("guided samples (w = 3), coloured by requested label", fontsize=9)
    ax.legend(fontsize=7, loc="center")

    ax = axes[1]
    inputs = np.stack([np.linspace(-2.5, 2.5, 40), np.full(40, 1.0)], 1).astype(np.float32)
    ax.scatter(inputs[:, 0], inputs[:, 1], s=12, c="k", marker="x", label="inputs")
    for strength, colour in zip((0.1, 0.4, 1.0), ("tab:purple", "tab:olive", "tab:cyan")):
        out = T.edit_run(run_dir, inputs, strength, seed=1)
        ax.scatter(out[:, 0], out[:, 1], s=8, c=colour, label=f"strength {strength}")
    ax.set_title("SDEdit: inputs on y = 1 and outputs", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")

    ax = axes[2]
    known = np.stack([np.linspace(-2.3, 2.3, 60), np.zeros(60)], 1).astype(np.float32)
    mask = np.stack([np.ones(60), np.zeros(60)], 1)
    for resample, marker, colour in ((1, "o", "tab:gray"), (3, ".", "tab:red")):
        done = T.inpaint_run(run_dir, known, mask, resample=resample, jump=10, seed=2)
        ax.scatter(done[:, 0], done[:, 1], s=10, c=colour, marker=marker,
                   label=f"resample {resample}")
    ax.set_title("RePaint: x known (60 values in [-2.3, 2.3]), y completed", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(FIGURE, dpi=110)
    plt.close(fig)
    print(f"wrote {FIGURE}")


if __name__ == "__main__":
    main(*sys.argv[1:])
