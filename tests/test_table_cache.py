"""kernels.table_cache: which tables are cached, hits and misses, and entries that go with
their table. Pure Python (a recording upload function stands in for the device copy); the
CUDA launchers' use of the cache is tested in the simulator by tests/test_kernels_cuda.py."""
import gc

import numpy as np
import pytest

from kernels.table_cache import TableCache, frozen
from minigen.diffusion import DDPM, NoiseSchedule


def read_only(a):
    a.setflags(write=False)
    return a


def recording_cache():
    calls = []

    def upload(table, dtype, device):
        calls.append((id(table), dtype, device))  # not the table: that would keep it alive
        return ("copy", len(calls))

    return TableCache(upload), calls


def test_frozen_tables():
    owner = read_only(np.arange(4.0))
    assert frozen(owner)
    assert frozen(read_only(owner[1:]))  # a view of a read-only owner
    assert not frozen(np.arange(4.0))
    writable = np.arange(4.0)
    assert not frozen(read_only(writable[1:]))  # read-only view of memory that can change
    assert not frozen([0.0, 1.0])


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_schedule_and_ddpm_tables_are_frozen(prediction, variance):
    """Every table a DDPM hands to the fused kernels can be cached."""
    ddpm = DDPM(lambda x, t: x, NoiseSchedule.linear(20, 0.1, 0.4), variance=variance,
                prediction=prediction)
    s = ddpm.schedule
    for table in (s.sqrt_alphas_cumprod, s.sqrt_one_minus_alphas_cumprod, ddpm.coef_x0_xt,
                  ddpm.coef_x0_out, s.posterior_mean_coef1, s.posterior_mean_coef2, ddpm.sigmas):
        assert frozen(table)


def test_one_upload_per_table_dtype_and_device():
    cache, calls = recording_cache()
    a, b = read_only(np.arange(3.0)), read_only(np.arange(3.0))
    first = cache(a, np.float32, 0)
    assert cache(a, "float32", 0) is first  # a hit returns the same device copy
    assert calls == [(id(a), np.dtype(np.float32), 0)]
    assert cache(a, np.float64, 0) is not first  # new dtype
    assert cache(a, np.float32, 1) is not first  # new device
    assert cache(b, np.float32, 0) is not first  # equal values, another table
    assert cache.uploads == len(calls) == 4 and len(cache) == 4
    for key in ((a, np.float32, 0), (a, np.float64, 0), (a, np.float32, 1), (b, np.float32, 0)):
        cache(*key)
    assert cache.uploads == 4


def test_tables_that_can_change_are_uploaded_at_every_call():
    cache, calls = recording_cache()
    table = np.arange(3.0)
    view = read_only(table[:])
    for _ in range(2):
        cache(table, np.float32, 0)
        cache(view, np.float32, 0)
    assert cache.uploads == 4 and len(cache) == 0
    owner = read_only(np.arange(3.0))
    cache(owner, np.float32, 0)
    owner.setflags(write=True)  # writable again: no longer served from the cache
    cache(owner, np.float32, 0)
    assert cache.uploads == 6


def test_entries_go_with_their_table():
    """A replaced table's copies are dropped when it is collected, so a later table that
    reuses its id cannot be served a stale copy."""
    cache, calls = recording_cache()
    schedule = NoiseSchedule.linear(10, 0.3, 0.6)
    cache(schedule.sqrt_alphas_cumprod, np.float32, 0)
    cache(schedule.sqrt_alphas_cumprod, np.float64, 0)
    assert len(cache) == 2
    del schedule
    gc.collect()
    assert len(cache) == 0
    for _ in range(20):  # new tables, some of which may reuse the freed ids
        cache(read_only(np.zeros(10)), np.float32, 0)
    assert cache.uploads == 22
