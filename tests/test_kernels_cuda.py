"""Numba-CUDA kernels against the NumPy reference.

Runs in Numba's CUDA simulator on NumPy arrays:
    NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim tests/test_kernels_cuda.py
and on a real GPU on CuPy arrays (``-m cudasim`` without the variable). Skipped when neither
is available. Shapes stay tiny: the simulator runs every GPU thread as a Python thread.
"""
import gc
import importlib
import os

import numpy as np
import pytest
from hypothesis import given

pytestmark = pytest.mark.cudasim

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _array_modules():
    if SIMULATOR:
        return [np]
    try:
        import cupy

        from kernels import cuda as gpu_kernels  # imports numba.cuda through its NumPy shim
    except ImportError:
        return []
    return [cupy] if gpu_kernels.cuda.is_available() else []


ARRAY_MODULES = _array_modules()
if not ARRAY_MODULES:
    pytest.skip("needs NUMBA_ENABLE_CUDASIM=1, or a CUDA GPU with CuPy", allow_module_level=True)

import kernels  # noqa: E402  (after the skip: importing kernels.cuda needs Numba-CUDA)
from kernels import cuda as gpu  # noqa: E402
from kernels import reference  # noqa: E402
from kernels.table_cache import TableCache  # noqa: E402

from tests.test_kernels import (  # noqa: E402
    CONV_TOL, DTYPES, TOL, conv_case, ddpm_tables, step_tables,
)


@pytest.fixture(params=ARRAY_MODULES, ids=lambda xp: xp.__name__)
def xp(request):
    return request.param


def host(a):
    return a.get() if hasattr(a, "get") else a


def check_kind(xp, result):
    assert isinstance(result, xp.ndarray), f"expected a {xp.__name__} array, got {type(result)}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 2, 5), (4,), (2, 1, 3, 3)])
def test_q_sample(xp, dtype, shape):
    T = 1000
    tab = ddpm_tables(T)
    rng = np.random.default_rng(0)
    x0, noise = rng.standard_normal((2,) + shape).astype(dtype)
    t = rng.integers(0, T, shape[0])
    t[0], t[-1] = 0, T - 1
    tables = (tab["sqrt_abar"], tab["sqrt_one_minus_abar"])
    out = xp.empty(shape, dtype=dtype)
    got = gpu.q_sample(xp.asarray(x0), xp.asarray(noise), xp.asarray(t), *tables, out=out)
    assert got is out
    check_kind(xp, got)
    np.testing.assert_allclose(host(got), reference.q_sample(x0, noise, t, *tables), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("clip", [None, 1.0])
def test_p_sample_step(xp, dtype, clip):
    T = 50
    tab = ddpm_tables(T)
    rng = np.random.default_rng(1)
    xt, eps, z = 2 * rng.standard_normal((3, 4, 2, 5)).astype(dtype)
    t = np.array([0, T - 1, 1, 0])
    got = gpu.p_sample_step(xp.asarray(xt), xp.asarray(eps), xp.asarray(t), xp.asarray(z),
                            *step_tables(tab), clip=clip)
    check_kind(xp, got)
    assert got.dtype == dtype
    want = reference.p_sample_step(xt, eps, t, z, *step_tables(tab), clip=clip)
    np.testing.assert_allclose(host(got), want, **TOL[dtype])


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("clip_x0", [None, 1.0])
def test_p_sample_step_equals_the_readable_ddpm_step(xp, prediction, variance, clip_x0):
    """The CUDA kernel given a DDPM's tables computes DDPM.p_sample's readable path
    (p_mean_variance, then mean + sigma z) for every prediction type, variance and clip."""
    from minigen.diffusion import DDPM, NoiseSchedule

    ddpm = DDPM(lambda x, t: x * 0.0, NoiseSchedule.linear(50, 2e-3, 0.4),
                prediction=prediction, variance=variance, clip_x0=clip_x0)
    rng = np.random.default_rng(2)
    xt, out, z = rng.standard_normal((3, 4, 3))
    t = np.array([0, 49, 1, 20])
    mean, var, _ = ddpm.p_mean_variance(xt, t, out)
    want = mean + np.sqrt(var) * z * (t > 0)[:, None]
    s = ddpm.schedule
    got = gpu.p_sample_step(xp.asarray(xt), xp.asarray(out), xp.asarray(t), xp.asarray(z),
                            ddpm.coef_x0_xt, ddpm.coef_x0_out, s.posterior_mean_coef1,
                            s.posterior_mean_coef2, ddpm.sigmas, clip=clip_x0)
    np.testing.assert_allclose(host(got), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight_decay, decoupled", [(0.0, False), (0.01, False), (0.01, True)])
def test_adam_update(xp, dtype, weight_decay, decoupled):
    rng = np.random.default_rng(4)
    param, grad, m = rng.standard_normal((3, 5, 7)).astype(dtype)
    v = rng.random((5, 7)).astype(dtype)
    hyper = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=3,
                 weight_decay=weight_decay, decoupled=decoupled)
    device = [xp.asarray(a.copy()) for a in (param, grad, m, v)]
    gpu.adam_update(*device, **hyper)
    reference.adam_update(param, grad, m, v, **hyper)
    for got, expected in zip((device[0], device[2], device[3]), (param, m, v)):
        check_kind(xp, got)
        np.testing.assert_allclose(host(got), expected, **TOL[dtype])


def run_conv(xp, x, w, stride, padding):
    """All three conv kernels on the device, compared with the reference on the host."""
    tol = CONV_TOL[x.dtype.type]
    y = gpu.conv2d(xp.asarray(x), xp.asarray(w), stride, padding)
    check_kind(xp, y)
    np.testing.assert_allclose(host(y), reference.conv2d(x, w, stride, padding), **tol)
    gy = np.random.default_rng(2).standard_normal(y.shape).astype(x.dtype)
    gx = gpu.conv2d_grad_input(xp.asarray(gy), xp.asarray(w), x.shape, stride, padding)
    gw = gpu.conv2d_grad_weight(xp.asarray(x), xp.asarray(gy), w.shape, stride, padding)
    check_kind(xp, gx)
    check_kind(xp, gw)
    want_gx = reference.conv2d_grad_input(gy, w, x.shape, stride, padding)
    want_gw = reference.conv2d_grad_weight(x, gy, w.shape, stride, padding)
    np.testing.assert_allclose(host(gx), want_gx, **tol)
    np.testing.assert_allclose(host(gw), want_gw, **tol)


# (x shape, w shape, stride, padding) chosen to cover several tiles per plane, partial edge
# tiles, a halo reaching into the padding, non-square kernels, and with TILE = 4 a stride
# so large that a block computes fewer than TILE outputs per side (tile_out < TILE).
CONV_CASES = [
    ((1, 2, 9, 7), (2, 2, 3, 3), 1, 1),
    ((2, 1, 6, 8), (1, 1, 2, 3), 2, 0),
    ((1, 2, 11, 5), (2, 2, 3, 2), 4, 2),
    ((1, 1, 4, 4), (2, 1, 4, 4), 1, 0),
    ((1, 3, 5, 5), (1, 3, 1, 1), 3, 0),
]


@pytest.mark.parametrize("tile", [4, 16])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, w_shape, stride, padding", CONV_CASES)
def test_conv2d_cases(xp, monkeypatch, tile, dtype, x_shape, w_shape, stride, padding):
    monkeypatch.setattr(gpu, "TILE", tile)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    run_conv(xp, x, w, stride, padding)


@given(case=conv_case(max_batch=2, max_channels=2, max_k=3, max_extra=3))
def test_conv2d_hypothesis(case):
    saved = gpu.TILE
    gpu.TILE = 4  # several tiles per plane even on these small images
    try:
        for xp in ARRAY_MODULES:
            run_conv(xp, *case)
    finally:
        gpu.TILE = saved


def test_conv2d_rejects_kernel_beyond_shared_patch(xp, monkeypatch):
    monkeypatch.setattr(gpu, "TILE", 1)  # shared patch of 3 x 3
    x = xp.zeros((1, 1, 4, 4), dtype=np.float32)
    w = xp.zeros((1, 1, 4, 1), dtype=np.float32)
    with pytest.raises(ValueError, match="cuda.conv2d: kernel 4x1 exceeds the shared-memory patch"):
        gpu.conv2d(x, w, 1, 0)


def test_dispatch_routes_by_array_type(xp, monkeypatch):
    monkeypatch.delenv("MINIGEN_KERNELS", raising=False)
    assert kernels.available()["cuda"]
    expected = gpu if xp.__name__ == "cupy" else kernels.cpu
    assert kernels.backend_for(xp.zeros(1)) is expected
    # convolutions: Winograd/BLAS (kernels.conv_cpu) on NumPy arrays, cuBLAS via the reference
    # on CuPy arrays
    conv_path = reference if xp.__name__ == "cupy" else importlib.import_module("kernels.conv_cpu")
    assert kernels.backend_for(xp.zeros(1), "conv2d") is conv_path
    monkeypatch.setenv("MINIGEN_KERNELS", "numba")
    assert kernels.backend_for(xp.zeros(1), "conv2d") is expected


# --- the device copies of the timestep tables (kernels.table_cache) ---------------------
def ddpm_and_batch(xp, dtype, T=40, seed=5):
    from minigen.diffusion import DDPM, NoiseSchedule

    ddpm = DDPM(lambda x, t: x, NoiseSchedule.linear(T, 0.05, 0.3), clip_x0=1.0)
    rng = np.random.default_rng(seed)
    x, eps, z = (xp.asarray(a) for a in rng.standard_normal((3, 4, 2, 3)).astype(dtype))
    t = rng.integers(0, T, 4)
    t[0] = 0
    return ddpm, x, eps, z, xp.asarray(t)


def step_tables_of(ddpm):
    s = ddpm.schedule
    return (ddpm.coef_x0_xt, ddpm.coef_x0_out, s.posterior_mean_coef1, s.posterior_mean_coef2,
            ddpm.sigmas)


def run_both(ddpm, x, eps, z, t, table=lambda a: a):
    """q_sample and p_sample_step with the DDPM's tables, each passed through ``table``."""
    s = ddpm.schedule
    xt = gpu.q_sample(x, z, t, table(s.sqrt_alphas_cumprod),
                      table(s.sqrt_one_minus_alphas_cumprod))
    x_prev = gpu.p_sample_step(xt, eps, t, z, *map(table, step_tables_of(ddpm)), clip=1.0)
    return host(xt), host(x_prev)


@pytest.fixture
def fresh_tables(monkeypatch):
    """An empty table cache for the test (the module's one keeps earlier tests' copies)."""
    cache = TableCache(gpu._upload)
    monkeypatch.setattr(gpu, "tables", cache)
    return cache


def test_tables_are_copied_once_per_schedule_and_dtype(xp, fresh_tables):
    ddpm, x, eps, z, t = ddpm_and_batch(xp, np.float32)
    run_both(ddpm, x, eps, z, t)
    assert fresh_tables.uploads == 7  # 2 q_sample tables + 5 p_sample_step tables
    run_both(ddpm, x, eps, z, t)
    assert fresh_tables.uploads == 7  # the second step copies nothing
    run_both(ddpm, *(a.astype(np.float64) for a in (x, eps, z)), t)
    assert fresh_tables.uploads == 14  # a new dtype: its own copies
    other = ddpm_and_batch(xp, np.float32)
    run_both(*other)
    assert fresh_tables.uploads == 21  # a new schedule (and DDPM): its own copies
    assert len(fresh_tables) == 21
    del other
    gc.collect()
    assert len(fresh_tables) == 14  # the collected DDPM's copies are gone


def test_cached_tables_are_never_written(xp, fresh_tables):
    """The kernels only read the tables: after several steps every device copy still holds
    its host table's values in the data's dtype, and the host tables are unchanged."""
    ddpm, x, eps, z, t = ddpm_and_batch(xp, np.float32)
    s = ddpm.schedule
    host_tables = (s.sqrt_alphas_cumprod, s.sqrt_one_minus_alphas_cumprod) + step_tables_of(ddpm)
    before = [table.copy() for table in host_tables]
    for _ in range(3):
        run_both(ddpm, x, eps, z, t)
    device = 0 if xp is np else x.device.id
    for table, saved in zip(host_tables, before):
        np.testing.assert_array_equal(table, saved)
        copy = gpu.tables(table, np.float32, device)
        np.testing.assert_array_equal(copy.copy_to_host(), saved.astype(np.float32))
    assert fresh_tables.uploads == 7


@pytest.mark.parametrize("dtype", DTYPES)
def test_cached_tables_give_the_uncached_results(xp, dtype, fresh_tables):
    """Cached copies of the DDPM's tables, and tables the cache must not keep (writable
    copies in the simulator, CuPy tables on a GPU), give the same bits."""
    batch = ddpm_and_batch(xp, dtype)
    cached = run_both(*batch)
    uploads = fresh_tables.uploads
    uncached = run_both(*batch, table=xp.array)
    for got, want in zip(uncached, cached):
        np.testing.assert_array_equal(got, want)
    assert len(fresh_tables) == 7
    if xp is np:
        assert fresh_tables.uploads == uploads + 7  # writable tables: copied at every call


def test_each_kernel_is_specialised_once_per_dtype(xp, monkeypatch):
    """The launchers look up a kernel's overload for the data's dtype once, then reuse it."""
    monkeypatch.setattr(gpu, "_specialized", {})
    kernel = gpu._q_sample_kernel
    original, dtypes_seen = kernel.specialize, []

    def counting(*args):
        dtypes_seen.append(np.dtype(args[0].dtype))
        return original(*args)

    monkeypatch.setattr(kernel, "specialize", counting)
    ddpm, x, _, z, t = ddpm_and_batch(xp, np.float32)
    s = ddpm.schedule
    for dtype in (np.float32, np.float32, np.float64, np.float64):
        gpu.q_sample(x.astype(dtype), z.astype(dtype), t, s.sqrt_alphas_cumprod,
                     s.sqrt_one_minus_alphas_cumprod)
    assert dtypes_seen == [np.dtype(np.float32), np.dtype(np.float64)]
    device = 0 if xp is np else x.device.id
    assert set(gpu._specialized) == {(kernel, np.dtype(d), device) for d in DTYPES}
