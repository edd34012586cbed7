"""Command line of the benchmarks: ``python -m bench`` (also ``minigen bench``).

    python -m bench                       # every workload, every column that can run here
    python -m bench --quick --out DIR     # smoke run (CI): reduced sizes and repetitions
    python -m bench --only W1,W3 --threads 2
    python -m bench --columns numba-cpu,torch-cpu
    python -m bench --profile W2          # cProfile breakdown of one workload (minigen)
    python -m bench defaults [--quick]    # what users get without thread settings (bench.defaults)
    python -m bench scaling [--quick]     # cost against batch, image size, width, steps (bench.scaling)
    python -m bench algorithms --only W8  # one workload under each conv algorithm (bench.algorithms)

Writes bench.md (the table, also printed), bench.json and bench.png (log-scale bars) into
``--out`` (default ``bench/results/``). Progress goes to stderr. The exit status is 1 when a
column that should have run raised (its cell then shows the error), else 0.
"""
import argparse
import gc
import sys
import traceback

from bench import harness, machine, peers, report
from bench import workloads as wl

DEFAULT_OUT = "bench/results"


def _jsonable(sizes):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in sizes.items()}


def _build(workload, column, sizes):
    if column.framework in peers.FRAMEWORKS:
        return peers.build(column.framework, workload.key, sizes)
    if column.framework == "torch":
        from bench import torch_ref

        return torch_ref.build(workload.key, sizes, column.device)
    return workload.build(sizes, column.device)


def prepare(workload, column, sizes):
    """Build and warm up one column's run; the first warm-up call counts the fused kernel
    calls. Returns (step, sync, kernel calls per run)."""
    sync = harness.synchronizer(column)
    with harness.kernel_mode(column.kernels):
        step = _build(workload, column, sizes)
        with harness.count_kernel_calls() as calls:
            step()
        for _ in range(workload.warmup - 1):
            step()
        sync()
    return step, sync, dict(calls)


def run_workload(workload, columns, quick, log):
    """Every column of one workload: timings, "n/a" reasons, ratios, bandwidth."""
    sizes = workload.sizes_for(quick)
    reps = workload.quick_reps if quick else workload.reps
    entry = {"key": workload.key, "title": workload.title, "sizes": _jsonable(sizes),
             "sizes_text": wl.describe_sizes(sizes), "reduced": sizes != workload.sizes,
             "kernel_calls": {}, "results": {}}
    errors = {}

    def failed(key, error):  # one broken column must not hide the others' numbers
        traceback.print_exception(error, file=log)
        errors[key] = {"na": f"error: {type(error).__name__}: {error}"[:200]}

    runs = {}
    for column in columns:
        reason = harness.unavailable(column, workload.key)
        if reason is not None:
            entry["results"][column.key] = {"na": reason}
            continue
        try:
            step, sync, calls = prepare(workload, column, sizes)
        except Exception as error:  # noqa: BLE001
            failed(column.key, error)
            continue
        runs[column.key] = (step, sync, column.kernels)
        if column.framework == "minigen" and not entry["kernel_calls"]:
            entry["kernel_calls"] = calls
    times = harness.measure_interleaved(runs, reps, failed)
    for key, ts in times.items():
        entry["results"][key] = harness.summarize(ts, workload.warmup)
        print(f"  {workload.key} {key}: {entry['results'][key]['median_s'] * 1e3:.3f} ms "
              f"(median of {reps})", file=log, flush=True)
    entry["results"].update(errors)
    entry["results"] = {c.key: entry["results"][c.key] for c in columns}
    nbytes = workload.bytes_moved(sizes)
    for column in columns:
        r = entry["results"][column.key]
        if "na" in r:
            continue
        base = entry["results"].get(column.baseline) if column.baseline else None
        r["ratio"] = r["median_s"] / base["median_s"] if base and "median_s" in base else None
        r["gbps"] = nbytes / r["median_s"] / 1e9 if nbytes else None
    del runs
    gc.collect()
    return entry, bool(errors)


def run(selected, columns, quick=False, threads=None, log=sys.stderr):
    """Run ``selected`` workloads in ``columns``; returns (results dict, any column failed)."""
    notes = machine.set_threads(threads) if threads else []
    for note in notes:
        print(f"bench: {note}", file=log)
    load_before = machine.load_average()
    results = {
        "machine": machine.describe(threads),
        "settings": {"quick": quick, "threads": threads, "notes": notes,
                     "workloads": [w.key for w in selected], "timer": "time.perf_counter",
                     "statistic": "median over reps after warm-up, columns timed round-robin"},
        "columns": [{"key": c.key, "label": c.label, "framework": c.framework,
                     "device": c.device, "kernels": c.kernels} for c in columns],
        "workloads": [],
    }
    failed = False
    for workload in selected:
        print(f"bench: {workload.key} {workload.title}", file=log, flush=True)
        entry, broke = run_workload(workload, columns, quick, log)
        results["workloads"].append(entry)
        failed |= broke
    results["load_average"] = {"before": load_before, "after": machine.load_average()}
    return results, failed


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: reduced sizes and repetitions (said so in the output)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    p.add_argument("--only", default=None,
                   help="comma-separated workloads, e.g. W1,W3 (W6 = W6a+W6b)")
    p.add_argument("--columns", default=None,
                   help=f"comma-separated columns among {', '.join(harness.COLUMN_KEYS)}")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for minigen (Numba; BLAS single-threaded), PyTorch and the "
                   "peers (default: minigen's import policy, the others' own defaults)")
    p.add_argument("--profile", metavar="W", default=None,
                   help="print a cProfile breakdown of one workload instead of the table")
    p.add_argument("--profile-column", default="numba-cpu",
                   help="the minigen column to profile (default numba-cpu)")
    p.add_argument("--top", type=int, default=25, help="functions listed by --profile")
    p.add_argument("--reps", type=int, default=None,
                   help="profiled runs (default: the workload's reps)")
    args = p.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    return p, args


def _columns(spec):
    if not spec:
        return list(harness.COLUMNS)
    keys = [k.strip() for k in spec.split(",") if k.strip()]
    unknown = [k for k in keys if k not in harness.COLUMN_KEYS]
    if unknown:
        raise ValueError(f"bench: unknown columns {unknown}; "
                         f"choose from {', '.join(harness.COLUMN_KEYS)}")
    return [c for c in harness.COLUMNS if c.key in keys]


SECTIONS = {"defaults": "bench.defaults", "scaling": "bench.scaling",
            "algorithms": "bench.algorithms"}
"""Sections with their own command line: ``python -m bench NAME ...`` is ``python -m
bench.NAME ...``."""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in SECTIONS:
        import importlib

        return importlib.import_module(SECTIONS[argv[0]]).main(argv[1:])
    parser, args = parse_args(argv)
    try:
        columns = _columns(args.columns)
        selected = wl.select(args.profile or args.only)
    except ValueError as error:
        parser.error(str(error))
    if args.profile:
        from bench.profiling import profile

        if len(selected) != 1:
            parser.error(f"--profile takes one workload, {args.profile!r} names {len(selected)}")
        column = next((c for c in harness.COLUMNS if c.key == args.profile_column), None)
        if column is None or column.framework != "minigen":
            parser.error(f"--profile-column must be a minigen column, got {args.profile_column!r}")
        reason = harness.unavailable(column)
        if reason:
            parser.error(f"--profile-column {column.key}: {reason}")
        if args.threads:
            machine.set_threads(args.threads)
        profile(selected[0], column, quick=args.quick, top=args.top, out_dir=args.out,
                reps=args.reps)
        return 0
    results, failed = run(selected, columns, quick=args.quick, threads=args.threads)
    paths = report.write_all(results, args.out)
    sys.stdout.write(report.markdown(results))
    print(f"\nwrote {paths['md']}, {paths['json']}, {paths['png']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
