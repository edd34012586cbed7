"""Differentiable functions (``import minigen.functional as F``).

``ops`` holds the core ops (arithmetic, maths, comparisons, reductions, shapes, indexing),
``promotion`` the one dtype rule they share, ``conv`` the convolutions and spatial ops,
``activation``, ``loss``, ``normalization`` and ``attention`` the layers' maths composed
from them. The ops of PyTorch's wider surface live in modules named after their concept
(docs/ops.md): ``rounding``, ``trig``, ``exponential``, ``logic``, ``cumulative``, ``sorting``,
``shaping``, ``indexing``, ``einsum``, ``padding``, ``interpolation``; ``keywords`` adds
PyTorch's ``dim``/``keepdim`` to the core reductions. This module also gives Tensor its
operators and methods. Whose meaning each name carries (NumPy's
or PyTorch's) is written in docs/semantics.md.
"""
from minigen.functional import cast as _cast
from minigen.functional import inplace as _inplace
from minigen.functional import keywords as _keywords
from minigen.functional.activation import (
    celu,
    dropout,
    elu,
    gelu,
    hardsigmoid,
    hardswish,
    hardtanh,
    log_softmax,
    logsigmoid,
    logsumexp,
    mish,
    relu6,
    selu,
    silu,
    softmax,
    softsign,
)
from minigen.functional.conv import (
    avg_pool2d,
    conv1d,
    conv2d,
    conv_transpose2d,
    max_pool2d,
    upsample_nearest2d,
)
from minigen.functional.cumulative import cumprod
from minigen.functional.einsum import einsum
from minigen.functional.exponential import exp2, log2, logaddexp, rsqrt
from minigen.functional.fused import linear
from minigen.functional.indexing import diag, masked_fill, scatter, scatter_add, tril, triu
from minigen.functional.interpolation import interpolate, lerp
from minigen.functional.logic import all, any, isfinite, isinf, isnan
from minigen.functional.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    mse_loss,
    nll_loss,
)
from minigen.functional.attention import scaled_dot_product_attention
from minigen.functional.normalization import group_norm, layer_norm
from minigen.functional.ops import (
    abs,
    add,
    argmax,
    argmin,
    broadcast_to,
    cast,
    cat,
    clip,
    cos,
    cumsum,
    div,
    eq,
    erf,
    exp,
    flatten,
    flip,
    gather,
    ge,
    getitem,
    gt,
    le,
    leaky_relu,
    log,
    lt,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mul,
    ne,
    neg,
    one_hot,
    pow,
    prod,
    relu,
    reshape,
    rpow,
    sigmoid,
    sin,
    softplus,
    sqrt,
    squeeze,
    stack,
    std,
    sub,
    sum,
    sum_to,
    swapaxes,
    tanh,
    transpose,
    unsqueeze,
    var,
    where,
)
from minigen.functional.padding import pad
from minigen.functional.rounding import ceil, floor, floor_divide, remainder, round, sign, trunc
from minigen.functional.shaping import (
    chunk,
    meshgrid,
    repeat,
    repeat_interleave,
    roll,
    split,
    unflatten,
)
from minigen.functional.sorting import argsort, sort, topk
from minigen.functional.trig import acos, acosh, asin, asinh, atan, atan2, atanh, cosh, sinh, tan
from minigen.tensor import Tensor

# PyTorch's dim/keepdim keywords beside axis/keepdims (functional/keywords.py).
sum, mean, prod, cumsum, argmax, argmin, unsqueeze, flip, cat, stack, gather = map(
    _keywords.accept_dim,
    (sum, mean, prod, cumsum, argmax, argmin, unsqueeze, flip, cat, stack, gather))
softmax, log_softmax, logsumexp = map(_keywords.accept_dim, (softmax, log_softmax, logsumexp))
max, min = (_keywords.accept_dim(f, _keywords.with_indices(f, i))
            for f, i in ((max, argmax), (min, argmin)))
var, std = (_keywords.accept_dim(f, _keywords.unbiased(f)) for f in (var, std))
squeeze = _keywords.accept_dim(squeeze, _keywords.squeeze_if_one(squeeze))


def _reversed(op):
    return lambda self, other: op(other, self)


def _shape_args(args):
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


Tensor.__add__, Tensor.__radd__ = add, _reversed(add)
Tensor.__sub__, Tensor.__rsub__ = sub, _reversed(sub)
Tensor.__mul__, Tensor.__rmul__ = mul, _reversed(mul)
Tensor.__truediv__, Tensor.__rtruediv__ = div, _reversed(div)
Tensor.__matmul__, Tensor.__rmatmul__ = matmul, _reversed(matmul)
Tensor.__pow__, Tensor.__rpow__ = pow, rpow
Tensor.__neg__ = neg
Tensor.__getitem__ = getitem
Tensor.__eq__, Tensor.__ne__ = eq, ne
Tensor.__lt__, Tensor.__le__, Tensor.__gt__, Tensor.__ge__ = lt, le, gt, ge
Tensor.sum, Tensor.mean, Tensor.max, Tensor.min, Tensor.prod = sum, mean, max, min, prod
Tensor.var, Tensor.std, Tensor.cumsum = var, std, cumsum
Tensor.argmax, Tensor.argmin = argmax, argmin
Tensor.exp, Tensor.log, Tensor.sqrt, Tensor.tanh = exp, log, sqrt, tanh
Tensor.sin, Tensor.cos = sin, cos
Tensor.sigmoid, Tensor.relu, Tensor.abs, Tensor.clip = sigmoid, relu, abs, clip
Tensor.squeeze, Tensor.unsqueeze, Tensor.flatten, Tensor.flip = squeeze, unsqueeze, flatten, flip
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
Tensor.__setitem__ = _inplace.setitem
Tensor.normal_, Tensor.uniform_ = _inplace.normal_, _inplace.uniform_
Tensor.view_as, Tensor.clone, Tensor.nonzero = _cast.view_as, _cast.clone, _cast.nonzero
Tensor.eq, Tensor.ne, Tensor.lt, Tensor.le, Tensor.gt, Tensor.ge = eq, ne, lt, le, gt, ge
Tensor.pow = pow
Tensor.is_cuda = property(lambda self: self.device != "cpu")
Tensor.cpu = lambda self: _cast.to(self, "cpu")
Tensor.cuda = lambda self: _cast.to(self, "cuda")

# PyTorch's methods for the ops of the rounding, trig, exponential, logic, cumulative,
# sorting, shaping and indexing modules (dim/keepdim as PyTorch's, axis/keepdims accepted).
Tensor.__floordiv__, Tensor.__rfloordiv__ = floor_divide, _reversed(floor_divide)
Tensor.__mod__, Tensor.__rmod__ = remainder, _reversed(remainder)
Tensor.floor_divide, Tensor.remainder = floor_divide, remainder
Tensor.floor, Tensor.ceil, Tensor.round, Tensor.trunc, Tensor.sign = floor, ceil, round, trunc, sign
Tensor.isnan, Tensor.isinf, Tensor.isfinite, Tensor.any, Tensor.all = isnan, isinf, isfinite, any, all
Tensor.tan, Tensor.asin, Tensor.acos, Tensor.atan, Tensor.atan2 = tan, asin, acos, atan, atan2
Tensor.sinh, Tensor.cosh, Tensor.asinh, Tensor.acosh, Tensor.atanh = sinh, cosh, asinh, acosh, atanh
Tensor.exp2, Tensor.log2, Tensor.rsqrt, Tensor.logaddexp, Tensor.lerp = exp2, log2, rsqrt, logaddexp, lerp
Tensor.cumprod, Tensor.sort, Tensor.argsort, Tensor.topk = cumprod, sort, argsort, topk
Tensor.repeat, Tensor.repeat_interleave, Tensor.roll = repeat, repeat_interleave, roll
Tensor.split, Tensor.chunk, Tensor.unflatten = split, chunk, unflatten
Tensor.tril, Tensor.triu, Tensor.diag = tril, triu, diag
Tensor.masked_fill, Tensor.scatter, Tensor.scatter_add = masked_fill, scatter, scatter_add
