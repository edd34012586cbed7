"""Regenerate docs/figures/vae_digits_figure2.png, the paper's Figure 2 on the 8x8 digits: the
held-out ELBO over training for several latent sizes (Kingma & Welling 2014 use 3, 5, 10, 20
and 200 on MNIST), and print the table of docs/results.md ("VAE on the digits"): per latent
size the wall time, the final held-out ELBO and L_100, the ELBO on the training part (the
train/held-out gap) and the active units.

Each run is ``minigen train vae --data digits --latent-dim D --steps 5000 --checkpoint-every
250`` with the image defaults (MLP 64-500-2D, tanh, Bernoulli decoder, batch 100, Adam 1e-3),
kept in ``RUN_DIR/latent-D``; a finished run there is reused (its wall time is then not
known). Run from the repository root, one thread:

    python docs/figures/make_vae_figure2.py [RUN_DIR, default runs/vae_figure2]
"""
import os
import pathlib
import sys
import time

from minigen import backend
from minigen.vae import figures as plots
from minigen.vae.trainer import train_vae

FIGURE = pathlib.Path(__file__).with_name("vae_digits_figure2.png")
LATENT_SIZES = (3, 5, 10, 20, 200)
STEPS, EVERY = 5000, 250


def main(run_dir="runs/vae_figure2"):
    backend.limit_threads(1)
    curves, rows = {}, []
    for d in LATENT_SIZES:
        out = os.path.join(run_dir, f"latent-{d}")
        reused = os.path.exists(os.path.join(out, "config.json"))
        t = time.perf_counter()
        trainer = train_vae("digits", STEPS, out, seed=0, resume=reused, progress=False,
                            figures=False, latent_dim=d, checkpoint_every=EVERY)
        wall = "-" if reused else f"{time.perf_counter() - t:.0f} s"
        curve = trainer.curve
        curves[f"latent {d}"] = curve
        train_elbo = trainer.evaluate(trainer.train_x, k=1)["elbo"]
        rows.append(f"| {d} | {STEPS} | {wall} | {curve['elbo'][-1]:.2f} | {curve['iwae'][-1]:.2f} "
                    f"| {train_elbo:.2f} | {curve['active_units'][-1]} of {d} |")
        print(rows[-1], flush=True)
    plots.heldout_bounds(curves, FIGURE)
    print("| latent size | steps | wall | held-out ELBO | held-out L_100 | training ELBO "
          "| active units |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))


if __name__ == "__main__":
    main(*sys.argv[1:])
