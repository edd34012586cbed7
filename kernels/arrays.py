"""Which array module an array belongs to, without ever importing CuPy needlessly.

CuPy is optional: it is imported only when a CuPy array is actually handed in, so every
kernel module stays importable on a machine without it.
"""
import numpy


def is_cupy(x):
    """True when ``x`` is a CuPy array (decided from its type, CuPy is not imported)."""
    module = type(x).__module__
    return module == "cupy" or module.startswith("cupy.")


def array_module(x):
    """``cupy`` for a CuPy array, ``numpy`` for anything else (like ``cupy.get_array_module``)."""
    if is_cupy(x):
        import cupy

        return cupy
    return numpy


def rows(x):
    """View a C-contiguous x as (batch, features), so one elementwise kernel serves every rank."""
    batch = x.shape[0]
    return x.reshape(batch, x.size // batch if batch else 0)
