"""minigen: a from-scratch generative-modelling library (autograd on NumPy/CuPy, layers up
to a compact UNet, DDPM and GAN trainers, fused kernels, benchmarks)."""
from minigen import functional  # noqa: F401  (attaches Tensor's operators and methods)
from minigen.backend import cuda_available, manual_seed
from minigen.creation import rand, randn, tensor, zeros, ones
from minigen.functional import cat, stack, where
from minigen.tensor import Function, Tensor, enable_grad, grad, is_grad_enabled, no_grad

__version__ = "0.1.0"

__all__ = [
    "Function", "Tensor", "tensor", "zeros", "ones", "randn", "rand", "cat", "stack", "where",
    "no_grad", "enable_grad", "is_grad_enabled", "grad", "manual_seed", "cuda_available",
]
