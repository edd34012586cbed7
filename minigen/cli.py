"""The ``minigen`` command line (also ``python -m minigen``).

    minigen train ddpm --data s_curve --steps 6000 --out runs/s_curve [--seed 0] [--resume]
    minigen train gan  --data ring8 --steps 3000 --out runs/ring8 [--k 1] [--loss nonsaturating]
    minigen sample runs/s_curve --n 2000 --out samples.npy [--sampler ddim --steps 50]
    minigen demo [--out minigen-demo] [--steps 6000]
    minigen bench ...

Mistakes in the arguments or the data (unknown dataset, unreadable or malformed file, a run
directory that holds no run) print one line on stderr and exit with status 2, without a
traceback; a diverging run (NaN loss) exits with status 1.
"""
import argparse
import os
import sys
import time

from minigen import data as datasets

USER_ERRORS = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, ImportError)
DEMO_STEPS = 6000
DEVICES = ("cpu", "cuda")


class UsageError(Exception):
    """A bad command line: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _data_argument(text):
    """A dataset name or the path of a .npy/.npz file (existence is checked on loading)."""
    if text in datasets.DATASETS or text.endswith((".npy", ".npz")):
        return text
    raise argparse.ArgumentTypeError(
        f"unknown dataset {text!r}: use one of {', '.join(datasets.DATASETS)} or a .npy/.npz file")


def build_parser():
    parser = _Parser(prog="minigen", description="Train and sample DDPMs and GANs built on "
                     "minigen's from-scratch autograd engine.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser("train", help="train a model")
    kinds = train.add_subparsers(dest="kind", required=True, parser_class=_Parser)
    for kind in ("ddpm", "gan"):
        p = kinds.add_parser(kind, help=f"train a {kind.upper()}")
        p.add_argument("--data", required=True, type=_data_argument,
                       help=f"{', '.join(datasets.DATASETS)}, or a .npy/.npz file of vectors "
                            "(n, d) or images (n, C, H, W)")
        p.add_argument("--steps", required=True, type=_positive_int, help="training steps")
        p.add_argument("--out", required=True, help="run directory (checkpoint, config, figures)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint")
        p.add_argument("--checkpoint-every", type=_positive_int,
                       help="steps between checkpoints and figures (default 1000)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument("--no-figures", action="store_true", help="write no figures")
        p.add_argument("--threads", type=_positive_int,
                       help="cap the BLAS and Numba threads (see minigen.cli.limit_threads)")
        p.add_argument("--device", choices=DEVICES, default="cpu",
                       help="train on the CPU (NumPy) or a CUDA GPU (CuPy)")
        if kind == "ddpm":
            p.add_argument("--batch-size", type=_positive_int)
            p.add_argument("--lr", type=float)
        else:
            p.add_argument("--k", type=_positive_int, default=1,
                           help="discriminator steps per generator step (Algorithm 1)")
            p.add_argument("--loss", choices=("nonsaturating", "minimax"), default="nonsaturating")

    sample = commands.add_parser("sample", help="draw samples from a trained run")
    sample.add_argument("run_dir")
    sample.add_argument("--n", required=True, type=_positive_int, help="number of samples")
    sample.add_argument("--out", required=True, help="output .npy file")
    sample.add_argument("--sampler", choices=("ddpm", "ddim"), default="ddpm",
                        help="DDPM runs: ancestral (all T steps) or DDIM")
    sample.add_argument("--steps", type=_positive_int, help="DDIM steps (default 50)")
    sample.add_argument("--eta", type=float, default=0.0, help="DDIM eta (0: deterministic)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--device", choices=DEVICES, default="cpu",
                        help="sample on the CPU (NumPy) or a CUDA GPU (CuPy)")

    demo = commands.add_parser("demo", help="train a DDPM on the S-curve (under a minute) and "
                               "write its figures")
    demo.add_argument("--out", default="minigen-demo")
    demo.add_argument("--steps", type=_positive_int, default=DEMO_STEPS)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true")
    demo.add_argument("--threads", type=_positive_int, default=1,
                      help="BLAS and Numba threads (default 1: see minigen.cli.limit_threads)")

    bench = commands.add_parser("bench", help="run the benchmarks (bench/ of a source checkout)")
    bench.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def limit_threads(n):
    """Cap the threads of Numba's parallel kernels and of the BLAS behind NumPy at ``n``.

    The 2-D models multiply small matrices (256 x 128), where BLAS threads buy little and
    cost much as soon as the cores are shared: ``minigen demo`` on a 2-core machine running
    other jobs (load ~5) took 167 s with OpenBLAS's default 2 threads and 23-30 s with 1,
    with identical results. The BLAS cap needs ``threadpoolctl`` (installed with
    scikit-learn); without it set ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` before
    starting Python. Returns whether the BLAS cap could be applied."""
    import numba

    from kernels import threads

    threads.prefer_workqueue()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    threadpool_limits(n, user_api="blas")
    return True


def _train(args):
    if args.threads:
        limit_threads(args.threads)
    options = {} if args.checkpoint_every is None else {"checkpoint_every": args.checkpoint_every}
    if args.kind == "ddpm":
        from minigen.diffusion.trainer import train_ddpm as train

        given = {"batch_size": args.batch_size, "lr": args.lr}
        options.update((k, v) for k, v in given.items() if v is not None)
    else:
        from minigen.gan import train_gan as train

        options.update(k=args.k, loss=args.loss)
    trainer = train(args.data, args.steps, args.out, seed=args.seed, resume=args.resume,
                    progress=not args.quiet, figures=not args.no_figures, device=args.device,
                    **options)
    print(f"trained {args.kind} to step {trainer.step}: {os.path.abspath(args.out)}")


def _sample(args):
    if not args.out.endswith(".npy"):
        raise ValueError(f"--out must name a .npy file, got {args.out!r}")
    from minigen.diffusion.trainer import read_run_config, sample_run

    kind = read_run_config(args.run_dir).get("kind")
    if kind == "ddpm":
        samples = sample_run(args.run_dir, args.n, sampler=args.sampler, steps=args.steps,
                             eta=args.eta, seed=args.seed, progress=True, device=args.device)
    elif kind == "gan":
        import minigen.gan as gan

        if args.sampler != "ddpm" or args.steps is not None:
            raise ValueError("--sampler/--steps apply to DDPM runs; this is a GAN run")
        samples = gan.sample_run(args.run_dir, args.n, seed=args.seed, device=args.device)
    else:
        raise ValueError(f"{args.run_dir}: config.json names an unknown run kind {kind!r}")
    import numpy as np

    np.save(args.out, samples)
    print(f"wrote {len(samples)} samples of shape {tuple(samples.shape[1:])} to {args.out}")


def demo(out="minigen-demo", steps=DEMO_STEPS, seed=0, progress=True):
    """Train a DDPM on the S-curve and write its figures to ``out`` (the README's first
    command). Returns ``(trainer, seconds)``; ``trainer.quality`` holds the numbers of 2000
    ancestral samples (:func:`minigen.diffusion.evaluate.evaluate_samples`)."""
    from minigen.diffusion.trainer import train_ddpm

    start = time.perf_counter()
    trainer = train_ddpm("s_curve", steps, out, seed=seed, progress=progress,
                         checkpoint_every=steps)
    seconds = time.perf_counter() - start
    return trainer, seconds


def _demo(args):
    limit_threads(args.threads)
    trainer, seconds = demo(args.out, args.steps, args.seed, progress=not args.quiet)
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
    try:
        from bench.__main__ import main as bench_main
    except ImportError as err:
        raise ImportError(
            "minigen bench needs the bench/ package of a source checkout "
            f"({err})"
        ) from err
    return bench_main(args.args)


COMMANDS = {"train": _train, "sample": _sample, "demo": _demo, "bench": _bench}


def main(argv=None):
    """Entry point of ``minigen`` and ``python -m minigen``; returns the exit status."""
    from minigen.trainer import TrainingDiverged

    try:
        args = build_parser().parse_args(argv)
        _check_device(getattr(args, "device", "cpu"))
        status = COMMANDS[args.command](args)
    except UsageError as err:
        print(f"{err}  (see minigen --help)", file=sys.stderr)
        return 2
    except USER_ERRORS as err:
        print(f"minigen: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"minigen: training diverged: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("minigen: interrupted", file=sys.stderr)
        return 130
    return status if isinstance(status, int) else 0


def _check_device(device):
    from minigen import backend

    if device == "cuda" and not backend.cuda_available():
        raise ValueError("--device cuda: no CUDA GPU usable through CuPy here (install the "
                         "extra: pip install 'minigen[gpu]')")


def _one_line(err):
    return " ".join(str(err).split())
