"""The architecture changes of Dhariwal & Nichol (2021, Sec. 3, their Table 1) ablated on the
digits at equal training time: the default UNet, then each UNet option alone (AdaGN, BigGAN
residual up/downsampling, attention at 8x8 and 4x4, residual rescaling by 1/sqrt(2)) and all
of them, scored as :mod:`bench.compare` scores the digits: Fréchet distance and k-NN precision
and recall in the reference classifier's features against the held-out third (DPM-Solver++(2M),
20 steps), with the real-versus-real row. ``--seeds N``: mean ± standard error.

Equal time means equal calibrated compute, not equal wall-clock under whatever load the
machine has: first each variant's seconds per training step are measured in ``--repeats``
interleaved rounds of ``--calibration-steps`` steps (a change of load then hits every
variant alike; the fastest round of each, the least disturbed, counts), at the priority the
command was started with; then each variant trains ``budget / (seconds per step)`` steps.
Only the step counts matter from then on, so the training and sampling run at the lowest
priority (``nice 19``) and may take as long as the machine makes them. The table gives the
calibration (every round) and the load average around it.

    python -m bench.ablation --budget 120 --seeds 1
"""
import argparse
import os
import sys
import tempfile
import time

from bench.compare import DataSet, IMAGE_SAMPLER, aggregate
from minigen import backend
from minigen.diffusion.trainer import DDPMTrainer, sample_run, train_ddpm

VARIANTS = {
    "default": {},
    "AdaGN": dict(adagn=True),
    "residual up/down": dict(resblock_updown=True),
    "attention 8x8 and 4x4": dict(attention_resolutions=(8, 4)),
    "rescale 1/sqrt(2)": dict(rescale_residual=True),
    "all four": dict(adagn=True, resblock_updown=True, rescale_residual=True,
                     attention_resolutions=(8, 4)),
}
SCORES = ("frechet_distance", "precision", "recall")


def calibrate(x, repeats, steps):
    """Seconds per training step of each variant on ``x``: ``repeats`` rounds, each timing
    ``steps`` steps of every variant in turn after one warm-up step (compilation, first
    allocations). Returns ({variant: fastest round}, {variant: every round}, the 1-minute load
    average before and after)."""
    rounds = {name: [] for name in VARIANTS}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as work:
        trainers = {name: DDPMTrainer(x, os.path.join(work, str(i)), steps, progress=False,
                                      figures=False, model_config=options)
                    for i, (name, options) in enumerate(VARIANTS.items())}
        for trainer in trainers.values():
            trainer.train_step(0)
        for _ in range(repeats):
            for name, trainer in trainers.items():
                start = time.perf_counter()
                for step in range(steps):
                    trainer.train_step(step)
                rounds[name].append((time.perf_counter() - start) / steps)
    load.append(os.getloadavg()[0])
    return {name: min(r) for name, r in rounds.items()}, rounds, load


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=120,
                   help="training seconds per variant, at the calibrated step times")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--samples", type=int, default=None,
                   help="samples per variant (default: the held-out third, 599)")
    p.add_argument("--repeats", type=int, default=3, help="calibration rounds")
    p.add_argument("--calibration-steps", type=int, default=20,
                   help="training steps per variant and calibration round")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.budget <= 0 or args.seeds < 1 or args.repeats < 1 or args.calibration_steps < 1:
        p.error("--budget must be > 0 and --seeds, --repeats, --calibration-steps >= 1")
    backend.limit_threads(args.threads)
    step_s, rounds, load = calibrate(DataSet("digits", args.seed, args.samples).train,
                                     args.repeats, args.calibration_steps)
    steps = {name: max(1, round(args.budget / s)) for name, s in step_s.items()}
    print("seconds per step", rounds, "load", load, "steps", steps, flush=True)
    os.nice(19)
    per_seed = {}
    for seed in range(args.seed, args.seed + args.seeds):
        data = DataSet("digits", seed, args.samples)
        rows = {}
        with tempfile.TemporaryDirectory() as work:
            for name, options in VARIANTS.items():
                out = os.path.join(work, str(len(rows)))
                train_ddpm(data.train, steps[name], out, seed=seed, progress=False,
                           figures=False, model_config=options)
                samples = sample_run(out, data.n_samples, sampler=IMAGE_SAMPLER[0],
                                     steps=IMAGE_SAMPLER[1], seed=seed + 1000)
                score = data.score(samples)
                rows[name] = {k: score[k] for k in SCORES}
                print(seed, name, rows[name], flush=True)
        real = data.score(data.real)
        rows["real vs real"] = {k: real[k] for k in SCORES}
        per_seed[seed] = rows
    means, errors = aggregate(per_seed)
    command = "python -m bench.ablation " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [f"`{command}`", "", f"Calibration: {args.repeats} interleaved rounds of "
             f"{args.calibration_steps} steps per variant, load average {load[0]:.1f} before and "
             f"{load[1]:.1f} after.", "",
             "| UNet | ms / step (fastest; rounds) | steps | Fréchet | precision % | recall % |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name in means:
        timing = (f"{1000 * step_s[name]:.0f} ("
                  + ", ".join(f"{1000 * s:.0f}" for s in rounds[name])
                  + f") | {steps[name]}") if name in steps else " | "
        cells = [f"{means[name][k]:.{d}f}" if args.seeds == 1 else
                 f"{means[name][k]:.{d}f} ± {errors[name][k]:.{d}f}"
                 for k, d in zip(SCORES, (2, 1, 1))]
        lines.append(f"| {name} | {timing} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    return means, errors, steps


if __name__ == "__main__":
    main()
