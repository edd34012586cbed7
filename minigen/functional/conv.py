"""Convolutions (NCHW) and the spatial ops built on them: pooling, nearest upsampling.

Three Functions close under differentiation (as in Chainer): ``Conv2d``, ``ConvTranspose2d``
and ``Conv2dGradW``; the backward of each is written with the other two, so gradients of any
order exist. Forward passes are im2col on a strided view plus one GEMM (``tensordot``);
col2im loops over the kh*kw kernel offsets only, never over pixels.
"""
from minigen import backend
from minigen.functional import ops
from minigen.tensor import Function, as_tensor, is_grad_enabled


def _pair(v, name):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def conv_output_size(size, k, stride, padding):
    return (size + 2 * padding - k) // stride + 1


def im2col(x, kh, kw, stride, padding):
    """Patches of ``x`` as a strided view of shape (N, C, Ho, Wo, kh, kw) (no copy except the
    zero padding)."""
    xp = backend.xp_of(x)
    sh, sw = stride
    ph, pw = padding
    if ph or pw:
        x = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, c, h, w = x.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    s = x.strides
    return xp.lib.stride_tricks.as_strided(
        x, (n, c, ho, wo, kh, kw), (s[0], s[1], s[2] * sh, s[3] * sw, s[2], s[3])
    )


def col2im(col, out_hw, stride, padding):
    """Adjoint of ``im2col``: scatter-add patches (Cout, kh, kw, N, H, W) into an image
    (N, Cout, Ho, Wo) of size ``out_hw`` (the crop of the padded canvas)."""
    xp = backend.xp_of(col)
    c, kh, kw, n, h, w = col.shape
    sh, sw = stride
    ph, pw = padding
    hc = max((h - 1) * sh + kh, ph + out_hw[0])
    wc = max((w - 1) * sw + kw, pw + out_hw[1])
    canvas = xp.zeros((c, n, hc, wc), dtype=col.dtype)
    for i in range(kh):
        for j in range(kw):
            canvas[:, :, i : i + sh * h : sh, j : j + sw * w : sw] += col[:, i, j]
    out = canvas[:, :, ph : ph + out_hw[0], pw : pw + out_hw[1]]
    return xp.ascontiguousarray(out.transpose(1, 0, 2, 3))


def im2col_matrix(x, kh, kw, stride, padding):
    """The patches as one contiguous GEMM operand of shape (C*kh*kw, N*Ho*Wo) (the copy
    runs along image rows, the cache-friendly order)."""
    col = im2col(x, kh, kw, stride, padding)
    c, (n, ho, wo) = x.shape[1], col.shape[0:1] + col.shape[2:4]
    cols = backend.xp_of(x).ascontiguousarray(col.transpose(1, 4, 5, 0, 2, 3))
    return cols.reshape(c * kh * kw, n * ho * wo), (n, ho, wo)


def _channels_first(a):
    """(N, C, H, W) -> contiguous (C, N*H*W)."""
    return backend.xp_of(a).ascontiguousarray(a.transpose(1, 0, 2, 3)).reshape(a.shape[1], -1)


def _conv2d_raw(x, w, stride, padding):
    """The output and the im2col matrix (which the weight gradient can reuse)."""
    cols, (n, ho, wo) = im2col_matrix(x, w.shape[2], w.shape[3], stride, padding)
    y = (w.reshape(w.shape[0], -1) @ cols).reshape(w.shape[0], n, ho, wo)
    return backend.xp_of(x).ascontiguousarray(y.transpose(1, 0, 2, 3)), cols


def _conv_transpose2d_raw(x, w, stride, padding, out_hw):
    cin, cout, kh, kw = w.shape
    n, _, h, wd = x.shape
    col = (w.reshape(cin, -1).T @ _channels_first(x)).reshape(cout, kh, kw, n, h, wd)
    return col2im(col, out_hw, stride, padding)


def _conv2d_grad_w_raw(x, gy, kh, kw, stride, padding, cols=None):
    if cols is None:
        cols, _ = im2col_matrix(x, kh, kw, stride, padding)
    return (_channels_first(gy) @ cols.T).reshape(gy.shape[1], x.shape[1], kh, kw)


class Conv2d(Function):
    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding

    def forward(self, x, w, b=None):
        y, cols = _conv2d_raw(x, w, self.stride, self.padding)
        self.cols = cols if is_grad_enabled() else None  # reused by the weight gradient
        return y if b is None else y + b.reshape(1, -1, 1, 1)

    def backward(self, gy):
        x, w = self.inputs[:2]
        gx = ConvTranspose2d(self.stride, self.padding, x.shape[2:])(gy, w)
        gw = Conv2dGradW(w.shape[2:], self.stride, self.padding, self.cols)(x, gy)
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, ops.sum(gy, axis=(0, 2, 3))


class ConvTranspose2d(Function):
    def __init__(self, stride, padding, out_hw):
        self.stride, self.padding, self.out_hw = stride, padding, tuple(out_hw)

    def forward(self, x, w, b=None):
        y = _conv_transpose2d_raw(x, w, self.stride, self.padding, self.out_hw)
        return y if b is None else y + b.reshape(1, -1, 1, 1)

    def backward(self, gy):
        x, w = self.inputs[:2]
        gx = Conv2d(self.stride, self.padding)(gy, w)
        gw = Conv2dGradW(w.shape[2:], self.stride, self.padding)(gy, x)
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, ops.sum(gy, axis=(0, 2, 3))


class Conv2dGradW(Function):
    """The weight gradient of conv2d(x, W) for output gradient gy, as a function of (x, gy);
    ``cols`` is x's im2col matrix when the forward pass already built it."""

    def __init__(self, khw, stride, padding, cols=None):
        self.khw, self.stride, self.padding, self.cols = tuple(khw), stride, padding, cols

    def forward(self, x, gy):
        return _conv2d_grad_w_raw(x, gy, *self.khw, self.stride, self.padding, self.cols)

    def backward(self, ggw):
        x, gy = self.inputs
        gx = ConvTranspose2d(self.stride, self.padding, x.shape[2:])(gy, ggw)
        ggy = Conv2d(self.stride, self.padding)(x, ggw)
        return gx, ggy


def _check_conv(op, x, w, b, in_axis, stride, padding):
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"{op}: expected 4-D input (N, C, H, W) and 4-D weight, got x {x.shape}, w {w.shape}")
    if x.shape[1] != w.shape[in_axis]:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels but weight {w.shape} expects "
            f"{w.shape[in_axis]} (dim {in_axis} of the weight)"
        )
    out_channels = w.shape[1 - in_axis]
    if b is not None and b.shape != (out_channels,):
        raise ValueError(f"{op}: bias shape {b.shape} != ({out_channels},)")
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"{op}: stride must be >= 1 and padding >= 0, got {stride}, {padding}")
    if x.dtype != w.dtype:
        raise TypeError(f"{op}: input dtype {x.dtype} != weight dtype {w.dtype}")


def conv2d(x, w, b=None, stride=1, padding=0):
    """2-D cross-correlation, NCHW; weight (Cout, Cin, kh, kw)."""
    x, w = as_tensor(x), as_tensor(w)
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    _check_conv("conv2d", x, w, b, 1, stride, padding)
    kh, kw = w.shape[2:]
    if x.shape[2] + 2 * padding[0] < kh or x.shape[3] + 2 * padding[1] < kw:
        raise ValueError(f"conv2d: kernel {(kh, kw)} is larger than the padded input {x.shape[2:]} + {padding}")
    inputs = (x, w) if b is None else (x, w, as_tensor(b))
    return Conv2d(stride, padding)(*inputs)


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0):
    """Transposed convolution (the adjoint of conv2d), NCHW; weight (Cin, Cout, kh, kw)."""
    x, w = as_tensor(x), as_tensor(w)
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    output_padding = _pair(output_padding, "output_padding")
    _check_conv("conv_transpose2d", x, w, b, 0, stride, padding)
    if not all(0 <= o < s for o, s in zip(output_padding, stride)):
        raise ValueError(f"conv_transpose2d: output_padding {output_padding} must be in [0, stride {stride})")
    out_hw = tuple(
        (n - 1) * s - 2 * p + k + o
        for n, s, p, k, o in zip(x.shape[2:], stride, padding, w.shape[2:], output_padding)
    )
    if min(out_hw) < 1:
        raise ValueError(f"conv_transpose2d: output size {out_hw} is empty for input {x.shape}")
    inputs = (x, w) if b is None else (x, w, as_tensor(b))
    return ConvTranspose2d(stride, padding, out_hw)(*inputs)


def _check_pool(op, x, k):
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got {x.shape}")
    if x.shape[2] % k or x.shape[3] % k:
        raise ValueError(f"{op}: spatial size {x.shape[2:]} is not divisible by kernel {k}")


def avg_pool2d(x, k):
    """Mean over non-overlapping k x k windows (stride k)."""
    _check_pool("avg_pool2d", x, k)
    n, c, h, w = x.shape
    return ops.mean(ops.reshape(x, (n, c, h // k, k, w // k, k)), axis=(3, 5))


def max_pool2d(x, k):
    """Maximum over non-overlapping k x k windows (stride k)."""
    _check_pool("max_pool2d", x, k)
    n, c, h, w = x.shape
    return ops.max(ops.reshape(x, (n, c, h // k, k, w // k, k)), axis=(3, 5))


def upsample_nearest2d(x, scale):
    """Repeat each pixel ``scale`` times along H and W."""
    if x.ndim != 4:
        raise ValueError(f"upsample_nearest2d: expected a 4-D input, got {x.shape}")
    n, c, h, w = x.shape
    y = ops.broadcast_to(ops.reshape(x, (n, c, h, 1, w, 1)), (n, c, h, scale, w, scale))
    return ops.reshape(y, (n, c, h * scale, w * scale))
