"""Differentiable functions (``import minigen.functional as F``).

``ops`` holds the core ops (arithmetic, maths, reductions, shapes, indexing, linear), ``conv``
the convolutions and spatial ops, ``activation``, ``loss`` and ``normalization`` the layers'
maths composed from them. This module also gives Tensor its operators and methods.
"""
from minigen.functional import cast as _cast
from minigen.functional import inplace as _inplace
from minigen.functional.activation import dropout, gelu, log_softmax, logsumexp, silu, softmax
from minigen.functional.conv import (
    avg_pool2d,
    conv2d,
    conv_transpose2d,
    max_pool2d,
    upsample_nearest2d,
)
from minigen.functional.fused import linear
from minigen.functional.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    mse_loss,
)
from minigen.functional.normalization import group_norm, layer_norm, scaled_dot_product_attention
from minigen.functional.ops import (
    abs,
    add,
    broadcast_to,
    cat,
    clip,
    div,
    exp,
    getitem,
    leaky_relu,
    log,
    matmul,
    max,
    mean,
    mul,
    neg,
    pow,
    relu,
    reshape,
    rpow,
    sigmoid,
    softplus,
    sqrt,
    stack,
    sub,
    sum,
    sum_to,
    swapaxes,
    tanh,
    transpose,
    var,
    where,
)
from minigen.tensor import Tensor


def _reversed(op):
    return lambda self, other: op(other, self)


def _shape_args(args):
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


def _compare(op):
    def method(self, other):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))

    return method


Tensor.__add__, Tensor.__radd__ = add, _reversed(add)
Tensor.__sub__, Tensor.__rsub__ = sub, _reversed(sub)
Tensor.__mul__, Tensor.__rmul__ = mul, _reversed(mul)
Tensor.__truediv__, Tensor.__rtruediv__ = div, _reversed(div)
Tensor.__matmul__, Tensor.__rmatmul__ = matmul, _reversed(matmul)
Tensor.__pow__, Tensor.__rpow__ = pow, rpow
Tensor.__neg__ = neg
Tensor.__getitem__ = getitem
Tensor.__lt__ = _compare(lambda a, b: a < b)
Tensor.__le__ = _compare(lambda a, b: a <= b)
Tensor.__gt__ = _compare(lambda a, b: a > b)
Tensor.__ge__ = _compare(lambda a, b: a >= b)
Tensor.sum, Tensor.mean, Tensor.max, Tensor.var = sum, mean, max, var
Tensor.exp, Tensor.log, Tensor.sqrt, Tensor.tanh = exp, log, sqrt, tanh
Tensor.sigmoid, Tensor.relu, Tensor.abs, Tensor.clip = sigmoid, relu, abs, clip
Tensor.reshape = lambda self, *shape: reshape(self, _shape_args(shape))
Tensor.transpose = lambda self, *axes: transpose(self, _shape_args(axes) or None)
Tensor.permute = lambda self, *axes: transpose(self, _shape_args(axes))
Tensor.T = property(lambda self: transpose(self))
Tensor.swapaxes = swapaxes

# PyTorch's Tensor protocol: conversions, the number protocol, view/size, in-place fills.
Tensor.to, Tensor.type, Tensor.view, Tensor.size, Tensor.numel = (
    _cast.to, _cast.type_, _cast.view, _cast.size, _cast.numel)
Tensor.astype = _cast.cast
Tensor.float = lambda self: _cast.cast(self, "float32")
Tensor.double = lambda self: _cast.cast(self, "float64")
Tensor.long = lambda self: _cast.cast(self, "int64")
Tensor.int = lambda self: _cast.cast(self, "int32")
Tensor.bool = lambda self: _cast.cast(self, "bool")
Tensor.__bool__, Tensor.__float__ = _cast.to_bool, _cast.to_float
Tensor.__int__, Tensor.__index__ = _cast.to_int, _cast.to_index
Tensor.fill_, Tensor.zero_ = _inplace.fill_, _inplace.zero_
Tensor.normal_, Tensor.uniform_ = _inplace.normal_, _inplace.uniform_
Tensor.cpu = lambda self: _cast.to(self, "cpu")
Tensor.cuda = lambda self: _cast.to(self, "cuda")
