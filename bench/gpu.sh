#!/usr/bin/env bash
# The GPU checks as one script, for a machine with a CUDA GPU, CuPy, Numba-CUDA and
# (optionally) PyTorch: the versions, the CPU-vs-GPU benchmark table, the fused sampling
# kernels' per-call overhead with and without a CUDA graph (bench/graphs.py), then the GPU
# tests (tests/test_gpu.py and the Numba-CUDA kernels of tests/test_kernels_cuda.py on the
# real device). Each part has its own time limit, so one that hangs does not hide the others.
#
#     bench/gpu.sh [OUT_DIR]          # default bench/results/gpu
#     BENCH_ARGS="--columns cupy-ref,torch-cuda" BENCH_LIMIT=120 TESTS_LIMIT=150 bench/gpu.sh
#
# Writes OUT_DIR/env.log, bench.log, graphs.log, tests.log, OUT_DIR/bench/bench.{md,json,png}
# and OUT_DIR/graphs/graphs.{md,json}.
# Exit status: 0 when every part passed, else 1.
set -u
out=${1:-bench/results/gpu}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
status=0

part() {  # part NAME SECONDS COMMAND...: run COMMAND into OUT_DIR/NAME.log, show its tail
    local name=$1 limit=$2 start rc
    shift 2
    echo "== $name (limit ${limit} s)"
    start=$(date +%s)
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    rc=$?
    echo "== $name: exit $rc after $(($(date +%s) - start)) s"
    tail -n "${TAIL:-25}" "$out/$name.log"
    [ "$rc" -eq 0 ] || status=1
}

part env 30 sh -c "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; \
    nproc; $python -c 'import sys, numpy, numba, cupy; print(sys.version.split()[0], \"numpy\", \
    numpy.__version__, \"numba\", numba.__version__, \"cupy\", cupy.__version__); \
    import torch; print(\"torch\", torch.__version__)'"
part bench "${BENCH_LIMIT:-300}" "$python" -m bench --out "$out/bench" ${BENCH_ARGS:-}
part graphs "${GRAPHS_LIMIT:-120}" "$python" -m bench.graphs --out "$out/graphs"
part tests "${TESTS_LIMIT:-240}" "$python" -m pytest -p no:cacheprovider -m "gpu or cudasim" \
    tests/test_gpu.py tests/test_kernels_cuda.py tests/test_bench_graphs.py tests/test_optim.py \
    tests/test_checkpoint.py -q
exit $status
