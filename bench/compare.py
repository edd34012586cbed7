"""GAN versus DDPM versus VAE on the same data with the same wall-clock training budget: 2-D
sets and small images (the 8x8 digits, MNIST-5k, or an image ``.npy``).

Each family (``minigen.gan.train_gan``, ``train_ddpm`` and ``minigen.vae.trainer.train_vae``,
each with its defaults for the data's shape: MLPs for vectors, DCGAN / UNet / the paper's MLP
VAE for images) trains for ``CALIBRATION_STEPS`` steps, then
resumes (bit for bit, as the trainers guarantee) in chunks sized by the step rate measured so
far until ``--budget`` seconds of wall clock are spent (:func:`train_for`). The report gives
the steps, the chunks, the measured training seconds and the machine's mean 1-minute load
average over the chunks. All draw the same number of samples, timed for samples per second
(the DDPM: the full ancestral chain on 2-D data, DPM-Solver++(2M) with 20 steps on images,
``--sampler`` to change; the GAN and the VAE: one network pass). The VAE trains on the whole
training part like the others (``holdout`` 0) and evaluates its bound with one sample
(``eval_k`` 1), so that its checkpoint evaluation costs about as little as the others'.

2-D data are scored with :func:`bench.sets2d.score` (mode coverage, high-quality share and
reverse KL on ring8/grid25; :mod:`minigen.support` precision, recall and in-support share on
every set; an ``.npy`` is split into training, reference and real-vs-real parts); the "real vs
real" row scores a fresh real sample, disjoint from the training data and from the reference.

Images are scored with :func:`minigen.evaluate.image_quality` against held-out real images
(:class:`DataSet`): the data are split (a permutation drawn with the seed) into a
held-out third and a training two-thirds; all models train on the training part and draw as
many samples as the held-out part holds (or ``--samples``, at most that); "real vs real" scores
as many training images, disjoint from the held-out ones, in the same way. Fréchet distance
and k-NN precision/recall are biased by the sample size, so all three sets have the same n.
The digits and MNIST-5k are scored in the features of their reference classifier
(:func:`minigen.evaluate.reference_classifier`), with its class histogram; other images in
pixel space, without class numbers.

    python -m bench.compare --data ring8 --budget 60 --seeds 3
    python -m bench.compare --data digits --budget 240
    python -m bench.compare --data mnist5k --budget 120 --samples 300
    python -m bench.compare --data images.npy --budget 30 --out bench/results/compare_mine

``--tradeoff`` runs :mod:`bench.tradeoff` instead (each family's fidelity knob swept).

``--seeds N`` repeats everything with seeds seed, ..., seed + N - 1 and reports the mean and
its standard error. Writes ``report.md``, ``report.json`` and ``compare.png`` (samples of the
first seed side by side, training curves) into ``--out``.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from bench import sets2d
from minigen import backend, evaluate, gan
from minigen.diffusion.trainer import sample_run as ddpm_sample_run
from minigen.diffusion.trainer import train_ddpm
from minigen.vae import trainer as vae
from minigen.viz import tile

N_SAMPLES = 2500
VAE_OPTIONS = dict(holdout=0.0, eval_k=1)
"""The VAE trains on all the training data, as the others, and evaluates its bound at each
checkpoint with one sample."""
CALIBRATION_STEPS = 50
IMAGE_SAMPLER = ("dpm++2m", 20)
"""The DDPM sampler for images: DPM-Solver++(2M) with 20 steps, since 1000 ancestral UNet
steps would take about 50 times longer (the GAN-versus-DDPM section of docs/results.md)."""
MIN_IMAGES = 30


class DataSet:
    """Training array, reference sample, disjoint real-vs-real sample, a name and the scorer:
    2-D points (``images`` False) or images (n, C, H, W)."""

    def __init__(self, data, seed, n_real=None):
        self.images, self.classifier = False, None
        if data in evaluate.CLASSIFIED:
            self._split_images(evaluate.CLASSIFIED[data]["load"](seed=0)[0], seed, n_real, data)
            self.classifier = getattr(evaluate, f"{data}_classifier")()
            return
        if data in sets2d.SETS:
            self.name, self.scored_as = data, data
            self.train = sets2d.training_data(data, seed)
            self.reference = sets2d.reference(data)
            self.real = sets2d.real_sample(data, seed, n_real or N_SAMPLES)
            return
        if not (data.endswith(".npy") and os.path.isfile(data)):
            raise SystemExit(f"bench.compare: --data must be {' or '.join(evaluate.CLASSIFIED)}, "
                             f"one of {sorted(sets2d.SETS)} "
                             f"or an existing .npy file (2-D points or images), got {data!r}")
        x = np.load(data).astype(np.float32)
        if x.ndim in (3, 4):
            self._split_images(x, seed, n_real, os.path.basename(data))
            return
        if x.ndim != 2 or x.shape[1] != 2 or len(x) < 40:
            raise SystemExit(f"bench.compare: {data} must hold 2-D points (n, 2) with n >= 40 or "
                             f"images (n, H, W) or (n, C, H, W), got shape {x.shape}")
        # a permutation split: training half, reference quarter, real-vs-real quarter
        x = x[np.random.default_rng(seed).permutation(len(x))]
        half, three_q = len(x) // 2, 3 * len(x) // 4
        self.name, self.scored_as = os.path.basename(data), None
        self.train, self.reference, self.real = x[:half], x[half:three_q], x[three_q:]

    def _split_images(self, x, seed, n, name):
        """Held-out third (the reference), training rest; the real-vs-real sample is the first
        ``n`` training images. Images whose size is not a power of two (MNIST's 28) are
        trained on padded with their minimum (the background) to the next power of two, which
        the DCGAN needs, and the samples are cropped back (:meth:`crop`) to be scored."""
        if x.ndim == 3:
            x = x[:, None]
        if x.shape[2] != x.shape[3] or len(x) < MIN_IMAGES or not np.all(np.isfinite(x)):
            raise SystemExit(f"bench.compare: images must be square, finite and at least "
                             f"{MIN_IMAGES}, got shape {x.shape}")
        x = x[np.random.default_rng(seed).permutation(len(x))]
        held_out = len(x) // 3
        n = held_out if n is None else n
        if not 4 <= n <= held_out:
            raise SystemExit(f"bench.compare: --samples must lie in [4, {held_out}] (the held-out "
                             f"third of {len(x)} images) for {name}, got {n}")
        self.images, self.name, self.n_total = True, name, len(x)
        self.train, self.reference, self.real = x[held_out:], x[:n], x[held_out:held_out + n]
        self.size = x.shape[2]
        padded = 1 << (self.size - 1).bit_length()
        self.pad = (padded - self.size) // 2
        after = padded - self.size - self.pad
        self.train = np.pad(self.train, ((0, 0), (0, 0), (self.pad, after), (self.pad, after)),
                            constant_values=x.min())

    def crop(self, samples):
        """Samples of the (padded) training images' size cut back to the real images' size."""
        if not self.images:
            return samples
        return samples[:, :, self.pad:self.pad + self.size, self.pad:self.pad + self.size]

    @property
    def n_samples(self):
        return len(self.real)

    def score(self, samples):
        if self.images:
            q = evaluate.image_quality(samples, self.reference, self.classifier)
            del q["feature_space"]
            return {**q, "precision": 100.0 * q["precision"], "recall": 100.0 * q["recall"]}
        if self.scored_as is not None:
            return sets2d.score(samples, self.scored_as)
        from minigen.support import support_quality

        return {k: 100.0 * v for k, v in support_quality(samples, self.reference).items()}


FAMILIES = {
    "GAN": (lambda data, steps, out, seed, resume: gan.train_gan(
                data, steps, out, seed=seed, resume=resume, progress=False, figures=False),
            lambda out, n, seed, sampler: gan.sample_run(out, n, seed=seed)),
    "DDPM": (lambda data, steps, out, seed, resume: train_ddpm(
                 data, steps, out, seed=seed, resume=resume, progress=False, figures=False),
             lambda out, n, seed, sampler: ddpm_sample_run(out, n, sampler=sampler[0],
                                                           steps=sampler[1], seed=seed)),
    "VAE": (lambda data, steps, out, seed, resume: vae.train_vae(
                data, steps, out, seed=seed, resume=resume, progress=False, figures=False,
                **({} if resume else VAE_OPTIONS)),
            lambda out, n, seed, sampler: vae.sample_run(out, n, seed=seed)),
}
LOSSES = {"GAN": ("d_loss", "g_loss"), "DDPM": ("loss",), "VAE": ("reconstruction", "kl")}
"""The training curves each family's panel of the figure shows."""


def train_for(train, data, budget, seed, out):
    """Train in resumed chunks until ``budget`` seconds are spent: each chunk is as many
    steps as the rate of the previous chunk (resume and checkpoints included) fits in the
    time left, at most as many as the steps so far, so that the rate is measured over a
    growing window and the run stops close to the budget. (trainer, steps, seconds, chunks,
    mean 1-minute load average at the chunks' ends)."""
    steps, done, chunks, t = CALIBRATION_STEPS, 0, 0, time.perf_counter()
    last, loads = t, []
    while True:
        trainer = train(data.train, steps, out, seed, chunks > 0)
        now = time.perf_counter()
        loads.append(os.getloadavg()[0])
        chunks, rate, done = chunks + 1, (steps - done) / (now - last), steps
        last, left = now, budget - (now - t)
        more = min(int(left * rate), steps)
        if left < 0.02 * budget or more < 1:
            return trainer, steps, now - t, chunks, float(np.mean(loads))
        steps += more


def run_family(family, data, budget, seed, work_dir, sampler):
    """Train for the budget, sample: (record, samples, history)."""
    train, sample = FAMILIES[family]
    run_dir = os.path.join(work_dir, family.lower())
    trainer, steps, train_s, chunks, load = train_for(train, data, budget, seed, run_dir)
    t = time.perf_counter()
    samples = data.crop(sample(run_dir, data.n_samples, seed + 1000, sampler))
    sample_s = time.perf_counter() - t
    record = {"steps": steps, "train_s": train_s, "chunks": chunks, "load": load,
              "samples_per_s": data.n_samples / sample_s, **data.score(samples)}
    return record, samples, trainer.history


COLUMNS = (("steps", "steps", 0), ("train_s", "train s", 1), ("load", "load avg", 1),
           ("modes", "modes", 1), ("high_quality", "high quality %", 1),
           ("reverse_kl", "reverse KL", 3), ("class_coverage", "classes", 1),
           ("class_tv", "class TV", 3), ("mean_confidence", "confidence", 3),
           ("frechet_distance", "Fréchet", 2), ("precision", "precision %", 1),
           ("recall", "recall %", 1), ("in_support", "in support %", 1),
           ("samples_per_s", "samples / s", 0))


def aggregate(per_seed):
    """Mean and standard error (std with ddof 1 over sqrt(n); 0 for one seed; None when a
    value is infinite, e.g. the reverse KL of a run that covers no mode) of each number of each
    row over the seeds: ({row: {key: mean}}, {row: {key: s.e.}})."""
    runs = list(per_seed.values())
    means, errors = {}, {}
    for row in runs[0]:
        means[row], errors[row] = {}, {}
        for key in runs[0][row]:
            v = np.array([r[row][key] for r in runs], dtype=np.float64)
            means[row][key] = float(v.mean())
            errors[row][key] = (float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
                                ) if np.all(np.isfinite(v)) else None
    return means, errors


def _cell(report, row, key, digits):
    mean = report["results"][row].get(key)
    if mean is None:
        return ""
    error = report["stderr"][row][key]
    if len(report["seeds"]) == 1 or error is None:
        return f"{mean:.{digits if key not in ('modes', 'class_coverage') else 0}f}"
    return f"{mean:.{digits}f} ± {error:.{digits}f}"


def markdown(report):
    rows = report["results"]
    keys = [c for c in COLUMNS if any(c[0] in r for r in rows.values())]
    lines = ["| model | " + " | ".join(c[1] for c in keys) + " |",
             "| --- |" + " --- |" * len(keys)]
    for model in rows:
        lines.append(f"| {model} | " + " | ".join(_cell(report, model, k, d)
                                                  for k, _, d in keys) + " |")
    seeds = report["seeds"]
    seed_text = (f"seed {seeds[0]}" if len(seeds) == 1 else
                 f"seeds {seeds[0]}-{seeds[-1]}: mean ± standard error over {len(seeds)} runs")
    return (f"# {' vs '.join(FAMILIES)} on {report['data']}: {report['budget_s']:g} s of training each "
            f"({seed_text})\n\n`{report['command']}`\n\n" + "\n".join(lines) + "\n\n"
            f"{report['n_samples']} samples per model; DDPM sampler: {report['ddpm_sampler']}. "
            f"Steps: as many as fit in the budget (resumed chunks, see bench/compare.py); load "
            f"avg: the machine's 1-minute load average during training. "
            f"{report['protocol']}\n\n![samples and training curves](compare.png)\n")


def protocol(data):
    """The scoring protocol, in words, for the report."""
    if not data.images:
        return ("Real vs real: a fresh real sample disjoint from the training data and the "
                "reference.")
    trained = data.n_total - evaluate.CLASSIFIED.get(data.name, {}).get("held_out", 0)
    space = ("the penultimate-layer features of the reference classifier of minigen.evaluate "
             f"(trained on {trained} of the {data.n_total} images, so on about "
             f"{trained / data.n_total:.0%} of both real sets), classes by its labels"
             if data.classifier is not None else
             "pixel space (no classifier for these images: class coverage, class TV and "
             "confidence are n/a)")
    return (f"Protocol: the {data.n_total} images are split by a "
            f"permutation (the seed) into a held-out third and a training rest; all models "
            f"train on the training rest and are scored against {data.n_samples} held-out "
            f"images; real vs real: {data.n_samples} training images, disjoint from the "
            f"held-out ones, scored the same way (what a model reproducing its training set, "
            f"or drawing fresh data, gets; Fréchet distance and precision/recall are biased "
            f"by n, so every set has the same n). Fréchet distance and k-NN precision/recall "
            f"(k = 3, Kynkäänniemi et al. 2019) in {space}.")


def plot(data, samples, histories, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {**samples, "real (held out)": data.reference} if data.images else samples
    columns = len(panels) + len(histories)
    fig, axes = plt.subplots(1, columns, figsize=(3.2 * columns, 3.3))
    for ax, (model, x) in zip(axes, panels.items()):
        if data.images:
            lo, hi = data.train.min(), data.train.max()
            ax.imshow(tile(2 * (x[:64] - lo) / max(hi - lo, 1e-12) - 1, 8), cmap="gray",
                      vmin=0, vmax=1, interpolation="nearest")
            ax.set_axis_off()
            ax.set_title(model)
            continue
        lim = np.abs(data.reference).max() * 1.15
        ax.scatter(data.reference[:5000, 0], data.reference[:5000, 1], s=1, c="k", alpha=0.15)
        ax.scatter(x[:, 0], x[:, 1], s=1, c="tab:green", alpha=0.4)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=model)
    for ax, (family, h) in zip(axes[len(panels):], histories.items()):
        for key in LOSSES[family]:
            ax.plot(h["step"], h[key], lw=0.6, label=key)
        ax.set(xlabel="step", title=f"{family} training loss")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80 if data.images else 110)
    plt.close(fig)


def main(argv=None):
    if "--tradeoff" in (sys.argv[1:] if argv is None else argv):  # the knobs: bench/tradeoff.py
        from bench import tradeoff

        return tradeoff.main([a for a in (sys.argv[1:] if argv is None else argv)
                              if a != "--tradeoff"])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True,
                   help="digits, mnist5k, a 2-D set of bench.sets2d, or an .npy file (points or "
                        "images)")
    p.add_argument("--budget", type=float, required=True, help="training seconds per family")
    p.add_argument("--seed", type=int, default=0, help="the first seed")
    p.add_argument("--seeds", type=int, default=1, help="runs, with seeds seed, seed + 1, ...")
    p.add_argument("--samples", type=int, default=None,
                   help=f"samples drawn per model (default {N_SAMPLES} for 2-D data, the "
                        f"held-out third for images)")
    p.add_argument("--sampler", choices=("ddpm", "ddim", "dpm++2m"), default=None,
                   help=f"the DDPM's sampler (default: ddpm, the ancestral chain, for 2-D data; "
                        f"{IMAGE_SAMPLER[0]} for images)")
    p.add_argument("--sampler-steps", type=int, default=None,
                   help="steps of a ddim/dpm++2m sampler (default 50 for ddim, 20 for dpm++2m)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS and Numba threads (default 1: see minigen.backend.limit_threads; "
                        "with 2 threads on 2 busy shared cores, 2-D training ran ~40x slower)")
    p.add_argument("--out", default=None, help="default: bench/results/compare_DATA")
    args = p.parse_args(argv)
    if args.budget <= 0 or (args.samples is not None and args.samples < 4) or args.seeds < 1:
        p.error(f"--budget must be > 0, --samples >= 4 and --seeds >= 1, got {args.budget}, "
                f"{args.samples} and {args.seeds}")
    if args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    backend.limit_threads(args.threads)
    seeds = list(range(args.seed, args.seed + args.seeds))
    per_seed, shown = {}, None
    for seed in seeds:
        data = DataSet(args.data, seed, args.samples)
        default = IMAGE_SAMPLER if data.images else ("ddpm", None)
        name = args.sampler or default[0]
        steps = default[1] if name == default[0] else None
        sampler = (name, steps if args.sampler_steps is None else args.sampler_steps)
        if name == "ddpm" and args.sampler_steps is not None:
            p.error("--sampler-steps is for ddim and dpm++2m (ddpm runs all T steps)")
        results, samples, histories = {}, {}, {}
        with tempfile.TemporaryDirectory() as work:
            for family in FAMILIES:
                results[family], samples[family], histories[family] = run_family(
                    family, data, args.budget, seed, work, sampler)
        results["real vs real"] = data.score(data.real)
        per_seed[seed] = results
        shown = shown or (data, samples, histories)
    means, errors = aggregate(per_seed)
    data = shown[0]
    out = args.out or os.path.join("bench", "results", f"compare_{data.name}")
    os.makedirs(out, exist_ok=True)
    command = "python -m bench.compare " + " ".join(sys.argv[1:] if argv is None else argv)
    sampler_text = ("ddpm (ancestral, all T steps)" if sampler[0] == "ddpm" else
                    f"{sampler[0]}, {sampler[1] or {'ddim': 50, 'dpm++2m': 20}[sampler[0]]} steps")
    report = {"data": data.name, "budget_s": args.budget, "seeds": seeds,
              "n_samples": data.n_samples, "calibration_steps": CALIBRATION_STEPS,
              "ddpm_sampler": sampler_text, "protocol": protocol(data), "command": command,
              "results": means, "stderr": errors,
              "per_seed": {str(s): r for s, r in per_seed.items()}}
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(markdown(report))
    plot(data, *shown[1:], os.path.join(out, "compare.png"))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
