"""Cumulative product (``cumsum`` lives with the core reductions in ``ops``).

y_k = x_1 ... x_k. Without zeros, dy_k/dx_i = y_k / x_i for i <= k, so the input gradient is
(reverse cumulative sum of gy * y) / x: one pass. With a zero in the input that division is
undefined; then each y_k is computed as its own product (``ops.prod``, whose derivative
handles zeros exactly), which costs O(n^2) on the cumulated axis.
"""
from minigen import backend
from minigen.functional import ops
from minigen.functional.dims import either
from minigen.tensor import Function, as_tensor


class CumProd(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        return backend.xp_of(x).cumprod(x, axis=self.axis)

    def backward(self, gy):
        (x,) = self.inputs
        a = self.axis
        return ops.flip(ops.cumsum(ops.flip(gy * self.output(), a), a), a) / x


def _by_products(x, axis):
    n = x.shape[axis]
    head = (slice(None),) * axis
    return ops.cat([ops.prod(x[head + (slice(0, k + 1),)], axis, keepdims=True) for k in range(n)],
                   axis)


def cumprod(x, dim=None, *, axis=None):
    """Cumulative product along ``dim`` (PyTorch's argument; ``axis`` is NumPy's name);
    None runs over the flattened tensor, as ``cumsum`` does."""
    x = as_tensor(x)
    axis = either("cumprod", "dim", dim, "axis", axis)
    if axis is None:
        x, axis = ops.reshape(x, (-1,)), 0
    axes = ops.normalize_axis(axis, x.ndim, "cumprod")
    if not axes:
        return x
    if x.requires_grad and (x.data == 0).any():
        return _by_products(x, axes[0])
    return CumProd(axes[0])(x)
