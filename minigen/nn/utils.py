"""``nn.utils`` as in PyTorch: gradient clipping over a model's parameters, and the one way
every optimizer, ``clip_grad_norm_`` and the data-parallel helpers read a parameter list
(``optim.clip_grad_norm_`` is this function too)."""
import math

from minigen import backend
from minigen.nn.module import Module
from minigen.tensor import Tensor

__all__ = ["clip_grad_norm_", "named_parameter_list"]


def named_parameter_list(params, who):
    """``[(name, Parameter)]`` from a Module, (name, Parameter) pairs, or bare Parameters
    (named "0", "1", ...), checked for ``who``: not empty, float Tensors, unique names."""
    items = list(params.named_parameters()) if isinstance(params, Module) else list(params)
    if not items:
        raise ValueError(f"{who}: got an empty parameter list")
    if all(isinstance(it, tuple) and len(it) == 2 and isinstance(it[0], str) for it in items):
        named = items
    else:
        named = [(str(i), p) for i, p in enumerate(items)]
    for name, p in named:
        if not isinstance(p, Tensor):
            raise TypeError(f"{who}: parameter {name!r} is a {type(p).__name__}, not a Parameter")
        if p.dtype.kind != "f":
            raise TypeError(f"{who}: parameter {name!r} has dtype {p.dtype}, expected float")
    names = [name for name, _ in named]
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{who}: duplicate parameter names {duplicates}")
    return named


def clip_grad_norm_(params, max_norm):
    """Scale all gradients by ``max_norm / total_norm`` when their global L2 norm exceeds
    ``max_norm`` (Pascanu et al. 2013, Algorithm 1); returns the norm before clipping.

    ``params``: a Module, (name, Parameter) pairs or Parameters. The scaled gradients are new
    arrays: leaf gradients may share one array (the backward of ``a + b`` hands both the same
    gradient), so scaling in place could scale one twice."""
    if not max_norm > 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be > 0, got {max_norm}")
    named = named_parameter_list(params, "clip_grad_norm_")
    with_grad = [p for _, p in named if p.grad is not None]
    squares = (backend.xp_of(p.grad).vdot(p.grad.ravel(), p.grad.ravel()) for p in with_grad)
    total = math.sqrt(sum(float(s) for s in squares))
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for p in with_grad:
            p.grad = p.grad * p.grad.dtype.type(scale)
    return total
