"""Core differentiable ops: arithmetic with broadcasting, elementwise maths, reductions,
shape ops and indexing.

Each op is a small ``Function``: ``forward`` on raw arrays, ``backward`` with differentiable
ops. Broadcasting is undone in exactly one place, ``sum_to``.
"""
import numpy as np

from minigen import backend
from minigen.tensor import Function, Tensor, as_tensor


def _const(array):
    """A constant (non-differentiable) tensor: masks, signs, indices."""
    return Tensor(array)


def _binary_inputs(a, b):
    if isinstance(a, Tensor):
        return a, as_tensor(b, like=a)
    return as_tensor(a, like=b), b


# --- broadcasting -------------------------------------------------------------------------
def _sum_to_array(x, shape):
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1
    )
    y = x.sum(axis=axes, keepdims=True) if axes else x
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
class _Binary(Function):
    def __call__(self, a, b):
        return super().__call__(*_binary_inputs(a, b))

    def _unbroadcast(self, ga, gb):
        a, b = self.inputs
        return sum_to(ga, a.shape), sum_to(gb, b.shape)


class Add(_Binary):
    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        return self._unbroadcast(gy, gy)


class Sub(_Binary):
    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        return self._unbroadcast(gy, -gy)


class Mul(_Binary):
    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        return self._unbroadcast(gy * b, gy * a)


class Div(_Binary):
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


class Pow(Function):
    """x ** c for a constant exponent c."""

    def __init__(self, c):
        self.c = c

    def forward(self, x):
        return x ** x.dtype.type(self.c) if x.dtype.kind == "f" else x**self.c

    def backward(self, gy):
        (x,) = self.inputs
        return gy * self.c * x ** (self.c - 1)


def add(a, b):
    return Add()(a, b)


def sub(a, b):
    return Sub()(a, b)


def mul(a, b):
    return Mul()(a, b)


def div(a, b):
    return Div()(a, b)


def neg(x):
    return Neg()(x)


def pow(x, c):
    """``x ** c``; a Tensor exponent goes through exp(c log x) (needs x > 0)."""
    if isinstance(c, Tensor):
        return exp(c * log(as_tensor(x, like=c)))
    return Pow(c)(x)


def rpow(x, c):
    """``c ** x`` for a constant base c > 0."""
    return exp(x * float(np.log(c)))


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


class Sigmoid(Function):
    def forward(self, x):
        # 1/(1+e^-x) written through tanh: no overflow for large |x|
        return backend.xp_of(x).tanh(x * 0.5) * 0.5 + 0.5

    def backward(self, gy):
        y = self.output()
        return gy * y * (1 - y)


class _Masked(Function):
    """Ops whose derivative is a constant array (piecewise linear): relu, abs, clip."""

    def backward(self, gy):
        return gy * _const(self.slope)


class ReLU(_Masked):
    def forward(self, x):
        self.slope = (x > 0).astype(x.dtype)
        return x * self.slope


class LeakyReLU(_Masked):
    def __init__(self, negative_slope):
        self.negative_slope = negative_slope

    def forward(self, x):
        xp = backend.xp_of(x)
        self.slope = xp.where(x > 0, 1, self.negative_slope).astype(x.dtype)
        return x * self.slope


class Abs(_Masked):
    def forward(self, x):
        xp = backend.xp_of(x)
        self.slope = xp.sign(x)
        return xp.abs(x)


class Clip(_Masked):
    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        xp = backend.xp_of(x)
        inside = xp.ones(x.shape, dtype=bool)
        if self.lo is not None:
            inside &= x >= self.lo
        if self.hi is not None:
            inside &= x <= self.hi
        self.slope = inside.astype(x.dtype)
        return xp.clip(x, self.lo, self.hi)


class Softplus(Function):
    def forward(self, x):
        xp = backend.xp_of(x)
        # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): stable at any |x|
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, gy):
        return gy * sigmoid(self.inputs[0])


def exp(x):
    return Exp()(x)


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
    return Clip(lo, hi)(x)


def softplus(x):
    """log(1 + exp(x)), computed without overflow."""
    return Softplus()(x)


# --- matrix product -----------------------------------------------------------------------
class MatMul(Function):
    def forward(self, a, b):
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} do not align "
                f"({a.shape[-1]} (last dim of a) != {b.shape[-2]} (second-to-last dim of b))"
            )
        return backend.xp_of(a).matmul(a, b)

    def backward(self, gy):
        a, b = self.inputs
        ga = matmul(gy, swapaxes(b, -1, -2))
        gb = matmul(swapaxes(a, -1, -2), gy)
        return sum_to(ga, a.shape), sum_to(gb, b.shape)


def matmul(a, b):
    """Matrix product with NumPy semantics: batched over leading dims, 1-D operands promoted."""
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
def _normalize_axis(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in axes:
        if not -ndim <= a < (ndim or 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dims")
    return tuple(sorted(int(a) % (ndim or 1) for a in axes))


def _keepdims_shape(shape, axes):
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        self.axes = _normalize_axis(self.axis, x.ndim)
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        gy = reshape(gy, _keepdims_shape(self.in_shape, self.axes))
        return broadcast_to(gy, self.in_shape)


class Max(Function):
    """Maximum over axes; the gradient is shared equally among tied maxima."""

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        self.axes = _normalize_axis(self.axis, x.ndim)
        y = x.max(axis=self.axes, keepdims=True)
        hits = (x == y).astype(x.dtype)
        self.share = hits / hits.sum(axis=self.axes, keepdims=True)
        return y if self.keepdims else y.reshape([n for i, n in enumerate(y.shape) if i not in self.axes])

    def backward(self, gy):
        gy = reshape(gy, _keepdims_shape(self.in_shape, self.axes))
        return broadcast_to(gy, self.in_shape) * _const(self.share)


def sum(x, axis=None, keepdims=False):
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims=False):
    axes = _normalize_axis(axis, x.ndim)
    count = int(np.prod([x.shape[a] for a in axes])) if axes else 1
    return sum(x, axes, keepdims) * (1.0 / count)


def var(x, axis=None, keepdims=False):
    """Population variance (NumPy's ddof=0), the one normalisation layers use."""
    d = x - mean(x, axis, keepdims=True)
    return mean(d * d, axis, keepdims)


def max(x, axis=None, keepdims=False):
    return Max(axis, keepdims)(x)


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
    axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(a % x.ndim for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of {x.ndim} dims")
    return Transpose(axes)(x)


def swapaxes(x, a, b):
    axes = list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, axes)


# --- indexing and joining -----------------------------------------------------------------
def _raw_index(index, xp):
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
    return GetItem(_raw_index(index, backend.xp_of(x)))(x)


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
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    return Concat(axis % tensors[0].ndim)(*tensors)


def stack(tensors, axis=0):
    tensors = [as_tensor(t) for t in tensors]
    if len({t.shape for t in tensors}) > 1:
        raise ValueError(f"stack: all tensors need the same shape, got {[t.shape for t in tensors]}")
    axis = axis % (tensors[0].ndim + 1)
    expanded = [reshape(t, t.shape[:axis] + (1,) + t.shape[axis:]) for t in tensors]
    return cat(expanded, axis)


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
    """Elementwise ``a`` where ``cond`` else ``b`` (cond is a constant boolean array)."""
    cond = cond.data if isinstance(cond, Tensor) else cond
    a, b = _binary_inputs(a, b)
    return Where(backend.xp_of(a.data).asarray(cond, dtype=bool))(a, b)

