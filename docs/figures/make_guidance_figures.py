"""Regenerate the figures of classifier-free guidance, SDEdit and RePaint (README, "Guidance,
editing and inpainting on a trained DDPM"):

- docs/figures/guidance_2d.png: one class-conditional DDPM trained on four labelled Gaussian
  modes (the run of tests/test_guidance.py: modes at distance 2 from the origin, std 0.1,
  2000 steps); about a minute on one core.
- docs/figures/guidance_digits.png: the class-conditional UNet of
  ``minigen train ddpm --data digits --conditional --steps 3000`` (the image defaults; 14
  minutes on the shared 2-core machine, the figure 3 more), and with ``--measure`` the
  numbers of docs/tuning.md, "Guidance, SDEdit and RePaint on the digits" (printed as JSON;
  26 minutes more).

Run from the repository root (a run directory that holds a run is reused):
    python docs/figures/make_guidance_figures.py [run directory, default runs/guidance_2d]
    python docs/figures/make_guidance_figures.py digits [run directory, default
        runs/digits_cond] [--measure]
"""
import json
import os
import pathlib
import sys

import numpy as np

from minigen import data as D
from minigen.diffusion import trainer as T
from minigen.evaluate import digits_classifier
from minigen.trainer import denormalize, normalize
from minigen.viz import tile

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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def main(run_dir="runs/guidance_2d"):
    plt = _pyplot()
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


# --- the digits: a class-conditional UNet ---------------------------------------------------
DIGITS_FIGURE = pathlib.Path(__file__).with_name("guidance_digits.png")
DIGITS_STEPS = 3000
GUIDANCE = 0.5
"""The guidance weight docs/tuning.md recommends for the digits."""
RESAMPLE, JUMP = 3, 10
"""RePaint's resampling recommended there."""
STRENGTHS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def train_digits(run_dir):
    """``(ddpm, normalization)`` of ``minigen train ddpm --data digits --conditional --steps
    3000`` in ``run_dir`` (trained unless it holds a run)."""
    if not os.path.exists(os.path.join(run_dir, "config.json")):
        T.train_ddpm("digits", DIGITS_STEPS, run_dir, seed=0, conditional=True, progress=False,
                     figures=False)
    ddpm, config = T.load_run(run_dir)
    return ddpm, config["normalization"]


def originals(n):
    """The last ``n`` <= 297 digits of ``data.digits(seed=0)`` (the reference classifier's
    held-out ones) and the mask that knows their top half (1 = known)."""
    images = D.digits(seed=0)[0][-n:]
    mask = np.zeros_like(images)
    mask[:, :, :4] = 1
    return images, mask


def _label(images):
    return digits_classifier().probabilities(images).argmax(axis=1)


def measure_digits(ddpm, normalization, weights=(0.0, 0.5, 1.0, 2.0, 3.0, 5.0), per_class=50,
                   steps=50, n=200, resample=((1, 1), (RESAMPLE, JUMP)), strengths=STRENGTHS):
    """The numbers of docs/tuning.md: per guidance weight w, the reference classifier's
    agreement with the requested label and the Fréchet distance in its features
    (``per_class`` DDIM-``steps`` samples of each class); for ``n`` held-out digits with the
    top half known, the share of RePaint completions (the null class) that keep the
    original's classifier label, per (R, jump), and whether the known pixels came back
    exactly; per strength, the share of SDEdit outputs (DDIM-``steps`` over 0..t0) that keep
    the input's label, and its chance level sum_k p_k q_k (p, q: the label shares of inputs
    and outputs)."""
    classifier = digits_classifier()
    y = np.repeat(np.arange(10), per_class)
    out = {"guidance": [], "inpaint": [], "sdedit": []}
    for w in weights:
        x = T.sample_ddpm(ddpm, normalization, len(y), (1, 8, 8), "ddim", steps, seed=1, y=y,
                          guidance=w)
        out["guidance"].append({"w": w, "agreement": float(np.mean(_label(x) == y)),
                                "frechet": classifier.score(x)["frechet_distance"]})
        print(json.dumps(out["guidance"][-1]), flush=True)
    images, mask = originals(n)
    x0, target = normalize(images, normalization), _label(images)
    for r, j in resample:
        done = ddpm.inpaint(x0, mask, resample=r, jump=j, seed=2)
        out["inpaint"].append({
            "resample": r, "jump": j,
            "kept": float(np.mean(_label(denormalize(done, normalization)) == target)),
            "known_exact": bool(np.array_equal(done[mask == 1], x0[mask == 1]))})
        print(json.dumps(out["inpaint"][-1]), flush=True)
    p = np.bincount(target, minlength=10) / n
    for s in strengths:
        got = _label(denormalize(ddpm.edit(x0, s, sampler="ddim", steps=steps, seed=3),
                                 normalization))
        out["sdedit"].append({"strength": s, "kept": float(np.mean(got == target)),
                              "chance": float(p @ (np.bincount(got, minlength=10) / n))})
        print(json.dumps(out["sdedit"][-1]), flush=True)
    return out


def digits_figure(ddpm, normalization):
    """Three panels: guided samples per class (w = GUIDANCE, DDIM-50), SDEdit of held-out
    digits at four strengths, RePaint of their bottom half with R = 1 and R = RESAMPLE."""
    plt = _pyplot()
    cols = 8
    y = np.repeat(np.arange(10), cols)
    guided = T.sample_ddpm(ddpm, normalization, len(y), (1, 8, 8), "ddim", 50, seed=4, y=y,
                           guidance=GUIDANCE)
    images, mask = originals(cols)
    x0 = normalize(images, normalization)
    strengths = (0.1, 0.3, 0.5, 1.0)
    edited = [denormalize(ddpm.edit(x0, s, sampler="ddim", steps=50, seed=5), normalization)
              for s in strengths]
    masked = np.where(mask == 1, images, 0.0)
    completed = [denormalize(ddpm.inpaint(x0, mask, resample=r, jump=j, seed=6), normalization)
                 for r, j in ((1, 1), (RESAMPLE, JUMP))]
    panels = [
        (f"guided samples, w = {GUIDANCE}", guided, [f"--label {k}" for k in range(10)]),
        ("SDEdit (DDIM-50)", np.concatenate([images, *edited]),
         ["input"] + [f"strength {s}" for s in strengths]),
        ("RePaint, top half known", np.concatenate([images, masked, *completed]),
         ["original", "known (top)", "R = 1", f"R = {RESAMPLE}, jump {JUMP}"]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1, 1]})
    for ax, (title, grid, rows) in zip(axes, panels):
        ax.imshow(tile(grid, cols), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks([4.5 + 9 * k for k in range(len(rows))], rows, fontsize=7)
        ax.set_xticks([])
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(DIGITS_FIGURE, dpi=100)
    plt.close(fig)
    print(f"wrote {DIGITS_FIGURE}")


def main_digits(run_dir="runs/digits_cond", *flags):
    ddpm, normalization = train_digits(run_dir)
    digits_figure(ddpm, normalization)
    if "--measure" in flags:
        print(json.dumps(measure_digits(ddpm, normalization), indent=1))


if __name__ == "__main__":
    if sys.argv[1:2] == ["digits"]:
        main_digits(*[a for a in sys.argv[2:] if not a.startswith("--")],
                    *[a for a in sys.argv[2:] if a.startswith("--")])
    else:
        main(*sys.argv[1:])
