"""The architecture changes of Dhariwal & Nichol (2021, Sec. 3, their Table 1) ablated on the
digits at equal training time: the default UNet, then each UNet option alone (AdaGN, BigGAN
residual up/downsampling, attention at 8x8 and 4x4, residual rescaling by 1/sqrt(2)) and all
of them, each trained for ``--budget`` seconds (resumed chunks, :func:`bench.compare.train_for`)
and scored as :mod:`bench.compare` scores the digits: Fréchet distance and k-NN precision and
recall in the reference classifier's features against the held-out third (DPM-Solver++(2M),
20 steps), with the real-versus-real row. ``--seeds N``: mean ± standard error.

    python -m bench.ablation --budget 120 --seeds 1
"""
import argparse
import os
import sys
import tempfile

from bench.compare import DataSet, IMAGE_SAMPLER, aggregate, train_for
from minigen import backend
from minigen.diffusion.trainer import sample_run, train_ddpm

VARIANTS = {
    "default": {},
    "AdaGN": dict(adagn=True),
    "residual up/down": dict(resblock_updown=True),
    "attention 8x8 and 4x4": dict(attention_resolutions=(8, 4)),
    "rescale 1/sqrt(2)": dict(rescale_residual=True),
    "all four": dict(adagn=True, resblock_updown=True, rescale_residual=True,
                     attention_resolutions=(8, 4)),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=120, help="training seconds per variant")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--samples", type=int, default=None,
                   help="samples per variant (default: the held-out third, 599)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    backend.limit_threads(args.threads)
    per_seed = {}
    for seed in range(args.seed, args.seed + args.seeds):
        data = DataSet("digits", seed, args.samples)
        rows = {}
        with tempfile.TemporaryDirectory() as work:
            for name, options in VARIANTS.items():
                def train(x, steps, out, seed, resume, options=options):
                    given = {} if resume else {"model_config": options}  # a run keeps its own
                    return train_ddpm(x, steps, out, seed=seed, resume=resume, progress=False,
                                      figures=False, **given)

                out = os.path.join(work, str(len(rows)))
                _, steps, seconds, _, load = train_for(train, data, args.budget, seed, out)
                samples = sample_run(out, data.n_samples, sampler=IMAGE_SAMPLER[0],
                                     steps=IMAGE_SAMPLER[1], seed=seed + 1000)
                score = data.score(samples)
                rows[name] = {"steps": steps, "train_s": seconds, "load": load,
                              **{k: score[k] for k in ("frechet_distance", "precision",
                                                       "recall")}}
                print(name, rows[name], flush=True)
        real = data.score(data.real)
        rows["real vs real"] = {k: real[k] for k in ("frechet_distance", "precision", "recall")}
        per_seed[seed] = rows
    means, errors = aggregate(per_seed)
    command = "python -m bench.ablation " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [f"`{command}`", "", "| UNet | steps | train s | load avg | Fréchet | "
             "precision % | recall % |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in means:
        cells = []
        for key, digits in (("steps", 0), ("train_s", 0), ("load", 1),
                            ("frechet_distance", 2), ("precision", 1), ("recall", 1)):
            if key not in means[name]:
                cells.append("")
                continue
            mean, se = means[name][key], errors[name][key]
            cells.append(f"{mean:.{digits}f}" if args.seeds == 1 or se is None
                         else f"{mean:.{digits}f} ± {se:.{digits}f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    return means, errors


if __name__ == "__main__":
    main()
