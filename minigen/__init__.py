"""minigen: a from-scratch generative-modelling library (autograd on NumPy/CuPy, layers up
to a compact UNet, DDPM and GAN trainers, fused kernels, benchmarks).

The engine is imported eagerly; the heavier subpackages (``mg.nn``, ``mg.optim``,
``mg.diffusion``, ``mg.gan``, ``mg.vae``, ``mg.data``, ``mg.metrics``, ``mg.viz``) on first
access.
Importing minigen sets its thread policy (``minigen.backend.limit_threads``): the CPU
kernels get the threads the user asks for through the conventional variables, else the
usable cores, and BLAS one; ``mg.set_num_threads(n)`` changes it. The functions of
``minigen.functional`` are also top-level names (``mg.sqrt``, ``mg.sum``, ``mg.sigmoid``,
...), as PyTorch's are.
"""
import importlib
import types

from numpy import bool_ as bool  # noqa: A004  (dtype names as torch.float32, ...)
from numpy import float16, float32, float64, int8, int16, int32, int64, uint8

from minigen import autograd  # noqa: F401

from kernels import get_conv_algorithm, set_conv_algorithm

from minigen import functional  # noqa: F401  (attaches Tensor's operators and methods)
from minigen import backend
from minigen.backend import cuda_available, device, get_num_threads, manual_seed, set_num_threads
from minigen.creation import (
    arange,
    bernoulli,
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
from minigen.legacy import (
    BoolTensor,
    ByteTensor,
    DoubleTensor,
    FloatTensor,
    HalfTensor,
    IntTensor,
    LongTensor,
)
from minigen.tensor import Function, Size, Tensor, enable_grad, grad, is_grad_enabled, no_grad

float, double, half, long, int = float32, float64, float16, int64, int32  # noqa: A001 (PyTorch's)

__version__ = "0.1.0"

backend.limit_threads(backend.default_threads())  # the thread policy minigen owns from import

_LAZY = {
    "nn", "optim", "diffusion", "gan", "vae", "data", "metrics", "viz", "checkpoint", "trainer",
    "testing", "distributed", "accelerator", "cuda", "backends", "utils",
}


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"minigen.{name}")
    if name in ("save", "load"):
        return getattr(importlib.import_module("minigen.checkpoint"), name)
    op = None if name.startswith("_") else getattr(functional, name, None)
    if callable(op) and not isinstance(op, (type, types.ModuleType)):
        return op  # mg.sqrt is F.sqrt
    raise AttributeError(f"module 'minigen' has no attribute {name!r}")


__all__ = [
    "Function", "Tensor", "tensor", "zeros", "ones", "randn", "rand", "cat", "stack", "where",
    "no_grad", "enable_grad", "is_grad_enabled", "grad", "manual_seed", "cuda_available",
    "save", "load", "to_dot", "plot_graph", "zeros_like", "ones_like", "randn_like", "rand_like",
    "full", "randint", "arange", "linspace", "from_numpy", "float16", "float32", "float64", "int32",
    "int64", "bool", "device", "set_num_threads", "get_num_threads", "bernoulli", "Size",
    "autograd", "float", "double", "half", "long", "int", "int8", "int16", "uint8", "FloatTensor", "DoubleTensor", "HalfTensor", "LongTensor",
    "IntTensor", "ByteTensor", "BoolTensor", "empty", "empty_like", "eye", "full_like",
    "acos", "acosh", "all", "any", "argsort", "asin", "asinh", "atan", "atan2", "atanh", "ceil",
    "chunk", "cosh", "cumprod", "diag", "einsum", "exp2", "floor", "floor_divide", "isfinite",
    "isinf", "isnan", "lerp", "log2", "logaddexp", "masked_fill", "meshgrid", "remainder",
    "repeat_interleave", "roll", "round", "rsqrt", "scatter", "scatter_add", "sign", "sinh",
    "sort", "split", "tan", "topk", "tril", "triu", "trunc", "unflatten",
    "set_conv_algorithm", "get_conv_algorithm",
]
