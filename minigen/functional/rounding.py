"""Rounding and integer-valued division: floor, ceil, round, trunc, sign, ``//`` and ``%``.

The rounding functions are piecewise constant, so their derivative is 0 wherever it exists
(PyTorch's convention, also at the jumps); integer tensors are returned as they are. ``remainder`` (Python's ``%``, the sign of the
divisor) is a - b floor(a / b): its derivative is 1 in a and -floor(a / b) in b.
"""
from minigen import backend
from minigen.functional import ops
from minigen.tensor import Function, Tensor, as_tensor


class _Step(Function):
    """A piecewise-constant elementwise function of one or two operands: zero gradient."""

    def __init__(self, fn):
        self.fn = fn

    def forward(self, *xs):
        return self.fn(backend.xp_of(xs[0]), *xs)

    def backward(self, gy):
        zero = Tensor(backend.xp_of(gy.data).zeros_like(gy.data))
        return tuple(ops.sum_to(zero, x.shape) for x in self.inputs)


def _unary(name, fn, doc):
    def op(x):
        x = as_tensor(x)
        return x if x.dtype.kind in "iu" and name != "sign" else _Step(fn)(x)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return op


floor = _unary("floor", lambda xp, x: xp.floor(x), "The largest integer <= x (zero gradient).")
ceil = _unary("ceil", lambda xp, x: xp.ceil(x), "The smallest integer >= x (zero gradient).")
trunc = _unary("trunc", lambda xp, x: xp.trunc(x), "x rounded toward zero (zero gradient).")
sign = _unary("sign", lambda xp, x: xp.sign(x), "-1, 0 or 1 by the sign of x (zero gradient).")


def round(x, decimals=0):
    """x rounded to ``decimals`` places, halves to even (PyTorch's and NumPy's rule); zero
    gradient."""
    x = as_tensor(x)
    return x if x.dtype.kind in "iu" and decimals >= 0 else _Step(lambda xp, a: xp.round(a, decimals))(x)


def floor_divide(a, b):
    """floor(a / b) elementwise, Python's ``//`` (PyTorch's ``floor_divide``); integer
    operands stay integer. Zero gradient (PyTorch has none)."""
    a, b = ops.promote(a, b)
    return _Step(lambda xp, u, v: xp.floor_divide(u, v))(a, b)


class Remainder(ops.Binary):
    def forward(self, a, b):
        return backend.xp_of(a).remainder(a, b)

    def backward(self, gy):
        a, b = self.inputs
        ga = gy if a.requires_grad else None
        gb = -gy * floor(a / b) if b.requires_grad else None
        return self._unbroadcast(ga, gb)


def remainder(a, b):
    """a - b floor(a / b): Python's ``%``, the result has the sign of the divisor (PyTorch's
    ``remainder``)."""
    return Remainder()(a, b)
