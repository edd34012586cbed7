"""Coverage of the GAN (CLI defaults) and the DDPM on 2-D sets: PacGAN's mixtures, the other
tuning sets and the held-out sets of :mod:`bench.sets2d`.

PacGAN's protocol (Lin et al. 2018, Table 1) on ring8 and grid25: 2500 samples per trained
model; a sample is high quality within 3 std of its nearest mode, a mode is covered by at
least one high-quality sample, reverse KL of the high-quality mode histogram against
uniform. On every set, the support numbers of :mod:`minigen.support` against 200 000 fresh
points: k-NN precision and recall (k = 3), the share of samples inside the data's support
(a 100x100 histogram) and the worst region's share ratio (3x3 grid). Each model is trained
on the same data array (drawn with the run's seed) for several seeds; the table gives mean
± standard error over seeds. ``--real`` adds the baseline: a fresh real sample per seed,
independent of the training data and the reference, scored the same way.

    python bench/coverage.py                 # 5 seeds, ring8 and grid25, GAN and DDPM
    python bench/coverage.py --sets all --ddpm-samplers ddpm dpm++2m:20 ddim:50
    python bench/coverage.py --quick         # smoke run: 2 seeds, short training
    python bench/coverage.py --no-ddpm --seeds 3 --json bench/results/coverage.json
    python bench/coverage.py --jobs 2        # two runs at a time
    python bench/coverage.py --table docs/coverage_runs.jsonl [--compact]   # records -> table
    python bench/coverage.py --sets all --no-gan --keep-runs runs/cov      # keep the trained runs
    python bench/coverage.py --from-runs runs/cov --ddpm-samplers ddpm dpm++2m-sde:50  # resample
    python bench/coverage.py --paired docs/sampler_runs.jsonl   # samplers - ancestral, same runs

The DDPM column uses ``minigen.diffusion``'s trainer through its public functions
(``train_ddpm``/``sample_run``) with its defaults, for ``--ddpm-steps`` (default: as many
as the GAN), and samples each trained run with every sampler of ``--ddpm-samplers``
(default: the full ancestral chain); it is skipped when that module provides no trainer.
"""
import argparse
import glob
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time

if not __package__:  # run as a file: put the repository root, not bench/, first on the path
    # (bench/coverage.py would otherwise shadow the `coverage` package that numba imports)
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from bench import sets2d  # noqa: E402
from minigen import gan  # noqa: E402
from minigen.evaluate import MIXTURES  # noqa: E402

N_SAMPLES = 2500
PUBLISHED = {  # PacGAN Table 1, mean over 10 runs: (modes, high quality %, reverse KL)
    ("GAN (PacGAN Table 1)", "ring8"): (6.3, 98.2, 0.45),
    ("GAN (PacGAN Table 1)", "grid25"): (17.3, 94.8, 0.70),
    ("PacGAN4 (PacGAN Table 1)", "grid25"): (24.8, 93.6, 0.04),
}


def _ddpm():
    """(train_ddpm, sample_run) of minigen.diffusion, or None when it provides no trainer."""
    try:
        from minigen.diffusion.trainer import sample_run, train_ddpm
    except ImportError:
        return None
    return train_ddpm, sample_run


SAMPLER_NAMES = {"ddpm": "ancestral 1000", "ddim": "DDIM", "dpm++2m": "DPM-Solver++",
                 "dpm++2m-sde": "SDE-DPM-Solver++", "heun": "Heun", "stochastic": "stochastic"}
EDM_SAMPLERS = ("heun", "stochastic")
REAL = "real vs real"


def run_gan(name, seed, steps, out_dir):
    """(training seconds, {"GAN": samples})."""
    t = time.perf_counter()
    gan.train_gan(sets2d.training_data(name, seed), steps, out_dir, seed=seed, progress=False,
                  figures=False)
    return time.perf_counter() - t, {"GAN": gan.sample_run(out_dir, N_SAMPLES, seed=seed + 1000)}


def run_ddpm(ddpm, name, seed, steps, out_dir, samplers, options=None, family="DDPM"):
    """(training seconds, {model label: samples}) of one trained DDPM run (an EDM run for
    ``family`` "EDM"), trained with the trainer ``options`` beside the defaults, one entry
    per sampler spec ("ddpm", "ddim:50", "dpm++2m:20"; "heun:18", "stochastic:18" for EDM)."""
    train_ddpm, sample_run = ddpm
    options = dict(options or {}, **({"formulation": "edm"} if family == "EDM" else {}))
    t = time.perf_counter()
    train_ddpm(sets2d.training_data(name, seed), steps, out_dir, seed=seed, progress=False,
               figures=False, **options)
    return time.perf_counter() - t, sample_ddpm_run(sample_run, out_dir, seed, samplers,
                                                    model_label(family, options))


def model_label(family, options):
    """"DDPM", "EDM", or either with its non-default options: "DDPM [min_snr_gamma=5]"."""
    shown = {k: v for k, v in (options or {}).items() if k != "formulation"}
    return family + (" [" + ", ".join(f"{k}={v}" for k, v in shown.items()) + "]"
                     if shown else "")


def sample_ddpm_run(sample_run, run_dir, seed, samplers, family="DDPM"):
    """{model label: samples} of the trained DDPM run in ``run_dir``, one entry per sampler
    spec, each drawn from the generator seeded ``seed + 1000``. EDM samplers are labelled
    with their network evaluations per sample (2 steps - 1)."""
    out = {}
    for spec in samplers:
        sampler, _, n = spec.partition(":")
        if sampler in EDM_SAMPLERS:
            steps = int(n or 18)
            label = f"{family} ({SAMPLER_NAMES[sampler]} {steps} steps, {2 * steps - 1} NFE)"
        else:
            label = f"{family} ({SAMPLER_NAMES[sampler]}{' ' + n if n else ''})"
        out[label] = sample_run(run_dir, N_SAMPLES, sampler=sampler, steps=int(n) if n else None,
                                seed=seed + 1000)
    return out


def resample(keep_dir, samplers):
    """Records of every DDPM run kept in ``keep_dir`` (``--keep-runs``: DDPM-<set>-<seed>)
    sampled again with ``samplers``, without training (``seconds`` is the sampling time)."""
    paths = sorted(glob.glob(os.path.join(keep_dir, "DDPM-*-*")))
    if not paths:
        raise ValueError(f"no kept DDPM runs (DDPM-<set>-<seed>) in {keep_dir}")
    _, sample_run = _ddpm()
    records = []
    for path in paths:
        name, seed = os.path.basename(path)[len("DDPM-"):].rsplit("-", 1)
        for spec in samplers:
            t = time.perf_counter()
            [(label, samples)] = sample_ddpm_run(sample_run, path, int(seed), [spec]).items()
            record = {"model": label, "set": name, "seed": int(seed), **sets2d.score(samples, name),
                      "seconds": time.perf_counter() - t}
            print(json.dumps(record), flush=True)
            records.append(record)
    return records


PAIRED = ("high_quality", "in_support", "precision", "recall", "min_region_ratio")


def paired(runs, baseline="DDPM (ancestral 1000)"):
    """{(model, set): {metric: {"mean", "se"}}} of the difference model - ``baseline`` on the
    same trained run (same set and seed), per set and over all sets ("all"): a sampler is
    within noise of the baseline where the mean difference is within about 2 s.e. of 0."""
    base = {(r["set"], r["seed"]): r for r in runs if r["model"] == baseline}
    diffs = {}
    for r in runs:
        b = base.get((r["set"], r["seed"]))
        if r["model"] == baseline or b is None:
            continue
        d = {k: r[k] - b[k] for k in PAIRED if k in r and k in b}
        for key in ((r["model"], r["set"]), (r["model"], "all")):
            diffs.setdefault(key, []).append(d)
    out = {}
    for key, ds in diffs.items():
        out[key] = {"pairs": len(ds)}
        for k in PAIRED:
            v = np.array([d[k] for d in ds if k in d])
            if len(v):
                se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
                out[key][k] = {"mean": float(v.mean()), "se": se}
    return out


def paired_table(diffs):
    """Markdown table of :func:`paired`: points of each metric, sampler minus the baseline."""
    lines = ["| sampler | set | high quality | in support | precision | recall | worst region "
             "| pairs |", "| --- " * 8 + "|"]
    for (model, name), s in sorted(diffs.items(), key=lambda kv: (kv[0][0], kv[0][1] == "all")):
        lines.append(f"| {model} | {name} | " + " | ".join(
            "" if k not in s else (f"{s[k]['mean']:+.1f} ± {s[k]['se']:.1f}"
                                   if not np.isnan(s[k]["se"]) else f"{s[k]['mean']:+.1f}")
            for k in PAIRED) + f" | {s['pairs']} |")
    return "\n".join(lines)


def run_task(task):
    """Train and sample one (model, set, seed) in a temporary directory (copied to
    ``keep/<model>-<set>-<seed>`` when ``keep`` is a directory); [(record, samples)], one per
    sampler; ``seconds`` is the training time (the budget the models are compared at). The
    task is (model, set, seed, steps, samplers, keep[, trainer options]), model one of
    "real vs real", "GAN", "DDPM" and "EDM"."""
    model, name, seed, steps, samplers, keep, *options = task
    options = options[0] if options else {}
    if model == REAL:
        real = sets2d.real_sample(name, seed, N_SAMPLES)
        record = {"model": REAL, "set": name, "seed": seed, **sets2d.score(real, name)}
        print(json.dumps(record), flush=True)
        return [(record, real)]
    with tempfile.TemporaryDirectory() as out_dir:
        if model == "GAN":
            seconds, drawn = run_gan(name, seed, steps, out_dir)
        else:
            seconds, drawn = run_ddpm(_ddpm(), name, seed, steps, out_dir, samplers, options,
                                      family=model)
        if keep:
            shutil.copytree(out_dir, os.path.join(keep, f"{model}-{name}-{seed}"))
    out = []
    for label, samples in drawn.items():
        record = {"model": label, "set": name, "seed": seed, "steps": steps,
                  **sets2d.score(samples, name), "seconds": seconds}
        print(json.dumps(record), flush=True)
        out.append((record, samples))
    return out


METRICS = ("modes", "high_quality", "reverse_kl", "precision", "recall", "in_support",
           "min_region_ratio", "seconds")


def summarize(runs):
    """mean and standard error over seeds of each metric (s.e. = std (ddof 1) / sqrt(n)), and
    the number of seeds."""
    out = {"seeds": len(runs)}
    for key in METRICS:
        if key not in runs[0]:
            continue
        v = np.array([r[key] for r in runs], dtype=np.float64)
        se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
        out[key] = {"mean": float(v.mean()), "se": se}
    return out


def summaries(runs):
    """{(model, set, steps): summary} of the records ``runs``, one entry per group of seeds;
    sets in the order of :data:`bench.sets2d.SETS`, within a set real vs real, the GAN, then
    the other models in the order they first appear."""
    groups = {}
    for r in runs:
        groups.setdefault((r["model"], r["set"], r.get("steps")), []).append(r)
    first = {model: i for i, model in enumerate(dict.fromkeys(r["model"] for r in runs))}
    sets = list(sets2d.SETS)

    def order(key):
        model, name, steps = key
        rank = {REAL: -2, "GAN": -1}.get(model, first[model])
        return sets.index(name) if name in sets else len(sets), name, rank, steps or 0

    return {key: summarize(groups[key]) for key in sorted(groups, key=order)}


def load(path):
    """The records of a JSON-lines file written from this script's output."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _cell(s, key, digits):
    """mean ± s.e. (just the mean for one seed), empty where the metric is undefined."""
    if key not in s:
        return ""
    if np.isnan(s[key]["se"]):
        return f"{s[key]['mean']:.{digits}f}"
    return f"{s[key]['mean']:.{digits}f} ± {s[key]['se']:.{digits}f}"


def _modes(s, name):
    return f"{_cell(s, 'modes', 1)} / {len(MIXTURES[name].modes)}" if "modes" in s else ""


def _seconds(s):
    return f"{s['seconds']['mean']:.0f}" if "seconds" in s else ""


def table(results, compact=False):
    """Markdown table of :func:`summaries`. The full one has every metric and PacGAN's
    published rows; ``compact`` keeps modes, high quality, in support, precision and recall
    (docs/results.md's), naming each set once."""
    if compact:
        lines = ["| set | model | modes | high quality % | in support % | precision % | "
                 "recall % | train s | seeds |", "| --- " * 9 + "|"]
        shown = None
        for (model, name, _), s in results.items():
            lines.append(f"| {name if name != shown else ''} | {model} | {_modes(s, name)} | "
                         + " | ".join(_cell(s, k, 1) for k in ("high_quality", "in_support",
                                                               "precision", "recall"))
                         + f" | {_seconds(s)} | {s['seeds']} |")
            shown = name
        return "\n".join(lines)
    lines = ["| model | set | steps | modes | high quality % | reverse KL | precision % | "
             "recall % | in support % | worst region % | train s | seeds |", "| --- " * 12 + "|"]
    for (model, name, steps), s in results.items():
        lines.append(f"| {model} | {name} | {steps or ''} | {_modes(s, name)} | "
                     f"{_cell(s, 'high_quality', 1)} | {_cell(s, 'reverse_kl', 3)} | "
                     + " | ".join(_cell(s, k, 1) for k in ("precision", "recall", "in_support",
                                                          "min_region_ratio"))
                     + f" | {_seconds(s)} | {s['seeds']} |")
    for (model, name), (modes, hq, rkl) in PUBLISHED.items():
        if any(n == name for _, n, _ in results):
            lines.append(f"| {model} | {name} | | {modes} / {len(MIXTURES[name].modes)} | {hq} "
                         f"| {rkl} | | | | | | 10 |")
    return "\n".join(lines)


def plot(first_samples, path, seed=0):
    """Seed-0 samples of each model on each set (green) over fresh data (grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(first_samples)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.3), squeeze=False)
    for ax, (model, name) in zip(axes[0], keys):
        x, data = first_samples[(model, name)], sets2d.reference(name)[:5000]
        ax.scatter(data[:, 0], data[:, 1], s=1, c="k", alpha=0.15)
        ax.scatter(x[:, 0], x[:, 1], s=1, c="g", alpha=0.4)
        lim = np.abs(data).max() * 1.2
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
        ax.set_title(f"{model}, {name}, seed {seed}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. + seeds - 1")
    p.add_argument("--gan-steps", type=int, default=None,
                   help="GAN training steps (default: the CLI's, see minigen.gan.DEFAULT_STEPS)")
    p.add_argument("--ddpm-steps", type=int, default=None,
                   help="DDPM training steps (default: as many as the GAN's)")
    p.add_argument("--ddpm-samplers", nargs="+", default=["ddpm"],
                   help="samplers of each trained DDPM: ddpm (ancestral), ddim:STEPS, "
                        "dpm++2m:STEPS, dpm++2m-sde:STEPS")
    p.add_argument("--keep-runs", metavar="DIR",
                   help="keep each trained run in DIR/<model>-<set>-<seed> (to sample it later)")
    p.add_argument("--from-runs", metavar="DIR",
                   help="sample the DDPM runs kept in DIR with --ddpm-samplers, no training")
    p.add_argument("--paired", metavar="LOG",
                   help="print each sampler's difference from ancestral sampling on the same "
                        "trained runs, from the records in LOG, and exit")
    p.add_argument("--ddpm-options", type=json.loads, default={}, metavar="JSON",
                   help="DDPM trainer options besides the defaults, e.g. '{\"min_snr_gamma\": 5}'"
                        " (named in the model's label)")
    p.add_argument("--edm", action="store_true",
                   help="add the EDM formulation (Karras et al. 2022) on the same runs' data")
    p.add_argument("--edm-samplers", nargs="+", default=["heun:18"],
                   help="samplers of each trained EDM: heun:STEPS, stochastic:STEPS "
                        "(2 STEPS - 1 network evaluations)")
    p.add_argument("--edm-options", type=json.loads, default={}, metavar="JSON",
                   help="EDM trainer options besides the defaults")
    p.add_argument("--no-ddpm", action="store_true")
    p.add_argument("--no-gan", action="store_true", help="only the DDPM column")
    p.add_argument("--real", action="store_true",
                   help="add the real-vs-real baseline (a fresh real sample per seed)")
    p.add_argument("--table", metavar="LOG",
                   help="print the table of the records in LOG (JSON lines) and exit")
    p.add_argument("--compact", action="store_true", help="with --table: the columns of results.md")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs in parallel processes (the s / run column then includes contention)")
    p.add_argument("--sets", nargs="+", default=list(MIXTURES),
                   choices=list(sets2d.SETS) + ["all", "heldout"])
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 2 seeds, 300 training steps, DPM-Solver++ 20 steps")
    p.add_argument("--json", default=os.path.join("bench", "results", "coverage.json"))
    p.add_argument("--plot", default=os.path.join("bench", "results", "coverage.png"),
                   help="scatter plot of each model's seed-0 samples")
    args = p.parse_args(argv)
    if args.table:
        print(table(summaries(load(args.table)), compact=args.compact))
        return
    if args.paired:
        print(paired_table(paired(load(args.paired))))
        return
    if args.from_runs:
        try:
            resample(args.from_runs, args.ddpm_samplers)
        except ValueError as error:
            p.error(f"--from-runs: {error}")
        return
    gan_steps = args.gan_steps or gan.DEFAULT_STEPS
    ddpm_steps, samplers = args.ddpm_steps or gan_steps, args.ddpm_samplers
    if args.quick:
        args.seeds, gan_steps, ddpm_steps, samplers = 2, 300, 300, ["dpm++2m:20"]
    sets = {"all": list(sets2d.SETS), "heldout": list(sets2d.HELDOUT)}.get(args.sets[0],
                                                                              args.sets)
    ddpm = None if args.no_ddpm else _ddpm()
    if ddpm is None and not args.no_ddpm:
        print("minigen.diffusion provides no trainer: the DDPM column is skipped")

    models = (([REAL] if args.real else []) + ([] if args.no_gan else ["GAN"])
              + (["DDPM"] if ddpm is not None else []) + (["EDM"] if args.edm else []))
    tasks = [(model, name, seed, gan_steps if model == "GAN" else ddpm_steps,
              args.edm_samplers if model == "EDM" else samplers, args.keep_runs,
              args.edm_options if model == "EDM" else args.ddpm_options)
             for model in models for name in sets
             for seed in range(args.first_seed, args.first_seed + args.seeds)]
    if args.keep_runs:  # refuse before training rather than fail after it
        paths = [os.path.join(args.keep_runs, f"{model}-{name}-{seed}")
                 for model, name, seed, *_ in tasks if model != REAL]
        taken = [path for path in paths if os.path.exists(path)]
        if taken:
            p.error(f"--keep-runs: {taken[0]} already exists (a run is never overwritten; "
                    f"choose another directory)")
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            done = pool.map(run_task, tasks, chunksize=1)
    else:
        done = [run_task(task) for task in tasks]
    done = [pair for task in done for pair in task]
    runs = [r for r, _ in done]
    first_samples = {(r["model"], r["set"]): x for r, x in done if r["seed"] == args.first_seed}
    results = summaries(runs)
    print()
    print(table(results))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"gan_steps": gan_steps, "gan_options": gan.DEFAULTS, "ddpm_steps": ddpm_steps,
                   "ddpm_samplers": samplers, "n_samples": N_SAMPLES, "runs": runs,
                   "summary": [{"model": m, "set": s, **v} for (m, s, _), v in results.items()]},
                  f, indent=1, default=list)
    plot(first_samples, args.plot, args.first_seed)
    print(f"\nwrote {args.json} and {args.plot}")


if __name__ == "__main__":
    main()
