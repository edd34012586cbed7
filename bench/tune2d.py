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


def run(name, steps, seed, options, samplers):
    """Train, then sample with each sampler ("ddpm", "ddim:50", "dpm++2m:20"); records."""
    records = []
    with tempfile.TemporaryDirectory() as out_dir:
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", required=True, choices=list(sets2d.SETS))
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--options", default="{}", help="JSON dict over VECTOR_DEFAULTS")
    p.add_argument("--samplers", nargs="+", default=["ddpm"])
    p.add_argument("--log", default=os.path.join("docs", "tuning_runs.jsonl"))
    args = p.parse_args(argv)
    limit_threads(1)
    for record in run(args.set, args.steps, args.seed, json.loads(args.options), args.samplers):
        line = json.dumps(record)
        print(line, flush=True)
        with open(args.log, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
