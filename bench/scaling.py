"""How cost grows as work grows: ``python -m bench.scaling`` (also ``python -m bench
scaling``).

    python -m bench.scaling                  # full: under 10 min on an idle 2-core machine (estimated)
    python -m bench.scaling --quick          # smoke run: small points, one repetition
    python -m bench.scaling --out docs --figure docs/figures/scaling.png

Time per DDPM training step of the compact UNet (W2's network, Adam) against the batch
size, the image size and the UNet's base width, time per sample of DDIM sampling against
the number of steps, and time per step against the MPI ranks; each point in a fresh
process (so that its peak RSS, ``ru_maxrss``, is its own), minigen beside PyTorch when
PyTorch is installed (:mod:`bench.torch_ref`, the same network). The figure plots each
curve on log-log axes with its fitted exponent (least squares of log time on log size):
1 means time proportional to the size. Points that cannot run here (the MPI ranks without
mpi4py and mpiexec, GPU memory without a GPU) are recorded as such.
"""
import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

BASE = {"batch": 16, "image": 16, "width": 32, "steps": 10, "images": 16, "T": 1000}
"""The point every sweep varies one coordinate of."""

SWEEPS = {
    "batch": ("train", "batch", (1, 4, 16, 64, 256, 512)),
    "image": ("train", "image", (8, 16, 32, 64)),
    "width": ("train", "width", (8, 16, 32, 64)),
    "steps": ("sample", "steps", (5, 10, 20, 50)),
}
"""name -> (what is timed, the coordinate varied, its values)."""

QUICK_SWEEPS = {
    "batch": ("train", "batch", (1, 4, 16)),
    "image": ("train", "image", (8, 16)),
    "width": ("train", "width", (8, 16)),
    "steps": ("sample", "steps", (2, 4)),
}
REPS = {"full": (1, 2), "quick": (1, 1)}  # (warm-up runs, timed runs) per point
FRAMEWORKS = ("minigen", "torch")


def _configure(point):
    """Set W2's UNet configuration to the point's image size and width (this process
    builds one network, so the shared configuration is changed in place)."""
    from bench import workloads as wl

    size = point["image"]
    wl.UNET_CONFIG.update(image_size=size, base_channels=point["width"],
                          attention_resolutions=(size // 2,))
    return wl


def _step(framework, task, point):
    wl = _configure(point)
    sizes = ({"batch": point["batch"], "T": point["T"]} if task == "train" else
             {"images": point["images"], "steps": point["steps"], "T": point["T"]})
    key = "W2" if task == "train" else "W6b"
    if framework == "torch":
        from bench import torch_ref

        return torch_ref.build(key, sizes, "cpu")
    build = wl.unet_train_step if task == "train" else wl.unet_ddim
    return build(sizes, "cpu")


def _rss_mb():
    """The resident set of this process now (Linux), MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure_point(framework, task, point, warmup, reps):
    """Median seconds per step (training) or per sample (sampling), and memory, MiB:
    the resident set before the first run and the process's peak."""
    run = _step(framework, task, point)
    before = _rss_mb()
    for _ in range(warmup):
        run()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    per = point["images"] if task == "sample" else 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"seconds": statistics.median(times) / per, "rss_before_mb": before, "peak_rss_mb": peak}


def _point(sweep, value):
    _, coordinate, _ = SWEEPS[sweep]
    return {**BASE, coordinate: value}


def run_point(framework, task, point, warmup, reps):
    """One point in a fresh process; its result, or {"na": why}."""
    spec = json.dumps({"framework": framework, "task": task, "point": point, "warmup": warmup,
                       "reps": reps})
    run = subprocess.run([sys.executable, "-m", "bench.scaling", "--point", spec],
                         capture_output=True, text=True, check=False)
    if run.returncode != 0:
        return {"na": f"error: {run.stderr.strip().splitlines()[-1][:200]}"}
    return json.loads(run.stdout.splitlines()[-1])


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def ranks_unmeasured():
    """Why the MPI ranks sweep cannot run here, or None when it can."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py not installed (pip install -e '.[mpi]')"
    if shutil.which("mpiexec") is None:
        return "no mpiexec on PATH"
    return None


def ranks_sweep(quick):
    """Time per training step of ``minigen train`` under ``mpiexec -n P``, P = 1, 2, from the
    outside (the run's wall-clock over its steps, start-up included)."""
    steps = 5 if quick else 50
    points = []
    for ranks in (1, 2):
        out = os.path.join("bench", "results", f"scaling-ranks{ranks}")
        argv = ["mpiexec", "-n", str(ranks), sys.executable, "-m", "minigen", "train", "ddpm",
                "--data", "digits", "--steps", str(steps), "--out", out, "--overwrite",
                "--quiet", "--no-figures", "--batch-size", "64"]
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        seconds = (time.perf_counter() - start) / steps
        points.append({"ranks": ranks, **({"seconds": seconds} if done.returncode == 0 else
                                          {"na": done.stderr.strip()[-200:]})})
    return points


def exponent(points):
    """The least-squares slope of log(seconds) on log(value) (None with under 2 points)."""
    xy = [(p["value"], p["seconds"]) for p in points if "seconds" in p]
    if len(xy) < 2:
        return None
    x, y = np.log([v for v, _ in xy]), np.log([s for _, s in xy])
    return float(np.polyfit(x, y, 1)[0])


def run(quick=False, frameworks=FRAMEWORKS, log=sys.stderr):
    mode = "quick" if quick else "full"
    warmup, reps = REPS[mode]
    frameworks = [f for f in frameworks if f != "torch" or torch_available()]
    results = {"mode": mode, "base": BASE, "warmup": warmup, "reps": reps,
               "machine": f"{platform.processor() or platform.machine()}, "
                          f"{len(os.sched_getaffinity(0))} usable cores",
               "load_before": [round(v, 2) for v in os.getloadavg()],
               "device_memory": "unmeasured: CPU run (no GPU here)", "curves": []}
    for sweep, (task, coordinate, values) in (QUICK_SWEEPS if quick else SWEEPS).items():
        for framework in frameworks:
            points = []
            for value in values:
                point = run_point(framework, task, _point(sweep, value), warmup, reps)
                points.append({"value": value, **point})
                shown = (f"{point['seconds'] * 1e3:.1f} ms" if "seconds" in point
                         else point["na"])
                print(f"scaling: {sweep}={value} {framework}: {shown}", file=log, flush=True)
            results["curves"].append({"sweep": sweep, "task": task, "framework": framework,
                                      "unit": f"seconds per {'sample' if task == 'sample' else 'step'}",
                                      "points": points, "exponent": exponent(points)})
    why = ranks_unmeasured()
    results["ranks"] = {"na": why} if why else {"points": ranks_sweep(quick)}
    results["load_after"] = [round(v, 2) for v in os.getloadavg()]
    return results


def figure(results, path):
    """One figure: a log-log panel per sweep, minigen and PyTorch, exponents in the legend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves = list(results["curves"])
    ranks = [{"value": p["ranks"], "seconds": p["seconds"]}
             for p in results.get("ranks", {}).get("points", []) if "seconds" in p]
    if ranks:
        curves.append({"sweep": "MPI ranks", "framework": "minigen", "points": ranks,
                       "unit": "seconds per step", "exponent": exponent(ranks)})
    sweeps = list(dict.fromkeys(c["sweep"] for c in curves))
    fig = Figure(figsize=(4 * len(sweeps), 3.6))
    FigureCanvasAgg(fig)
    for i, sweep in enumerate(sweeps):
        ax = fig.add_subplot(1, len(sweeps), i + 1)
        for curve in (c for c in curves if c["sweep"] == sweep):
            xy = [(p["value"], p["seconds"]) for p in curve["points"] if "seconds" in p]
            if not xy:
                continue
            slope = curve["exponent"]
            label = curve["framework"] + ("" if slope is None else f" (exponent {slope:.2f})")
            ax.loglog(*zip(*xy), "o-", label=label)
            ax.set_xticks([x for x, _ in xy], [str(x) for x, _ in xy])
            ax.minorticks_off()
        ax.set_xlabel(sweep)
        ax.set_ylabel(curve["unit"])
        ax.legend(fontsize=8)
    fig.suptitle(f"bench.scaling ({results['mode']}; {results['machine']}; load "
                 f"{results['load_before'][0]} -> {results['load_after'][0]})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def summary(results):
    """One line per curve: the sweep, the framework, the exponent."""
    return "\n".join(f"{c['sweep']:>6} {c['framework']:>8}: exponent "
                     + ("n/a" if c["exponent"] is None else f"{c['exponent']:.2f}")
                     for c in results["curves"]) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.scaling",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small points, one repetition")
    p.add_argument("--out", default="bench/results", help="directory of scaling.json/.png")
    p.add_argument("--figure", help="path of the figure (default: OUT/scaling.png)")
    p.add_argument("--no-torch", action="store_true", help="minigen only")
    p.add_argument("--point", help=argparse.SUPPRESS)  # one point, in the worker process
    args = p.parse_args(argv)
    if args.point:
        spec = json.loads(args.point)
        print(json.dumps(measure_point(spec["framework"], spec["task"], spec["point"],
                                       spec["warmup"], spec["reps"])))
        return 0
    results = run(args.quick, ("minigen",) if args.no_torch else FRAMEWORKS)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "scaling.json"), "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    figure(results, args.figure or os.path.join(args.out, "scaling.png"))
    sys.stdout.write(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
