"""Measure a trained text-to-image run with the captioned-shapes harness
(:mod:`minigen.evaluate_txt2img`): ``python -m bench.txt2img RUN [--inpaint-run RUN2]``.

    python -m bench.txt2img runs/t2i --inpaint-run runs/t2i-inpaint --n 200 \\
        --out docs/txt2img.json --figure docs/figures/txt2img_guidance.png \\
        --samples docs/figures/txt2img_samples.png

- prompt adherence on seen (``train``) and held-out compositions, and the Fréchet distance
  of the seen-prompt samples to fresh renders (with the real-vs-real baseline), against the
  guidance weight w (DDIM, ``--steps``);
- image-to-image (SDEdit with the prompt, ``--strength``) edit success at ``--edit-w``;
- inpainting: the inpainting model (``--inpaint-run``) beside RePaint with the text-to-image
  model (all T ancestral steps, ``--repaint-n`` cases), the requested object in the masked
  half and the mean squared change outside the mask, with the autoencoder's reconstruction
  error on the same images and pixels (``reconstruction_mse``);
- a figure of prompts and samples (``--samples``).
"""
import argparse
import json
import os
import time

import numpy as np

from minigen import evaluate_txt2img as harness
from minigen.txt2img import figures, load_txt2img
from minigen.txt2img.pipeline import encode


def guidance_sweep(pipe, ws, n, steps, seed):
    """{w: {"train", "held_out", "fd", "real_vs_real"}} of ``pipe`` at each w."""
    out = {}
    for w in ws:
        drawn = {}

        def generate(captions):
            images = pipe.sample(captions, guidance=w, steps=steps, seed=seed)
            drawn.setdefault("images", images)
            drawn.setdefault("captions", captions)
            return images

        row = harness.adherence(generate, n, seed)
        row.update(harness.frechet(drawn["images"], drawn["captions"], seed))
        out[w] = row
        print(f"w = {w}: {row}", flush=True)
    return out


def inpainting(pipe, n, guidance, steps, seed, resample=1):
    """The harness's inpainting numbers for ``pipe`` (its masks are 1 = regenerate; the
    pipeline's are 1 = keep)."""
    return harness.inpaint_success(
        lambda images, masks, captions: pipe.inpaint(images, 1 - masks[:, 0], captions,
                                                     guidance=guidance, steps=steps,
                                                     seed=seed, resample=resample), n, seed)


def plot(sweep, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ws = sorted(sweep)
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3))
    a.plot(ws, [sweep[w]["train"] for w in ws], "o-", label="seen compositions")
    a.plot(ws, [sweep[w]["held_out"] for w in ws], "s-", label="held-out compositions")
    a.set(xlabel="guidance w", ylabel="prompt adherence", ylim=(0, 1))
    a.legend(fontsize=8)
    b.plot(ws, [sweep[w]["fd"] for w in ws], "o-", label="samples vs renders")
    b.axhline(np.mean([sweep[w]["real_vs_real"] for w in ws]), color="gray", ls="--",
              label="real vs real")
    b.set(xlabel="guidance w", ylabel="Fréchet distance (judge features)")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run")
    p.add_argument("--inpaint-run")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--ws", type=float, nargs="+", default=[0, 1, 2, 3, 5])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--strength", type=float, default=0.6)
    p.add_argument("--edit-w", type=float, default=3.0)
    p.add_argument("--inpaint-w", type=float, default=3.0)
    p.add_argument("--repaint-n", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out")
    p.add_argument("--figure")
    p.add_argument("--samples")
    args = p.parse_args(argv)
    pipe = load_txt2img(args.run)
    result = {"run": os.path.abspath(args.run), "n": args.n, "steps": args.steps}
    start = time.perf_counter()
    if args.samples:
        figures.prompt_grid(pipe, args.samples, guidance=args.edit_w, steps=args.steps)
    result["guidance"] = guidance_sweep(pipe, args.ws, args.n, args.steps, args.seed)
    if args.figure:
        plot(result["guidance"], args.figure)
    result["edit"] = harness.edit_success(
        lambda images, captions: pipe.edit(images, captions, args.strength, guidance=args.edit_w,
                                           steps=args.steps, seed=args.seed), args.n, args.seed)
    result["edit"].update(strength=args.strength, guidance=args.edit_w)
    print("edit", result["edit"], flush=True)
    if pipe.config["latent"]:
        result["reconstruction_mse"] = harness.reconstruction_mse(
            lambda images: pipe.decode(encode(pipe.space, images)), args.n, args.seed)
    if args.inpaint_run:
        result["inpaint_model"] = inpainting(load_txt2img(args.inpaint_run), args.n,
                                             args.inpaint_w, args.steps, args.seed)
        print("inpainting model", result["inpaint_model"], flush=True)
    if args.repaint_n:
        result["repaint"] = inpainting(pipe, args.repaint_n, args.inpaint_w, None, args.seed)
        print("RePaint", result["repaint"], flush=True)
    result["seconds"] = time.perf_counter() - start
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
