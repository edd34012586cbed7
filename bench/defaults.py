"""What a user gets without any thread setting: ``python -m bench.defaults`` (also
``python -m bench defaults``).

    python -m bench.defaults                 # full: about 6 min on an idle 2-core machine (estimated)
    python -m bench.defaults --quick         # smoke run: short runs, one round
    python -m bench.defaults --out docs      # defaults.md and defaults.json into docs/

Two workloads, each run as a user runs it, in a fresh process:

- ``script``: a plain script, the 2-D DDPM MLP trained with Adam (:data:`SCRIPT`), timed
  from after its imports to its end (Numba's cache loads included);
- ``cli``: ``python -m minigen train ddpm --data s_curve`` (no figures, no progress bar),
  timed from the outside (interpreter start and imports included).

Each under these settings: ``untouched`` (no thread variable set), ``env 2`` (the
conventional variables ``OMP_NUM_THREADS``, ``NUMBA_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``
and ``MKL_NUM_THREADS`` all 2), ``torch first`` (the script with PyTorch imported before
minigen; the CLI has no such case) and ``explicit k`` for k = 1 .. the usable cores
(``minigen.set_num_threads(k)`` in the script, ``--threads k`` on the command line). Two
conditions: ``idle`` and ``shared`` (one busy-looping process beside the run). The
settings are interleaved round by round; the table gives each median and its ratio to the
best explicit setting of the same workload and condition (the target: 1.2 at most).
"""
import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from kernels import threads

SCRIPT = """
import time
import numpy as np
import minigen as mg
from minigen import nn, optim
from minigen.diffusion import DDPM, NoiseSchedule
start = time.perf_counter()
{setup}
mg.manual_seed(0)
model = nn.MLP(in_features=2, out_features=2, hidden=(128, 128, 128), activation="silu",
               time_dim=16, fourier_features=6)
ddpm = DDPM(model, NoiseSchedule.linear(1000))
optimizer = optim.Adam(model.parameters(), lr=1e-3)
data = mg.data.s_curve(4096, seed=0).astype(np.float32)
rng = np.random.default_rng(0)
for step in range({steps}):
    optimizer.zero_grad()
    loss = ddpm.loss(mg.tensor(data[rng.integers(0, len(data), 256)]))
    loss.backward()
    optimizer.step()
print(time.perf_counter() - start)
"""
"""The plain script: what a user writes after the README, with no thread setting. It
prints its time from after the imports (so that PyTorch's import, in ``torch first``, is
not counted); Numba's cache loads and the first steps are in it."""

FULL = {"script_steps": 300, "cli_steps": 2000, "rounds": 3}
QUICK = {"script_steps": 10, "cli_steps": 10, "rounds": 1}
WORKLOADS = ("script", "cli")
CONDITIONS = ("idle", "shared")
CLEARED = (*threads.THREAD_VARIABLES, "NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY",
           "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
"""Variables removed from every run's environment (the parent's own settings must not leak)."""


def settings(workload, cores):
    """The settings of one workload: name -> (extra environment, how the run applies it)."""
    both = {"untouched": ({}, None), "env 2": ({name: "2" for name in threads.THREAD_VARIABLES},
                                               None)}
    if workload == "script" and importlib.util.find_spec("torch") is not None:
        both["torch first"] = ({}, "torch")
    for k in range(1, cores + 1):
        both[f"explicit {k}"] = ({}, k)
    return both


def command(workload, how, sizes, out_dir):
    """The argv of one run."""
    if workload == "script":
        setup = {None: "", "torch": ""}.get(how, f"mg.set_num_threads({how})")
        code = SCRIPT.format(setup=setup, steps=sizes["script_steps"])
        if how == "torch":
            code = "import torch  # noqa: F401\n" + code
        return [sys.executable, "-c", code]
    argv = [sys.executable, "-m", "minigen", "train", "ddpm", "--data", "s_curve", "--steps",
            str(sizes["cli_steps"]), "--out", os.path.join(out_dir, "run"), "--overwrite",
            "--quiet", "--no-figures"]
    return argv + (["--threads", str(how)] if how else [])


def clean_environment(extra):
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(extra)
    return env


def timed_run(workload, argv, env):
    """Seconds of one fresh process (it must succeed): the script's own clock, the wall
    clock of a command."""
    start = time.perf_counter()
    run = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed: {run.stderr.strip()[-500:]}")
    return float(run.stdout.split()[-1]) if workload == "script" else seconds


def busy_process():
    """One process that keeps a core busy (the 'shared' condition)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def measure(workloads, conditions, sizes, cores, log=sys.stderr):
    """{condition: {workload: {setting: [seconds per round]}}}, settings interleaved."""
    times = {}
    with tempfile.TemporaryDirectory() as out_dir:
        for condition in conditions:
            busy = busy_process() if condition == "shared" else None
            try:
                table = times[condition] = {w: {s: [] for s in settings(w, cores)}
                                            for w in workloads}
                for round_ in range(sizes["rounds"]):
                    for workload in workloads:
                        for name, (extra, how) in settings(workload, cores).items():
                            seconds = timed_run(workload, command(workload, how, sizes, out_dir),
                                                clean_environment(extra))
                            table[workload][name].append(seconds)
                            print(f"defaults: {condition} round {round_ + 1} {workload} "
                                  f"{name}: {seconds:.2f} s", file=log, flush=True)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    return times


def summarize(times):
    """Medians and ratios to the best explicit setting (same workload and condition)."""
    rows = []
    for condition, table in times.items():
        for workload, by_setting in table.items():
            medians = {name: statistics.median(ts) for name, ts in by_setting.items()}
            best = min((m, name) for name, m in medians.items() if name.startswith("explicit"))
            for name, median in medians.items():
                rows.append({"condition": condition, "workload": workload, "setting": name,
                             "median_s": median, "runs_s": by_setting[name],
                             "best_explicit": best[1], "ratio": median / best[0]})
    return rows


def markdown(results):
    """The table: one row per workload and setting, idle and shared side by side."""
    rows = results["rows"]
    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    keyed = {(r["workload"], r["setting"], r["condition"]): r for r in rows}
    lines = [f"Defaults ({results['mode']}; {results['machine']}; load average before "
             f"{results['load_before']}, after {results['load_after']}; medians of "
             f"{results['sizes']['rounds']} fresh processes; ratio to the best explicit "
             "setting of the same workload and condition)", "",
             "| workload | setting | " + " | ".join(f"{c} s | {c} ratio" for c in conditions)
             + " |", "|---|---|" + "---|---|" * len(conditions)]
    for workload, setting in dict.fromkeys((r["workload"], r["setting"]) for r in rows):
        cells = []
        for condition in conditions:
            r = keyed.get((workload, setting, condition))
            cells += ["n/a", "n/a"] if r is None else [f"{r['median_s']:.2f}",
                                                        f"{r['ratio']:.2f}"]
        lines.append(f"| {workload} | {setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def run(quick=False, workloads=WORKLOADS, conditions=CONDITIONS, log=sys.stderr):
    sizes = QUICK if quick else FULL
    cores = threads.usable_cores()
    before = load_average()
    times = measure(workloads, conditions, sizes, cores, log)
    return {"mode": "quick" if quick else "full", "sizes": sizes, "cores": cores,
            "machine": f"{platform.processor() or platform.machine()}, {cores} usable cores, "
                       f"Python {platform.python_version()}",
            "load_before": before, "load_after": load_average(), "rows": summarize(times)}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.defaults",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short runs, one round (smoke test)")
    p.add_argument("--out", default="bench/results", help="directory of defaults.md/.json")
    p.add_argument("--only", choices=WORKLOADS, help="one workload (default: both)")
    p.add_argument("--conditions", default=",".join(CONDITIONS),
                   help="comma-separated among idle,shared (default both)")
    args = p.parse_args(argv)
    conditions = [c for c in args.conditions.split(",") if c]
    if not conditions or set(conditions) - set(CONDITIONS):
        p.error(f"--conditions: choose among {','.join(CONDITIONS)}, got {args.conditions!r}")
    results = run(args.quick, (args.only,) if args.only else WORKLOADS, conditions)
    os.makedirs(args.out, exist_ok=True)
    table = markdown(results)
    with open(os.path.join(args.out, "defaults.md"), "w") as f:
        f.write(table)
    with open(os.path.join(args.out, "defaults.json"), "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
