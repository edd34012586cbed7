"""Which method the CPU path (:mod:`kernels.conv_cpu`) uses for stride-1 3x3 convolutions.

- ``"auto"`` (the default): Winograd F(2x2, 3x3), whose float32 error is that of im2col's
  direct sums (both about 1e-7 to 3e-7 relative L2 against float64 on image data, forward
  pass and both gradients);
- ``"winograd"``: Winograd F(4x4, 3x3), faster, but its transforms multiply by up to 8
  and divide by 6, 12 and 24, so its float32 error is larger: up to 1.4e-6 relative L2 on
  the input gradient of the MNIST CNN (10 times im2col's), 4e-7 on the forward pass and
  5e-7 on the weight gradient (measurements in docs/performance.md, "Accurate
  convolutions by default");
- ``"im2col"``: im2col + BLAS for every convolution.

Under "auto" and "winograd", stride-1 2x2 convolutions run as Winograd F(2x2, 2x2) and
strided ones whose kernel sides are multiples of the stride through the polyphase
decomposition (:mod:`kernels.polyphase`); "im2col" runs them as im2col too. 1x1 stride-1
convolutions are one GEMM under every choice, other geometries im2col. The setting is per
process and read at each call; the GPU path (cuBLAS) ignores it.
"""

CHOICES = ("auto", "winograd", "im2col")

_chosen = ["auto"]


def set_conv_algorithm(name):
    """Choose the CPU method for stride-1 3x3 convolutions: one of :data:`CHOICES`."""
    if name not in CHOICES:
        raise ValueError(f"set_conv_algorithm: name must be one of {CHOICES}, got {name!r}")
    _chosen[0] = name


def get_conv_algorithm():
    """The current choice of :func:`set_conv_algorithm` ("auto" unless changed)."""
    return _chosen[0]
