"""Fused ops for the hot paths: one graph node each instead of a chain of small ones.

A ``Fused`` op has three parts: ``forward`` and ``backward_raw`` compute on raw arrays in as
few passes as possible, and ``composite`` is the op's definition in differentiable core ops
(the readable reference the fast parts are tested against). A first-order backward uses
``backward_raw``; a backward that must itself be differentiable (``create_graph=True``)
differentiates ``composite`` instead, so gradients of every order stay exact.
"""
import numpy

import kernels
from kernels.arrays import is_cupy
from minigen import backend
from minigen.functional import ops
from minigen.tensor import Function, Tensor, backprop, is_grad_enabled


class Fused(Function):
    def backward(self, *gys):
        if is_grad_enabled():  # create_graph: differentiate the definition
            out = self.composite(*self.inputs)
            outs = list(out) if isinstance(out, tuple) else [out]
            found = backprop(outs, list(gys), create_graph=True,
                             wanted={id(x): x for x in self.inputs}, partial=True)
            return tuple(found.get(id(x)) for x in self.inputs)
        gxs = self.backward_raw(*[g.data for g in gys])
        gxs = gxs if isinstance(gxs, tuple) else (gxs,)
        return tuple(None if g is None else Tensor(g) for g in gxs)

    def composite(self, *xs):
        raise NotImplementedError

    def backward_raw(self, *gys):
        raise NotImplementedError


def _kernels_for(*arrays):
    """The kernels dispatch for float32/float64 arrays of one dtype, else the reference
    formulas (which follow NumPy's promotion for the other dtypes and take NumPy scalars)."""
    dtypes = {getattr(a, "dtype", None) for a in arrays}
    if (len(dtypes) == 1 and dtypes.pop() in (numpy.float32, numpy.float64)
            and all(isinstance(a, numpy.ndarray) or is_cupy(a) for a in arrays)):
        return kernels
    return kernels.reference


class SiLU(Fused):
    """x * sigmoid(x) (Elfwing et al. 2018; a.k.a. swish)."""

    def forward(self, x):
        if _kernels_for(x) is kernels:
            y, self.s = kernels.silu(x)
            return y
        self.s = ops.sigmoid_array(x)  # integer x: a float sigmoid (the default dtype)
        return backend.xp_of(x).multiply(x, self.s, out=backend.xp_of(x).empty_like(self.s))

    def backward_raw(self, gy):
        return _kernels_for(self.inputs[0].data, self.s, gy).silu_backward(
            self.inputs[0].data, self.s, gy)

    def composite(self, x):
        return x * ops.sigmoid(x)


class GroupNorm(Fused):
    """Group normalisation (Wu & He 2018, eq. 1-3) with a per-channel affine map; forward
    and backward are :func:`kernels.group_norm` and :func:`kernels.group_norm_backward`
    (Numba on the CPU, the array formulas of :mod:`kernels.reference` elsewhere)."""

    def __init__(self, groups, eps):
        self.groups, self.eps = groups, eps

    def forward(self, x, weight, bias):
        y, self.mean, self.rstd = _kernels_for(x, weight, bias).group_norm(
            x, weight, bias, self.groups, self.eps)
        return y

    def backward_raw(self, gy):
        x, weight = self.inputs[0].data, self.inputs[1].data
        return _kernels_for(gy, x, weight).group_norm_backward(gy, x, weight, self.mean, self.rstd)

    def composite(self, x, weight, bias):
        xg = ops.reshape(x, (x.shape[0], self.groups, -1))
        mu = ops.mean(xg, axis=2, keepdims=True)
        d = xg - mu
        xhat = ops.reshape(d / ops.sqrt(ops.mean(d * d, axis=2, keepdims=True) + self.eps), x.shape)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return xhat * ops.reshape(weight, shape) + ops.reshape(bias, shape)


class Linear(Fused):
    """y = x W^T + b with W of shape (out, in): one GEMM forward, two backward, over x's
    leading axes flattened into rows (:func:`kernels.gemm`: large ones on every thread)."""

    def forward(self, x, w, b=None):
        flavour = _kernels_for(x, w) if b is None else _kernels_for(x, w, b)
        y = flavour.gemm(x.reshape(-1, x.shape[-1]), w.T, b)
        return y.reshape(x.shape[:-1] + w.shape[:1])

    def backward_raw(self, gy):
        x, w = self.inputs[0].data, self.inputs[1].data
        gemm = _kernels_for(gy, x, w).gemm
        gy2 = gy.reshape(-1, gy.shape[-1])
        gw = gemm(gy2.T, x.reshape(-1, x.shape[-1])) if self.inputs[1].requires_grad else None
        gx = gemm(gy2, w).reshape(x.shape) if self.inputs[0].requires_grad else None
        return (gx, gw) if len(self.inputs) == 2 else (gx, gw, gy2.sum(axis=0))

    def composite(self, x, w, b=None):
        y = ops.matmul(x, ops.transpose(w))
        return y if b is None else y + b


def linear(x, w, b=None):
    """Affine map ``x @ w.T + b`` (PyTorch's weight layout: (out_features, in_features))."""
    ops.same_float_dtype("linear", input=x, weight=w, bias=b)
    if x.shape[-1] != w.shape[-1]:
        raise ValueError(
            f"linear: input has {x.shape[-1]} features (shape {x.shape}) but weight "
            f"{w.shape} expects {w.shape[-1]}"
        )
    return Linear()(x, w) if b is None else Linear()(x, w, b)
