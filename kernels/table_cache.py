"""Device copies of the per-timestep tables, made once per table instead of once per call.

A DDPM's tables (``NoiseSchedule.sqrt_alphas_cumprod``, ``DDPM.sigmas``, ...) are float64
NumPy arrays on the host, but every fused CUDA kernel reads them on the device in the data's
dtype. :class:`TableCache` keeps one device copy per (table, dtype, device) for as long as
the host table lives, keyed by the table object itself, so every call with the same schedule
reuses the same device arrays and a new schedule, dtype or device gets its own.

A copy can only be reused while the host table cannot change, so only *frozen* tables are
cached: read-only arrays that own their data or are views of a read-only owner (the
schedule's and the DDPM's tables are made read-only when they are built). Anything else, a
writable table or a read-only view of writable memory, is uploaded afresh at every call.
Replacing a schedule's table by a new array is a different key; the old array's entries go
when it is garbage-collected (a ``weakref.finalize`` per table), so ids cannot be reused for
a stale entry. A table made writable again is uploaded afresh from then on; one made
writable, changed and frozen again in between two calls is not detected.

Pure Python: the upload function is given, so the logic is tested without a GPU.
"""
import weakref

import numpy


def frozen(table):
    """True when ``table`` is a NumPy array whose values cannot change: read-only, and so is
    every array whose memory it views (a read-only view of writable memory is not frozen)."""
    while isinstance(table, numpy.ndarray) and not table.flags.writeable:
        if table.base is None:
            return True
        table = table.base
    return False


class TableCache:
    """``cache(table, dtype, device)``: the device copy of ``table`` cast to ``dtype``, made by
    ``upload(table, dtype, device)`` at the first call for a frozen table and reused after.

    ``uploads`` counts the calls to ``upload`` (cached or not), ``len(cache)`` the live
    device copies.
    """

    def __init__(self, upload):
        self._upload = upload
        self._copies = {}  # id(table) -> {(dtype, device): device array}
        self.uploads = 0

    def __call__(self, table, dtype, device):
        dtype = numpy.dtype(dtype)
        if not frozen(table):
            return self._fresh(table, dtype, device)
        copies = self._copies.get(id(table))
        if copies is None:
            copies = self._copies[id(table)] = {}
            weakref.finalize(table, self._copies.pop, id(table), None)
        key = (dtype, device)
        if key not in copies:
            copies[key] = self._fresh(table, dtype, device)
        return copies[key]

    def __len__(self):
        return sum(len(copies) for copies in self._copies.values())

    def _fresh(self, table, dtype, device):
        self.uploads += 1
        return self._upload(table, dtype, device)
