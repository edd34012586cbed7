"""One workload under each CPU convolution algorithm, beside PyTorch: ``python -m
bench.algorithms`` (also ``python -m bench algorithms``).

    python -m bench.algorithms --only W8 --threads 1 --reps 5
    python -m bench.algorithms --only W3,W7 --algorithms auto,winograd,im2col

Builds each workload once in minigen (and in PyTorch when it is installed) and times the
columns round-robin: minigen with ``set_conv_algorithm(name)`` for each name, then PyTorch.
Each column reports the median wall-clock time and the median CPU time of the process
(``time.process_time``), which other processes' turns on a shared core do not inflate,
and each ratio to PyTorch. Compares code paths on one machine, at one moment.
"""
import argparse
import statistics
import time

import kernels
import minigen as mg
from bench import workloads as wl


def _timed(run):
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return time.process_time() - cpu, time.perf_counter() - wall


def _with_algorithm(step, name):
    def run():
        previous = kernels.get_conv_algorithm()
        kernels.set_conv_algorithm(name)
        try:
            step()
        finally:
            kernels.set_conv_algorithm(previous)
    return run


def compare(workload, algorithms, reps, sizes=None, with_torch=True):
    """{column: (median CPU s, median wall s)} for minigen under each algorithm and, with
    ``with_torch`` where PyTorch is installed, PyTorch ("torch"); one warm-up run each,
    then ``reps`` rounds."""
    sizes = sizes or workload.sizes
    step = workload.build(sizes, "cpu")
    columns = {name: _with_algorithm(step, name) for name in algorithms}
    try:
        from bench import torch_ref
    except ImportError:
        with_torch = False
    if with_torch:
        columns["torch"] = torch_ref.build(workload.key, sizes, "cpu")
    times = {name: [] for name in columns}
    for _ in range(reps + 1):
        for name, run in columns.items():
            times[name].append(_timed(run))
    return {name: tuple(statistics.median(t[i] for t in runs[1:]) for i in (0, 1))
            for name, runs in times.items()}


def report(key, medians):
    """The table rows of one workload: times and ratios to PyTorch."""
    torch_times = medians.get("torch")
    lines = []
    for name, (cpu, wall) in medians.items():
        ratio = ("-" if torch_times is None or name == "torch" else
                 f"{cpu / torch_times[0]:.2f}x / {wall / torch_times[1]:.2f}x")
        lines.append(f"| {key} | {name} | {1e3 * cpu:.1f} | {1e3 * wall:.1f} | {ratio} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.algorithms",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="W3", help="comma-separated workloads (default W3)")
    parser.add_argument("--algorithms", default="auto,im2col",
                        help=f"comma-separated, among {', '.join(kernels.conv_algorithm.CHOICES)}")
    parser.add_argument("--threads", type=int, default=None, help="threads for minigen and PyTorch")
    parser.add_argument("--reps", type=int, default=5, help="timed rounds (after one warm-up)")
    parser.add_argument("--quick", action="store_true", help="smoke run: the reduced sizes, one round")
    args = parser.parse_args(argv)
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    unknown = [a for a in algorithms if a not in kernels.conv_algorithm.CHOICES]
    try:
        selected = wl.select(args.only)
    except ValueError as error:
        parser.error(str(error))
    if unknown or not algorithms:
        parser.error(f"--algorithms: choose from {', '.join(kernels.conv_algorithm.CHOICES)}, "
                     f"got {args.algorithms!r}")
    if args.threads is not None:
        mg.set_num_threads(args.threads)
        try:
            import torch
        except ImportError:
            pass
        else:
            torch.set_num_threads(args.threads)
    print("| workload | column | CPU ms | wall ms | / PyTorch (CPU / wall) |")
    print("| --- | --- | --- | --- | --- |")
    for workload in selected:
        medians = compare(workload, algorithms, 1 if args.quick else args.reps,
                          workload.sizes_for(args.quick))
        print("\n".join(report(workload.key, medians)), flush=True)


if __name__ == "__main__":
    main()
