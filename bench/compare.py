"""GAN versus DDPM on the same 2-D data with the same wall-clock training budget.

Each family (``minigen.gan.train_gan`` with its tuned defaults, ``train_ddpm`` with its
defaults) trains for ``CALIBRATION_STEPS`` steps, then resumes (bit for bit, as the trainers
guarantee) in chunks sized by the step rate measured so far until ``--budget`` seconds of
wall clock are spent (:func:`train_for`). The report gives the steps, the chunks and the
measured training seconds of each. Both draw
``--samples`` samples (default ``N_SAMPLES``; the DDPM with its full ancestral chain),
timed for samples per second, scored with :func:`bench.sets2d.score` (mode coverage,
high-quality share and reverse KL on ring8/grid25; :mod:`minigen.support` precision, recall
and in-support share on every set; an ``.npy`` is split into training, reference and
real-vs-real parts).
The "real vs real" row scores a fresh real sample, disjoint from the training data and from
the reference sample, in the same way: the numbers a perfect model would get.

    python -m bench.compare --data ring8 --budget 60
    python -m bench.compare --data points.npy --budget 30 --out bench/results/compare_points

Writes ``report.md``, ``report.json`` and ``compare.png`` (samples side by side, training
curves) into ``--out``. Image data (digits) are refused: only 2-D sets are compared.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from bench import sets2d
from minigen import gan
from minigen.diffusion.trainer import sample_run as ddpm_sample_run
from minigen.diffusion.trainer import train_ddpm

N_SAMPLES = 2500
CALIBRATION_STEPS = 50
REAL_SEED = 555_555  # the real-vs-real sample: differs from the reference's and any run seed


class DataSet:
    """Training array, reference sample, disjoint real-vs-real sample and a name."""

    def __init__(self, data, seed, n_real=N_SAMPLES):
        if data in sets2d.SETS:
            self.name, self.scored_as = data, data
            self.train = sets2d.training_data(data, seed)
            self.reference = sets2d.reference(data)
            self.real = sets2d.SETS[data](n_real, seed=REAL_SEED + seed)
            return
        if not (data.endswith(".npy") and os.path.isfile(data)):
            raise SystemExit(f"bench.compare: --data must be one of {sorted(sets2d.SETS)} or an "
                             f"existing .npy file of 2-D points, got {data!r} (image data such "
                             f"as digits is not supported: only 2-D sets are compared)")
        x = np.load(data).astype(np.float32)
        if x.ndim != 2 or x.shape[1] != 2 or len(x) < 40:
            raise SystemExit(f"bench.compare: {data} must hold an (n, 2) array with n >= 40, "
                             f"got shape {x.shape} (only 2-D sets are compared)")
        # a permutation split: training half, reference quarter, real-vs-real quarter
        x = x[np.random.default_rng(seed).permutation(len(x))]
        half, three_q = len(x) // 2, 3 * len(x) // 4
        self.name, self.scored_as = os.path.basename(data), None
        self.train, self.reference, self.real = x[:half], x[half:three_q], x[three_q:]

    def score(self, samples):
        if self.scored_as is not None:
            return sets2d.score(samples, self.scored_as)
        from minigen.support import support_quality

        return {k: 100.0 * v for k, v in support_quality(samples, self.reference).items()}


FAMILIES = {
    "GAN": (lambda data, steps, out, seed, resume: gan.train_gan(
                data, steps, out, seed=seed, resume=resume, progress=False, figures=False),
            lambda out, n, seed: gan.sample_run(out, n, seed=seed)),
    "DDPM": (lambda data, steps, out, seed, resume: train_ddpm(
                 data, steps, out, seed=seed, resume=resume, progress=False, figures=False),
             lambda out, n, seed: ddpm_sample_run(out, n, seed=seed)),
}


def train_for(train, data, budget, seed, out):
    """Train in resumed chunks until ``budget`` seconds are spent: each chunk is as many
    steps as the rate of the previous chunk (resume and checkpoints included) fits in the
    time left, at most as many as the steps so far, so that the rate is measured over a
    growing window and the run stops close to the budget. (trainer, steps, seconds, chunks)."""
    steps, done, chunks, t = CALIBRATION_STEPS, 0, 0, time.perf_counter()
    last = t
    while True:
        trainer = train(data.train, steps, out, seed, chunks > 0)
        now = time.perf_counter()
        chunks, rate, done = chunks + 1, (steps - done) / (now - last), steps
        last, left = now, budget - (now - t)
        more = min(int(left * rate), steps)
        if left < 0.02 * budget or more < 1:
            return trainer, steps, now - t, chunks
        steps += more


def run_family(family, data, budget, seed, work_dir, n_samples=N_SAMPLES):
    """Train for the budget, sample: (record, samples, history)."""
    train, sample = FAMILIES[family]
    trainer, steps, train_s, chunks = train_for(train, data, budget, seed,
                                                os.path.join(work_dir, family.lower()))
    t = time.perf_counter()
    samples = sample(os.path.join(work_dir, family.lower()), n_samples, seed + 1000)
    sample_s = time.perf_counter() - t
    record = {"steps": steps, "train_s": train_s, "chunks": chunks,
              "samples_per_s": n_samples / sample_s, **data.score(samples)}
    return record, samples, trainer.history


COLUMNS = (("steps", "steps", 0), ("train_s", "train s", 1), ("modes", "modes", 0),
           ("high_quality", "high quality %", 1), ("reverse_kl", "reverse KL", 3),
           ("precision", "precision %", 1), ("recall", "recall %", 1),
           ("in_support", "in support %", 1), ("samples_per_s", "samples / s", 0))


def markdown(report):
    rows = report["results"]
    keys = [c for c in COLUMNS if any(c[0] in r for r in rows.values())]
    lines = ["| model | " + " | ".join(c[1] for c in keys) + " |",
             "| --- |" + " --- |" * len(keys)]
    for model, r in rows.items():
        lines.append(f"| {model} | " + " | ".join(
            f"{r[k]:.{d}f}" if k in r else "" for k, _, d in keys) + " |")
    return (f"# GAN vs DDPM on {report['data']}: {report['budget_s']:g} s of training each "
            f"(seed {report['seed']})\n\n`{report['command']}`\n\n" + "\n".join(lines) + "\n\n"
            f"{report['n_samples']} samples per model. Steps: as many as fit in the budget "
            f"(resumed chunks, see bench/compare.py). Real vs real: a fresh real sample disjoint from the training data and the "
            f"reference.\n\n![samples and training curves](compare.png)\n")


def plot(data, samples, histories, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(13, 3.3))
    lim = np.abs(data.reference).max() * 1.15
    for ax, (model, x) in zip(axes, samples.items()):
        ax.scatter(data.reference[:5000, 0], data.reference[:5000, 1], s=1, c="k", alpha=0.15)
        ax.scatter(x[:, 0], x[:, 1], s=1, c="tab:green", alpha=0.4)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=model)
    for ax, (family, h), keys in zip(axes[2:], histories.items(),
                                     (("d_loss", "g_loss"), ("loss",))):
        for key in keys:
            ax.plot(h["step"], h[key], lw=0.6, label=key)
        ax.set(xlabel="step", title=f"{family} training loss")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a 2-D set of bench.sets2d or an .npy file")
    p.add_argument("--budget", type=float, required=True, help="training seconds per family")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=N_SAMPLES, help="samples drawn per model")
    p.add_argument("--out", default=None, help="default: bench/results/compare_DATA")
    args = p.parse_args(argv)
    if args.budget <= 0 or args.samples < 10:
        p.error(f"--budget must be > 0 and --samples >= 10, got {args.budget} and {args.samples}")
    data = DataSet(args.data, args.seed, args.samples)
    out = args.out or os.path.join("bench", "results", f"compare_{data.name}")
    os.makedirs(out, exist_ok=True)
    results, samples, histories = {}, {}, {}
    with tempfile.TemporaryDirectory() as work:
        for family in FAMILIES:
            results[family], samples[family], histories[family] = run_family(
                family, data, args.budget, args.seed, work, args.samples)
    results["real vs real"] = data.score(data.real)
    command = "python -m bench.compare " + " ".join(sys.argv[1:] if argv is None else argv)
    report = {"data": data.name, "budget_s": args.budget, "seed": args.seed,
              "n_samples": args.samples, "calibration_steps": CALIBRATION_STEPS,
              "command": command, "results": results}
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(markdown(report))
    plot(data, samples, histories, os.path.join(out, "compare.png"))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
