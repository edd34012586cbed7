"""One tuning run of the 2-D DDPM: train on a set of :mod:`bench.sets2d` with some options,
sample 2500 points, score them, append the record to a JSON-lines log (docs/tuning.md).

    python -m bench.tune2d --set checkerboard --steps 6000 --seed 0 \\
        --options '{"model_config": {"fourier_features": 6}}' --samplers ddpm dpm++2m:20

Options override :data:`minigen.diffusion.trainer.VECTOR_DEFAULTS` (``model_config`` entries
are merged into the default's). One thread: set OMP_NUM_THREADS=1 (the script also caps
BLAS and Numba threads through :func:`minigen.cli.limit_threads`).
"""
import argparse
import json
import os
import sys
import tempfile
import time

if not __package__:
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from bench import sets2d  # noqa: E402
from minigen.cli import limit_threads  # noqa: E402
from minigen.diffusion import trainer as ddpm_trainer  # noqa: E402

N_SAMPLES = 2500


def merged_options(options):
    """``options`` over the vector defaults, ``model_config`` merged key by key."""
    options = dict(options)
    if "model_config" in options:
        options["model_config"] = {**ddpm_trainer.VECTOR_DEFAULTS["model_config"],
                                   **options["model_config"]}
    return options


def run(name, steps, seed, options, samplers, keep=None):
    """Train, then sample with each sampler ("ddpm", "ddim:50", "dpm++2m:20"); records. The
    run directory is ``keep`` when given (else a temporary one)."""
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = keep or tmp
        start = time.perf_counter()
        ddpm_trainer.train_ddpm(sets2d.training_data(name, seed), steps, out_dir, seed=seed,
                                progress=False, figures=False, **merged_options(options))
        train_seconds = time.perf_counter() - start
        for spec in samplers:
            sampler, _, n_steps = spec.partition(":")
            start = time.perf_counter()
            x = ddpm_trainer.sample_run(out_dir, N_SAMPLES, sampler=sampler,
                                        steps=int(n_steps) if n_steps else None,
                                        seed=seed + 1000)
            records.append({"set": name, "steps": steps, "seed": seed, "options": options,
                            "sampler": spec, "train_s": round(train_seconds, 1),
                            "sample_s": round(time.perf_counter() - start, 1),
                            **{k: round(v, 4) for k, v in sets2d.score(x, name).items()}})
    return records


COLUMNS = (("precision", "k-NN prec."), ("recall", "k-NN recall"), ("in_support", "in support"),
           ("min_region_ratio", "worst region"), ("modes", "modes"),
           ("high_quality", "high q."), ("reverse_kl", "rev. KL"),
           ("curve_precision", "curve prec."))


def table(path):
    """The runs logged in ``path`` as a Markdown table (percentages, one row per sampling)."""
    lines = ["| set | steps | seed | options | sampler | train s | "
             + " | ".join(title for _, title in COLUMNS) + " |",
             "| --- " * (6 + len(COLUMNS)) + "|"]
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            options = json.dumps(r["options"], separators=(",", ":")).replace("|", "/")
            cells = [f"{r[k]:.3f}" if k == "reverse_kl" and k in r else
                     (f"{r[k]:.1f}" if k in r else "") for k, _ in COLUMNS]
            lines.append(f"| {r['set']} | {r['steps']} | {r['seed']} | `{options}` | "
                         f"{r['sampler']} | {r['train_s']:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", choices=list(sets2d.SETS))
    p.add_argument("--table", metavar="LOG", help="print the runs of LOG as a Markdown table")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--options", default="{}", help="JSON dict over VECTOR_DEFAULTS")
    p.add_argument("--samplers", nargs="+", default=["ddpm"])
    p.add_argument("--log", default=os.path.join("docs", "tuning_runs.jsonl"))
    p.add_argument("--keep", help="keep the trained run in this directory")
    args = p.parse_args(argv)
    if args.table:
        print(table(args.table))
        return
    if args.set is None:
        p.error("--set is required")
    limit_threads(1)
    for record in run(args.set, args.steps, args.seed, json.loads(args.options), args.samplers,
                      args.keep):
        line = json.dumps(record)
        print(line, flush=True)
        with open(args.log, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
