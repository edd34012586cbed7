"""Classifier-free guidance on isolated modes: how tight are the guided samples of each mode?

A labelled mixture of six isotropic Gaussians (std 0.08) at irregular places, never used for
tuning (:data:`MIXTURE6`). Each model trains ``--steps`` steps on 10 000 labelled points
(``conditional=True``, label dropout 0.1), then draws ``--n`` samples per mode with
``--label k --guidance w``; a sample counts for its mode when it lies within 3 std of the
requested mode's centre (real data: 1 - exp(-4.5) = 98.9% in 2-D). One JSON line per
(model, sampler, seed) with the share of every mode, the worst and the mean.

    python bench/guided2d.py --seeds 3 --steps 6000 --guidance 3
    python bench/guided2d.py --family edm --samplers heun:18 stochastic:18
"""
import argparse
import json
import os
import sys
import tempfile
import time

if not __package__:  # run as a file: the repository root first on the path
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from minigen.data import Mixture  # noqa: E402
from minigen.diffusion import edm  # noqa: E402
from minigen.diffusion.schedule import NoiseSchedule  # noqa: E402
from minigen.diffusion.trainer import (VECTOR_DEFAULTS, diffusion_model, sample_ddpm,  # noqa: E402
                                       sample_run, train_ddpm)
from minigen.trainer import fit_normalization  # noqa: E402


def _modes(k=6, seed=2026, low=-3.0, high=3.0, separation=1.5):
    """``k`` centres uniform in [low, high]^2, drawn with ``seed``, each at least
    ``separation`` from the others (rejection)."""
    rng = np.random.default_rng(seed)
    modes = []
    while len(modes) < k:
        c = rng.uniform(low, high, 2)
        if all(np.linalg.norm(c - m) >= separation for m in modes):
            modes.append(c)
    return np.array(modes)


MIXTURE6 = Mixture(_modes(), 0.08)
"""The held-out labelled mixture: six modes, std 0.08."""


def share_within(samples, mode, std=MIXTURE6.std, radius=3.0):
    """The share of ``samples`` within ``radius`` std of ``mode``."""
    return float(np.mean(np.linalg.norm(samples - mode, axis=1) <= radius * std))


def mixture_denoiser(mixture, normalization):
    """D(x; sigma, y) = E[x0 | x0 + sigma n = x, y] of ``mixture`` in the model units of
    ``normalization`` (per-feature shift and scale: each mode a Gaussian of diagonal variance
    v): for mode k, m_k + v / (v + sigma^2) (x - m_k); for the null class K, the same
    averaged over the modes' posterior responsibilities at x. ``x`` (n, d), ``sigma`` and
    ``y`` (n,) or scalars; float64."""
    scale = np.asarray(normalization["scale"], dtype=np.float64)
    means = (mixture.modes - np.asarray(normalization["shift"])) / scale
    var, k = (mixture.std / scale) ** 2, len(means)

    def denoise(x, sigma, y):
        x = np.asarray(x, dtype=np.float64)
        noisy_var = var + np.reshape(np.asarray(sigma, dtype=np.float64) ** 2, (-1, 1, 1))
        offset = x[:, None] - means[None]  # (n, K, d)
        per_mode = means[None] + var / noisy_var * offset
        log_p = -0.5 * (offset**2 / noisy_var + np.log(noisy_var)).sum(-1)
        r = np.exp(log_p - log_p.max(axis=1, keepdims=True))
        unconditional = (r[..., None] * per_mode).sum(1) / r.sum(1)[:, None]
        y = np.broadcast_to(np.asarray(y), (len(x),))
        conditional = per_mode[np.arange(len(x)), np.minimum(y, k - 1)]
        return np.where((y == k)[:, None], unconditional, conditional)

    return denoise


class ExactNetwork:
    """A class-conditional "network" whose output is exact: the F of eq. 7 (Karras et al.
    2022) of :func:`mixture_denoiser` for the EDM formulation (input c_in x, time c_noise),
    eps for the DDPM's (input x_t, time the timestep of ``schedule``)."""

    def __init__(self, denoise, num_classes, schedule=None, sigma_data=1.0):
        self.denoise, self.num_classes = denoise, num_classes
        self.schedule, self.sigma_data = schedule, sigma_data

    def parameters(self):
        return []

    def __call__(self, x, t, y):
        x = np.asarray(x.data, dtype=np.float64)
        if self.schedule is None:
            sigma = np.exp(4.0 * np.asarray(t, dtype=np.float64))[:, None]  # c_noise inverted
            x = x / edm.c_in(sigma, self.sigma_data)
            out = ((self.denoise(x, sigma, y) - edm.c_skip(sigma, self.sigma_data) * x)
                   / edm.c_out(sigma, self.sigma_data))
        else:
            abar = self.schedule.alphas_cumprod[np.asarray(t)][:, None]
            x0 = self.denoise(x / np.sqrt(abar), np.sqrt((1 - abar) / abar), y)
            out = (x - np.sqrt(abar) * x0) / np.sqrt(1 - abar)
        return out.astype(np.float32)


def run(family, seed, steps, samplers, n, guidance, exact=False):
    """Train one conditional model of ``family`` ("ddpm" or "edm") and score each sampler;
    with ``exact``, the exact model of the same data's normalisation, untrained."""
    x, y = MIXTURE6.sample(10_000, seed=seed, labels=True)
    records = []
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        if exact:
            normalization = fit_normalization(x)
            schedule = (None if family == "edm"
                        else NoiseSchedule.from_config(VECTOR_DEFAULTS["schedule"]))
            network = ExactNetwork(mixture_denoiser(MIXTURE6, normalization),
                                   len(MIXTURE6.modes), schedule)
            model = diffusion_model(network, {**VECTOR_DEFAULTS, "formulation": family})

            def draw(sampler, k, m):  # the generator sample_run makes on the CPU
                return sample_ddpm(model, normalization, n, (2,), sampler, k, y=m,
                                   seed=np.random.default_rng(seed + 1000), guidance=guidance)
        else:
            train_ddpm(x, steps, out, seed=seed, labels=y, conditional=True, progress=False,
                       figures=False, formulation=family)

            def draw(sampler, k, m):
                return sample_run(out, n, sampler=sampler, steps=k, seed=seed + 1000, label=m,
                                  guidance=guidance)
        seconds = time.perf_counter() - t
        for spec in samplers:
            sampler, _, k = spec.partition(":")
            shares = [share_within(draw(sampler, int(k) if k else None, m), mode)
                      for m, mode in enumerate(MIXTURE6.modes)]
            records.append({"model": family.upper() + (" exact" if exact else ""),
                            "sampler": spec, "seed": seed, "steps": 0 if exact else steps,
                            "guidance": guidance, "shares": shares, "worst": min(shares),
                            "mean": float(np.mean(shares)), "train_seconds": seconds})
            print(json.dumps(records[-1]), flush=True)
    return records


def nfe(model, spec):
    """Network evaluations per sample of a sampler spec: 2 steps - 1 for the EDM samplers,
    one per step for the DDPM's (1000 for the ancestral chain); a guided evaluation counts
    once (the conditional and unconditional rows share one batched call)."""
    sampler, _, k = spec.partition(":")
    if model.startswith("EDM"):
        return 2 * int(k or 18) - 1
    return int(k) if k else 1000


def table(records):
    """Markdown table of the records (JSON lines of :func:`run`): worst mode and mean over
    modes, mean ± s.e. over seeds (in %), per model and sampler, by model and then network
    evaluations."""
    groups = {}
    for r in records:
        groups.setdefault((r["model"], r["sampler"]), []).append(r)
    lines = ["| model | sampler | network evaluations | worst mode within 3 std % | "
             "mean over modes % | seeds |", "| --- " * 6 + "|"]
    for (model, spec), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], nfe(*kv[0]),
                                                                      kv[0][1])):
        cells = []
        for key in ("worst", "mean"):
            v = 100 * np.array([r[key] for r in rs])
            cells.append(f"{v.mean():.1f}" + (f" ± {v.std(ddof=1) / np.sqrt(len(v)):.1f}"
                                              if len(v) > 1 else ""))
        lines.append(f"| {model} | {spec} | {nfe(model, spec)} | {cells[0]} | {cells[1]} | "
                     f"{len(rs)} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", choices=("ddpm", "edm"), nargs="+", default=["ddpm", "edm"])
    p.add_argument("--samplers", nargs="+", default=None,
                   help="default: ddpm (ancestral) for DDPM, heun:18 and stochastic:18 for EDM")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--n", type=int, default=500, help="samples per mode")
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--exact", action="store_true",
                   help="the mixture's exact denoiser in place of a trained network")
    p.add_argument("--table", metavar="LOG",
                   help="print the table of the records in LOG (JSON lines) and exit")
    args = p.parse_args(argv)
    if args.table:
        with open(args.table) as f:
            print(table([json.loads(line) for line in f if line.strip()]))
        return
    defaults = {"ddpm": ["ddpm"], "edm": ["heun:18", "stochastic:18"]}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for family in args.family:
            run(family, seed, args.steps, args.samplers or defaults[family], args.n,
                args.guidance, args.exact)


if __name__ == "__main__":
    main()
