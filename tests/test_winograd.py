"""Winograd F(m x m, r x r) (kernels.winograd) against the direct definition, its float32
error against the stated bound, the polyphase decomposition of strided convolutions
(kernels.polyphase), and the CPU convolution path (kernels.conv_cpu) that uses them."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernels import conv_algorithm, conv_cpu, polyphase, reference, threads, winograd
from tests.references import conv2d_loop

VARIANTS = [(m, 3) for m in winograd.TILE_SIZES] + [(2, 2)]
"""(m, r) of every F(m x m, r x r) the passes run."""


@st.composite
def winograd_case(draw):
    """A stride-1 r x r geometry of a variant (any padding the path accepts, sizes not
    multiples of m)."""
    m, r = draw(st.sampled_from(VARIANTS))
    n, c, c_out = (draw(st.integers(1, 3)) for _ in range(3))
    padding = draw(st.integers(0, r - 1))
    h = draw(st.integers(max(1, r - 2 * padding), 9))
    w_in = draw(st.integers(max(1, r - 2 * padding), 9))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return (rng.standard_normal((n, c, h, w_in)), rng.standard_normal((c_out, c, r, r)),
            padding, m)


@given(case=winograd_case())
def test_winograd_float64_is_the_direct_convolution_and_its_adjoints(case):
    x, w, padding, m = case
    y = winograd.conv2d(x, w, padding, m)
    np.testing.assert_allclose(y, conv2d_loop(x, w, None, 1, padding), rtol=1e-10, atol=1e-10)
    gy = np.random.default_rng(1).standard_normal(y.shape)
    np.testing.assert_allclose(winograd.conv2d_grad_input(gy, w, padding, m),
                               reference.conv2d_grad_input(gy, w, x.shape, 1, padding),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(winograd.conv2d_grad_weight(x, gy, padding, m, w.shape[2]),
                               reference.conv2d_grad_weight(x, gy, w.shape, 1, padding),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("m, r", VARIANTS)
@pytest.mark.parametrize("shape", [(4, 32, 32, 16), (2, 64, 64, 8), (3, 5, 7, 11)])
def test_winograd_float32_error_is_within_the_bound(m, r, shape):
    """|F(m) in float32 - exact| <= gamma_k A^T[sum_c |G||g||G|^T . |B^T||d||B|]|A| for the
    forward pass and for the input gradient (a forward pass with the flipped kernel)."""
    n, c, c_out, size = shape
    rng = np.random.default_rng(m)
    x = rng.standard_normal((n, c, size, size)).astype(np.float32)
    w = (rng.standard_normal((c_out, c, r, r)) / np.sqrt(r * r * c)).astype(np.float32)
    exact = reference.conv2d(x.astype(np.float64), w.astype(np.float64), 1, 1)
    error = np.abs(winograd.conv2d(x, w, 1, m) - exact)
    assert (error <= winograd.error_bound(x, w, 1, m)).all()
    gy = rng.standard_normal(exact.shape).astype(np.float32)
    w_flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    exact_gx = reference.conv2d_grad_input(gy.astype(np.float64), w.astype(np.float64), x.shape, 1, 1)
    error_gx = np.abs(winograd.conv2d_grad_input(gy, w, 1, m) - exact_gx)
    assert (error_gx <= winograd.error_bound(gy, w_flipped, r - 2, m)).all()  # padding r - 1 - 1


def test_error_bound_is_attained_in_order_of_magnitude():
    """The bound is not vacuous: float32 F(4x4) errors reach a visible fraction of it,
    and exceed those of F(2x2) (larger transform coefficients)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 32, 16, 16)).astype(np.float32)
    w = (rng.standard_normal((32, 32, 3, 3)) / 17).astype(np.float32)
    exact = reference.conv2d(x.astype(np.float64), w.astype(np.float64), 1, 1)
    err = {m: np.abs(winograd.conv2d(x, w, 1, m) - exact).max() for m in winograd.TILE_SIZES}
    bound = winograd.error_bound(x, w, 1, 4).max()
    assert err[4] > err[2]
    assert err[4] > 1e-3 * bound


@pytest.mark.parametrize("m, r", VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, padding", [((2, 32, 16, 16), 1), ((3, 5, 7, 11), 2),
                                            ((1, 3, 9, 6), 0), ((2, 4, 1, 2), 2)])
def test_written_out_transforms_equal_the_matrix_kernels(m, r, dtype, shape, padding):
    """The per-image kernels with B^T, A and A^T written as formulas give exactly the
    results of the generic kernels that loop over the matrices' entries."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    BT, _, AT = winograd.matrices(m, dtype, r)
    alpha = m + r - 1
    out_hw = (shape[2] + 2 * padding - r + 1, shape[3] + 2 * padding - r + 1)
    th, tw = -(-out_hw[0] // m), -(-out_hw[1] // m)
    tiles = shape[0] * th * tw
    expected, got = (np.full((alpha ** 2, tiles, shape[1]), np.nan, dtype) for _ in range(2))
    winograd._tile_transform(x, BT, m, padding, th, tw, expected)
    for n in range(shape[0]):
        winograd._image_tiles(alpha, x, n, False, padding, th, tw, got, n * th * tw)
    np.testing.assert_array_equal(got, expected)
    gy = rng.standard_normal(shape[:2] + out_hw).astype(dtype)
    winograd._tile_transform(gy, np.ascontiguousarray(AT.T), m, 0, th, tw, expected)
    for n in range(shape[0]):
        winograd._image_tiles(alpha, gy, n, True, 0, th, tw, got, n * th * tw)
    np.testing.assert_array_equal(got, expected)
    M = rng.standard_normal((alpha ** 2, tiles, shape[1])).astype(dtype)
    y_expected, y_got = (np.full(gy.shape, np.nan, dtype) for _ in range(2))
    winograd._untile_transform(M, AT, th, tw, y_expected)
    for n in range(shape[0]):
        winograd._image_untile(alpha, M, n * th * tw, n, th, tw, y_got)
    np.testing.assert_array_equal(y_got, y_expected)


@pytest.mark.parametrize("m, r", VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads_count", [1, 2])
@pytest.mark.parametrize("batch, size", [(1, 16), (5, 8), (7, 9), (64, 4)])
@pytest.mark.parametrize("numba_blas", [True, False])
def test_fused_passes_equal_transform_gemm_untransform(monkeypatch, m, r, dtype, threads_count,
                                                       batch, size, numba_blas):
    """The F(m x m) passes compute the formula's transforms, GEMMs and untransforms, against
    the generic kernels and one stacked numpy.matmul: in one parallel region (shares of
    images per thread, blocks of images inside a share; any batch split) and, where Numba
    has no BLAS (no SciPy), as transforms per image around a threaded stack of GEMMs."""
    numba = pytest.importorskip("numba")
    if numba_blas and not threads.numba_blas():
        pytest.skip("Numba's numpy.dot needs SciPy")
    monkeypatch.setattr(threads, "numba_blas", lambda: numba_blas)
    if threads_count > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("fewer Numba threads than the test needs")
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch, 16, size, size)).astype(dtype)
    w = rng.standard_normal((8, 16, r, r)).astype(dtype)
    BT, G, AT = winograd.matrices(m, dtype, r)
    padding = r // 2  # same-size output for 3x3; 2x2: one row and column more
    out = size + 2 * padding - r + 1
    th = tw = -(-out // m)
    alpha = m + r - 1
    points = alpha ** 2
    V = np.empty((points, batch * th * tw, 16), dtype)
    winograd._tile_transform(x, BT, m, padding, th, tw, V)
    U = np.einsum("ai,ocij,bj->aboc", G, w, G).reshape(points, 8, 16)  # G g G^T
    np.testing.assert_allclose(winograd.kernel_tiles(w, m), U.transpose(0, 2, 1),
                               rtol=1e-6, atol=1e-6 * np.abs(U).max())
    expected = np.empty((batch, 8, out, out), dtype)
    winograd._untile_transform(np.matmul(V, U.transpose(0, 2, 1)), AT, th, tw, expected)
    gy = rng.standard_normal(expected.shape).astype(dtype)
    dM = np.empty((points, batch * th * tw, 8), dtype)
    winograd._tile_transform(gy, np.ascontiguousarray(AT.T), m, 0, th, tw, dM)
    dU = np.matmul(dM.transpose(0, 2, 1), V)
    expected_gw = np.einsum("ai,aboc,bj->ocij", G, dU.reshape(alpha, alpha, 8, 16), G)
    previous = numba.get_num_threads()
    numba.set_num_threads(threads_count)
    try:
        y, gw = winograd.conv2d(x, w, padding, m), winograd.conv2d_grad_weight(x, gy, padding, m, r)
    finally:
        numba.set_num_threads(previous)
    rtol = 1e-5 if dtype == np.float32 else 1e-12  # sums in another order: relative to the scale
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=rtol * np.abs(expected).max())
    np.testing.assert_allclose(gw, expected_gw, rtol=rtol, atol=rtol * np.abs(expected_gw).max())


def test_tile_size_must_be_known():
    with pytest.raises(ValueError, match="tile size m must be one of"):
        winograd.matrices(3, np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", [(3, 1, 1), (3, 1, 2), (3, 2, 1), (1, 1, 0), (1, 2, 0),
                                      (1, 1, 1), (2, 1, 0), (2, 1, 1), (4, 2, 1), (4, 2, 0),
                                      (6, 3, 2), (4, 3, 1)])
def test_conv_cpu_matches_the_reference_on_every_branch(dtype, geometry):
    """Winograd (3x3 and 2x2, stride 1, enough channels), polyphase (kernel sides multiples
    of the stride), pointwise (1x1, stride 1, no padding) and the im2col fallback, forward
    and both gradients, float32 and float64."""
    k, stride, padding = geometry
    rng = np.random.default_rng(k + 10 * stride + 100 * padding)
    channels = conv_cpu.WINOGRAD_MIN_CHANNELS
    x = rng.standard_normal((2, channels, 9, 10)).astype(dtype)
    w = (rng.standard_normal((channels, channels, k, k)) / k).astype(dtype)
    y = conv_cpu.conv2d(x, w, stride, padding)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y, conv2d_loop(x, w, None, stride, padding), **tol)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = conv_cpu.conv2d_grad_input(gy, w, x.shape, stride, padding)
    gw = conv_cpu.conv2d_grad_weight(x, gy, w.shape, stride, padding)
    assert y.dtype == gx.dtype == gw.dtype == dtype and gx.shape == x.shape and gw.shape == w.shape
    np.testing.assert_allclose(gx, reference.conv2d_grad_input(gy, w, x.shape, stride, padding), **tol)
    np.testing.assert_allclose(gw, reference.conv2d_grad_weight(x, gy, w.shape, stride, padding), **tol)


@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threaded_matmul_is_numpy_matmul(count, dtype):
    """kernels.threads.matmul: the stack split over Numba's thread count (kernels.stacked),
    BLAS single-threaded. The operands are the views the UNet passes: slices of a larger
    array (attention's q, k, v), per-matrix transposes, broadcast weights, a stack of one."""
    numba = pytest.importorskip("numba")
    if count > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("fewer Numba threads than the test needs")
    rng = np.random.default_rng(count)
    a, b = rng.standard_normal((5, 7, 3)).astype(dtype), rng.standard_normal((5, 3, 4)).astype(dtype)
    qkv = rng.standard_normal((5, 3, 7, 3)).astype(dtype)
    transposed = np.ascontiguousarray(b.transpose(0, 2, 1)).transpose(0, 2, 1)
    cases = [(a, b), (np.broadcast_to(a[0], a.shape), b), (a[:1], b), (a, b[:1]),
             (qkv[:, 1], b), (qkv[:, 2].transpose(0, 2, 1), qkv[:, 0]), (a, transposed),
             (a[::2], b[::-2]), (a[:, :, ::-1], b), (a[:0], b[:0])]
    previous = numba.get_num_threads()
    numba.set_num_threads(count)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)
    try:
        for x, y in cases:
            got, want = threads.matmul(x, y), np.matmul(x, y)
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, **tol)
    finally:
        numba.set_num_threads(previous)


@pytest.mark.parametrize("count", [1, 2])
def test_map_batch_runs_the_function_on_shares_of_the_batch(count):
    """kernels.threads.map_batch: one share per thread; the im2col branch of conv_cpu joins
    (forward, input gradient) or sums (weight gradient) the shares' results."""
    numba = pytest.importorskip("numba")
    if count > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("fewer Numba threads than the test needs")
    rng = np.random.default_rng(count)
    x, w = rng.standard_normal((5, 3, 7, 6)), rng.standard_normal((4, 3, 3, 3))
    previous = numba.get_num_threads()
    numba.set_num_threads(count)
    try:
        shares = threads.map_batch(lambda a, b: (a.shape[0], b.sum()), x, x)
        assert [n for n, _ in shares] == ([5] if count == 1 else [2, 3])
        assert sum(total for _, total in shares) == pytest.approx(x.sum(), rel=1e-12)
        y = conv_cpu.conv2d(x, w, 2, 1)
        gy = rng.standard_normal(y.shape)
        np.testing.assert_allclose(y, reference.conv2d(x, w, 2, 1), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(conv_cpu.conv2d_grad_input(gy, w, x.shape, 2, 1),
                                   reference.conv2d_grad_input(gy, w, x.shape, 2, 1),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(conv_cpu.conv2d_grad_weight(x, gy, w.shape, 2, 1),
                                   reference.conv2d_grad_weight(x, gy, w.shape, 2, 1),
                                   rtol=1e-12, atol=1e-12)
    finally:
        numba.set_num_threads(previous)


def test_run_shares_never_waits_for_a_thread_that_has_not_started():
    """kernels.threads.run_shares: with the pooled thread held elsewhere (here by a job of
    our own), the calling thread runs every task itself and returns at once, in order."""
    import threading

    release = threading.Event()
    blocker = threads._pool(1).submit(release.wait)
    try:
        runners = []
        results = threads.run_shares(
            lambda k: runners.append(threading.current_thread()) or k * k, 2, tasks=5)
        assert results == [0, 1, 4, 9, 16]
        assert runners == [threading.current_thread()] * 5
    finally:
        release.set()
        blocker.result()
    assert threads.run_shares(lambda k: k + 1, 2, tasks=3) == [1, 2, 3]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_on_two_threads_is_one_blas_call(dtype):
    """kernels.threads.gemm at two workers: a large product in blocks of at least
    GEMM_MIN_ROWS rows, bias added per block: a @ b + bias bit for bit."""
    numba = pytest.importorskip("numba")
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("fewer Numba threads than the test needs")
    rng = np.random.default_rng(7)
    a = rng.standard_normal((1000, 130)).astype(dtype)
    w, bias = rng.standard_normal((128, 130)).astype(dtype), rng.standard_normal(128).astype(dtype)
    assert a.shape[0] * 130 * 128 >= threads.GEMM_MIN_MACS
    previous = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        np.testing.assert_array_equal(threads.gemm(a, w.T, bias), a @ w.T + bias)
        np.testing.assert_array_equal(threads.gemm(a, np.ascontiguousarray(w.T)), a @ w.T)
    finally:
        numba.set_num_threads(previous)


def test_conv_cpu_takes_winograd_only_with_enough_channels(monkeypatch):
    """Few channels go to im2col, where it measured faster (see kernels.conv_cpu)."""
    calls = []
    monkeypatch.setattr(winograd, "conv2d", lambda *a: calls.append(a) or reference.conv2d(a[0], a[1], 1, a[2]))
    rng = np.random.default_rng(0)
    few, many = conv_cpu.WINOGRAD_MIN_CHANNELS - 1, conv_cpu.WINOGRAD_MIN_CHANNELS
    conv_cpu.conv2d(rng.standard_normal((1, few, 6, 6)), rng.standard_normal((2, few, 3, 3)), 1, 1)
    assert not calls
    conv_cpu.conv2d(rng.standard_normal((1, many, 6, 6)), rng.standard_normal((2, many, 3, 3)), 1, 1)
    assert len(calls) == 1


def test_numba_threads_use_short_spin_openmp_unless_chosen():
    """kernels.threads.prefer_short_spin_openmp: Numba's OpenMP layer with libgomp's spin
    count cut (workqueue where the OpenMP layer is missing), unless NUMBA_THREADING_LAYER
    names a layer (fresh interpreters: the layer and libgomp's settings are per process)."""
    import os
    import subprocess
    import sys

    from kernels import threads

    code = ("import os, numpy as np; from kernels import conv_cpu; import numba; "
            "x = np.ones((1, 16, 4, 4)); conv_cpu.conv2d(x, np.ones((2, 16, 3, 3)), 1, 1); "
            "print(numba.threading_layer(), os.environ.get('GOMP_SPINCOUNT'))")
    chosen = {"NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY", "OMP_WAIT_POLICY",
              "GOMP_SPINCOUNT"}
    env = {k: v for k, v in os.environ.items() if k not in chosen}

    def layer(**extra):
        run = subprocess.run([sys.executable, "-c", code], env={**env, **extra},
                             capture_output=True, text=True, check=False)
        return run.stdout.split() if run.returncode == 0 else None

    omp_exists = layer(NUMBA_THREADING_LAYER="omp") is not None
    expected = ["omp", threads.GOMP_SPINCOUNT] if omp_exists else ["workqueue", "None"]
    assert layer() == expected
    assert layer(NUMBA_THREADING_LAYER="workqueue") == ["workqueue", "None"]
    assert layer(OMP_WAIT_POLICY="passive")[1] == "None"  # the user's wait policy stands


def test_limit_threads_gives_numba_n_threads_and_blas_one():
    """backend.limit_threads(n): the CPU kernels spread work over n Numba threads, BLAS stays
    single-threaded (a spinning BLAS pool stalls them). Fresh interpreter: the caps are global."""
    import subprocess
    import sys

    pytest.importorskip("threadpoolctl")
    code = ("import numpy, numba, threadpoolctl; from minigen import backend; "
            "print(backend.limit_threads(2)); print(numba.get_num_threads(), "
            "numba.config.NUMBA_NUM_THREADS); print(sorted({p['num_threads'] for p in "
            "threadpoolctl.threadpool_info() if p['user_api'] == 'blas'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "[]"
    numba_threads, available = map(int, out[1].split())
    assert numba_threads == min(2, available)
    assert out[2] == "[1]"


FAULTS = """
import resource, sys, threading
import numpy
kept = None  # glibc's defaults: minigen, which keeps freed memory from import, not imported
if sys.argv[1] == "keep":
    from minigen import backend
    kept = backend.keep_freed_memory()
def churn():  # allocate, touch and free arrays of 1-6 MiB, as a training step's threads do
    for _ in range(40):
        for mib in (1, 3, 6, 2, 5):
            numpy.ones(mib << 18, numpy.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
worker = threading.Thread(target=churn)
worker.start()
worker.join()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_keep_freed_memory_stops_page_faults_of_reallocated_arrays():
    """backend.keep_freed_memory (glibc's mallopt): a thread that allocates and frees arrays
    of a few MiB reuses their pages instead of faulting in new ones (fresh interpreters)."""
    import subprocess
    import sys

    def run(mode):
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True,
                             text=True, check=True).stdout.split()
        return out[0], int(out[1])

    kept, faults_kept = run("keep")
    if kept == "False":
        pytest.skip("no glibc mallopt here")
    _, faults_default = run("default")
    pages_per_round = (1 + 3 + 6 + 2 + 5) << 8  # 4 KiB pages allocated per round (40 rounds)
    assert faults_kept < pages_per_round, faults_kept  # the first round's pages, reused after
    assert 2 * faults_kept < faults_default, (faults_kept, faults_default)


def _digit_features(rng, n, channels, size):
    """Piecewise-constant image features: 8x8 digits upsampled (nearest) to size x size,
    mixed per channel and rectified, as a conv layer after the first sees them."""
    from minigen.data import digits

    images = digits(seed=0)[0][rng.integers(0, 1797, n), 0].astype(np.float64)
    rows = np.floor(np.arange(size) * 8 / size).astype(int)
    up = images[:, rows][:, :, rows]
    scale, shift = rng.standard_normal(channels), 0.5 * rng.standard_normal(channels)
    return np.maximum(up[:, None] * scale[:, None, None] + shift[:, None, None], 0)


def _pooled_gradient(rng, shape):
    """dL/dy behind a 2x2 max-pool: one nonzero entry per window, piecewise-constant values."""
    n, c, h, w = shape
    gy = np.zeros(shape)
    pick = rng.integers(0, 4, (n, c, h // 2, w // 2))
    values = np.repeat(np.repeat(rng.standard_normal((n, c, h // 4 + 1, w // 4 + 1)), 2, 2), 2, 3)
    for k in range(4):
        gy[:, :, k // 2:h - h % 2:2, k % 2:w - w % 2:2] += (pick == k) * values[:, :, :h // 2, :w // 2]
    return gy


def _relative_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("n, c, c_out, size, padding", [(16, 32, 64, 26, 0), (16, 64, 64, 14, 1),
                                                        (16, 32, 32, 28, 1)])
def test_default_conv_is_as_accurate_as_im2col_on_image_data(n, c, c_out, size, padding):
    """The default CPU path in float32 against float64, forward pass and both gradients, on
    upsampled digits with a max-pooled gradient (the MNIST CNN's second conv, the digits
    UNet's 14x14 and 28x28 convs): within 1e-5 relative L2, and within twice the error of
    float32 im2col's direct sums."""
    import kernels

    assert kernels.get_conv_algorithm() == "auto"
    rng = np.random.default_rng(c + size)
    x64 = _digit_features(rng, n, c, size)
    w64 = rng.uniform(-1, 1, (c_out, c, 3, 3)) / np.sqrt(9 * c)
    exact_y = reference.conv2d(x64, w64, 1, padding)
    gy64 = _pooled_gradient(rng, exact_y.shape)
    exact = (exact_y, reference.conv2d_grad_input(gy64, w64, x64.shape, 1, padding),
             reference.conv2d_grad_weight(x64, gy64, w64.shape, 1, padding))
    x, w, gy = (a.astype(np.float32) for a in (x64, w64, gy64))
    default = (kernels.conv2d(x, w, 1, padding), kernels.conv2d_grad_input(gy, w, x.shape, 1, padding),
               kernels.conv2d_grad_weight(x, gy, w.shape, 1, padding))
    im2col = (reference.conv2d(x, w, 1, padding), reference.conv2d_grad_input(gy, w, x.shape, 1, padding),
              reference.conv2d_grad_weight(x, gy, w.shape, 1, padding))
    for name, got, direct, want in zip(("y", "gx", "gw"), default, im2col, exact):
        error = _relative_l2(got, want)
        assert error <= 1e-5, (name, error)
        assert error <= 2 * _relative_l2(direct, want), (name, error, _relative_l2(direct, want))


@pytest.mark.parametrize("name, tile", [("auto", 2), ("winograd", 4), ("im2col", None)])
def test_conv_algorithm_chooses_the_method_of_3x3_convolutions(monkeypatch, name, tile):
    """set_conv_algorithm: F(2x2) by default, F(4x4) on request, im2col on request; the
    result is the convolution under every choice; an unknown name is refused."""
    import kernels

    tiles = []
    real = winograd.conv2d
    monkeypatch.setattr(winograd, "conv2d", lambda x, w, p, m: tiles.append(m) or real(x, w, p, m))
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 16, 7, 7)), rng.standard_normal((4, 16, 3, 3))
    previous = kernels.get_conv_algorithm()
    kernels.set_conv_algorithm(name)
    try:
        assert kernels.get_conv_algorithm() == name
        y = kernels.conv2d(x, w, 1, 1)
    finally:
        kernels.set_conv_algorithm(previous)
    assert tiles == ([] if tile is None else [tile])
    np.testing.assert_allclose(y, conv2d_loop(x, w, None, 1, 1), rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="set_conv_algorithm: name must be one of"):
        kernels.set_conv_algorithm("fft")


@st.composite
def strided_case(draw):
    """A strided geometry whose kernel sides are multiples of the stride (any padding, odd
    sizes), with few channels or enough for the phases to take Winograd F(2x2, 2x2)."""
    stride = draw(st.integers(2, 3))
    kh, kw = (stride * draw(st.integers(1, 2)) for _ in range(2))
    padding = draw(st.integers(0, 2))
    n, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    c = draw(st.sampled_from([1, 2, 3, 4, 5]))
    h = draw(st.integers(max(1, kh - 2 * padding), kh + 6))
    w_in = draw(st.integers(max(1, kw - 2 * padding), kw + 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.standard_normal((n, c, h, w_in)), rng.standard_normal((c_out, c, kh, kw)), stride, padding


@given(case=strided_case())
def test_polyphase_is_the_strided_convolution_and_its_adjoints(case):
    """kernels.polyphase in float64, with the im2col reference and with conv_cpu's stride-1
    methods as the inner passes: the strided convolution and both of its gradients."""
    x, w, stride, padding = case
    assert polyphase.applies(w.shape, stride)
    y = reference.conv2d(x, w, stride, padding)
    gy = np.random.default_rng(2).standard_normal(y.shape)
    want = (y, reference.conv2d_grad_input(gy, w, x.shape, stride, padding),
            reference.conv2d_grad_weight(x, gy, w.shape, stride, padding))
    for inner in (reference, conv_cpu):
        got = (polyphase.conv2d(x, w, stride, padding, inner.conv2d),
               polyphase.conv2d_grad_input(gy, w, x.shape, stride, padding, inner.conv2d_grad_input),
               polyphase.conv2d_grad_weight(x, gy, w.shape, stride, padding, inner.conv2d_grad_weight))
        for a, b in zip(got, want):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(want[0], conv2d_loop(x, w, None, stride, padding), rtol=1e-10, atol=1e-10)


def test_polyphase_phases_are_the_strided_taps():
    """X[n, (c, r, t), U, V] = x_padded[n, c, s U + r, s V + t] and W[o, (c, r, t), a, b] =
    w[o, c, s a + r, s b + t], entry by entry; unphase and unphase_filters are their
    adjoint and inverse."""
    rng = np.random.default_rng(4)
    x, w, s, p = rng.standard_normal((2, 3, 7, 8)), rng.standard_normal((5, 3, 4, 6)), 2, 1
    size = (4, 5)  # Ho + kh / s - 1 = 3 + 1, Wo + kw / s - 1 = 3 + 2
    X, W = polyphase.phases(x, s, p, size), polyphase.phase_filters(w, s)
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    for c, r, t in np.ndindex(3, s, s):
        for U, V in np.ndindex(*size):
            assert X[:, c * s * s + r * s + t, U, V].tolist() == padded[:, c, s * U + r, s * V + t].tolist()
        for a, b in np.ndindex(2, 3):
            assert (W[:, c * s * s + r * s + t, a, b] == w[:, c, s * a + r, s * b + t]).all()
    G = rng.standard_normal(X.shape)
    np.testing.assert_allclose(np.vdot(polyphase.unphase(G, x.shape, s, p), x), np.vdot(G, X), rtol=1e-12)
    assert (polyphase.unphase_filters(W, w.shape, s) == w).all()


@pytest.mark.parametrize("n, c, c_out, size", [(8, 32, 64, 16), (8, 64, 32, 8), (8, 3, 32, 32)])
def test_strided_conv_is_as_accurate_as_im2col_on_image_data(n, c, c_out, size):
    """The default path of the 4x4 stride-2 convolutions (polyphase, F(2x2, 2x2) from 16
    phase channels) in float32 against float64, forward pass and both gradients, on
    upsampled digits with a max-pooled gradient: within 1e-5 relative L2, as the default 3x3
    path, and within three times float32 im2col's error. (col2im sums each input gradient
    entry from only kh kw / s^2 = 4 products per channel, which makes im2col's own error on
    these gradients about half the 3x3 default's: docs/performance.md.)"""
    import kernels

    assert kernels.get_conv_algorithm() == "auto"
    rng = np.random.default_rng(c + size)
    x64 = _digit_features(rng, n, c, size)
    w64 = rng.uniform(-1, 1, (c_out, c, 4, 4)) / np.sqrt(16 * c)
    exact_y = reference.conv2d(x64, w64, 2, 1)
    gy64 = _pooled_gradient(rng, exact_y.shape)
    exact = (exact_y, reference.conv2d_grad_input(gy64, w64, x64.shape, 2, 1),
             reference.conv2d_grad_weight(x64, gy64, w64.shape, 2, 1))
    x, w, gy = (a.astype(np.float32) for a in (x64, w64, gy64))
    default = (kernels.conv2d(x, w, 2, 1), kernels.conv2d_grad_input(gy, w, x.shape, 2, 1),
               kernels.conv2d_grad_weight(x, gy, w.shape, 2, 1))
    im2col = (reference.conv2d(x, w, 2, 1), reference.conv2d_grad_input(gy, w, x.shape, 2, 1),
              reference.conv2d_grad_weight(x, gy, w.shape, 2, 1))
    for name, got, direct, want in zip(("y", "gx", "gw"), default, im2col, exact):
        error = _relative_l2(got, want)
        assert error <= 1e-5, (name, error)
        assert error <= 3 * _relative_l2(direct, want), (name, error, _relative_l2(direct, want))


@pytest.mark.parametrize("name, used", [("auto", True), ("winograd", True), ("im2col", False)])
def test_strided_convolutions_take_polyphase_unless_im2col_is_chosen(monkeypatch, name, used):
    """conv_cpu runs kernels with sides that are multiples of the stride through
    kernels.polyphase (whose stride-1 2x2 passes take F(2x2, 2x2)), other strided ones and
    every one under set_conv_algorithm("im2col") on im2col."""
    calls = []
    real = polyphase.conv2d
    monkeypatch.setattr(polyphase, "conv2d", lambda *a: calls.append(a[1].shape) or real(*a))
    tiles = []
    real_winograd = winograd.conv2d
    monkeypatch.setattr(winograd, "conv2d", lambda x, w, p, m: tiles.append((m, w.shape[2])) or
                        real_winograd(x, w, p, m))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 8, 8, 8))
    previous = conv_algorithm.get_conv_algorithm()
    conv_algorithm.set_conv_algorithm(name)
    try:
        for k, stride in ((4, 2), (3, 2)):
            w = rng.standard_normal((4, 8, k, k))
            y = conv_cpu.conv2d(x, w, stride, 1)
            np.testing.assert_allclose(y, reference.conv2d(x, w, stride, 1), rtol=1e-12, atol=1e-12)
    finally:
        conv_algorithm.set_conv_algorithm(previous)
    assert calls == ([(4, 8, 4, 4)] if used else [])
    assert tiles == ([(2, 2)] if used else [])
