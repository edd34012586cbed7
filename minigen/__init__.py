"""minigen: a from-scratch generative-modelling library (autograd on NumPy/CuPy, layers up
to a compact UNet, DDPM and GAN trainers, fused kernels, benchmarks).

The engine is imported eagerly; the heavier subpackages (``mg.nn``, ``mg.optim``,
``mg.diffusion``, ``mg.gan``, ``mg.vae``, ``mg.data``, ``mg.metrics``, ``mg.viz``) on first
access.
"""
import importlib

from numpy import bool_ as bool  # noqa: A004  (dtype names as torch.float32, ...)
from numpy import float16, float32, float64, int32, int64

from minigen import functional  # noqa: F401  (attaches Tensor's operators and methods)
from minigen.backend import cuda_available, device, manual_seed
from minigen.creation import (
    arange,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from minigen.functional import cat, stack, where
from minigen.functional import (  # PyTorch's top-level names of the ops beyond the core set
    acos,
    acosh,
    all,
    any,
    argsort,
    asin,
    asinh,
    atan,
    atan2,
    atanh,
    ceil,
    chunk,
    cosh,
    cumprod,
    diag,
    einsum,
    exp2,
    floor,
    floor_divide,
    isfinite,
    isinf,
    isnan,
    lerp,
    log2,
    logaddexp,
    masked_fill,
    meshgrid,
    remainder,
    repeat_interleave,
    roll,
    round,
    rsqrt,
    scatter,
    scatter_add,
    sign,
    sinh,
    sort,
    split,
    tan,
    topk,
    tril,
    triu,
    trunc,
    unflatten,
)
from minigen.graph import plot_graph, to_dot
from minigen.tensor import Function, Tensor, enable_grad, grad, is_grad_enabled, no_grad

__version__ = "0.1.0"

_LAZY = {
    "nn", "optim", "diffusion", "gan", "vae", "data", "metrics", "viz", "checkpoint", "trainer",
    "testing", "distributed",
}


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"minigen.{name}")
    if name in ("save", "load"):
        return getattr(importlib.import_module("minigen.checkpoint"), name)
    raise AttributeError(f"module 'minigen' has no attribute {name!r}")


__all__ = [
    "Function", "Tensor", "tensor", "zeros", "ones", "randn", "rand", "cat", "stack", "where",
    "no_grad", "enable_grad", "is_grad_enabled", "grad", "manual_seed", "cuda_available",
    "save", "load", "to_dot", "plot_graph", "zeros_like", "ones_like", "randn_like", "rand_like",
    "full", "randint", "arange", "linspace", "from_numpy", "float16", "float32", "float64", "int32",
    "int64", "bool", "device", "empty", "empty_like", "eye", "full_like",
    "acos", "acosh", "all", "any", "argsort", "asin", "asinh", "atan", "atan2", "atanh", "ceil",
    "chunk", "cosh", "cumprod", "diag", "einsum", "exp2", "floor", "floor_divide", "isfinite",
    "isinf", "isnan", "lerp", "log2", "logaddexp", "masked_fill", "meshgrid", "remainder",
    "repeat_interleave", "roll", "round", "rsqrt", "scatter", "scatter_add", "sign", "sinh",
    "sort", "split", "tan", "topk", "tril", "triu", "trunc", "unflatten",
]
