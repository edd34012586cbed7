"""Type promotion: the dtype of an op on mixed operands, by PyTorch's rule, written once.

Every op that combines operands (arithmetic, ``where``, ``maximum``, comparisons' callers)
asks :func:`result_type` and casts its inputs to that dtype (a differentiable cast), so the
arrays a ``Function`` sees always share one dtype and NumPy's own promotion never decides.

The rule (PyTorch's "type promotion" documentation):

- categories are ordered bool < integer < floating;
- operands rank as dimensioned tensors > 0-d tensors > Python numbers; the result takes the
  dtype of the highest-ranked group unless a lower-ranked group holds a higher category, in
  which case that group's dtype wins (``int32 tensor * 0.5`` is floating);
- a Python float means the default dtype (float32), a Python int int64, a bool bool;
- within one category the wider dtype wins (float32 with float64 is float64).

Unlike NumPy, an integer tensor with a float32 tensor gives float32 (NumPy: float64), and
true division of integers gives the default float dtype (NumPy: float64).
"""
import numbers

import numpy as np

from minigen import creation

_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}


def category(dtype):
    """0 for bool, 1 for integers, 2 for floating point."""
    try:
        return _CATEGORY[np.dtype(dtype).kind]
    except KeyError:
        raise TypeError(f"unsupported dtype {dtype} (bool, integer and float dtypes only)") from None


def promote_types(a, b):
    """PyTorch's ``promote_types``: the wider dtype within a category, else the higher
    category's dtype (int64 with float32 is float32)."""
    a, b = np.dtype(a), np.dtype(b)
    if a == b:
        return a
    ca, cb = category(a), category(b)
    if ca == cb:
        return np.promote_types(a, b)
    return a if ca > cb else b


def _python_dtype(x):
    if isinstance(x, (bool, np.bool_)):
        return np.dtype(bool)
    if isinstance(x, numbers.Integral):
        return np.dtype(np.int64)
    if isinstance(x, numbers.Real):
        return np.dtype(creation.DEFAULT_DTYPE)
    raise TypeError(f"expected a Tensor, an array or a real number, got {type(x).__name__}")


def result_type(*operands):
    """The dtype of an elementwise op on ``operands`` (Tensors, arrays, Python numbers)."""
    groups = [None, None, None]  # dimensioned, 0-d, Python numbers
    for x in operands:
        if hasattr(x, "dtype") and hasattr(x, "ndim") and not isinstance(x, np.generic):
            rank, dtype = (0 if x.ndim else 1), np.dtype(x.dtype)
        else:
            rank, dtype = 2, _python_dtype(x)
        groups[rank] = dtype if groups[rank] is None else promote_types(groups[rank], dtype)
    result = None
    for dtype in reversed(groups):  # lower ranks first; a higher rank wins within its category
        if dtype is not None:
            result = dtype if result is None or category(dtype) >= category(result) else result
    return result


def float_type(dtype):
    """``dtype`` if it is floating point, else the default dtype (true division, mean)."""
    dtype = np.dtype(dtype)
    return dtype if dtype.kind == "f" else np.dtype(creation.DEFAULT_DTYPE)
