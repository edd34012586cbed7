"""Strided convolutions as stride-1 convolutions of the input's phases (polyphase, or
sub-pixel, decomposition; Vaidyanathan 1993, ch. 4; the space-to-depth view of Shi et al.
2016).

With stride s, kernel taps i = s a + r and j = s b + t (0 <= r, t < s) read the padded
input xp only at rows s (u + a) + r and columns s (v + b) + t, so

    y[n, o, u, v] = sum_{c, r, t, a, b} w[o, c, s a + r, s b + t] X[n, (c, r, t), u + a, v + b]

with the phases X[n, (c, r, t), U, V] = xp[n, c, s U + r, s V + t] (space-to-depth) and the
filters W[o, (c, r, t), a, b] = w[o, c, s a + r, s b + t]: one stride-1 convolution with
s^2 C channels and a (kh / s) x (kw / s) kernel. Its input gradient is the stride-1 input
gradient of that convolution put back in place (depth-to-space), which replaces col2im's
kh kw strided scatter-adds into the input by one contiguous GEMM per image and one copy;
its weight gradient is the stride-1 weight gradient, its taps put back in place. A
transposed convolution (this input gradient) thus writes each output phase once.

The same sums in another order, so as accurate as im2col. For kernels whose sides are
multiples of the stride; the stride-1 passes are the caller's (``inner``), so they take
the caller's fastest method for their shape.
"""
import numpy


def applies(w_shape, stride):
    """Whether the decomposition runs this convolution: stride > 1 and both kernel sides
    multiples of the stride."""
    return stride > 1 and w_shape[2] % stride == 0 and w_shape[3] % stride == 0


def _phase_size(x_shape, w_shape, stride, padding):
    """(Hs, Ws): the phases' sides, Ho + kh / s - 1 (the rows of xp the taps read, over s)."""
    return tuple((n + 2 * padding - k) // stride + k // stride
                 for n, k in zip(x_shape[2:], w_shape[2:]))


def _phase_span(n, stride, padding, offset, size):
    """For phase ``offset`` of one axis (input length n, padding, phase length size): the
    phase positions U0:U1 that hold input entries, and the input index of U0 (s U + offset
    - padding)."""
    first = max(0, -((offset - padding) // stride))  # the least U with s U + offset >= padding
    last = min(size, (n - 1 + padding - offset) // stride + 1)
    return first, max(first, last), stride * first + offset - padding


def _phase_views(stride, padding, x_shape, size):
    """(phase slice, input slice) pairs, one per phase (r, t): X[:, :, r, t][phase slice]
    holds x[input slice]."""
    pairs = []
    for r in range(stride):
        u0, u1, i0 = _phase_span(x_shape[2], stride, padding, r, size[0])
        for t in range(stride):
            v0, v1, j0 = _phase_span(x_shape[3], stride, padding, t, size[1])
            pairs.append(((slice(None), slice(None), r, t, slice(u0, u1), slice(v0, v1)),
                          (Ellipsis, slice(i0, i0 + stride * (u1 - u0), stride),
                           slice(j0, j0 + stride * (v1 - v0), stride))))
    return pairs


def phases(x, stride, padding, size):
    """X (N, C s^2, Hs, Ws) of the module docstring: the phases of the zero-padded x (rows
    and columns past the last tap dropped), stacked channel-major (c, r, t)."""
    n, c = x.shape[:2]
    X = numpy.zeros((n, c, stride, stride) + tuple(size), dtype=x.dtype)
    for phase, source in _phase_views(stride, padding, x.shape, size):
        X[phase] = x[source]
    return X.reshape(n, c * stride * stride, *size)


def unphase(gx_phases, x_shape, stride, padding):
    """The adjoint of :func:`phases`: (N, C s^2, Hs, Ws) back to x's positions (x_shape),
    the padding dropped and the rows no tap read set to zero."""
    n, c = x_shape[:2]
    G = gx_phases.reshape((n, c, stride, stride) + gx_phases.shape[2:])
    gx = numpy.zeros(x_shape, dtype=gx_phases.dtype)
    for phase, target in _phase_views(stride, padding, x_shape, gx_phases.shape[2:]):
        gx[target] = G[phase]
    return gx


def phase_filters(w, stride):
    """W (Cout, C s^2, kh / s, kw / s) of the module docstring."""
    cout, c, kh, kw = w.shape
    split = w.reshape(cout, c, kh // stride, stride, kw // stride, stride).transpose(0, 1, 3, 5, 2, 4)
    return numpy.ascontiguousarray(split).reshape(cout, c * stride * stride, kh // stride, kw // stride)


def unphase_filters(gw_phases, w_shape, stride):
    """The inverse of :func:`phase_filters`: (Cout, C s^2, kh / s, kw / s) -> w_shape."""
    cout, c, kh, kw = w_shape
    split = gw_phases.reshape(cout, c, stride, stride, kh // stride, kw // stride)
    return numpy.ascontiguousarray(split.transpose(0, 1, 4, 2, 5, 3)).reshape(w_shape)


def conv2d(x, w, stride, padding, inner):
    """conv2d(x, w, stride, padding) as ``inner(X, W)``, the stride-1 unpadded convolution."""
    size = _phase_size(x.shape, w.shape, stride, padding)
    return inner(phases(x, stride, padding, size), phase_filters(w, stride))


def conv2d_grad_input(gy, w, x_shape, stride, padding, inner):
    """dL/dx of :func:`conv2d` from ``inner(gy, W, X_shape)``, the stride-1 input gradient."""
    size = _phase_size(x_shape, w.shape, stride, padding)
    x_phases = (x_shape[0], x_shape[1] * stride * stride) + size
    return unphase(inner(gy, phase_filters(w, stride), x_phases), x_shape, stride, padding)


def conv2d_grad_weight(x, gy, w_shape, stride, padding, inner):
    """dL/dw of :func:`conv2d` from ``inner(X, gy, W_shape)``, the stride-1 weight gradient."""
    size = _phase_size(x.shape, w_shape, stride, padding)
    cout, c, kh, kw = w_shape
    phase_shape = (cout, c * stride * stride, kh // stride, kw // stride)
    gw = inner(phases(x, stride, padding, size), gy, phase_shape)
    return unphase_filters(gw, w_shape, stride)
