"""``python -m bench --profile W2``: where one workload's time goes, to guide optimisation.

Prints, for one minigen column (default: Numba-CPU kernels):

1. the median time per run without the profiler;
2. the overhead probe: the same workload with its batch size set to 1, where the array work
   is negligible, so its time is the fixed per-run cost of Python (graph building, op
   dispatch, checks, optimizer loop) -- divided by the number of Function applications it is
   an estimate of the per-op overhead;
3. the Function applications per run (forward and backward passes separately, by op class),
   and the ops that produced float64 from float32 inputs (silent up-casts);
4. cProfile's own time grouped by where the code lives. With NumPy 2, ufuncs, ndarray
   operators and ``np.dot`` run as C code that cProfile attributes to the *calling* Python
   function, so an op's ``forward``/``backward`` own time is mostly its array work (BLAS for
   the GEMM-carrying ops); the autograd machinery's own time is pure Python overhead;
5. the top functions by own time and by cumulative time, labelled ``Class.method``.

The raw profile is saved as ``profile_<W>.prof`` (for snakeviz / pstats) in the output dir.
"""
import collections
import contextlib
import cProfile
import importlib
import inspect
import os
import pstats
import sys

import numpy as np

from bench import harness
from bench import workloads as wl

# The engine module itself: the attribute ``minigen.tensor`` is the tensor-creation function.
engine = importlib.import_module("minigen.tensor")

# Op classes whose forward/backward run a GEMM (BLAS) on their main path.
GEMM_OPS = ("Linear", "MatMul", "Conv2d", "ConvTranspose2d", "Conv2dGradW")


def _code_labels():
    """{(file, first line): "module.Class.method" or "module.function"} for minigen, kernels
    and bench (cProfile itself only knows the function's bare name)."""
    labels = {}
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in ("minigen", "kernels", "bench") or module is None:
            continue
        short = name.split(".")[-1]
        for attr, value in vars(module).items():
            if inspect.isfunction(value) and value.__module__ == name:
                code = value.__code__
                labels[(code.co_filename, code.co_firstlineno)] = f"{short}.{attr}"
            elif inspect.isclass(value) and value.__module__ == name:
                for meth, fn in vars(value).items():
                    fn = getattr(fn, "fget", fn)
                    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
                    if code is not None:
                        where = (code.co_filename, code.co_firstlineno)
                        labels[where] = f"{short}.{value.__name__}.{meth}"
    return labels


def _label(key, labels):
    filename, line, func = key
    if filename == "~":
        return func
    if (filename, line) in labels:
        return labels[(filename, line)]
    parts = filename.replace("\\", "/").split("/")
    return f"{'/'.join(parts[-2:])}:{line}({func})"


def _category(key, label):
    filename, _, func = key
    path = filename.replace("\\", "/")
    if filename == "~":
        return "NumPy C calls visible to cProfile" if "numpy" in func else "other built-ins"
    if "/minigen/" in path:
        method = label.split(".")[-1]
        if method in ("forward", "backward", "backward_raw") and "/functional/" in path:
            op = label.split(".")[-2]
            return ("op bodies with a GEMM (" + ", ".join(GEMM_OPS) + ")" if op in GEMM_OPS
                    else "other op bodies (elementwise, reductions, shapes)")
        if path.endswith("/minigen/tensor.py"):
            return "autograd machinery (Function.__call__, Tensor, backprop)"
        part = path.split("/minigen/")[1].split("/")[0].removesuffix(".py")
        return f"minigen {part} (Python around the ops)"
    if "/kernels/" in path:
        return "kernels package (dispatch + Numba/reference bodies)"
    if "/numpy/" in path:
        return "NumPy Python wrappers (tensordot, pad, ...)"
    if "/bench/" in path:
        return "bench workload code"
    return "other Python"


@contextlib.contextmanager
def _op_census():
    """Count Function applications by class, separately inside and outside backprop, and
    the ops returning float64 from float32 inputs."""
    counts = {"forward": collections.Counter(), "backward": collections.Counter()}
    upcasts = collections.Counter()
    phase = ["forward"]
    call, backprop = engine.Function.__call__, engine.backprop

    def counting_call(self, *inputs):
        out = call(self, *inputs)
        name = type(self).__name__
        counts[phase[0]][name] += 1
        outs = out if isinstance(out, (list, tuple)) else [out]
        if (any(o.data.dtype == np.float64 for o in outs)
                and any(x.data.dtype == np.float32 for x in inputs)):
            upcasts[name] += 1
        return out

    def marked_backprop(*args, **kwargs):
        phase[0] = "backward"
        try:
            return backprop(*args, **kwargs)
        finally:
            phase[0] = "forward"

    engine.Function.__call__, engine.backprop = counting_call, marked_backprop
    try:
        yield counts, upcasts
    finally:
        engine.Function.__call__, engine.backprop = call, backprop


def _top(counter, n=8):
    return ", ".join(f"{k} {v}" for k, v in counter.most_common(n))


def profile(workload, column, quick=False, top=25, out_dir=None, reps=None, stream=sys.stdout):
    """Profile ``workload`` (a :class:`bench.workloads.Workload`) in minigen ``column``."""
    def say(text=""):
        print(text, file=stream)

    sizes = workload.sizes_for(quick)
    reps = reps or (workload.quick_reps if quick else workload.reps)
    sync = harness.synchronizer(column)
    with harness.kernel_mode(column.kernels):
        step = workload.build(sizes, column.device)
        plain = harness.measure(step, max(3, reps // 2), workload.warmup, sync)
        with _op_census() as (counts, upcasts):
            step()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(reps):
            step()
        sync()
        profiler.disable()
        probe_sizes = {**sizes, workload.batch_key: 1}
        probe = harness.measure(workload.build(probe_sizes, column.device), max(3, reps // 2),
                                workload.warmup, sync)

    n_fwd, n_bwd = sum(counts["forward"].values()), sum(counts["backward"].values())
    median_ms = plain["median_s"] * 1e3
    say(f"== Profile of {workload.key} {workload.title} ({wl.describe_sizes(sizes)}), "
        f"column {column.key}, {reps} profiled runs")
    say(f"median per run without the profiler: {median_ms:.2f} ms")
    say(f"Function applications per run: {n_fwd} in the forward pass, {n_bwd} inside backward")
    if n_fwd:
        say(f"  forward: {_top(counts['forward'])}")
    if n_bwd:
        say(f"  backward: {_top(counts['backward'])}")
    probe_ms = probe["median_s"] * 1e3
    say(f"overhead probe ({workload.batch_key} 1): {probe_ms:.2f} ms per run = "
        f"{100 * probe_ms / median_ms:.0f}% of the full run"
        + (f", {1e3 * probe_ms / (n_fwd + n_bwd):.1f} us per Function application"
           if n_fwd + n_bwd else ""))
    say("float64 results from float32 inputs: " + (_top(upcasts) if upcasts else "none"))

    stats = pstats.Stats(profiler)
    labels = _code_labels()
    rows = []
    for key, (_, ncalls, tottime, cumtime, _) in stats.stats.items():
        label = _label(key, labels)
        rows.append((label, _category(key, label), ncalls / reps, tottime / reps, cumtime / reps))
    total = sum(r[3] for r in rows)
    say(f"\nOwn time by where the code lives (cProfile, {1e3 * total:.2f} ms per profiled run):")
    by_category = collections.Counter()
    for _, cat, _, tottime, _ in rows:
        by_category[cat] += tottime
    for cat, t in by_category.most_common():
        say(f"  {1e3 * t:9.2f} ms  {100 * t / total:5.1f}%  {cat}")
    say("  (C code without a profiler entry -- ufuncs, ndarray operators, np.dot -- counts as own\n"
        "   time of its Python caller: numpy's tensordot = its GEMM; ndarray.reshape of a\n"
        "   strided view = a copy, e.g. of im2col patches)")
    say(f"\nTop {top} functions by own time (per run):")
    say(f"  {'calls':>8} {'own ms':>9} {'cum ms':>9}  function")
    for label, _, ncalls, tottime, cumtime in sorted(rows, key=lambda r: -r[3])[:top]:
        say(f"  {ncalls:8.0f} {1e3 * tottime:9.3f} {1e3 * cumtime:9.3f}  {label}")
    say(f"\nTop {min(top, 15)} functions by cumulative time (per run):")
    for label, _, ncalls, tottime, cumtime in sorted(rows, key=lambda r: -r[4])[:min(top, 15)]:
        say(f"  {ncalls:8.0f} {1e3 * tottime:9.3f} {1e3 * cumtime:9.3f}  {label}")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"profile_{workload.key}.prof")
        profiler.dump_stats(path)
        say(f"\nraw profile: {path} (python -m pstats {path})")
    return {"median_s": plain["median_s"], "probe_s": probe["median_s"], "ops_forward": n_fwd,
            "ops_backward": n_bwd, "categories": dict(by_category), "upcasts": dict(upcasts)}
