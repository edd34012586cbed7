"""The 2021 debate in one command: each family's fidelity-diversity knob swept on the same
labelled data (``python -m bench.compare --tradeoff``, or ``python -m bench.tradeoff``).

Dhariwal & Nichol (2021) claim that guided diffusion beats BigGAN in fidelity at a higher
recall, and that guidance (their classifier guidance, scale s) trades diversity for fidelity
as BigGAN's truncation (psi) does. Here, on a 2-D labelled mixture and on the 8x8 digits:

- the DDPM: one class-conditional model (label dropout 0.1, so it is also the unconditional
  one) swept in classifier-free guidance w (Ho & Salimans 2022) toward the requested labels,
  and its unconditional (null-class) model swept in classifier guidance s with a noise-aware
  classifier trained on the DDPM's own noise (:mod:`minigen.diffusion.classifier_guidance`,
  Algorithm 2 through DPM-Solver++(2M), 20 steps: 20 network and classifier evaluations);
- the GAN: a class-conditional GAN (:mod:`minigen.gan`) swept in truncation psi.

Every sample set asks for balanced labels (label i mod K) and is scored against held-out
real data of the same size: k-NN precision and recall (Kynkäänniemi et al. 2019, k = 3) and
the Fréchet distance, on the 2-D points or in the penultimate features of the reference
digits classifier (:mod:`minigen.evaluate`), and the classifier agreement: the share of
samples whose class (the nearest mixture mode; the reference classifier's digit) is the
requested one. "real" scores a disjoint real sample with its own labels. The report also
gives the DDPM's network evaluations (DPM-Solver++(2M) and DDIM steps, unguided conditional
model) needed to reach the GAN's Fréchet distance (untruncated), and samples per second of
both families (GAN: one pass; DDPM: DPM-Solver++(2M), 20 steps). ``--seeds N`` repeats
everything with N seeds (mean ± standard error); ``--work DIR`` keeps the trained runs, so
that a second call with the same steps loads them instead of training.

    python -m bench.compare --tradeoff --seeds 3                    # the full run
    python -m bench.compare --tradeoff --seeds 1 --data mixture     # a reduced run
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from minigen import backend, evaluate, gan, metrics, support
from minigen import data as datasets
from minigen.diffusion.classifier import ClassifierTrainer, load_classifier
from minigen.diffusion.classifier_guidance import classifier_guided_sample
from minigen.diffusion.trainer import load_run, sample_ddpm, train_ddpm
from minigen.trainer import denormalize, read_run_config

MIXTURE = datasets.Mixture(
    np.array([[2.0 * np.cos(2 * np.pi * k / 8), 2.0 * np.sin(2 * np.pi * k / 8)]
              for k in range(8)]), 0.35)
"""8 Gaussians on the circle of radius 2, std 0.35: neighbours 1.53 apart overlap, so the
Bayes classifier is right for about 97% of real points and guidance has boundaries to
avoid."""

KNOBS = {"classifier guidance s": (0.0, 0.5, 1.0, 2.0, 4.0, 8.0),
         "classifier-free w": (0.0, 0.5, 1.0, 2.0, 4.0),
         "truncation psi": (None, 2.0, 1.0, 0.5, 0.25)}
"""Each family's knob and its values, from the most diverse (s = 0: the unconditional model;
w = 0: the conditional model; psi = None: no truncation)."""

NFE_SAMPLERS = (("dpm++2m", (5, 10, 15, 20, 25)), ("ddim", (10, 25, 50)))
STEPS = {"mixture": dict(ddpm=3000, classifier=1500, gan=3000, n=2000),
         "digits": dict(ddpm=3000, classifier=1500, gan=3000, n=None)}
"""Training steps and samples per set (digits: n is the held-out third, 599)."""


class LabelledSet:
    """Training images/points with labels, a held-out reference set (the scoring) and a
    disjoint real sample with its labels (the "real" point), and the scorer."""

    def __init__(self, name, seed, n=None):
        self.name = name
        if name == "mixture":
            self.train, self.train_y = MIXTURE.sample(20000, seed, labels=True)
            n = n or STEPS["mixture"]["n"]
            self.reference = MIXTURE.sample(n, seed + 10**6)
            self.real, self.real_y = MIXTURE.sample(n, seed + 2 * 10**6, labels=True)
            self.classes, self.classifier = len(MIXTURE.modes), None
            return
        x, y = datasets.digits(seed=0)
        order = np.random.default_rng(seed).permutation(len(x))
        x, y = x[order], y[order]
        held = len(x) // 3
        n = n or held
        self.reference, self.real, self.real_y = x[:n], x[held:held + n], y[held:held + n]
        self.train, self.train_y = x[held:], y[held:]
        self.classes, self.classifier = 10, evaluate.digits_classifier()

    def score(self, samples, requested):
        """precision, recall, Fréchet distance and classifier agreement (%, but Fréchet)."""
        if self.classifier is None:
            feats, ref = samples, self.reference
            predicted = np.linalg.norm(samples[:, None] - MIXTURE.modes[None], axis=2).argmin(1)
        else:
            feats = self.classifier.features(samples)
            ref = self.classifier.features(self.reference)
            predicted = self.classifier.probabilities(samples).argmax(1)
        pr = support.knn_precision_recall(ref, feats, max_samples=None)
        return {"precision": 100 * pr["precision"], "recall": 100 * pr["recall"],
                "frechet": metrics.frechet_distance(feats, ref),
                "agreement": 100 * float((predicted == requested).mean())}


def _trained(path, steps, train):
    """Train into ``path`` unless it holds a finished run of ``steps`` steps (then load)."""
    done = os.path.isfile(os.path.join(path, "checkpoint.npz")) and (
        read_run_config(path).get("steps") == steps)
    if not done:
        train()


def train_all(data, steps, seed, work):
    """The conditional DDPM, its noise-aware classifier and the conditional GAN of ``data``
    (loaded from ``work`` when already trained); returns their run directories."""
    runs = {k: os.path.join(work, f"{data.name}-{seed}-{k}") for k in ("ddpm", "clf", "gan")}
    quiet = dict(progress=False, figures=False, overwrite=True)
    _trained(runs["ddpm"], steps["ddpm"], lambda: train_ddpm(
        data.train, steps["ddpm"], runs["ddpm"], seed=seed, labels=data.train_y,
        conditional=True, **quiet))
    config = read_run_config(runs["ddpm"])
    _trained(runs["clf"], steps["classifier"], lambda: ClassifierTrainer(
        data.train, data.train_y, runs["clf"], steps["classifier"], config["schedule"],
        config["normalization"], seed=seed, progress=False).fit(overwrite=True))
    _trained(runs["gan"], steps["gan"], lambda: gan.train_gan(
        data.train, steps["gan"], runs["gan"], seed=seed, labels=data.train_y,
        conditional=True, **quiet))
    return runs


def ddpm_samples(ddpm, config, labels, seed, knob, value, classifier=None, sampler="dpm++2m",
                 steps=20):
    """The DDPM's samples of ``labels``: classifier guidance (scale ``value``) of its
    null-class model, or classifier-free guidance (weight ``value``) of its conditional one."""
    shape = (len(labels),) + tuple(config["data_shape"])
    if knob == "classifier guidance s":
        x = classifier_guided_sample(ddpm, classifier, shape, labels, value, sampler, steps,
                                     seed=seed)
        return denormalize(backend.to_numpy(x), config["normalization"])
    return sample_ddpm(ddpm, config["normalization"], len(labels), config["data_shape"],
                       sampler, steps, seed=seed, y=labels, guidance=value)


def run_seed(data, steps, seed, work):
    """Every sweep point, the NFE curve and the speeds of one seed."""
    runs = train_all(data, steps, seed, work)
    ddpm, config = load_run(runs["ddpm"])
    classifier, _ = load_classifier(runs["clf"])
    labels = np.arange(len(data.reference)) % data.classes
    points = {"real": data.score(data.real, data.real_y)}
    for knob, values in KNOBS.items():
        for value in values:
            if knob == "truncation psi":
                x = gan.sample_run(runs["gan"], len(labels), seed, truncation=value,
                                   label=labels)
            else:
                x = ddpm_samples(ddpm, config, labels, seed, knob, value, classifier)
            points[f"{knob}={value}"] = data.score(x, labels)
    nfe = {f"{name} {k}": data.score(ddpm_samples(ddpm, config, labels, seed,
                                                  "classifier-free w", 0.0, None, name, k),
                                     labels)["frechet"]
           for name, ks in NFE_SAMPLERS for k in ks}
    t = time.perf_counter()
    gan.sample_run(runs["gan"], len(labels), seed, label=labels)
    gan_rate = len(labels) / (time.perf_counter() - t)
    t = time.perf_counter()
    ddpm_samples(ddpm, config, labels, seed, "classifier-free w", 0.0)
    ddpm_rate = len(labels) / (time.perf_counter() - t)
    return {"points": points, "nfe_frechet": nfe,
            "samples_per_s": {"GAN": gan_rate, "DDPM (DPM-Solver++ 20)": ddpm_rate},
            "load": os.getloadavg()[0]}


def _mean_se(values):
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def aggregate(per_seed):
    """{point: {metric: (mean, s.e.)}}, the NFE curve's means, speeds and the NFE needed."""
    first = per_seed[0]
    points = {p: {m: _mean_se([r["points"][p][m] for r in per_seed]) for m in first["points"][p]}
              for p in first["points"]}
    nfe = {k: _mean_se([r["nfe_frechet"][k] for r in per_seed]) for k in first["nfe_frechet"]}
    speed = {k: _mean_se([r["samples_per_s"][k] for r in per_seed])
             for k in first["samples_per_s"]}
    target = points["truncation psi=None"]["frechet"][0]
    needed = {}
    for name, ks in NFE_SAMPLERS:
        reached = [k for k in ks if nfe[f"{name} {k}"][0] <= target]
        needed[name] = reached[0] if reached else None
    return {"points": points, "nfe_frechet": nfe, "samples_per_s": speed,
            "nfe_to_match_gan": needed, "gan_frechet": target,
            "load": float(np.mean([r["load"] for r in per_seed]))}


def markdown(name, summary, seeds, command):
    def cell(m, digits=".1f"):
        mean, se = m
        return f"{mean:{digits}}" if len(seeds) == 1 else f"{mean:{digits}} ± {se:{digits}}"

    lines = [f"## {name} (seeds {seeds[0]}-{seeds[-1]}, mean ± s.e.; load avg "
             f"{summary['load']:.1f})", "", f"`{command}`", "",
             "| point | precision % | recall % | Fréchet | agreement % |",
             "| --- | --- | --- | --- | --- |"]
    for point, m in summary["points"].items():
        lines.append(f"| {point} | {cell(m['precision'])} | {cell(m['recall'])} | "
                     f"{cell(m['frechet'], '.3g')} | {cell(m['agreement'])} |")
    lines += ["", "Fréchet distance of the unguided conditional DDPM by sampler and steps "
              f"(the GAN's, untruncated: {summary['gan_frechet']:.3g}):", "",
              "| sampler, steps | Fréchet |", "| --- | --- |"]
    lines += [f"| {k} | {cell(v, '.3g')} |" for k, v in summary["nfe_frechet"].items()]
    needed = ", ".join(f"{k}: {v if v is not None else 'not reached'}"
                       for k, v in summary["nfe_to_match_gan"].items())
    speeds = ", ".join(f"{k} {cell(v, '.0f')}" for k, v in summary["samples_per_s"].items())
    lines += ["", f"Steps to match the GAN's Fréchet distance: {needed}. Samples per second: "
              f"{speeds}.", ""]
    return "\n".join(lines)


def plot(summaries, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(summaries), 2, figsize=(10, 4.2 * len(summaries)),
                             squeeze=False)
    colours = dict(zip(KNOBS, ("tab:blue", "tab:cyan", "tab:red")))
    for row, (name, s) in zip(axes, summaries.items()):
        for knob in KNOBS:
            keys = [k for k in s["points"] if k.startswith(knob + "=")]
            for ax, (xm, ym) in zip(row, (("recall", "precision"), ("agreement", "frechet"))):
                xs = [s["points"][k][xm] for k in keys]
                ys = [s["points"][k][ym] for k in keys]
                ax.errorbar([x[0] for x in xs], [y[0] for y in ys], xerr=[x[1] for x in xs],
                            yerr=[y[1] for y in ys], marker="o", ms=3, lw=1,
                            color=colours[knob], label=knob)
                ax.annotate(keys[0].split("=")[1], (xs[0][0], ys[0][0]), fontsize=6)
                ax.annotate(keys[-1].split("=")[1], (xs[-1][0], ys[-1][0]), fontsize=6)
        for ax, (xm, ym) in zip(row, (("recall", "precision"), ("agreement", "frechet"))):
            real = s["points"]["real"]
            ax.plot(real[xm][0], real[ym][0], "k*", ms=10, label="real vs real")
            ax.set(xlabel=xm + (" %" if xm != "frechet" else ""),
                   ylabel=ym + (" %" if ym != "frechet" else ""), title=name)
            ax.legend(fontsize=7)
        row[1].set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="mixture,digits",
                   help="comma-separated: mixture (the 2-D labelled mixture), digits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=3)
    for name, default in STEPS["mixture"].items():
        if name != "n":
            p.add_argument(f"--{name}-steps", type=int, default=None,
                           help=f"training steps (default {default} for the mixture, "
                                f"{STEPS['digits'][name]} for the digits)")
    p.add_argument("--samples", type=int, default=None,
                   help="samples per point (default 2000 mixture, 599 digits)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default=None, help="keep the trained runs here (and load them)")
    p.add_argument("--out", default=os.path.join("bench", "results", "tradeoff"))
    args = p.parse_args(argv)
    names = args.data.split(",")
    if not set(names) <= set(STEPS) or args.seeds < 1:
        p.error(f"--data must name some of {sorted(STEPS)} and --seeds be >= 1, got "
                f"{args.data!r}, {args.seeds}")
    backend.limit_threads(args.threads)
    command = "python -m bench.compare --tradeoff " + " ".join(
        sys.argv[1:] if argv is None else argv)
    seeds = list(range(args.seed, args.seed + args.seeds))
    os.makedirs(args.out, exist_ok=True)
    summaries, report, text = {}, {}, ["# The fidelity-diversity trade-off of both families", ""]
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or scratch
        os.makedirs(work, exist_ok=True)
        for name in names:
            steps = {k: getattr(args, f"{k}_steps") or v for k, v in STEPS[name].items()
                     if k != "n"}
            start = time.perf_counter()
            per_seed = [run_seed(LabelledSet(name, seed, args.samples), steps, seed, work)
                        for seed in seeds]
            summaries[name] = aggregate(per_seed)
            report[name] = {"steps": steps, "seconds": time.perf_counter() - start,
                            "per_seed": per_seed, **summaries[name]}
            text.append(markdown(f"{name}: training steps {steps}", summaries[name], seeds,
                                 command))
            print(text[-1], flush=True)
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("\n".join(text) + "\n![trade-off curves](tradeoff.png)\n")
    plot(summaries, os.path.join(args.out, "tradeoff.png"))
    return report


if __name__ == "__main__":
    main()
