"""Core differentiable ops: arithmetic with broadcasting, elementwise maths, comparisons,
reductions, shape ops and indexing.

Each op is a small ``Function``: ``forward`` on raw arrays, ``backward`` with differentiable
ops. Broadcasting is undone in exactly one place, ``sum_to``; mixed dtypes are resolved in
one place, :mod:`minigen.functional.promotion`. Axes follow NumPy (``axis``, ``keepdims``),
except that a 0-d tensor accepts axis 0 and -1 as PyTorch's does (see docs/semantics.md).
"""
import builtins
import math
import numbers
import operator

import numpy as np

import kernels
from kernels import threads

from minigen import backend
from minigen.functional.promotion import float_type, result_type
from minigen.tensor import Cast, Function, Tensor, as_tensor


def _const(array):
    """A constant (non-differentiable) tensor: masks, signs, indices."""
    return Tensor(array)


def _xp_of(*operands):
    for x in operands:
        if isinstance(x, Tensor):
            return backend.xp_of(x.data)
    return np


def cast(x, dtype):
    """``x`` as a Tensor of ``dtype``: a Python number or array is converted, a Tensor of
    another dtype goes through a differentiable cast (its gradient is cast back)."""
    dtype = np.dtype(dtype)
    if not isinstance(x, Tensor):
        xp = backend.xp_of(x) if hasattr(x, "dtype") and not isinstance(x, np.generic) else np
        return Tensor(xp.asarray(x, dtype=dtype))
    return x if x.dtype == dtype else Cast(dtype)(x)


def promote(*operands, like=None):
    """The operands as Tensors of their common dtype (:func:`promotion.result_type`), on the
    device of the first Tensor among them (or of ``like``)."""
    tensors = [x for x in operands if isinstance(x, Tensor)]
    if len(tensors) == len(operands) and len({t.dtype for t in tensors}) == 1:
        return operands
    dtype = result_type(*operands)
    xp = _xp_of(*operands, *(() if like is None else (like,)))
    return tuple(cast(x if isinstance(x, Tensor) else xp.asarray(x, dtype=dtype), dtype)
                 for x in operands)


def _binary_inputs(a, b):
    """``promote(a, b)`` with fast paths for the common cases: two Tensors of one dtype, and
    a float Tensor with a Python number (the Tensor's dtype wins)."""
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            if a.dtype == b.dtype:
                return a, b
        elif isinstance(b, (int, float)) and a.dtype.kind == "f":
            return a, Tensor(backend.xp_of(a.data).asarray(b, dtype=a.dtype))
    elif isinstance(a, (int, float)) and isinstance(b, Tensor) and b.dtype.kind == "f":
        return Tensor(backend.xp_of(b.data).asarray(a, dtype=b.dtype)), b
    return promote(a, b)


def same_float_dtype(op, **named):
    """Refuse floating-point operands of different dtypes (PyTorch raises too): matmul,
    linear and conv never upcast a float32 model to float64 silently."""
    floats = {name: t.dtype for name, t in named.items() if t is not None and t.dtype.kind == "f"}
    if len(set(floats.values())) > 1:
        found = ", ".join(f"{name} {dtype}" for name, dtype in floats.items())
        raise TypeError(f"{op}: operands have different float dtypes ({found}); cast one of them")


# --- broadcasting -------------------------------------------------------------------------
_SHORT_AXIS = 4


def _sum_axes(x, axes):
    """x.sum(axis=axes, keepdims=True), with the axes of length <= _SHORT_AXIS summed as
    their slices: NumPy reduces a short strided axis element by element, which made nearest
    upsampling's gradient (axes of length 2 between long ones) the slowest op of a UNet step
    (docs/history.md#what-was-tried). Floating point only: integer sums keep NumPy's wider
    accumulator."""
    floating = x.dtype.kind in "fc"
    short = tuple(a for a in axes if floating and 2 <= x.shape[a] <= _SHORT_AXIS)
    long = tuple(a for a in axes if a not in short)
    y = x.sum(axis=long, keepdims=True) if long else x
    for a in short:
        part = (slice(None),) * a
        total = y[part + (slice(0, 1),)].copy()
        for i in range(1, y.shape[a]):
            total += y[part + (slice(i, i + 1),)]
        y = total
    return y


def _sum_to_array(x, shape):
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1
    )
    y = _sum_axes(x, axes) if axes else x
    return y.reshape(shape) if lead else y


class SumTo(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return _sum_to_array(x, self.shape)

    def backward(self, gy):
        return broadcast_to(gy, self.in_shape)


class BroadcastTo(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return backend.xp_of(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.in_shape)


def sum_to(x, shape):
    """Sum ``x`` down to ``shape`` (the adjoint of broadcasting)."""
    shape = tuple(shape)
    return x if x.shape == shape else SumTo(shape)(x)


def broadcast_to(x, shape):
    shape = tuple(shape)
    return x if x.shape == shape else BroadcastTo(shape)(x)


# --- arithmetic ---------------------------------------------------------------------------
class Binary(Function):
    def __call__(self, a, b):
        return super().__call__(*_binary_inputs(a, b))

    def _unbroadcast(self, ga, gb):
        a, b = self.inputs
        return (None if ga is None else sum_to(ga, a.shape),
                None if gb is None else sum_to(gb, b.shape))


class Add(Binary):
    def forward(self, a, b):
        return kernels.add(a, b)

    def backward(self, gy):
        return self._unbroadcast(gy, gy)


class Sub(Binary):
    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        return self._unbroadcast(gy, -gy)


class Mul(Binary):
    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        return self._unbroadcast(gy * b, gy * a)


class Div(Binary):
    def forward(self, a, b):
        return a / b

    def backward(self, gy):
        a, b = self.inputs
        ga = gy / b
        return self._unbroadcast(ga, -ga * a / b)


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class PowConst(Function):
    """x ** c for a constant exponent c (the derivative of x ** 0 is 0, also at x = 0)."""

    def __init__(self, c):
        self.c = c

    def forward(self, x):
        return x ** x.dtype.type(self.c) if x.dtype.kind == "f" else x**self.c

    def backward(self, gy):
        if self.c == 0:
            return _const(backend.xp_of(gy.data).zeros_like(gy.data))
        (x,) = self.inputs
        return gy * self.c * x ** (self.c - 1)


class Pow(Binary):
    """a ** b elementwise with PyTorch's values and derivatives: 0 ** 0 = 1, a negative base
    with an integral exponent is real; at a = 0, d/da is 0 where b = 0 and d/db is 0 where
    b >= 0 (instead of 0 * inf)."""

    def forward(self, a, b):
        return backend.xp_of(a).power(a, b)

    def backward(self, gy):
        a, b = self.inputs
        ga = gb = None
        if a.requires_grad:
            at = (a.data == 0) & (b.data == 0)
            ga = where(at, 0.0, gy * b * where(at, 1.0, a) ** (b - 1))
        if b.requires_grad:
            at = (a.data == 0) & (b.data >= 0)
            gb = where(at, 0.0, gy * self.output() * log(where(at, 1.0, a)))
        return self._unbroadcast(ga, gb)


def add(a, b):
    return Add()(a, b)


def sub(a, b):
    return Sub()(a, b)


def mul(a, b):
    return Mul()(a, b)


def div(a, b):
    """True division; integer operands give the default float dtype (as in PyTorch)."""
    a, b = _binary_inputs(a, b)
    if a.dtype.kind != "f":
        dtype = float_type(a.dtype)
        a, b = cast(a, dtype), cast(b, dtype)
    return Div()(a, b)


def neg(x):
    return Neg()(x)


def pow(x, c):
    """``x ** c`` elementwise (Tensor or number exponent)."""
    if isinstance(c, Tensor) or hasattr(c, "ndim") and not isinstance(c, np.generic):
        return Pow()(x, c)
    return PowConst(c)(x if x.dtype.kind == "f" else cast(x, result_type(x, c)))


def rpow(x, c):
    """``c ** x`` for a number base c (negative bases as in PyTorch: real for integral x)."""
    return Pow()(c, x)


# --- elementwise maths --------------------------------------------------------------------
class Exp(Function):
    def forward(self, x):
        return backend.xp_of(x).exp(x)

    def backward(self, gy):
        return gy * self.output()


class Log(Function):
    def forward(self, x):
        return backend.xp_of(x).log(x)

    def backward(self, gy):
        return gy / self.inputs[0]


class Sqrt(Function):
    def forward(self, x):
        return backend.xp_of(x).sqrt(x)

    def backward(self, gy):
        return gy / (2 * self.output())


class Tanh(Function):
    def forward(self, x):
        return backend.xp_of(x).tanh(x)

    def backward(self, gy):
        y = self.output()
        return gy * (1 - y * y)


class Sin(Function):
    def forward(self, x):
        return backend.xp_of(x).sin(x)

    def backward(self, gy):
        return gy * cos(self.inputs[0])


class Cos(Function):
    def forward(self, x):
        return backend.xp_of(x).cos(x)

    def backward(self, gy):
        return -gy * sin(self.inputs[0])


class Erf(Function):
    """The error function erf(x) = 2/sqrt(pi) int_0^x exp(-t^2) dt (exact gelu's CDF); the
    values come from ``kernels.erf`` (NumPy has no erf ufunc)."""

    def forward(self, x):
        return kernels.erf(x)

    def backward(self, gy):
        x = self.inputs[0]
        return gy * (2 / math.sqrt(math.pi)) * exp(-x * x)


def sigmoid_array(x, out=None):
    """1 / (1 + e^-x) on a raw array (:func:`kernels.reference.sigmoid`, accurate to a few ulp
    in both tails). Integer x gives the default float dtype (PyTorch's rule). ``out``: an
    array of that dtype and x's shape to write to."""
    if out is None:
        out = backend.xp_of(x).empty_like(x, dtype=float_type(x.dtype))
    return kernels.reference.sigmoid(x, out=out)


class Sigmoid(Function):
    def forward(self, x):
        return sigmoid_array(x)

    def backward(self, gy):
        y = self.output()
        return gy * y * (1 - y)


class _Masked(Function):
    """Ops whose derivative is a constant array (piecewise linear): relu, abs, clip."""

    def backward(self, gy):
        return gy * _const(self.slope)


class ReLU(_Masked):
    def forward(self, x):
        self.slope = (~(x <= 0)).astype(x.dtype)  # slope 1 at NaN, as PyTorch's
        return backend.xp_of(x).maximum(x, 0)  # relu(-inf) = 0, NaN stays NaN


class LeakyReLU(_Masked):
    def __init__(self, negative_slope):
        self.negative_slope = negative_slope

    def forward(self, x):
        xp = backend.xp_of(x)
        one, slope = (x.dtype.type(v) for v in (1, self.negative_slope))
        self.slope = xp.where(x > 0, one, slope)  # already x's dtype: no int64 array, no cast
        return x * self.slope


class Abs(_Masked):
    def forward(self, x):
        xp = backend.xp_of(x)
        self.slope = xp.sign(x)
        return xp.abs(x)


class Clip(_Masked):
    """Clip to [lo, hi]; the slope is 1 on the closed interval (PyTorch's clamp), or on the
    open one with ``strict`` (PyTorch's hardtanh)."""

    def __init__(self, lo, hi, strict=False):
        if lo is None and hi is None:
            raise ValueError("clip: at least one of lo and hi must be given (both are None)")
        self.lo, self.hi, self.strict = lo, hi, strict

    def forward(self, x):
        xp = backend.xp_of(x)
        above, below = (operator.gt, operator.lt) if self.strict else (operator.ge, operator.le)
        inside = xp.ones(x.shape, dtype=bool)
        if self.lo is not None:
            inside &= above(x, self.lo)
        if self.hi is not None:
            inside &= below(x, self.hi)
        self.slope = inside.astype(x.dtype)
        return xp.clip(x, self.lo, self.hi)


class Softplus(Function):
    def forward(self, x):
        xp = backend.xp_of(x)
        # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): stable at any |x|
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, gy):
        return gy * sigmoid(self.inputs[0])


class Maximum(Binary):
    """Elementwise maximum; at ties each operand gets half the gradient, where NaN is
    involved both get it (as in PyTorch)."""

    name, loses = "maximum", staticmethod(operator.lt)

    def forward(self, a, b):
        tie = 0.5 * (a == b)
        self.share_a = (1 - self.loses(a, b) - tie).astype(a.dtype)
        self.share_b = (1 - self.loses(b, a) - tie).astype(a.dtype)
        return getattr(backend.xp_of(a), self.name)(a, b)  # NaN propagates

    def backward(self, gy):
        return self._unbroadcast(gy * _const(self.share_a), gy * _const(self.share_b))


class Minimum(Maximum):
    name, loses = "minimum", staticmethod(operator.gt)


def maximum(a, b):
    return Maximum()(a, b)


def minimum(a, b):
    return Minimum()(a, b)


def exp(x):
    return Exp()(x)


def sin(x):
    return Sin()(x)


def cos(x):
    return Cos()(x)


def erf(x):
    return Erf()(x)


def log(x):
    return Log()(x)


def sqrt(x):
    return Sqrt()(x)


def tanh(x):
    return Tanh()(x)


def sigmoid(x):
    return Sigmoid()(x)


def relu(x):
    return ReLU()(x)


def leaky_relu(x, negative_slope=0.01):
    return LeakyReLU(negative_slope)(x)


def abs(x):
    return Abs()(x)


def clip(x, lo=None, hi=None):
    """``x`` limited to [lo, hi]; one bound may be None (not both)."""
    return Clip(lo, hi)(x)


def softplus(x, beta=1.0, threshold=20.0):
    """(1 / beta) log(1 + exp(beta x)), computed without overflow (PyTorch's signature).
    PyTorch switches to the identity where beta x > threshold; the stable form needs no
    switch, and differs from x there by log1p(exp(-beta x)) / beta < exp(-threshold) / beta."""
    if beta == 1:
        return Softplus()(x)
    return Softplus()(x * beta) * (1.0 / beta)


# --- matrix product -----------------------------------------------------------------------
class MatMul(Function):
    def forward(self, a, b):
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} do not align "
                f"({a.shape[-1]} (last dim of a) != {b.shape[-2]} (second-to-last dim of b))"
            )
        if isinstance(a, np.ndarray) and a.ndim == 3:  # stacks: on Numba's threads
            return threads.matmul(a, b)
        return backend.xp_of(a).matmul(a, b)

    def backward(self, gy):
        a, b = self.inputs
        ga = matmul(gy, swapaxes(b, -1, -2))
        gb = matmul(swapaxes(a, -1, -2), gy)
        return sum_to(ga, a.shape), sum_to(gb, b.shape)


def matmul(a, b):
    """Matrix product with NumPy semantics: batched over leading dims, 1-D operands promoted;
    float operands of different dtypes are refused."""
    a, b = as_tensor(a), as_tensor(b)
    same_float_dtype("matmul", a=a, b=b)
    a, b = _binary_inputs(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 dim, got {a.shape} and {b.shape}")
    squeeze = []
    if a.ndim == 1:
        a, squeeze = reshape(a, (1, a.shape[0])), squeeze + [-2]
    if b.ndim == 1:
        b, squeeze = reshape(b, (b.shape[0], 1)), squeeze + [-1]
    y = MatMul()(a, b)
    if squeeze:
        keep = [n for i, n in enumerate(y.shape) if i - y.ndim not in squeeze]
        y = reshape(y, tuple(keep))
    return y


# --- reductions ---------------------------------------------------------------------------
def normalize_axis(axis, ndim, op="reduction"):
    """A sorted tuple of non-negative axes from None, an int or a sequence (NumPy's rules:
    in [-ndim, ndim), no repeats). A 0-d tensor accepts 0 and -1 (PyTorch's rule) and
    reduces over no axis."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    bound = builtins.max(ndim, 1)
    for a in axes:
        if not -bound <= a < bound:
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dims")
    if ndim == 0:
        return ()
    out = sorted(int(a) % ndim for a in axes)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(out)


def _keepdims_shape(shape, axes):
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _drop(shape, axes):
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _count(shape, axes):
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


class Sum(Function):
    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        gy = reshape(gy, _keepdims_shape(self.in_shape, self.axes))
        return broadcast_to(gy, self.in_shape)


SHORT_REDUCTION = 16
"""Reductions over at most this many entries per result run as a chain of elementwise ops
on strided slices (pooling windows): NumPy's reduce over several short strided axes is
much slower."""


_ELEMENTWISE = {"max": "maximum", "min": "minimum", "sum": "add"}


def _reduce_keepdims(x, axes, name):
    """``x.max``, ``x.min`` or ``x.sum`` (``name``) over ``axes``, keepdims; short ones folded
    with the elementwise op (exactly the same values for max and min, and for sums of small
    integer counts)."""
    lengths = [x.shape[a] for a in axes]
    if not axes or math.prod(lengths) > SHORT_REDUCTION:
        return getattr(x, name)(axis=axes, keepdims=True)
    op = getattr(backend.xp_of(x), _ELEMENTWISE[name])
    y = None
    for index in np.ndindex(*lengths):
        where = [slice(None)] * x.ndim
        for a, i in zip(axes, index):
            where[a] = slice(i, i + 1)
        y = x[tuple(where)] if y is None else op(y, x[tuple(where)])
    return y


class Max(Function):
    """Maximum over axes; the gradient is shared equally among tied maxima."""

    reduce = "max"

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        if x.size == 0:
            raise ValueError(f"{self.reduce}: the tensor of shape {x.shape} is empty (no identity)")
        if self._pooling_windows(x):  # kernels.window_max: the lines below in one pass
            n, c, ho, kh, wo, kw = x.shape
            y, share = kernels.window_max(x.reshape(n * c * ho, kh, wo, kw))
            y, self.share = y.reshape(n, c, ho, 1, wo, 1), share.reshape(x.shape)
        else:
            y = _reduce_keepdims(x, self.axes, self.reduce)
            hits = ((x == y) | (x != x) & (y != y)).astype(x.dtype)  # a NaN maximum is a hit
            self.share = hits / _reduce_keepdims(hits, self.axes, "sum")
        return y if self.keepdims else y.reshape(_drop(y.shape, self.axes))

    def _pooling_windows(self, x):
        """Whether x is max pooling's (N, C, Ho, kh, Wo, kw) windows of a float array."""
        return (self.reduce == "max" and x.ndim == 6 and self.axes == (3, 5)
                and x.dtype in (np.float32, np.float64)
                and x.shape[3] * x.shape[5] <= SHORT_REDUCTION)

    def backward(self, gy):
        gy = reshape(gy, _keepdims_shape(self.in_shape, self.axes))
        return broadcast_to(gy, self.in_shape) * _const(self.share)


class Min(Max):
    reduce = "min"


class Prod(Function):
    """Product over axes. d/dx_i is the product of the other factors: y / x_i where x_i != 0;
    at a zero x_i, the product of the rest if x_i is the only zero, else 0."""

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        return x.prod(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        (x,) = self.inputs
        shape = _keepdims_shape(self.in_shape, self.axes)
        gy, y = reshape(gy, shape), reshape(self.output(), shape)
        zero = x.data == 0
        if not zero.any():
            return gy * y / x
        safe = where(zero, 1.0, x)
        lone = zero.sum(axis=self.axes, keepdims=True) == 1
        rest = prod(safe, self.axes, keepdims=True) * _const(lone.astype(x.dtype))
        return gy * where(zero, rest, y / safe)


class CumSum(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        return backend.xp_of(x).cumsum(x, axis=self.axis)

    def backward(self, gy):
        return flip(cumsum(flip(gy, self.axis), self.axis), self.axis)


def _float_input(x):
    """Integer input of mean/var/std as the default float dtype (NumPy: float64)."""
    return cast(x, float_type(x.dtype))


def sum(x, axis=None, keepdims=False):
    return Sum(normalize_axis(axis, x.ndim, "sum"), keepdims)(x)


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis``; over an empty axis it is NaN (as in NumPy and PyTorch)."""
    axes = normalize_axis(axis, x.ndim, "mean")
    count = _count(x.shape, axes)
    return sum(_float_input(x), axes, keepdims) * (1.0 / count if count else math.nan)


def _ddof(ddof, correction, op):
    if correction is not None and ddof not in (0, correction):
        raise ValueError(f"{op}: ddof={ddof} and correction={correction} disagree (pass one)")
    return ddof if correction is None else correction


def var(x, axis=None, keepdims=False, ddof=0, *, correction=None):
    """Variance sum((x - mean)^2) / (N - ddof), NumPy's default ddof=0 (population);
    ``correction`` is PyTorch's name for ddof. N - ddof <= 0 gives inf or NaN, as in NumPy."""
    x = _float_input(x)
    axes = normalize_axis(axis, x.ndim, "var")
    dof = _count(x.shape, axes) - _ddof(ddof, correction, "var")
    d = x - mean(x, axes, keepdims=True)
    return sum(d * d, axes, keepdims) * (1.0 / dof if dof > 0 else math.inf)


def std(x, axis=None, keepdims=False, ddof=0, *, correction=None):
    """Standard deviation, sqrt(var(x, axis, keepdims, ddof))."""
    return sqrt(var(x, axis, keepdims, ddof, correction=correction))


def max(x, axis=None, keepdims=False):
    return Max(normalize_axis(axis, x.ndim, "max"), keepdims)(x)


def min(x, axis=None, keepdims=False):
    return Min(normalize_axis(axis, x.ndim, "min"), keepdims)(x)


def prod(x, axis=None, keepdims=False):
    return Prod(normalize_axis(axis, x.ndim, "prod"), keepdims)(x)


def cumsum(x, axis=None):
    """Cumulative sum along ``axis``; axis=None runs over the flattened tensor (NumPy)."""
    if axis is None:
        return CumSum(0)(reshape(x, (-1,)))
    axes = normalize_axis(axis, x.ndim, "cumsum")
    return CumSum(axes[0])(x) if axes else x


def _arg(reduce, x, axis, keepdims):
    x = as_tensor(x)
    if x.data.size == 0:
        raise ValueError(f"{reduce}: the tensor of shape {x.shape} is empty")
    if axis is not None:
        (axis,) = normalize_axis(axis, x.ndim, reduce) or (None,)
    return Tensor(getattr(x.data, reduce)(axis=axis, keepdims=keepdims))


def argmax(x, axis=None, keepdims=False):
    """Index of the (first) maximum along ``axis``, or in the flattened tensor (an int64
    tensor without gradient)."""
    return _arg("argmax", x, axis, keepdims)


def argmin(x, axis=None, keepdims=False):
    """Index of the (first) minimum along ``axis``, or in the flattened tensor."""
    return _arg("argmin", x, axis, keepdims)


# --- shapes -------------------------------------------------------------------------------
class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape {x.shape} into {self.shape}") from None

    def backward(self, gy):
        return reshape(gy, self.in_shape)


class Transpose(Function):
    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        return transpose(gy, tuple(np.argsort(self.axes)))


def reshape(x, shape):
    shape = tuple(shape)
    return x if x.shape == shape else Reshape(shape)(x)


def transpose(x, axes=None):
    """Permute the axes (NumPy's ``transpose``: all axes, reversed when None)."""
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    elif len(axes) != x.ndim or sorted(normalize_axis(axes, x.ndim, "transpose")) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {tuple(axes)} are not a permutation of {x.ndim} dims")
    else:
        axes = tuple(int(a) % x.ndim for a in axes)
    return Transpose(axes)(x)


def swapaxes(x, a, b):
    """Exchange two axes (NumPy's ``swapaxes``, PyTorch's ``transpose(dim0, dim1)``)."""
    axes = list(range(x.ndim))
    (i, j) = (normalize_axis(a, x.ndim, "swapaxes")[0], normalize_axis(b, x.ndim, "swapaxes")[0])
    axes[i], axes[j] = axes[j], axes[i]
    return transpose(x, axes)


def squeeze(x, axis=None):
    """Drop axes of length 1: all of them (axis None) or the given ones, which must have
    length 1 (NumPy's rule; PyTorch leaves a longer axis unchanged)."""
    axes = normalize_axis(axis, x.ndim, "squeeze")
    if axis is None:
        axes = tuple(a for a in axes if x.shape[a] == 1)
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} of shape {x.shape} has length {x.shape[a]}, not 1")
    return reshape(x, _drop(x.shape, axes))


def unsqueeze(x, axis):
    """Insert an axis of length 1 at position ``axis`` in [-ndim-1, ndim] (PyTorch's
    ``unsqueeze``, NumPy's ``expand_dims``)."""
    (axis,) = normalize_axis(axis, x.ndim + 1, "unsqueeze")
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def flatten(x, start_dim=0, end_dim=-1):
    """Merge axes start_dim..end_dim into one (PyTorch's ``flatten``; a 0-d tensor becomes 1-D)."""
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = (normalize_axis(d, x.ndim, "flatten")[0] for d in (start_dim, end_dim))
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return reshape(x, x.shape[:start] + (_count(x.shape, range(start, end + 1)),) + x.shape[end + 1:])


class Flip(Function):
    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return backend.xp_of(x).flip(x, axis=self.axes)

    def backward(self, gy):
        return Flip(self.axes)(gy)


def flip(x, axis=None):
    """Reverse the order of elements along ``axis`` (all axes when None, as in NumPy)."""
    return Flip(normalize_axis(axis, x.ndim, "flip"))(x)


class Pad(Function):
    def __init__(self, widths, value):
        self.widths, self.value = widths, value

    def forward(self, x):
        return backend.xp_of(x).pad(x, self.widths, constant_values=self.value)

    def backward(self, gy):
        return GetItem(tuple(slice(lo, n - hi) for (lo, hi), n in zip(self.widths, gy.shape)))(gy)


def pad(x, pad, mode="constant", value=0.0):
    """PyTorch's ``F.pad``: ``pad`` = (left, right) for the last axis, then (top, bottom) for
    the one before, and so on; constant padding with ``value`` (non-negative widths)."""
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is implemented, got {mode!r}")
    pad = tuple(pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: needs pairs of widths for at most {x.ndim} axes, got {pad}")
    if builtins.min(pad, default=0) < 0:
        raise ValueError(f"pad: widths must be >= 0, got {pad}")
    pairs = [(int(pad[i]), int(pad[i + 1])) for i in range(0, len(pad), 2)]
    widths = tuple([(0, 0)] * (x.ndim - len(pairs)) + pairs[::-1])
    return Pad(widths, value)(x) if pairs else x


# --- indexing and joining -----------------------------------------------------------------
def raw_index(index, xp):
    """``index`` with Tensors unwrapped and index arrays moved to ``xp``'s device (CuPy
    refuses host arrays as indices of device arrays)."""
    def raw(i):
        i = i.data if isinstance(i, Tensor) else i
        return xp.asarray(i) if isinstance(i, (np.ndarray, list)) and xp is not np else i

    return tuple(raw(i) for i in index) if isinstance(index, tuple) else raw(index)


def _is_advanced(index):
    items = index if isinstance(index, tuple) else (index,)
    return any(not isinstance(i, (int, np.integer, slice, type(None), type(Ellipsis))) for i in items)


class GetItem(Function):
    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.in_shape = x.shape
        return x[self.index]

    def backward(self, gy):
        return GetItemGrad(self.index, self.in_shape)(gy)


class GetItemGrad(Function):
    """Scatter-add of ``gy`` into zeros of the input's shape (repeated indices accumulate)."""

    def __init__(self, index, in_shape):
        self.index, self.in_shape = index, in_shape

    def forward(self, gy):
        xp = backend.xp_of(gy)
        gx = xp.zeros(self.in_shape, dtype=gy.dtype)
        if _is_advanced(self.index):
            if xp is np:
                np.add.at(gx, self.index, gy)
            else:
                import cupyx

                cupyx.scatter_add(gx, self.index, gy)
        else:
            gx[self.index] = gy
        return gx

    def backward(self, ggx):
        return GetItem(self.index)(ggx)


def getitem(x, index):
    return GetItem(raw_index(index, backend.xp_of(x)))(x)


class Concat(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        try:
            return backend.xp_of(xs[0]).concatenate(xs, axis=self.axis)
        except ValueError:
            raise ValueError(
                f"cat: shapes {[x.shape for x in xs]} differ outside axis {self.axis}"
            ) from None

    def backward(self, gy):
        grads, start = [], 0
        index = [slice(None)] * gy.ndim
        for n in self.sizes:
            index[self.axis] = slice(start, start + n)
            grads.append(GetItem(tuple(index))(gy))
            start += n
        return tuple(grads)


def cat(tensors, axis=0):
    tensors = list(promote(*[as_tensor(t) for t in tensors]))
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    if tensors[0].ndim == 0:
        raise ValueError("cat: zero-dimensional tensors cannot be concatenated (use stack)")
    (axis,) = normalize_axis(axis, tensors[0].ndim, "cat")
    return Concat(axis)(*tensors)


def stack(tensors, axis=0):
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    if len({t.shape for t in tensors}) > 1:
        raise ValueError(f"stack: all tensors need the same shape, got {[t.shape for t in tensors]}")
    (axis,) = normalize_axis(axis, tensors[0].ndim + 1, "stack")
    return cat([unsqueeze(t, axis) for t in tensors], axis)


class Where(Function):
    def __init__(self, cond):
        self.cond = cond

    def forward(self, a, b):
        return backend.xp_of(a).where(self.cond, a, b)

    def backward(self, gy):
        a, b = self.inputs
        mask = self.cond.astype(gy.dtype)
        return sum_to(gy * _const(mask), a.shape), sum_to(gy * _const(1 - mask), b.shape)


def where(cond, a, b):
    """Elementwise ``a`` where ``cond`` else ``b``; cond is a constant boolean tensor/array,
    ``a`` and ``b`` Tensors or numbers (promoted to one dtype)."""
    cond = cond.data if isinstance(cond, Tensor) else cond
    xp = backend.xp_of(cond) if hasattr(cond, "dtype") else _xp_of(a, b)
    a, b = promote(a, b, like=Tensor(xp.asarray(cond)))
    return Where(backend.xp_of(a.data).asarray(cond, dtype=bool))(a, b)


def index_grid(op, x, axis, index):
    """The advanced index that picks x[..., index[i, j, k], ...] at axis ``axis`` for every
    position of ``index`` (PyTorch's ``gather``/``scatter`` addressing): ``index`` has x's
    number of dims, and in the other axes at most x's sizes. Returns (axis, index tuple)."""
    index = index.data if isinstance(index, Tensor) else index
    xp = backend.xp_of(x.data)
    index = xp.asarray(index)
    if x.ndim == 0 or index.ndim != x.ndim or index.dtype.kind not in "iu":
        raise ValueError(f"{op}: index must be an integer array with the input's number of "
                         f"dims ({x.ndim} >= 1), got {index.dtype} of shape {index.shape}")
    (axis,) = normalize_axis(axis, x.ndim, op)
    if builtins.any(m > n for d, (m, n) in enumerate(zip(index.shape, x.shape)) if d != axis):
        raise ValueError(f"{op}: index shape {index.shape} exceeds input shape {x.shape} "
                         f"outside axis {axis}")
    if index.size and (int(index.min()) < 0 or int(index.max()) >= x.shape[axis]):
        raise IndexError(f"{op}: index values must be in [0, {x.shape[axis]}) for axis {axis}, "
                         f"got [{int(index.min())}, {int(index.max())}]")
    grid = [index if d == axis else xp.arange(n).reshape((1,) * d + (n,) + (1,) * (x.ndim - d - 1))
            for d, n in enumerate(index.shape)]
    return axis, tuple(grid)


def gather(x, axis, index):
    """PyTorch's ``gather``: out[i][j][k] = x[index[i][j][k]][j][k] for axis 0 (likewise for
    the others); ``index`` has x's number of dims, and in the other axes at most x's sizes."""
    return getitem(x, index_grid("gather", x, axis, index)[1])


def one_hot(index, num_classes=-1):
    """PyTorch's ``one_hot``: an int64 tensor of shape index.shape + (num_classes,) with 1
    at each index (num_classes=-1: max(index) + 1)."""
    index = index.data if isinstance(index, Tensor) else index
    xp = backend.xp_of(index) if hasattr(index, "dtype") else np
    index = xp.asarray(index)
    if index.dtype.kind not in "iu":
        raise TypeError(f"one_hot: index must be an integer tensor, got dtype {index.dtype}")
    if num_classes == -1:
        num_classes = int(index.max()) + 1 if index.size else 0
    if index.size and (int(index.min()) < 0 or int(index.max()) >= num_classes):
        raise ValueError(f"one_hot: class values must be in [0, {num_classes}), got "
                         f"[{int(index.min())}, {int(index.max())}]")
    return Tensor((index[..., None] == xp.arange(num_classes)).astype(np.int64))


# --- comparisons --------------------------------------------------------------------------
def _comparison(name, op):
    def compare(a, b):
        """Elementwise comparison: a bool tensor without gradient."""
        if not isinstance(b, (Tensor, numbers.Number, np.ndarray, np.generic)):
            return NotImplemented
        return Tensor(op(a.data, b.data if isinstance(b, Tensor) else b))

    compare.__name__ = compare.__qualname__ = name
    return compare


eq = _comparison("eq", operator.eq)
ne = _comparison("ne", operator.ne)
lt = _comparison("lt", operator.lt)
le = _comparison("le", operator.le)
gt = _comparison("gt", operator.gt)
ge = _comparison("ge", operator.ge)
