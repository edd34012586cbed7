"""The bench's outputs: a markdown table, a JSON file and a log-scale bar chart.

``results`` (built by :func:`bench.__main__.run`) is a JSON-ready dict: ``machine``,
``settings``, ``load_average`` (before and after), ``columns`` and ``workloads``, each
workload with its sizes, the fused kernels it called per run, and per column either the
timing (``median_s``, ``min_s``, ``max_s``, ``times_s``, ``reps``, ``warmup``, ``ratio`` to
PyTorch on the same device, ``gbps`` for memory-bound ops) or ``{"na": reason}``.
"""
import json
import os
import textwrap

from bench.machine import summary_line


def _ms(seconds):
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def cell(result):
    if "na" in result:
        return result["na"]
    text = f"{_ms(result['median_s'])} ms"
    if result.get("ratio") is not None:
        text += f" ({result['ratio']:.2f}x)"
    return text


def _kernels(calls):
    return ", ".join(f"{k} x{n}" for k, n in sorted(calls.items())) or "none"


def overload_warning(results):
    """A warning line when multi-threaded pools ran on an overloaded machine, else nothing."""
    load, cores = results["load_average"]["before"], results["machine"]["cores"]
    threads = results["settings"]["threads"]
    if load is None or load[0] <= cores or threads == 1 or (threads is None and cores == 1):
        return []
    return [f"**Warning:** load average {load[0]} exceeds the {cores} cores and the thread pools "
            "(BLAS, Numba, PyTorch) ran with several threads: their threads wait for each other "
            "at every parallel region while other processes hold the cores, which can inflate "
            "times many-fold. Use `--threads 1` for comparable numbers on a busy machine."]


def markdown(results):
    """The table: one row per workload, one column per way of running it."""
    columns = results["columns"]
    s = results["settings"]
    load = results["load_average"]
    quick = " --quick (smoke run: reduced sizes/repetitions)" if s["quick"] else ""
    lines = [
        f"**minigen bench{quick}**",
        "",
        f"Machine: {summary_line(results['machine'])}; "
        f"threads: {'--threads ' + str(s['threads']) if s['threads'] else 'library defaults'}.",
        f"Load average (1/5/15 min) before {load['before']}, after {load['after']} "
        "(a load above the core count means other processes competed for the CPU).",
        "Median of the repetitions after warm-up, per run, the columns of a workload timed "
        "round-robin; (Nx) = minigen time / PyTorch time on the same device, this run.",
        *overload_warning(results),
        "",
        "| workload | sizes | " + " | ".join(c["label"] for c in columns)
        + " | fused kernels / run |",
        "|" + " --- |" * (len(columns) + 3),
    ]
    for w in results["workloads"]:
        cells = [cell(w["results"][c["key"]]) for c in columns]
        sizes = w["sizes_text"] + (" (reduced)" if w["reduced"] else "")
        lines.append(f"| {w['key']} {w['title']} | {sizes} | " + " | ".join(cells)
                     + f" | {_kernels(w['kernel_calls'])} |")
    bandwidth = [(w, c) for w in results["workloads"] for c in columns
                 if w["results"][c["key"]].get("gbps") is not None]
    if bandwidth:
        lines += ["", "Effective memory bandwidth of the memory-bound ops (bytes read + written "
                  "at least once / median time): " + "; ".join(
                      f"{w['key']} {c['key']} {w['results'][c['key']]['gbps']:.1f} GB/s"
                      for w, c in bandwidth) + "."]
    return "\n".join(lines) + "\n"


def write_json(results, path):
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")


def chart(results, path):
    """Grouped bars (one group per workload, one bar per column that ran), log time axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = results["workloads"]
    columns = [c for c in results["columns"]
               if any("na" not in w["results"][c["key"]] for w in workloads)]
    fig, ax = plt.subplots(figsize=(max(8.0, 0.5 * len(workloads) * (len(columns) + 1)), 5.5))
    width = 0.8 / max(1, len(columns))
    colours = plt.get_cmap("tab10").colors
    for j, c in enumerate(columns):
        xs, ys = [], []
        for i, w in enumerate(workloads):
            r = w["results"][c["key"]]
            if "na" not in r:
                xs.append(i + (j - (len(columns) - 1) / 2) * width)
                ys.append(r["median_s"] * 1e3)
        bars = ax.bar(xs, ys, width, label=c["label"], color=colours[j % len(colours)])
        ax.bar_label(bars, labels=[_ms(y / 1e3) for y in ys], fontsize=7, rotation=90, padding=2)
    ax.set_yscale("log")
    ax.set_ylabel("median time per run (ms, log scale)")
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels([f"{w['key']}\n{textwrap.fill(w['title'], 16)}" for w in workloads],
                       fontsize=8)
    times = [w["results"][c["key"]]["median_s"] * 1e3 for w in workloads for c in columns
             if "na" not in w["results"][c["key"]]]
    if times:  # a decade of room above the tallest bar for its rotated value label
        ax.set_ylim(min(times) / 2, max(times) * 15)
    s = results["settings"]
    title = f"minigen bench{' (--quick: reduced sizes)' if s['quick'] else ''}"
    machine = results["machine"]
    threads = f"{s['threads']} thread(s)" if s["threads"] else "default threads"
    ax.set_title(f"{title}\n{machine['cpu']}, {machine['cores']} cores, {threads}, "
                 f"load average {results['load_average']['before']}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", ncol=min(3, len(columns)))
    ax.grid(axis="y", which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_all(results, out_dir):
    """bench.md, bench.json and bench.png in ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, f"bench.{name}") for name in ("md", "json", "png")}
    with open(paths["md"], "w") as f:
        f.write(markdown(results))
    write_json(results, paths["json"])
    chart(results, paths["png"])
    return paths
