"""Mode coverage of the GAN (CLI defaults) and the DDPM on PacGAN's 2-D mixtures.

PacGAN's protocol (Lin et al. 2018, Table 1): ring of 8 Gaussians and the 25-Gaussian grid,
2500 samples per trained model; a sample is high quality within 3 std of its nearest mode, a
mode is covered by at least one high-quality sample, reverse KL of the high-quality mode
histogram against uniform. Each model is trained on the same data array (drawn with the
run's seed) for several seeds; the table gives mean ± standard error over seeds.

    python bench/coverage.py                 # 5 seeds, both sets, GAN and DDPM
    python bench/coverage.py --quick         # smoke run: 2 seeds, short training
    python bench/coverage.py --no-ddpm --seeds 3 --json bench/results/coverage.json
    python bench/coverage.py --jobs 2        # two runs at a time

The DDPM column uses ``minigen.diffusion``'s trainer through its public functions
(``train_ddpm``/``sample_run``) with its defaults, for as many steps as the GAN, sampled
with its full ancestral chain (``--ddpm-sample-steps N``: N DDIM steps instead); it is
skipped when that module provides no trainer.
"""
import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time

if not __package__:  # run as a file: put the repository root, not bench/, first on the path
    # (bench/coverage.py would otherwise shadow the `coverage` package that numba imports)
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from minigen import data as datasets, gan, metrics  # noqa: E402

SETS = {"ring8": datasets.RING8, "grid25": datasets.GRID25}
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


def run_gan(name, seed, steps, out_dir):
    gan.train_gan(name, steps, out_dir, seed=seed, progress=False, figures=False)
    return gan.sample_run(out_dir, N_SAMPLES, seed=seed + 1000)


def run_ddpm(ddpm, name, seed, steps, out_dir, sample_steps):
    train_ddpm, sample_run = ddpm
    x = datasets.load_dataset(name, seed=seed)  # the array train_gan draws for this seed
    train_ddpm(x, steps, out_dir, seed=seed, progress=False, figures=False)
    if not sample_steps:
        return sample_run(out_dir, N_SAMPLES, sampler="ddpm", seed=seed + 1000)
    return sample_run(out_dir, N_SAMPLES, sampler="ddim", steps=sample_steps, seed=seed + 1000)


def run_task(task):
    """Train and sample one (model, set, seed) in a temporary directory; (record, samples)."""
    model, name, seed, steps, sample_steps = task
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as out_dir:
        if model == "GAN":
            samples = run_gan(name, seed, steps, out_dir)
        else:
            samples = run_ddpm(_ddpm(), name, seed, steps, out_dir, sample_steps)
    record = {"model": model, "set": name, "seed": seed, **score(samples, name),
              "seconds": time.perf_counter() - t}
    print(json.dumps(record), flush=True)
    return record, samples


def score(samples, name):
    c = metrics.mode_coverage(samples, SETS[name].modes, SETS[name].std)
    return {"modes": c["modes_covered"], "high_quality": 100.0 * c["high_quality"],
            "reverse_kl": c["reverse_kl"]}


def summarize(runs):
    """mean and standard error over seeds of each metric (s.e. = std (ddof 1) / sqrt(n))."""
    out = {}
    for key in ("modes", "high_quality", "reverse_kl", "seconds"):
        v = np.array([r[key] for r in runs], dtype=np.float64)
        se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
        out[key] = {"mean": float(v.mean()), "se": se}
    return out


def table(results, seeds):
    lines = ["| model | set | modes | high quality % | reverse KL | s / run | seeds |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    def cell(s, key, digits):
        return f"{s[key]['mean']:.{digits}f} ± {s[key]['se']:.{digits}f}"

    for (model, name), s in results.items():
        n = SETS[name].modes.shape[0]
        lines.append(f"| {model} | {name} | {cell(s, 'modes', 1)} / {n} | "
                     f"{cell(s, 'high_quality', 1)} | {cell(s, 'reverse_kl', 3)} | "
                     f"{s['seconds']['mean']:.0f} | {seeds} |")
    for (model, name), (modes, hq, rkl) in PUBLISHED.items():
        n = SETS[name].modes.shape[0]
        lines.append(f"| {model} | {name} | {modes} / {n} | {hq} | {rkl} | | 10 |")
    return "\n".join(lines)


def plot(first_samples, path):
    """Seed-0 samples of each model on each set (green) over the mixture's modes (black)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(first_samples)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.3), squeeze=False)
    for ax, (model, name) in zip(axes[0], keys):
        x, modes = first_samples[(model, name)], SETS[name].modes
        ax.scatter(x[:, 0], x[:, 1], s=1, c="g", alpha=0.4)
        ax.scatter(modes[:, 0], modes[:, 1], s=8, c="k", marker="x")
        lim = np.abs(modes).max() * 1.4
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=f"{model}, {name}, seed 0")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--gan-steps", type=int, default=None,
                   help="GAN training steps (default: the CLI's, see minigen.gan.DEFAULT_STEPS)")
    p.add_argument("--ddpm-steps", type=int, default=None,
                   help="DDPM training steps (default: as many as the GAN's)")
    p.add_argument("--ddpm-sample-steps", type=int, default=0,
                   help="sample the DDPM with this many DDIM steps (eta 0) instead of its full "
                        "ancestral chain (0, the default)")
    p.add_argument("--no-ddpm", action="store_true")
    p.add_argument("--no-gan", action="store_true", help="only the DDPM column")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs in parallel processes (the s / run column then includes contention)")
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 2 seeds, 300 training steps, 20 DDIM steps")
    p.add_argument("--json", default=os.path.join("bench", "results", "coverage.json"))
    p.add_argument("--plot", default=os.path.join("bench", "results", "coverage.png"),
                   help="scatter plot of each model's seed-0 samples")
    args = p.parse_args(argv)
    gan_steps = args.gan_steps or gan.DEFAULT_STEPS
    ddpm_steps, sample_steps = args.ddpm_steps or gan_steps, args.ddpm_sample_steps
    if args.quick:
        args.seeds, gan_steps, ddpm_steps, sample_steps = 2, 300, 300, 20
    ddpm = None if args.no_ddpm else _ddpm()
    if ddpm is None and not args.no_ddpm:
        print("minigen.diffusion provides no trainer: the DDPM column is skipped")

    models = ([] if args.no_gan else ["GAN"]) + (["DDPM"] if ddpm is not None else [])
    tasks = [(model, name, seed, gan_steps if model == "GAN" else ddpm_steps, sample_steps)
             for model in models for name in args.sets for seed in range(args.seeds)]
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            done = pool.map(run_task, tasks, chunksize=1)
    else:
        done = [run_task(task) for task in tasks]
    runs = [r for r, _ in done]
    first_samples = {(r["model"], r["set"]): x for r, x in done if r["seed"] == 0}
    results = {key: summarize([r for r in runs if (r["model"], r["set"]) == key])
               for key in ((model, name) for model in models for name in args.sets)}
    print()
    print(table(results, args.seeds))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"gan_steps": gan_steps, "gan_options": gan.DEFAULTS, "ddpm_steps": ddpm_steps,
                   "ddpm_sample_steps": sample_steps, "n_samples": N_SAMPLES, "runs": runs,
                   "summary": [{"model": m, "set": s, **v} for (m, s), v in results.items()]},
                  f, indent=1, default=list)
    plot(first_samples, args.plot)
    print(f"\nwrote {args.json} and {args.plot}")


if __name__ == "__main__":
    main()
