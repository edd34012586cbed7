"""Per-call overhead of the fused sampling kernels on a GPU, and what a CUDA graph removes.

Bench W4 (``q_sample``) and W5 (one ``p_sample`` step, identity network) at the bench's
sizes in float32, each run four ways:

- ``ddpm``: ``DDPM.q_sample`` / ``DDPM.p_sample`` as ``python -m bench`` times them
  (timesteps on the host, the checks of :mod:`kernels`, a new output array per call);
- ``launcher``: :mod:`kernels.cuda`'s launcher on fixed CuPy buffers, timesteps already on
  the device (the per-call work left in minigen: Numba's launch of one kernel);
- ``graph``: the same launch captured once in a CUDA graph (:func:`kernels.cuda.capture`)
  and replayed;
- ``torch``: PyTorch CUDA's W4/W5 (:mod:`bench.torch_ref`), when PyTorch sees a GPU.

Each run is timed two ways, round-robin across the runs: one call then a device
synchronisation (the latency, as the main bench reports it), and a burst of calls with one
synchronisation at the end divided by the burst length (the per-call cost when launches
queue up, i.e. the host-side overhead whenever the GPU keeps up).

    python -m bench.graphs [--out DIR] [--quick]

Prints a Markdown table and writes it with the JSON to DIR/graphs.{md,json}. Needs CuPy and a
CUDA GPU; without them it says so and exits with status 2.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

from bench import harness, machine
from bench import workloads as wl
from minigen import backend

RUNS = ("ddpm", "launcher", "graph", "torch")
BURST = 100


def _steps(key, sizes, errors):
    """{run: (step, sync)} for workload ``key`` ("W4" or "W5") at ``sizes``; a run that cannot
    be built goes to ``errors`` instead."""
    from kernels import cuda as gpu

    cupy = backend.cupy()
    ddpm, x, noise, t_host = wl._image_batch(sizes, "cuda")
    s = ddpm.schedule
    t, out = cupy.asarray(t_host), cupy.empty_like(x)
    if key == "W4":
        def eager():
            ddpm.q_sample(x, t_host, noise)

        def launch():
            gpu.q_sample(x, noise, t, s.sqrt_alphas_cumprod, s.sqrt_one_minus_alphas_cumprod,
                         out=out)
    else:
        tables = (ddpm.coef_x0_xt, ddpm.coef_x0_out, s.posterior_mean_coef1,
                  s.posterior_mean_coef2, ddpm.sigmas)

        def eager():
            ddpm.p_sample(x, t_host, noise)

        def launch():  # the identity network: eps = x_t
            gpu.p_sample_step(x, x, t, noise, *tables, clip=ddpm.clip_x0, out=out)
    sync = cupy.cuda.Device().synchronize
    steps = {"ddpm": (eager, sync), "launcher": (launch, sync)}
    try:
        graph, stream = gpu.capture(launch)
        steps["graph"] = (lambda: graph.launch(stream), sync)
    except Exception as error:  # noqa: BLE001 (reported, the other runs go on)
        errors["graph"] = f"{type(error).__name__}: {error}"
    torch = harness.torch_module()
    if torch is not None and torch.cuda.is_available():
        from bench import torch_ref

        steps["torch"] = (torch_ref.build(key, sizes, "cuda"), torch.cuda.synchronize)
    return steps


def _burst(step):
    def run():
        for _ in range(BURST):
            step()
    return run


def measure(key, quick=False):
    """{run: {"latency_s", "burst_s"} (medians) or {"error"}} for workload ``key``."""
    workload = wl.BY_KEY[key]
    errors = {}

    def on_error(run, error):
        errors[run] = f"{type(error).__name__}: {error}"

    steps = _steps(key, workload.sizes_for(quick), errors)
    for run, (step, sync) in steps.items():
        try:
            for _ in range(workload.warmup):
                step()
            sync()
        except Exception as error:  # noqa: BLE001 (reported, the other runs go on)
            on_error(run, error)
    results = {}
    reps = workload.quick_reps if quick else workload.reps
    for name, wrap, scale in (("latency_s", lambda step: step, 1), ("burst_s", _burst, BURST)):
        runs = {run: (wrap(step), sync, "auto") for run, (step, sync) in steps.items()
                if run not in errors}
        for run, times in harness.measure_interleaved(runs, reps, on_error).items():
            results.setdefault(run, {})[name] = statistics.median(times) / scale
    for run, error in errors.items():
        results[run] = {"error": error}
    return results


def markdown(results):
    lines = [f"| workload | run | latency (ms, one call + sync) | per call in a burst of {BURST} "
             "(ms) | latency / PyTorch CUDA |", "| --- | --- | --- | --- | --- |"]
    for key, runs in results.items():
        torch_latency = runs.get("torch", {}).get("latency_s")
        for run in RUNS:
            r = runs.get(run)
            if r is None:
                continue
            if "error" in r:
                lines.append(f"| {key} | {run} | {r['error']} | | |")
                continue
            ratio = f"{r['latency_s'] / torch_latency:.2f}x" if torch_latency else "n/a"
            lines.append(f"| {key} | {run} | {r['latency_s'] * 1e3:.4f} | "
                         f"{r['burst_s'] * 1e3:.4f} | {ratio} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.graphs", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--out", default="bench/results/graphs", help="output directory")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    if not backend.cuda_available():
        print("bench.graphs: needs CuPy and a CUDA GPU; nothing measured", file=sys.stderr)
        return 2
    results = {key: measure(key, args.quick) for key in ("W4", "W5")}
    table = markdown(results)
    print(machine.summary_line(machine.describe()))
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "graphs.md").write_text(table + "\n")
    (out / "graphs.json").write_text(json.dumps(
        {"machine": machine.describe(), "burst": BURST, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
