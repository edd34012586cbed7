"""Direct-loop definitions that tests compare the fast paths against (slow, tiny inputs)."""
import numpy as np


def conv2d_loop(x, w, b=None, stride=1, padding=0):
    """Direct definition: y[n,o,i,j] = b[o] + sum_{c,p,q} xpad[n,c,i*s+p,j*s+q] w[o,c,p,q]."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, _, h, wd = xp.shape
    cout, cin, kh, kw = w.shape
    ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
    y = np.zeros((n, cout, ho, wo))
    for a in range(n):
        for o in range(cout):
            for i in range(ho):
                for j in range(wo):
                    patch = xp[a, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
                    y[a, o, i, j] = (patch * w[o]).sum() + (0.0 if b is None else b[o])
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
