"""Normalisation, composed of the core ops (their gradients come for free)."""
from minigen import backend
from minigen.functional import fused, ops
from minigen.tensor import Tensor


def _affine(y, weight, bias, shape):
    if weight is not None:
        y = y * ops.reshape(weight, shape)
    if bias is not None:
        y = y + ops.reshape(bias, shape)
    return y


def _normalize(x, axes, eps):
    mu = ops.mean(x, axis=axes, keepdims=True)
    d = x - mu
    return d / ops.sqrt(ops.mean(d * d, axis=axes, keepdims=True) + eps)


def group_norm(x, groups, weight=None, bias=None, eps=1e-5):
    """Group normalisation (Wu & He 2018): statistics per sample over each group of C/groups
    channels and all positions; then a per-channel affine map. One fused node."""
    c = x.shape[1]
    if c % groups:
        raise ValueError(f"group_norm: {c} channels are not divisible into {groups} groups")
    xp = backend.xp_of(x.data)
    weight = Tensor(xp.ones(c, dtype=x.dtype)) if weight is None else weight
    bias = Tensor(xp.zeros(c, dtype=x.dtype)) if bias is None else bias
    if weight.shape != (c,) or bias.shape != (c,):
        raise ValueError(f"group_norm: weight {weight.shape} and bias {bias.shape} must be ({c},)")
    return fused.GroupNorm(groups, eps)(x, weight, bias)


def layer_norm(x, shape, weight=None, bias=None, eps=1e-5):
    """Layer normalisation (Ba et al. 2016) over the trailing dims ``shape``."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if tuple(x.shape[-len(shape):]) != shape:
        raise ValueError(f"layer_norm: trailing dims of {x.shape} != normalized shape {shape}")
    y = _normalize(x, tuple(range(x.ndim - len(shape), x.ndim)), eps)
    return _affine(y, weight, bias, shape)
