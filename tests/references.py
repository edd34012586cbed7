"""Direct-loop definitions that tests compare the fast paths against (slow, tiny inputs)."""
import numpy as np


def conv2d_loop(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Direct definition: y[n,o,i,j] = b[o] + sum_{c,p,q} xpad[n,g(o)+c,i*s+p*d,j*s+q*d] w[o,c,p,q],
    with g(o) the first input channel of output channel o's group."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, _, h, wd = xp.shape
    cout, cin, kh, kw = w.shape
    span_h, span_w = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
    ho, wo = (h - span_h) // stride + 1, (wd - span_w) // stride + 1
    y = np.zeros((n, cout, ho, wo))
    for a in range(n):
        for o in range(cout):
            first = (o // (cout // groups)) * cin
            for i in range(ho):
                for j in range(wo):
                    patch = xp[a, first:first + cin, i * stride : i * stride + span_h : dilation,
                               j * stride : j * stride + span_w : dilation]
                    y[a, o, i, j] = (patch * w[o]).sum() + (0.0 if b is None else b[o])
    return y


def pool2d_loop(x, reduce, k, stride, padding, fill):
    """Direct definition: y[n,c,i,j] = reduce(xpad[n,c,i*s:i*s+k,j*s:j*s+k]), xpad padded
    with ``fill``."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=fill)
    ho, wo = (xp.shape[2] - k) // stride + 1, (xp.shape[3] - k) // stride + 1
    y = np.zeros(x.shape[:2] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            y[:, :, i, j] = reduce(xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k], axis=(2, 3))
    return y


def conv_transpose2d_loop(x, w, b=None, stride=1, padding=0, output_padding=0):
    """Direct definition: every input pixel scatters x[n,c,i,j] * w[c,o] into the output
    window at (i*s - p, j*s - p)."""
    n, cin, h, wd = x.shape
    _, cout, kh, kw = w.shape
    ho = (h - 1) * stride - 2 * padding + kh + output_padding
    wo = (wd - 1) * stride - 2 * padding + kw + output_padding
    y = np.zeros((n, cout, ho, wo)) + (0.0 if b is None else b.reshape(1, -1, 1, 1))
    for a in range(n):
        for c in range(cin):
            for i in range(h):
                for j in range(wd):
                    for p in range(kh):
                        for q in range(kw):
                            oi, oj = i * stride - padding + p, j * stride - padding + q
                            if 0 <= oi < ho and 0 <= oj < wo:
                                y[a, :, oi, oj] += x[a, c, i, j] * w[c, :, p, q]
    return y
