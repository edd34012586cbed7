"""The ``minigen`` command line (also ``python -m minigen``).

    minigen train ddpm --data s_curve --steps 6000 --out runs/s_curve [--resume|--overwrite]
    minigen train gan  --data ring8 --steps 3000 --out runs/ring8 [--k 1] [--loss nonsaturating]
    minigen train vae  --data digits --steps 3000 --out runs/digits-vae [--latent-dim 2]
    minigen train autoencoder --data mnist5k --steps 3000 --out runs/ae [--factor 4]
    minigen train txt2img --data shapes --steps 3000 --out runs/t2i [--autoencoder RUN]
    minigen sample runs/t2i --prompt "a red circle on the left" --guidance 3 --n 16 --out grid.png
    minigen sample runs/t2i --from in.png --prompt "a blue circle on the left" --out edit.png
    minigen sample runs/t2i --inpaint in.png --mask mask.png --prompt "..." --out done.png
    minigen sample runs/s_curve --n 2000 --out samples.npy [--sampler ddim --steps 50] [--overwrite]
    minigen train ddpm --data ring8 --steps 3000 --out runs/ring8c --conditional
    minigen sample runs/ring8c --n 500 --out mode3.npy --label 3 --guidance 3
    minigen sample runs/ring8c --from points.npy --strength 0.3 --out edited.npy
    minigen sample runs/ring8c --inpaint known.npz --out completed.npy [--resample 5]
    minigen sample runs/s_curve --n 2000 --out samples.npy --sampler dpm++2m --steps 20
    minigen sample runs/s_curve --n 2000 --out samples.npy --sampler dpm++2m-sde --steps 20
    minigen train classifier --data runs/ring8 --steps 2000 --out runs/ring8-clf
    minigen sample runs/ring8 --n 500 --out mode3.npy --classifier runs/ring8-clf --label 3 --scale 2
    minigen demo [--out minigen-demo] [--steps 6000]
    minigen bench ...
    mpiexec -n P minigen train ...     # P processes train one model (docs/scaling.md)

Mistakes in the arguments, the data, the run directory or the output path
(``minigen.errors.UserError``), and OS and memory errors, print one line on stderr and exit
with status 2, without a traceback (``--debug`` shows it); any other exception is a bug and
shows its traceback. A diverging run (NaN/inf loss or weights) exits with status 1; Ctrl-C
(SIGINT) and SIGTERM stop training at the next step boundary, agreed by all ranks under
``mpiexec``, and exit with 130 and 143 once rank 0 has saved a checkpoint of that step.
``train`` refuses a directory that holds a run unless ``--resume`` or ``--overwrite``, a
non-empty directory that holds no run, and a directory that another process is training
(naming its pid). Under ``mpiexec`` an error on any rank ends the whole job with that
rank's traceback (``distributed.abort_on_error``).
"""
import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import warnings

import numpy as np

from minigen import backend, distributed, stopping
from minigen import data as datasets
from minigen.errors import InvalidInput, NonFiniteSamples, RunExists, UserError
from minigen.options import MAX_COUNT  # --n, --batch-size, --steps as the trainers' counts

DEMO_STEPS = 6000
DEVICES = ("cpu", "cuda")
MAX_SEED = 2**63 - 1  # the seeds NumPy's and CuPy's generators take
RUN_STATE = {"ddpm": ("model", "ema"), "gan": ("generator",), "vae": ("networks",),
             "txt2img": ("model", "ema")}  # what sample reads per run kind


class UsageError(UserError):
    """A bad command line: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def _integer(low, high, what):
    """An argparse type: an integer in [low, high], else an error saying it is ``what``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value
    return parse


_positive_int = _integer(1, MAX_COUNT, f"a positive integer up to {MAX_COUNT}")
_seed = _integer(0, MAX_SEED, f"an integer in [0, {MAX_SEED}]")


def _path(text):
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a path, got {text!r}")
    return text


def _unit_interval(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1] (0: deterministic DDIM, "
                                         f"1: DDPM-like noise), got {value}")
    return value


def _data_argument(text):
    """A dataset name or the path of a .npy/.npz file (existence is checked on loading)."""
    if text in datasets.DATASETS or text.endswith((".npy", ".npz")):
        return text
    raise argparse.ArgumentTypeError(
        f"unknown dataset {text!r}: use one of {', '.join(datasets.DATASETS)} or a .npy/.npz file")


def _run_or_data(text):
    """``minigen train classifier --data``: a run directory, or what :func:`_data_argument`
    takes."""
    return text if os.path.isdir(text) else _data_argument(text)


def build_parser():
    parser = _Parser(prog="minigen", description="Train and sample DDPMs, GANs and VAEs built on "
                     "minigen's from-scratch autograd engine.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        help="show the traceback of user errors too")
    common.add_argument("--threads", type=_positive_int,
                        help="threads of the CPU kernels, BLAS single-threaded (default: the "
                        "smallest of OMP_NUM_THREADS, NUMBA_NUM_THREADS, OPENBLAS_NUM_THREADS "
                        "and MKL_NUM_THREADS, else the usable cores; under mpiexec -n P, "
                        "cores / P per rank; see minigen.set_num_threads)")

    train = commands.add_parser("train", help="train a model")
    kinds = train.add_subparsers(dest="kind", required=True, parser_class=_Parser)
    for kind in ("ddpm", "gan", "vae", "autoencoder", "txt2img", "classifier"):
        p = kinds.add_parser(kind, help=KIND_HELP[kind], parents=[common])
        p.add_argument("--data", required=True,
                       type=_run_or_data if kind == "classifier" else _data_argument,
                       help=f"{', '.join(datasets.DATASETS)}, or a .npy/.npz file of vectors "
                            "(n, d) or images (n, C, H, W)"
                            + ("; or the DDPM run the classifier will guide" * (
                                kind == "classifier")))
        p.add_argument("--steps", required=True, type=_positive_int, help="training steps")
        p.add_argument("--out", required=True, type=_path, help="run directory (checkpoint, config, figures)")
        p.add_argument("--seed", type=_seed, help="default 0 (a resumed run keeps its own)")
        p.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint (same data and "
                            "kind; the run keeps its seed and options)")
        p.add_argument("--overwrite", action="store_true",
                       help="replace the run that --out holds (without it, train refuses)")
        p.add_argument("--checkpoint-every", type=_positive_int,
                       help="steps between checkpoints and figures (default 1000)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument("--no-figures", action="store_true", help="write no figures")
        p.add_argument("--batch-size", type=_positive_int,
                       help="the global batch, split over the ranks under mpiexec")
        p.add_argument("--device", choices=DEVICES, default="cpu",
                       help="train on the CPU (NumPy) or a CUDA GPU (CuPy)")
        if kind == "ddpm":
            p.add_argument("--lr", type=float)
            _add_conditional_arguments(p)
        elif kind == "gan":
            p.add_argument("--k", type=_positive_int, default=None,
                           help="discriminator steps per generator step (Algorithm 1; "
                           "default 1)")
            p.add_argument("--loss", choices=("nonsaturating", "minimax", "wasserstein"),
                           default=None,
                           help="default: nonsaturating (tuned preset), minimax (paper)")
            p.add_argument("--preset", choices=("tuned", "paper"), default=None,
                           help="tuned defaults, or Goodfellow et al.'s Algorithm 1 as printed")
            p.add_argument("--conditional", action="store_true",
                           help="class-conditional G and D on the data's labels (digits, "
                                "ring8, grid25, or a .npz holding x and y)")
        elif kind == "txt2img":
            p.add_argument("--autoencoder", metavar="RUN", type=_path,
                           help="a trained autoencoder run (default: train one first, in "
                                "OUT-autoencoder)")
            p.add_argument("--autoencoder-steps", type=_positive_int,
                           help="steps of that autoencoder (default 2000)")
        _add_option_arguments(p, kind)

    sample = commands.add_parser("sample", help="draw samples from a trained run",
                                 parents=[common])
    sample.add_argument("run_dir")
    sample.add_argument("--n", type=_positive_int,
                        help="number of samples (not with --from/--inpaint: one per row)")
    sample.add_argument("--out", required=True, type=_path,
                        help="output .npy file (txt2img runs: .png, a grid, or .npy)")
    sample.add_argument("--overwrite", action="store_true",
                        help="replace --out if it exists (without it, sample refuses)")
    sample.add_argument("--sampler", choices=("ancestral", "ddpm", "ddim", "dpm++2m",
                                              "dpm++2m-sde", "heun", "stochastic"),
                        help="DDPM runs: ancestral (Algorithm 2, all T steps, the default; "
                             "'ddpm' is the same), DDIM, DPM-Solver++(2M) or its SDE form; EDM "
                             "runs: heun (the default) or stochastic (Karras et al. 2022); "
                             "txt2img runs: default ddim")
    sample.add_argument("--steps", type=_positive_int,
                        help="DDIM steps (default 50), DPM-Solver++ steps (default 20) or EDM "
                             "steps (default 18: 35 network evaluations)")
    sample.add_argument("--eta", type=_unit_interval,
                        help="DDIM eta in [0, 1] (default 0: deterministic); --sampler ddim only")
    sample.add_argument("--seed", type=_seed, default=0)
    sample.add_argument("--device", choices=DEVICES, default="cpu",
                        help="sample on the CPU (NumPy) or a CUDA GPU (CuPy)")
    _add_guidance_arguments(sample)

    demo = commands.add_parser("demo", help="train a DDPM on the S-curve (under a minute) and "
                               "write its figures", parents=[common])
    demo.add_argument("--out", default="minigen-demo", type=_path)
    demo.add_argument("--steps", type=_positive_int, default=DEMO_STEPS)
    demo.add_argument("--seed", type=_seed, default=0)
    demo.add_argument("--quiet", action="store_true")
    demo.add_argument("--overwrite", action="store_true",
                      help="replace the run that --out holds (an earlier demo)")

    bench = commands.add_parser("bench", help="run the benchmarks (bench/ of a source checkout; "
                                "every option goes to python -m bench)")
    bench.add_argument("args", nargs=argparse.REMAINDER)
    return parser


KIND_HELP = {"ddpm": "train a DDPM", "gan": "train a GAN", "vae": "train a VAE",
             "autoencoder": "train the image autoencoder of latent diffusion",
             "txt2img": "train text-to-image latent diffusion (captioned --data shapes)",
             "classifier": "train the noise-aware classifier of classifier guidance"}


def _set_value(text):
    """A ``--set`` value: JSON (``0.5``, ``[2, 0.9]``, ``null``), else a number as Python
    reads it (``inf``, ``nan``: refused by the option check by name), else the bare string
    (``cosine``)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _on_off(text):
    """``on``/``off`` (also true/false, yes/no, 1/0) as a bool."""
    value = {"on": True, "true": True, "yes": True, "1": True,
             "off": False, "false": False, "no": False, "0": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return value


NAMED_OPTIONS = {
    "ddpm": [
        ("--schedule", "schedule.kind", str, ("linear", "quadratic", "cosine", "sigmoid"),
         "noise schedule (default: quadratic for vectors, linear for images)"),
        ("--T", "schedule.T", int, None, "diffusion steps (default 1000)"),
        ("--prediction", "prediction", str, ("eps", "x0", "v"), "network target (default eps)"),
        ("--variance", "variance", str, ("fixed_small", "fixed_large"),
         "reverse-process variance (default fixed_small)"),
        ("--clip-x0", "clip_x0", float, None, "clip predicted x0 to [-c, c] (default: "
         "none for vectors, 1 for images)"),
        ("--formulation", "formulation", str, ("ddpm", "edm"), "DDPM (Ho et al. 2020, the "
         "default) or EDM (Karras et al. 2022)"),
        ("--ema-decay", "ema_decay", float, None, "EMA of the weights (default 0.995)"),
        ("--warmup-steps", "warmup_steps", int, None, "learning-rate warm-up (default 100 "
         "for vectors, 200 for images)"),
        ("--hidden", "model_config.hidden", _set_value, None,
         "MLP hidden sizes as JSON, e.g. [128,128,128] (the default)"),
        ("--base-channels", "model_config.base_channels", int, None,
         "UNet width (default 32)"),
    ],
    "gan": [
        ("--penalty", "penalty", str, ("none", "r1", "wgan-gp"), "gradient penalty (default "
         "none)"),
        ("--penalty-weight", "penalty_weight", float, None, "its weight (default 0.1)"),
        ("--pack", "pack", int, None, "PacGAN packing degree (default 1)"),
        ("--top-k", "top_k", float, None, "top-k generator updates: the share kept at the "
         "start (default 0.5 tuned vectors, 1.0 paper/images)"),
    ],
    "vae": [
        ("--latent-dim", "latent_dim", int, None, "latent dimensions (default 2 for vectors, "
         "10 for images)"),
        ("--beta", "beta", float, None, "KL weight of the loss (default 1: the ELBO)"),
        ("--likelihood", "likelihood", str, ("bernoulli", "gaussian"), "decoder p(x | z) "
         "(default: bernoulli for images, gaussian for vectors)"),
        ("--lr", "lr", float, None, "Adam learning rate (default 1e-3)"),
    ],
    "classifier": [
        ("--lr", "lr", float, None, "Adam learning rate (default 2e-3 vectors, 1e-3 images)"),
    ],
    "autoencoder": [
        ("--factor", "factor", int, (2, 4), "downsampling factor f (default 2)"),
        ("--latent-channels", "latent_channels", int, None, "latent channels (default 4)"),
        ("--beta", "beta", float, None, "KL weight (default 1e-6)"),
        ("--lr", "lr", float, None, "Adam learning rate (default 1e-3)"),
    ],
    "txt2img": [
        ("--latent", "latent", _on_off, None, "on: diffusion in the autoencoder's latent "
         "space (default); off: in pixel space"),
        ("--inpainting", "inpainting", _on_off, None, "on: train the inpainting model (mask "
         "and masked image as input; default off)"),
        ("--caption-dropout", "caption_dropout", float, None, "probability of the empty "
         "caption in training (default 0.1)"),
        ("--lr", "lr", float, None, "Adam learning rate (default 1e-3)"),
        ("--n-train", "n", int, None, "training scenes (default 20000)"),
    ],
}
"""The named trainer flags: (flag, option key (dotted: inside a dict option), type, choices,
help). Every other option goes through ``--set key=value``."""


def _add_option_arguments(p, kind):
    group = p.add_argument_group("trainer options (any other: --set key=value)")
    for flag, key, kind_type, choices, text in NAMED_OPTIONS[kind]:
        group.add_argument(flag, dest="opt:" + key, type=kind_type, choices=choices, help=text,
                           metavar=None if choices else flag[2:].upper().replace("-", "_"))
    group.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="any trainer option, the value as JSON or a bare string "
                            "(e.g. --set ema_decay=0.999 --set schedule.T=500); an unknown "
                            "key is refused with the list of valid ones")


def _trainer_options(args):
    """The named flags given and the --set pairs as trainer options; a dotted key sets one
    entry of a dict option (merged with its defaults by the trainer's option check)."""
    pairs = [(k[4:], v) for k, v in vars(args).items() if k.startswith("opt:") and v is not None]
    for text in args.set:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--set expects KEY=VALUE, got {text!r}")
        pairs.append((key, _set_value(value)))
    options = {}
    for key, value in pairs:
        name, _, inner = key.partition(".")
        if inner:
            options.setdefault(name, {})[inner] = value
        else:
            options[name] = value
    return options


def _add_conditional_arguments(p):
    group = p.add_argument_group("classifier-free guidance (Ho & Salimans 2022)")
    group.add_argument("--conditional", action="store_true",
                       help="train on the data's labels (digits, ring8, grid25, or a .npz "
                            "holding x and y) for guided sampling")
    group.add_argument("--label-dropout", type=float, default=None,
                       help="probability of training on the null class instead (default 0.1)")


def _add_guidance_arguments(sample):
    group = sample.add_argument_group("conditional sampling, SDEdit and RePaint (DDPM runs)")
    group.add_argument("--label", type=int, help="class to sample (default: the null class, "
                       "i.e. unconditional): of a --conditional DDPM or GAN run, or the class "
                       "--classifier guides toward")
    group.add_argument("--guidance", type=float, default=0.0,
                       help="classifier-free guidance weight w >= 0 toward --label (default 0: the "
                            "conditional model as trained; docs/tuning.md recommends 0.5 on "
                            "the digits)")
    group.add_argument("--classifier", metavar="CLF",
                       help="classifier guidance (Dhariwal & Nichol 2021) toward --label with "
                            "the classifier run CLF (minigen train classifier --data RUN)")
    group.add_argument("--scale", type=float,
                       help="classifier guidance scale s >= 0 (default 1: p(x | y))")
    sample.add_argument("--truncation", type=float, metavar="PSI",
                        help="GAN runs: the truncation trick, latent coordinates with |z_i| > "
                             "PSI redrawn (BigGAN); smaller PSI, higher fidelity, less variety")
    group.add_argument("--from", dest="from_file", metavar="FILE.npy",
                       help="SDEdit: edit the rows of this file (data units)")
    group.add_argument("--strength", type=float,
                       help="SDEdit: noise level in (0, 1] to edit from (default 0.5)")
    group.add_argument("--inpaint", metavar="KNOWN.npz",
                       help="RePaint: complete the rows of x where mask (same shape) is 0")
    group.add_argument("--resample", type=_positive_int,
                       help="RePaint: resampling rounds R (default 1)")
    group.add_argument("--jump", type=_positive_int,
                       help="RePaint: steps per jump back (default 1)")
    group.add_argument("--prompt", help="txt2img runs: the caption to draw, edit toward "
                       "(--from in.png) or inpaint with (--inpaint in.png --mask mask.png)")
    group.add_argument("--mask", metavar="MASK.png",
                       help="txt2img --inpaint: white (1) = keep, black (0) = regenerate")


def _guided_sample(args, kind):
    """The DDPM run's outputs for --from (SDEdit) or --inpaint (RePaint), one per input row;
    None for plain sampling (--n)."""
    from minigen.diffusion import trainer

    if kind != "ddpm":
        if (args.label is not None and kind != "gan") or args.guidance or args.from_file or (
                args.inpaint):
            raise InvalidInput("--label/--guidance/--from/--inpaint apply to DDPM runs (--label "
                               f"to conditional GAN runs too); this is a {kind} run")
        return None
    if args.from_file and args.inpaint:
        raise InvalidInput("use one of --from and --inpaint")
    if args.strength is not None and not args.from_file:
        raise InvalidInput("--strength applies to --from (SDEdit)")
    if (args.from_file or args.inpaint) and args.n is not None:
        raise InvalidInput("--n does not apply to --from/--inpaint: one output per input row")
    common = dict(seed=args.seed, progress=True, device=args.device, label=args.label,
                  guidance=args.guidance)
    if args.from_file:
        strength = 0.5 if args.strength is None else args.strength
        return trainer.edit_run(args.run_dir, _read_array(args.from_file, ".npy"), strength,
                                sampler=args.sampler, steps=args.steps or 50, eta=args.eta or 0.0,
                                **common)
    if args.inpaint:
        known = _read_array(args.inpaint, ".npz")
        if set(known) != {"x", "mask"}:
            raise InvalidInput(f"{args.inpaint}: expected arrays x and mask, got {sorted(known)}")
        return trainer.inpaint_run(args.run_dir, known["x"], known["mask"], args.resample or 1,
                                   args.jump or 1, **common)
    return None


def _read_array(path, ext):
    """The array of a .npy file, or the arrays of a .npz as a dict."""
    if not path.endswith(ext) or not os.path.isfile(path):
        raise InvalidInput(f"{path}: expected an existing {ext} file")
    try:
        loaded = np.load(path, allow_pickle=False)
        return dict(loaded) if ext == ".npz" else loaded
    except Exception as err:
        raise InvalidInput(f"{path}: cannot read the file ({type(err).__name__}: {err})") from None


@stopping.deferred_stop_signals()  # from the start: a Ctrl-C during setup is kept too
def _train(args):
    comm = distributed.world()  # all ranks under mpiexec, else this process alone
    if args.threads is None and comm.size > 1:  # the ranks share this machine's cores
        backend.limit_threads(max(1, backend.default_threads() // comm.size))
    given = {"checkpoint_every": args.checkpoint_every, "batch_size": args.batch_size}
    if args.kind == "ddpm":
        from minigen.diffusion.trainer import train_ddpm as train

        given.update(lr=args.lr, conditional=args.conditional or None,
                     label_dropout=args.label_dropout)
    elif args.kind == "gan":
        from minigen.gan import train_gan as train

        given.update(k=args.k, loss=args.loss, preset=args.preset,
                     conditional=args.conditional or None)
    elif args.kind == "vae":
        from minigen.vae.trainer import train_vae as train
    elif args.kind == "txt2img":
        from minigen.txt2img import train_txt2img as train

        given.update(autoencoder=args.autoencoder, autoencoder_steps=args.autoencoder_steps)
    elif args.kind == "classifier":
        from minigen.diffusion.classifier import train_classifier as train
    else:
        from minigen.vae.autoencoder import train_autoencoder as train
    options = {k: v for k, v in given.items() if v is not None}
    options.update(_trainer_options(args))
    with distributed.abort_on_error(comm):
        trainer = train(args.data, args.steps, args.out, seed=args.seed, resume=args.resume,
                        overwrite=args.overwrite, progress=not args.quiet,
                        figures=not args.no_figures, device=args.device, comm=comm, **options)
    distributed.on_main(print, f"trained {args.kind} to step {trainer.step}: "
                        f"{os.path.abspath(args.out)}", comm=comm)


def _sample(args):
    from minigen.trainer import read_run_config

    try:
        kind = read_run_config(args.run_dir).get("kind")
    except UserError:  # not a run: reported below, after --out
        kind = None
    if kind == "txt2img":
        return _sample_txt2img(args)
    for option in ("prompt", "mask"):
        if getattr(args, option) is not None:
            raise InvalidInput(f"--{option} applies to txt2img runs")
    _check_npy_target(args.out, args.overwrite)
    config = read_run_config(args.run_dir)
    kind = config.get("kind")
    if kind == "autoencoder":
        raise InvalidInput(f"{args.run_dir} holds an autoencoder run, which encodes and decodes "
                           "images (minigen.vae.autoencoder.LatentSpace) rather than sampling")
    if kind == "classifier":
        raise InvalidInput(f"{args.run_dir} holds a classifier run, which guides a DDPM run: "
                           f"minigen sample DDPM_RUN --classifier {args.run_dir} --label K")
    if kind not in ("ddpm", "gan", "vae"):
        raise InvalidInput(f"{args.run_dir}: config.json names an unknown run kind {kind!r}")
    _check_run(args.run_dir, config)
    if kind != "ddpm" and (args.sampler not in (None, "ddpm") or args.steps is not None):
        raise InvalidInput(f"--sampler/--steps apply to DDPM runs; this is a {kind.upper()} run")
    if args.sampler is None:  # the run's own: ancestral for DDPM, Heun for EDM (Karras et al.)
        args.sampler = "heun" if config.get("formulation") == "edm" else "ddpm"
    _check_sampling_options(args)
    _check_fidelity_knobs(args, kind)
    rows = _guided_sample(args, kind)  # SDEdit / RePaint: one output per input row
    if rows is not None:
        bad = int(rows.size - np.count_nonzero(np.isfinite(rows)))
        if bad:
            raise NonFiniteSamples(f"{bad} of {rows.size} output values are NaN/inf (diverged "
                                   "weights or overflow in data units); nothing was written")
        with _npy_output(args.out, rows.shape) as out:
            out[...] = rows
        print(f"wrote {len(rows)} samples of shape {rows.shape[1:]} to {args.out}")
        return
    if args.n is None:
        raise InvalidInput("--n is required (or --from/--inpaint)")
    shape = tuple(config["data_shape"])
    with _npy_output(args.out, (args.n, *shape)) as out:
        if kind == "ddpm":
            from minigen.diffusion.trainer import sample_run

            sample_run(args.run_dir, args.n, sampler=args.sampler, steps=args.steps,
                       eta=args.eta or 0.0, seed=args.seed, progress=True, device=args.device,
                       label=args.label, guidance=args.guidance, out=out,
                       classifier=args.classifier, scale=args.scale)
        elif kind == "gan":
            import minigen.gan as gan

            gan.sample_run(args.run_dir, args.n, seed=args.seed, device=args.device, out=out,
                           truncation=args.truncation, label=args.label)
        else:
            from minigen.vae.trainer import sample_run

            sample_run(args.run_dir, args.n, seed=args.seed, device=args.device, out=out)
    print(f"wrote {args.n} samples of shape {shape} to {args.out}")


def _sample_txt2img(args):
    """``minigen sample`` of a text-to-image run: --prompt with --n (text-to-image), --from
    (image-to-image, SDEdit) or --inpaint with --mask; PNG or .npy in and out."""
    from minigen.trainer import read_run_config
    from minigen.txt2img import files, load_txt2img

    files.check_extension(args.out, "--out")
    if os.path.exists(args.out) and not args.overwrite:
        raise InvalidInput(f"--out {args.out} exists: give --overwrite to replace it, or "
                           "another --out")
    if args.label is not None or args.jump is not None or args.eta is not None:
        raise InvalidInput("--label, --jump and --eta do not apply to txt2img runs")
    if args.from_file and args.inpaint:
        raise InvalidInput("use one of --from and --inpaint")
    if bool(args.inpaint) != bool(args.mask):
        raise InvalidInput("--inpaint and --mask go together")
    if (args.from_file or args.inpaint) and args.n is not None:
        raise InvalidInput("--n does not apply to --from/--inpaint: one output per input image")
    if args.strength is not None and not args.from_file:
        raise InvalidInput("--strength applies to --from (SDEdit)")
    inpainting = read_run_config(args.run_dir).get("inpainting")
    if args.resample is not None and not (args.inpaint and not inpainting):
        raise InvalidInput("--resample applies to --inpaint of a run without the inpainting "
                           "model (RePaint)")
    _check_run(args.run_dir, read_run_config(args.run_dir))
    sampler = args.sampler or "ddim"
    common = dict(guidance=args.guidance, seed=args.seed, progress=True)
    prompt = args.prompt or ""
    pipeline = load_txt2img(args.run_dir, device=args.device)
    if args.from_file:
        images = files.read_images(args.from_file, "--from")
        out = pipeline.edit(images, prompt, 0.5 if args.strength is None else args.strength,
                            sampler=sampler, steps=args.steps or 50, **common)
    elif args.inpaint:
        images = files.read_images(args.inpaint, "--inpaint")
        known = files.read_mask(args.mask)
        known = np.broadcast_to(known, (len(images), *known.shape[1:])) if len(known) == 1 \
            else known
        out = pipeline.inpaint(images, known, prompt, sampler=sampler, steps=args.steps,
                               resample=args.resample or 1, **common)
    else:
        out = pipeline.sample(prompt, n=args.n or 1, sampler=sampler, steps=args.steps, **common)
    files.write_images(args.out, out)
    print(f"wrote {len(out)} images of shape {out.shape[1:]} to {args.out}")


def _check_sampling_options(args):
    """Refuse sampling options that would do nothing with the chosen sampler and inputs."""
    if args.eta is not None and args.sampler != "ddim":
        raise InvalidInput(f"--eta applies to --sampler ddim; the {args.sampler} sampler has no "
                           "eta")
    if args.guidance and args.label is None:
        raise InvalidInput("--guidance applies with --label (it guides toward that class); "
                           "without --label the samples are unconditional")
    for option, value in (("--resample", args.resample), ("--jump", args.jump)):
        if value is not None and not args.inpaint:
            raise InvalidInput(f"{option} applies to --inpaint (RePaint)")


def _check_fidelity_knobs(args, kind):
    """--truncation: a GAN run and PSI > 0. --classifier/--scale: a DDPM run, plain sampling
    (--n), a --label and a scale >= 0; the classifier run itself is checked against the DDPM
    run when it is loaded."""
    if args.truncation is not None and (kind != "gan" or not (
            np.isfinite(args.truncation) and args.truncation > 0)):
        raise InvalidInput(f"--truncation applies to GAN runs and must be > 0; this is a {kind} "
                           f"run, PSI {args.truncation}")
    if args.classifier is None:
        if args.scale is not None:
            raise InvalidInput("--scale applies with --classifier (classifier guidance)")
        return
    if kind != "ddpm":
        raise InvalidInput(f"--classifier applies to DDPM runs; this is a {kind} run")
    if args.from_file or args.inpaint:
        raise InvalidInput("--classifier guides plain sampling (--n), not --from/--inpaint")
    if args.label is None:
        raise InvalidInput("--classifier needs --label, the class to guide toward")
    if not os.path.isdir(args.classifier):
        raise InvalidInput(f"--classifier {args.classifier}: no such run directory")
    args.scale = 1.0 if args.scale is None else args.scale
    if not (np.isfinite(args.scale) and args.scale >= 0):
        raise InvalidInput(f"--scale must be a number >= 0, got {args.scale}")


def _check_run(run_dir, config):
    """Before sampling: the checkpoint of ``run_dir`` is the run its config.json describes
    (the same kind and data shape, the state its family saves), else one line naming the
    mismatch (an edited or mixed-up run directory)."""
    from minigen import checkpoint
    from minigen.rundir import CHECKPOINT_FILE

    path = os.path.join(run_dir, CHECKPOINT_FILE)
    if not os.path.isfile(path):
        raise InvalidInput(f"{run_dir} has no checkpoint ({CHECKPOINT_FILE}) yet")
    saved = checkpoint.load(path)
    held = saved.get("config") if isinstance(saved.get("config"), dict) else {}
    for key in ("kind", "data_shape"):
        if held.get(key) != config.get(key):
            raise InvalidInput(f"{run_dir}: config.json gives {key} {config.get(key)!r}, its "
                               f"checkpoint {held.get(key)!r}: the directory was edited or "
                               "mixes two runs; sample from the run's own files")
    shape = config.get("data_shape")
    if (not isinstance(shape, list) or len(shape) not in (1, 3)
            or not all(isinstance(n, int) and n >= 1 for n in shape)):
        raise InvalidInput(f"{run_dir}: data_shape must be [d] or [C, H, W] (positive integers), "
                           f"got {shape!r}")
    needed = RUN_STATE[config["kind"]]
    missing = [key for key in needed if not isinstance(saved.get(key), dict)]
    if missing:
        raise InvalidInput(f"{path}: a {config['kind']} checkpoint holds {list(needed)}; this "
                           f"one lacks {missing}")


def _check_npy_target(path, overwrite=False):
    """Before any work: ``path`` names a .npy file (not a directory) in a writable directory,
    and no existing file unless ``overwrite``."""
    if not path.endswith(".npy"):
        raise InvalidInput(f"--out must name a .npy file, got {path!r}")
    if os.path.isdir(path):
        raise InvalidInput(f"--out {path} is a directory; name a .npy file")
    if os.path.exists(path) and not overwrite:
        raise InvalidInput(f"--out {path} exists: give --overwrite to replace it, or another "
                           "--out")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InvalidInput(f"--out {path}: the directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InvalidInput(f"--out {path}: the directory {directory} is not writable")


@contextlib.contextmanager
def _npy_output(path, shape):
    """A float32 ``.npy`` array of ``shape`` mapped from a temporary file next to ``path``
    (the samples go to disk chunk by chunk: memory stays bounded for any --n), renamed to
    ``path`` when the block succeeds and deleted when it fails; refused when the disk has no
    room for it."""
    from minigen.checkpoint import temporary_path

    directory = os.path.dirname(os.path.abspath(path))
    size = 4 * int(np.prod(shape, dtype=object))
    free = shutil.disk_usage(directory).free
    if size > free:
        raise InvalidInput(f"--out {path}: {shape[0]} samples take {size / 2**30:.3g} GiB, "
                           f"{directory} has {free / 2**30:.3g} GiB free; use a smaller --n")
    tmp = temporary_path(path)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        yield out
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def demo(out="minigen-demo", steps=DEMO_STEPS, seed=0, progress=True, overwrite=False):
    """Train a DDPM on the S-curve and write its figures to ``out`` (the README's first
    command; a run already there is refused unless ``overwrite``). Returns ``(trainer,
    seconds)``; ``trainer.quality`` holds the numbers of 2000 ancestral samples
    (:func:`minigen.evaluate.evaluate_samples`)."""
    from minigen.diffusion.trainer import train_ddpm

    start = time.perf_counter()
    try:
        trainer = train_ddpm("s_curve", steps, out, seed=seed, progress=progress,
                             checkpoint_every=steps, overwrite=overwrite)
    except RunExists as err:  # the demo has no --resume to suggest
        raise RunExists(f"{out} already holds a run: replace it with --overwrite or choose "
                        "another --out") from err
    seconds = time.perf_counter() - start
    return trainer, seconds


def _demo(args):
    trainer, seconds = demo(args.out, args.steps, args.seed, progress=not args.quiet,
                            overwrite=args.overwrite)
    q = trainer.quality
    print(f"trained a DDPM on the S-curve for {trainer.step} steps in {seconds:.0f} s "
          f"(training, 2000 samples and figures)")
    print(f"quality of 2000 samples: curve precision {q['precision']:.3f} (share within 3 noise "
          f"std of the curve; fresh data ~0.99), coverage {q['coverage']:.2f} (fresh data 1.00), "
          f"energy distance {q['energy_distance']:.3f} (fresh data ~0.04)")
    out = os.path.abspath(args.out)
    for name in ("diffusion.png", "samples.png", "loss.png"):
        print(f"  {os.path.join(out, name)}")


def _bench(args):
    """``python -m bench`` of the source checkout this package runs from (minigen itself
    never imports the bench tool)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(root, "bench", "__main__.py")):
        raise InvalidInput(
            "minigen bench runs bench/ of a source checkout; none next to "
            f"{os.path.dirname(os.path.abspath(__file__))}"
        )
    return subprocess.call([sys.executable, "-m", "bench", *args.args], cwd=root)


COMMANDS = {"train": _train, "sample": _sample, "demo": _demo, "bench": _bench}


def main(argv=None):
    """Entry point of ``minigen`` and ``python -m minigen``; returns the exit status."""
    from minigen.trainer import TrainingDiverged, TrainingInterrupted

    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_notice
            # NaN/inf are reported by the divergence and sample checks, in one line
            warnings.simplefilter("ignore", RuntimeWarning)
            if argv[:1] == ["bench"]:  # every option (--help too) is python -m bench's
                args = argparse.Namespace(command="bench", args=argv[1:])
            else:
                args = build_parser().parse_args(argv)
            if getattr(args, "threads", None):
                backend.limit_threads(args.threads)
            if getattr(args, "sampler", None) == "ancestral":
                args.sampler = "ddpm"  # the library's name for Algorithm 2's sampler
            _check_device(getattr(args, "device", "cpu"))
            status = COMMANDS[args.command](args)
    except UsageError as err:
        print(f"{err}  (see minigen --help)", file=sys.stderr)
        return 2
    except (UserError, OSError, MemoryError, ModuleNotFoundError) as err:
        if debug or _is_bug(err):
            raise
        print(f"minigen: error: {_describe(err)}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"minigen: training diverged: {_one_line(err)}", file=sys.stderr)
        return 1
    except TrainingInterrupted as err:
        if distributed.is_main():  # every rank stops; rank 0 names the step it saved
            print(f"minigen: {_one_line(err)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        lost = ("nothing was saved since the last checkpoint" if argv[:1] == ["train"] else
                "nothing was written")
        print(f"minigen: interrupted ({lost})", file=sys.stderr)
        return 130
    return status if isinstance(status, int) else 0


def _show_notice(message, category, filename, lineno, file=None, line=None):
    """Warnings (e.g. ``errors.IgnoredOptions``) as one line, without source location."""
    print(f"minigen: note: {_one_line(message)}", file=sys.stderr)


def _check_device(device):
    if device == "cuda" and not backend.cuda_available():
        raise InvalidInput("--device cuda: no CUDA GPU usable through CuPy here (install the "
                           "extra: pip install 'minigen[gpu]')")


def _is_bug(err):
    """A missing module of minigen itself is a bug (its traceback shows); a missing optional
    package is the user's to install."""
    return (isinstance(err, ModuleNotFoundError)
            and (err.name or "minigen").split(".")[0] in ("minigen", "kernels"))


def _describe(err):
    """One line for a user, OS or memory error."""
    if isinstance(err, ModuleNotFoundError):
        return f"{_one_line(err)}: a package this command needs is not installed"
    if isinstance(err, MemoryError):
        return (f"out of memory ({_one_line(err) or 'MemoryError'}): use a smaller --batch-size "
                "or --n")
    if isinstance(err, OSError) and not isinstance(err, UserError) and err.strerror:
        where = f": {err.filename}" if err.filename else ""
        return f"{err.strerror}{where}"
    return _one_line(err)


def _one_line(err):
    return " ".join(str(err).split())
