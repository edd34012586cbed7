"""The CPU convolution path of the "auto" kernels: each case to its fastest accurate method.

- 3x3, stride 1, padding <= 2, when the operand that im2col would copy (x for the forward
  pass and the weight gradient, gy for the input gradient) has at least 16 channels:
  Winograd (:mod:`kernels.winograd`), F(2x2, 3x3) by default (as accurate as im2col in
  float32) and F(4x4, 3x3) after ``set_conv_algorithm("winograd")``
  (:mod:`kernels.conv_algorithm`); with fewer channels im2col is small and
  wins (docs/history.md#what-was-tried);
- 2x2, stride 1, with at least 16 such channels: Winograd F(2x2, 2x2);
- stride s > 1 with kernel sides that are multiples of s (the 4x4 stride-2 convolutions
  and transposed convolutions of DCGAN-style networks): the polyphase decomposition
  (:mod:`kernels.polyphase`) into one stride-1 convolution of the input's s^2 phases, run
  by this module's stride-1 cases (for 4x4 stride 2: F(2x2, 2x2)), without col2im's
  scatter-adds; the input gradient only where gy's sides are at least
  ``POLYPHASE_GRAD_MIN_SIDE`` (its stride-1 pass has Ho + 1 rows and columns, so on small
  images the 2x2 tiles overhang by up to a half and col2im wins);
- 1x1, stride 1, no padding: one GEMM per pass, without im2col (the input already is the
  column matrix);
- everything else (other kernel sizes and strides): the im2col + BLAS reference, on each
  thread's share of the images (``threads.map_batch``).

Under ``set_conv_algorithm("im2col")`` every convolution but 1x1 runs the im2col reference.

Same names and signatures as :mod:`kernels.reference`; inputs validated and C-contiguous.
Why these choices (measured against the reference and PyTorch's oneDNN):
docs/history.md#cpu-convolutions-where-the-time-goes-what-was-tried-what-it-gave.
"""
import numpy

from . import conv_algorithm, polyphase, reference, threads, winograd

TILES = {"auto": 2, "winograd": 4}
"""The Winograd tile size m of F(m x m, 3x3) for each choice of conv_algorithm (2x2
kernels: F(2x2, 2x2) under both)."""

WINOGRAD_MIN_CHANNELS = 16

POLYPHASE_GRAD_MIN_SIDE = 16


def _winograd(w_shape, stride, padding, channels):
    """The tile size for this convolution, or None where im2col (or a GEMM) runs it."""
    r = w_shape[2]
    if (r in winograd.KERNEL_SIZES and w_shape[3] == r and stride == 1 and padding <= r - 1
            and channels >= WINOGRAD_MIN_CHANNELS):
        m = TILES.get(conv_algorithm.get_conv_algorithm())
        return m and (m if r == 3 else 2)
    return None


def _polyphase(w_shape, stride):
    return conv_algorithm.get_conv_algorithm() != "im2col" and polyphase.applies(w_shape, stride)


def _pointwise(w_shape, stride, padding):
    return w_shape[2:] == (1, 1) and stride == 1 and padding == 0


def _joined(shares):
    return shares[0] if len(shares) == 1 else numpy.concatenate(shares)


def conv2d(x, w, stride=1, padding=0):
    """NCHW cross-correlation without bias (see the module docstring for the method)."""
    m = _winograd(w.shape, stride, padding, x.shape[1])
    if m:
        return winograd.conv2d(x, w, padding, m)
    if _polyphase(w.shape, stride):
        return polyphase.conv2d(x, w, stride, padding, conv2d)
    if _pointwise(w.shape, stride, padding):
        n, c, h, w_in = x.shape
        w_stack = numpy.broadcast_to(w.reshape(w.shape[0], c), (n, w.shape[0], c))
        return threads.matmul(w_stack, x.reshape(n, c, h * w_in)).reshape(n, w.shape[0], h, w_in)
    return _joined(threads.map_batch(
        lambda share: reference.conv2d(share, w, stride, padding), x))


def conv2d_grad_input(gy, w, x_shape, stride=1, padding=0):
    """dL/dx of :func:`conv2d` given gy = dL/dy."""
    m = _winograd(w.shape, stride, padding, gy.shape[1])
    if m:
        return winograd.conv2d_grad_input(gy, w, padding, m)
    if _polyphase(w.shape, stride) and min(gy.shape[2:]) >= POLYPHASE_GRAD_MIN_SIDE:
        return polyphase.conv2d_grad_input(gy, w, x_shape, stride, padding, conv2d_grad_input)
    if _pointwise(w.shape, stride, padding):
        n, cout, h, w_in = gy.shape
        w_stack = numpy.broadcast_to(w.reshape(cout, -1).T, (n, w.shape[1], cout))
        return threads.matmul(w_stack, gy.reshape(n, cout, h * w_in)).reshape(x_shape)
    return _joined(threads.map_batch(
        lambda share: reference.conv2d_grad_input(share, w, (len(share),) + tuple(x_shape[1:]),
                                                  stride, padding), gy))


def conv2d_grad_weight(x, gy, w_shape, stride=1, padding=0):
    """dL/dw of :func:`conv2d` given gy = dL/dy."""
    m = _winograd(w_shape, stride, padding, x.shape[1])
    if m:
        return winograd.conv2d_grad_weight(x, gy, padding, m, w_shape[2])
    if _polyphase(w_shape, stride):
        return polyphase.conv2d_grad_weight(x, gy, w_shape, stride, padding, conv2d_grad_weight)
    if _pointwise(w_shape, stride, padding):
        n, c = x.shape[:2]
        gy_rows = gy.reshape(n, gy.shape[1], -1)
        return threads.matmul(gy_rows, x.reshape(n, c, -1).transpose(0, 2, 1)).sum(axis=0).reshape(w_shape)
    parts = threads.map_batch(
        lambda x_share, gy_share: reference.conv2d_grad_weight(x_share, gy_share, w_shape,
                                                               stride, padding), x, gy)
    return parts[0] if len(parts) == 1 else numpy.sum(parts, axis=0)
