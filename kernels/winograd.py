"""Winograd minimal-filtering convolution F(m x m, r x r) (Lavin & Gray 2016) on the CPU:
F(2x2, 3x3) and F(4x4, 3x3) for 3x3 kernels, F(2x2, 2x2) for the 2x2 ones that
:mod:`kernels.polyphase` makes of stride-2 4x4 convolutions.

An r x r cross-correlation computes each m x m output tile from an alpha x alpha input tile
d (alpha = m + r - 1) as

    Y = A^T [ sum_c (G g_c G^T) . (B^T d_c B) ] A                    (Lavin & Gray, eq. 8)

with elementwise products ".": alpha^2 multiplies per tile and channel pair instead of
r^2 m^2. Summed over the channels, the products of one position (a, b) of the alpha x alpha
grid are a matrix product over all tiles at once:

    M[a, b] = V[a, b] @ U[a, b]^T,  V (P tiles, C), U (Cout, C)      (eq. 10, one GEMM each)

so a layer is an input transform (``_tile_transform``), alpha^2 GEMMs (BLAS) and an output
transform (``_untile_transform``). These two loop over the matrices' entries and are the
reference; the passes transform one image at a time with ``_image_tiles`` and
``_image_untile`` (per variant), the same sums with the
matrices' rows written out as formulas (identical results; faster:
docs/history.md#what-was-tried). A pass is one parallel region (``_conv_fused``,
``_grad_weight_fused``): each thread takes its share of the images and, block by block of
images, transforms them, runs the GEMMs (``numpy.dot`` inside Numba, on SciPy's
single-threaded BLAS) and untransforms (or sums) the products, so a block's tiles stay in
that core's cache. Without SciPy (Numba's ``numpy.dot`` needs it) the transforms run per
image around one threaded stack of GEMMs (``threads.matmul``).

The backward passes use the same pieces. The input gradient of a stride-1 convolution is
the convolution of gy with the flipped, transposed kernel and padding r - 1 - p. The weight
gradient is the adjoint of the formula above: with dM = A dY A^T the transform of the
output-gradient tiles (the same gather kernel with A in place of B^T),

    dg_{o,c} = G^T [ sum_tiles dM_o . (B^T d_c B) ] G,

again alpha^2 GEMMs, dM[a, b]^T @ V[a, b]. Tiles that overhang the output read zeros of gy,
so the adjoint is exact.

Numerics: F(2x2, 3x3)'s and F(2x2, 2x2)'s transforms only add and subtract (and G halves),
and their float32 error is that of the direct sum. F(4x4)'s multiply by 2, 4, 5 and 8 and by 1/6, 1/12 and
1/24 (rounded to the data dtype), so its float32 result differs from the direct sum by more
than the direct sum's own rounding (several times more on the input gradient of image
data: docs/semantics.md); ``error_bound`` gives the first-order bound, which
tests/test_winograd.py checks. :mod:`kernels.conv_algorithm` chooses between them. Each parallel task (``prange``) owns whole images; the
kernels keep fastmath off, the innermost loops run over the contiguous channel axis.
"""
import functools

import numpy

from . import threads

threads.prefer_short_spin_openmp()
from numba import njit, prange  # noqa: E402 (after the threading layer is chosen)

_PARALLEL = dict(parallel=True, cache=True, fastmath=False)

# The transform matrices of Lavin & Gray 2016, section 4.1 (F(2x2, 3x3)) and 4.2 (F(4x4, 3x3)):
# interpolation points 0, 1, -1 (F(2x2)) and 0, 1, -1, 2, -2 (F(4x4)), plus infinity; keyed
# by (m, r). F(2x2, 2x2) (points 0, 1 and infinity: m0 = (d0 - d1) g0, m1 = d1 (g0 + g1),
# m2 = (d2 - d1) g1, y0 = m0 + m1, y1 = m1 + m2) runs the stride-1 2x2 convolutions into
# which kernels.polyphase turns stride-2 4x4 ones.
_MATRICES = {
    (2, 3): dict(
        BT=[[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        G=[[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
        AT=[[1, 1, 1, 0], [0, 1, -1, -1]],
    ),
    (4, 3): dict(
        BT=[[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        G=[[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
           [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        AT=[[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
            [0, 1, -1, 8, -8, 1]],
    ),
    (2, 2): dict(
        BT=[[1, -1, 0], [0, 1, 0], [0, -1, 1]],
        G=[[1, 0], [1, 1], [0, 1]],
        AT=[[1, 1, 0], [0, 1, 1]],
    ),
}
TILE_SIZES = (2, 4)
"""The tile sizes m of F(m x m, 3 x 3)."""
KERNEL_SIZES = (2, 3)
"""The kernel sizes r of F(m x m, r x r): F(2x2, 2x2) and the 3x3 ones of TILE_SIZES."""


@functools.lru_cache(maxsize=None)
def matrices(m, dtype, r=3):
    """(B^T, G, A^T) of F(m x m, r x r) in ``dtype`` (shared: not to be written to)."""
    if (m, r) not in _MATRICES:
        sizes = tuple(size for size, kernel in _MATRICES if kernel == r)
        raise ValueError(f"winograd: tile size m must be one of {sizes} for {r}x{r} kernels, "
                         f"got {m}")
    return tuple(numpy.array(_MATRICES[m, r][k], dtype=dtype) for k in ("BT", "G", "AT"))


@njit(cache=True)
def _channels_last(src, n, offset, ph, pw):
    """Image n of src (N, C, H, W) as (ph, pw, C), shifted by offset and zero-bordered."""
    channels, h, w = src.shape[1:]
    image = numpy.zeros((ph, pw, channels), dtype=src.dtype)
    for c in range(channels):
        for y in range(max(0, -offset), min(h, ph - offset)):
            for x in range(max(0, -offset), min(w, pw - offset)):
                image[y + offset, x + offset, c] = src[n, c, y, x]
    return image


@njit(cache=True)
def _to_nchw(image, y, n):
    """y[n] = the channels-last image (cropped to y's height and width)."""
    for o in range(y.shape[1]):
        for yy in range(y.shape[2]):
            for xx in range(y.shape[3]):
                y[n, o, yy, xx] = image[yy, xx, o]


@njit(**_PARALLEL)
def _tile_transform(src, T, step, offset, tiles_h, tiles_w, out):
    """out[a*alpha + b, p, c] = sum_{i, j} T[a, i] T[b, j] src[n, c, step*ty + i - offset,
    step*tx + j - offset] for tile p = (n, ty, tx), reading zeros outside src.
    T: (alpha, size) with size the tile's extent in src; out: (alpha^2, N*tiles_h*tiles_w, C).
    Each image is first copied channels-last into a zero-bordered buffer, and the vertical
    transform runs once per band of tile rows, over whole image rows (the tiles overlap)."""
    n_batch, channels = src.shape[:2]
    alpha, size = T.shape
    ph, pw = step * (tiles_h - 1) + size, step * (tiles_w - 1) + size
    for n in prange(n_batch):
        image = _channels_last(src, n, offset, ph, pw)
        band = numpy.empty((alpha, pw, channels), dtype=src.dtype)
        for ty in range(tiles_h):
            y0 = step * ty
            band[:] = 0
            for a in range(alpha):
                for i in range(size):
                    t = T[a, i]
                    if t != 0:
                        for x in range(pw):
                            for c in range(channels):
                                band[a, x, c] += t * image[y0 + i, x, c]
            for tx in range(tiles_w):
                p = (n * tiles_h + ty) * tiles_w + tx
                x0 = step * tx
                for a in range(alpha):
                    for b in range(alpha):
                        k = a * alpha + b
                        out[k, p, :] = 0
                        for j in range(size):
                            t = T[b, j]
                            if t != 0:
                                for c in range(channels):
                                    out[k, p, c] += t * band[a, x0 + j, c]


@njit(**_PARALLEL)
def _untile_transform(M, S, tiles_h, tiles_w, y):
    """y[n, o, m*ty + i, m*tx + j] = sum_{a, b} S[i, a] S[j, b] M[a*alpha + b, p, o] for the
    positions inside y; S = A^T (m, alpha), M (alpha^2, N*tiles_h*tiles_w, Cout). Each image
    is assembled channels-last and copied out once."""
    n_batch, c_out = y.shape[:2]
    m, alpha = S.shape
    for n in prange(n_batch):
        half = numpy.empty((m, alpha, c_out), dtype=y.dtype)
        image = numpy.zeros((m * tiles_h, m * tiles_w, c_out), dtype=y.dtype)
        for ty in range(tiles_h):
            for tx in range(tiles_w):
                p = (n * tiles_h + ty) * tiles_w + tx
                half[:] = 0
                for i in range(m):
                    for a in range(alpha):
                        s = S[i, a]
                        if s != 0:
                            for b in range(alpha):
                                for o in range(c_out):
                                    half[i, b, o] += s * M[a * alpha + b, p, o]
                for i in range(m):
                    for j in range(m):
                        for b in range(alpha):
                            s = S[j, b]
                            if s != 0:
                                for o in range(c_out):
                                    image[m * ty + i, m * tx + j, o] += s * half[i, b, o]
        _to_nchw(image, y, n)


# F(4x4, 3x3) written out. The kernels above loop over the matrices' entries; with 32-64
# channels per vector that loop overhead is most of their time. Below, the rows of B^T, A
# and A^T of _MATRICES[4, 3] are formulas (t: the data's scalar type, so that float32 stays
# float32), summed in the order of the generic kernels, so both give identical results.
@njit(inline="always")
def _bt_rows(t, d0, d1, d2, d3, d4, d5):
    """B^T d for one 6-vector d."""
    return (t(4) * d0 - t(5) * d2 + d4,
            -t(4) * d1 - t(4) * d2 + d3 + d4,
            t(4) * d1 - t(4) * d2 - d3 + d4,
            -t(2) * d1 - d2 + t(2) * d3 + d4,
            t(2) * d1 - d2 - t(2) * d3 + d4,
            t(4) * d1 - t(5) * d3 + d5)


@njit(inline="always")
def _a_rows(t, d0, d1, d2, d3):
    """A d for one 4-vector d (the weight gradient's transform of gy tiles)."""
    return (d0,
            d0 + d1 + d2 + d3,
            d0 - d1 + d2 - d3,
            d0 + t(2) * d1 + t(4) * d2 + t(8) * d3,
            d0 - t(2) * d1 + t(4) * d2 - t(8) * d3,
            d3)


@njit(inline="always")
def _at_rows(t, m0, m1, m2, m3, m4, m5):
    """A^T m for one 6-vector m."""
    return (m0 + m1 + m2 + m3 + m4,
            m1 - m2 + t(2) * m3 - t(2) * m4,
            m1 + m2 + t(4) * m3 + t(4) * m4,
            m1 - m2 + t(8) * m3 - t(8) * m4 + m5)


@njit(inline="always")
def _in_rows(t, adjoint, d0, d1, d2, d3, d4, d5):
    if adjoint:
        return _a_rows(t, d0, d1, d2, d3)
    return _bt_rows(t, d0, d1, d2, d3, d4, d5)


@njit(cache=True)
def _image_tiles4(src, n, adjoint, offset, tiles_h, tiles_w, out, p0):
    """The tiles of image n as ``_tile_transform(src, T, 4, offset, tiles_h, tiles_w, ...)``
    of F(4x4, 3x3) computes them, with T = B^T, or with T = A when ``adjoint`` (then offset
    0: the gy tiles of the weight gradient), written out; stored from tile p0 of ``out``."""
    channels = src.shape[1]
    t = src.dtype.type
    ph, pw = 4 * tiles_h + 2, 4 * tiles_w + 2
    rows = _channels_last(src, n, offset, ph, pw).reshape((ph, pw * channels))
    band = numpy.empty((6, pw, channels), dtype=src.dtype)
    band_rows = band.reshape((6, pw * channels))
    for ty in range(tiles_h):
        y0 = 4 * ty
        for q in range(pw * channels):  # the vertical transform of whole image rows
            r = _in_rows(t, adjoint, rows[y0, q], rows[y0 + 1, q], rows[y0 + 2, q],
                         rows[y0 + 3, q], rows[y0 + 4, q], rows[y0 + 5, q])
            band_rows[0, q], band_rows[1, q], band_rows[2, q] = r[0], r[1], r[2]
            band_rows[3, q], band_rows[4, q], band_rows[5, q] = r[3], r[4], r[5]
        for tx in range(tiles_w):
            p = p0 + ty * tiles_w + tx
            x0 = 4 * tx
            for a in range(6):
                k = 6 * a
                for c in range(channels):
                    r = _in_rows(t, adjoint, band[a, x0, c], band[a, x0 + 1, c],
                                 band[a, x0 + 2, c], band[a, x0 + 3, c],
                                 band[a, x0 + 4, c], band[a, x0 + 5, c])
                    out[k, p, c], out[k + 1, p, c], out[k + 2, p, c] = r[0], r[1], r[2]
                    out[k + 3, p, c], out[k + 4, p, c], out[k + 5, p, c] = r[3], r[4], r[5]


@njit(cache=True)
def _image_untile4(M, p0, n, tiles_h, tiles_w, y):
    """y[n] from the products M of its tiles (from tile p0), as ``_untile_transform(M, A^T,
    tiles_h, tiles_w, y)`` of F(4x4, 3x3) computes it, written out."""
    c_out = y.shape[1]
    t = y.dtype.type
    half = numpy.empty((4, 6, c_out), dtype=y.dtype)
    image = numpy.empty((4 * tiles_h, 4 * tiles_w, c_out), dtype=y.dtype)
    for ty in range(tiles_h):
        for tx in range(tiles_w):
            p = p0 + ty * tiles_w + tx
            for b in range(6):
                for o in range(c_out):
                    r = _at_rows(t, M[b, p, o], M[6 + b, p, o], M[12 + b, p, o],
                                 M[18 + b, p, o], M[24 + b, p, o], M[30 + b, p, o])
                    half[0, b, o], half[1, b, o], half[2, b, o], half[3, b, o] = r
            for i in range(4):
                yy, x0 = 4 * ty + i, 4 * tx
                for o in range(c_out):
                    r = _at_rows(t, half[i, 0, o], half[i, 1, o], half[i, 2, o],
                                 half[i, 3, o], half[i, 4, o], half[i, 5, o])
                    image[yy, x0, o], image[yy, x0 + 1, o] = r[0], r[1]
                    image[yy, x0 + 2, o], image[yy, x0 + 3, o] = r[2], r[3]
    _to_nchw(image, y, n)


# F(2x2, 3x3) written out likewise: every entry of its B^T, A and A^T is 0 or +-1.
@njit(inline="always")
def _in_rows2(adjoint, d0, d1, d2, d3):
    """B^T d for one 4-vector d, or A d (the first two entries) when ``adjoint``."""
    if adjoint:
        return d0, d0 + d1, d0 - d1, -d1
    return d0 - d2, d1 + d2, -d1 + d2, d1 - d3


@njit(inline="always")
def _at_rows2(m0, m1, m2, m3):
    """A^T m for one 4-vector m."""
    return m0 + m1 + m2, m1 - m2 - m3


@njit(cache=True)
def _image_tiles2(src, n, adjoint, offset, tiles_h, tiles_w, out, p0):
    """``_image_tiles4`` for F(2x2, 3x3): the 4x4 tiles of image n, written out."""
    channels = src.shape[1]
    ph, pw = 2 * tiles_h + 2, 2 * tiles_w + 2
    rows = _channels_last(src, n, offset, ph, pw).reshape((ph, pw * channels))
    band = numpy.empty((4, pw, channels), dtype=src.dtype)
    band_rows = band.reshape((4, pw * channels))
    for ty in range(tiles_h):
        y0 = 2 * ty
        for q in range(pw * channels):
            r = _in_rows2(adjoint, rows[y0, q], rows[y0 + 1, q], rows[y0 + 2, q],
                          rows[y0 + 3, q])
            band_rows[0, q], band_rows[1, q], band_rows[2, q], band_rows[3, q] = r
        for tx in range(tiles_w):
            p = p0 + ty * tiles_w + tx
            x0 = 2 * tx
            for a in range(4):
                k = 4 * a
                for c in range(channels):
                    r = _in_rows2(adjoint, band[a, x0, c], band[a, x0 + 1, c],
                                  band[a, x0 + 2, c], band[a, x0 + 3, c])
                    out[k, p, c], out[k + 1, p, c], out[k + 2, p, c], out[k + 3, p, c] = r


@njit(cache=True)
def _image_untile2(M, p0, n, tiles_h, tiles_w, y):
    """``_image_untile4`` for F(2x2, 3x3): y[n] from the products of its tiles."""
    c_out = y.shape[1]
    half = numpy.empty((2, 4, c_out), dtype=y.dtype)
    image = numpy.empty((2 * tiles_h, 2 * tiles_w, c_out), dtype=y.dtype)
    for ty in range(tiles_h):
        for tx in range(tiles_w):
            p = p0 + ty * tiles_w + tx
            for b in range(4):
                for o in range(c_out):
                    half[0, b, o], half[1, b, o] = _at_rows2(
                        M[b, p, o], M[4 + b, p, o], M[8 + b, p, o], M[12 + b, p, o])
            for i in range(2):
                yy, x0 = 2 * ty + i, 2 * tx
                for o in range(c_out):
                    image[yy, x0, o], image[yy, x0 + 1, o] = _at_rows2(
                        half[i, 0, o], half[i, 1, o], half[i, 2, o], half[i, 3, o])
    _to_nchw(image, y, n)


# F(2x2, 2x2) written out: 3x3 input tiles at step 2.
@njit(inline="always")
def _in_rows22(adjoint, d0, d1, d2):
    """B^T d for one 3-vector d, or A d (from the first two entries) when ``adjoint``."""
    if adjoint:
        return d0, d0 + d1, d1
    return d0 - d1, d1, -d1 + d2


@njit(inline="always")
def _at_rows22(m0, m1, m2):
    """A^T m for one 3-vector m."""
    return m0 + m1, m1 + m2


@njit(cache=True)
def _image_tiles22(src, n, adjoint, offset, tiles_h, tiles_w, out, p0):
    """``_image_tiles4`` for F(2x2, 2x2): the 3x3 tiles of image n, written out."""
    channels = src.shape[1]
    ph, pw = 2 * tiles_h + 1, 2 * tiles_w + 1
    rows = _channels_last(src, n, offset, ph, pw).reshape((ph, pw * channels))
    band = numpy.empty((3, pw, channels), dtype=src.dtype)
    band_rows = band.reshape((3, pw * channels))
    for ty in range(tiles_h):
        y0 = 2 * ty
        for q in range(pw * channels):
            band_rows[0, q], band_rows[1, q], band_rows[2, q] = _in_rows22(
                adjoint, rows[y0, q], rows[y0 + 1, q], rows[y0 + 2, q])
        for tx in range(tiles_w):
            p = p0 + ty * tiles_w + tx
            x0 = 2 * tx
            for a in range(3):
                k = 3 * a
                for c in range(channels):
                    out[k, p, c], out[k + 1, p, c], out[k + 2, p, c] = _in_rows22(
                        adjoint, band[a, x0, c], band[a, x0 + 1, c], band[a, x0 + 2, c])


@njit(cache=True)
def _image_untile22(M, p0, n, tiles_h, tiles_w, y):
    """``_image_untile4`` for F(2x2, 2x2): y[n] from the products of its tiles."""
    c_out = y.shape[1]
    half = numpy.empty((2, 3, c_out), dtype=y.dtype)
    image = numpy.empty((2 * tiles_h, 2 * tiles_w, c_out), dtype=y.dtype)
    for ty in range(tiles_h):
        for tx in range(tiles_w):
            p = p0 + ty * tiles_w + tx
            for b in range(3):
                for o in range(c_out):
                    half[0, b, o], half[1, b, o] = _at_rows22(M[b, p, o], M[3 + b, p, o],
                                                              M[6 + b, p, o])
            for i in range(2):
                yy, x0 = 2 * ty + i, 2 * tx
                for o in range(c_out):
                    image[yy, x0, o], image[yy, x0 + 1, o] = _at_rows22(
                        half[i, 0, o], half[i, 1, o], half[i, 2, o])
    _to_nchw(image, y, n)


# The written-out kernels by the side alpha = m + r - 1 of their input tiles, which tells
# the three variants apart: 6 for F(4x4, 3x3), 4 for F(2x2, 3x3), 3 for F(2x2, 2x2).
@njit(cache=True)
def _image_tiles(alpha, src, n, adjoint, offset, tiles_h, tiles_w, out, p0):
    if alpha == 6:
        _image_tiles4(src, n, adjoint, offset, tiles_h, tiles_w, out, p0)
    elif alpha == 4:
        _image_tiles2(src, n, adjoint, offset, tiles_h, tiles_w, out, p0)
    else:
        _image_tiles22(src, n, adjoint, offset, tiles_h, tiles_w, out, p0)


@njit(cache=True)
def _image_untile(alpha, M, p0, n, tiles_h, tiles_w, y):
    if alpha == 6:
        _image_untile4(M, p0, n, tiles_h, tiles_w, y)
    elif alpha == 4:
        _image_untile2(M, p0, n, tiles_h, tiles_w, y)
    else:
        _image_untile22(M, p0, n, tiles_h, tiles_w, y)


@njit(**_PARALLEL)
def _tile_transform_written(alpha, src, adjoint, offset, tiles_h, tiles_w, out):
    """``_image_tiles`` of every image, one parallel task per image."""
    tiles = tiles_h * tiles_w
    for n in prange(src.shape[0]):
        _image_tiles(alpha, src, n, adjoint, offset, tiles_h, tiles_w, out, n * tiles)


@njit(**_PARALLEL)
def _untile_transform_written(alpha, M, tiles_h, tiles_w, y):
    """``_image_untile`` of every image, one parallel task per image."""
    for n in prange(y.shape[0]):
        _image_untile(alpha, M, n * tiles_h * tiles_w, n, tiles_h, tiles_w, y)


# One parallel region per pass: the images are split into one share per thread, and each
# thread transforms, multiplies (BLAS through numpy.dot, single-threaded) and untransforms
# blocks of its own images, so the tiles of a block stay in its core's cache and the pass
# has one fork-join instead of three
# (docs/history.md#two-threads-on-an-idle-machine).
@njit(cache=True)
def _share(count, shares, i):
    return count * i // shares, count * (i + 1) // shares


@njit(**_PARALLEL)
def _conv_fused(alpha, x, Ut, offset, tiles_h, tiles_w, shares, block, y):
    """y = the Winograd convolution of x with Ut[k] = U[k]^T (alpha^2, C, Cout)."""
    n_batch, channels = x.shape[:2]
    tiles = tiles_h * tiles_w
    points = Ut.shape[0]
    for share in prange(shares):
        lo, hi = _share(n_batch, shares, share)
        V = numpy.empty((points, block * tiles, channels), dtype=x.dtype)
        M = numpy.empty((points, block * tiles, Ut.shape[2]), dtype=x.dtype)
        for n0 in range(lo, hi, block):
            count = min(hi, n0 + block) - n0
            for i in range(count):
                _image_tiles(alpha, x, n0 + i, False, offset, tiles_h, tiles_w, V, i * tiles)
            for k in range(points):  # M[a, b] = V[a, b] @ U[a, b]^T, eq. 10
                numpy.dot(V[k, :count * tiles], Ut[k], M[k, :count * tiles])
            for i in range(count):
                _image_untile(alpha, M, i * tiles, n0 + i, tiles_h, tiles_w, y)


@njit(**_PARALLEL)
def _grad_weight_fused(alpha, x, gy, offset, tiles_h, tiles_w, shares, block, dU):
    """dU[share, k] = sum over the tiles of the share's images of dM[k]^T V[k] (alpha^2
    GEMMs per block of images, summed), with V the B^T tiles of x and dM the A tiles of gy."""
    n_batch, channels = x.shape[:2]
    c_out = gy.shape[1]
    tiles = tiles_h * tiles_w
    points = dU.shape[1]
    for share in prange(shares):
        lo, hi = _share(n_batch, shares, share)
        V = numpy.empty((points, block * tiles, channels), dtype=x.dtype)
        dM = numpy.empty((points, block * tiles, c_out), dtype=x.dtype)
        part = numpy.empty((c_out, channels), dtype=x.dtype)
        dU[share] = 0
        for n0 in range(lo, hi, block):
            count = min(hi, n0 + block) - n0
            for i in range(count):
                _image_tiles(alpha, x, n0 + i, False, offset, tiles_h, tiles_w, V, i * tiles)
                _image_tiles(alpha, gy, n0 + i, True, 0, tiles_h, tiles_w, dM, i * tiles)
            for k in range(points):
                numpy.dot(dM[k, :count * tiles].T, V[k, :count * tiles], part)
                dU[share, k] += part


BLOCK_TILES = 64
"""Tiles per block of images in the fused passes: GEMMs of at least 64 rows, and at least
as many as the input channels, so that BLAS packs each (C, Cout) factor for enough rows."""

GRAD_WEIGHT_BLOCK_TILES = 128
"""The same for the weight gradient, whose GEMMs sum over the tiles (docs/performance.md)."""


def _blocking(n_batch, tiles, channels, least=BLOCK_TILES):
    return min(n_batch, threads.workers()), max(1, max(least, channels) // tiles)


def _tiles(size, m):
    return -(-size // m)


def input_tiles(x, m, padding, out_hw, r=3):
    """V = B^T d B for every input tile of the padded x: (alpha^2, P, C)."""
    th, tw = _tiles(out_hw[0], m), _tiles(out_hw[1], m)
    V = numpy.empty(((m + r - 1) ** 2, x.shape[0] * th * tw, x.shape[1]), dtype=x.dtype)
    _tile_transform_written(m + r - 1, x, False, padding, th, tw, V)
    return V


@functools.lru_cache(maxsize=None)
def filter_transform(m, dtype, r=3):
    """G (x) G, (alpha^2, r^2): row a alpha + b holds G[a, i] G[b, j] at column r i + j, so
    that U = G g G^T of every filter g is one product with the filters' taps; the products
    are formed in float64 from the exact fractions, then rounded once to ``dtype``."""
    G = numpy.array(_MATRICES[m, r]["G"], dtype=numpy.float64)
    return numpy.kron(G, G).astype(dtype)


def kernel_tiles(w, m):
    """U^T: U = G g G^T for every filter, as (alpha^2, C, Cout) from w (Cout, C, r, r) (the
    right-hand factors of eq. 10's GEMMs): one GEMM (G (x) G) @ taps, the taps of w laid out
    as (r x r, C, Cout)."""
    c_out, c, r = w.shape[:3]
    taps = numpy.ascontiguousarray(w.transpose(2, 3, 1, 0)).reshape(r * r, c * c_out)
    return (filter_transform(m, w.dtype, r) @ taps).reshape((m + r - 1) ** 2, c, c_out)


def conv2d(x, w, padding, m=4):
    """Stride-1 r x r cross-correlation of x (N, C, H, W) with w (Cout, C, r, r) by
    F(m x m, r x r)."""
    n, c, h, w_in = x.shape
    r = w.shape[2]
    out_hw = (h + 2 * padding - r + 1, w_in + 2 * padding - r + 1)
    th, tw = _tiles(out_hw[0], m), _tiles(out_hw[1], m)
    y = numpy.empty((n, w.shape[0]) + out_hw, dtype=x.dtype)
    U_T = kernel_tiles(w, m)
    if threads.numba_blas():
        with threads.single_threaded_blas():
            _conv_fused(m + r - 1, x, U_T, padding, th, tw, *_blocking(n, th * tw, c), y)
        return y
    M = threads.matmul(input_tiles(x, m, padding, out_hw, r), U_T)
    _untile_transform_written(m + r - 1, M, th, tw, y)
    return y


def conv2d_grad_input(gy, w, padding, m=4):
    """dL/dx of the stride-1 r x r conv2d with the given padding (<= r - 1): the convolution
    of gy with the flipped, transposed kernel and padding r - 1 - padding."""
    w_flipped = numpy.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return conv2d(gy, w_flipped, w.shape[2] - 1 - padding, m)


def conv2d_grad_weight(x, gy, padding, m=4, r=3):
    """dL/dw of the stride-1 r x r conv2d: G^T [sum_tiles (A dY A^T) . (B^T d B)] G."""
    th, tw = _tiles(gy.shape[2], m), _tiles(gy.shape[3], m)
    alpha = m + r - 1
    if threads.numba_blas():
        shares, block = _blocking(x.shape[0], th * tw, x.shape[1], GRAD_WEIGHT_BLOCK_TILES)
        parts = numpy.empty((shares, alpha ** 2, gy.shape[1], x.shape[1]), dtype=x.dtype)
        with threads.single_threaded_blas():
            _grad_weight_fused(alpha, x, gy, padding, th, tw, shares, block, parts)
        dU = parts.sum(axis=0)  # (alpha^2, Cout, C)
    else:
        V = input_tiles(x, m, padding, gy.shape[2:], r)
        dM = numpy.empty((alpha ** 2, gy.shape[0] * th * tw, gy.shape[1]), dtype=gy.dtype)
        _tile_transform_written(alpha, gy, True, 0, th, tw, dM)
        dU = threads.matmul(dM.transpose(0, 2, 1), V)
    # dg = G^T dU G for every filter: the adjoint of kernel_tiles, one GEMM
    filters = gy.shape[1] * x.shape[1]
    dg = dU.reshape(alpha ** 2, filters).T @ filter_transform(m, x.dtype, r)
    return dg.reshape(gy.shape[1], x.shape[1], r, r)


def error_bound(x, w, padding, m):
    """A first-order bound on |F(m) result - exact convolution|, elementwise, for data in the
    dtype of x: gamma_k * A^T [sum_c |G||g||G|^T . |B^T||d||B|] |A| with |.| elementwise and
    gamma_k = k u / (1 - k u), u the unit roundoff, k the longest chain of roundings (the
    transforms' sums, the channel sum, the products and the rounded entries of G).

    This is the standard bound for a product of matrices evaluated in floating point
    (Higham 2002, section 3.5), applied to the three transforms and the channel sum."""
    u = numpy.finfo(x.dtype).eps / 2
    r = w.shape[2]
    alpha = m + r - 1
    C = x.shape[1]
    k = C + 2 * alpha + 2 * r + 2 * alpha + 4
    gamma = k * u / (1 - k * u)
    ax, aw = numpy.abs(x.astype(numpy.float64)), numpy.abs(w.astype(numpy.float64))
    BT, G, AT = (numpy.abs(numpy.array(_MATRICES[m, r][key], dtype=numpy.float64))
                 for key in ("BT", "G", "AT"))
    out_hw = (x.shape[2] + 2 * padding - r + 1, x.shape[3] + 2 * padding - r + 1)
    V = numpy.empty((alpha * alpha, x.shape[0] * _tiles(out_hw[0], m) * _tiles(out_hw[1], m), C))
    _tile_transform(ax, BT, m, padding, _tiles(out_hw[0], m), _tiles(out_hw[1], m), V)
    U = numpy.einsum("ai,ocij,bj->aboc", G, aw, G).reshape(alpha * alpha, w.shape[0], C)
    M = numpy.matmul(V, U.transpose(0, 2, 1))
    y = numpy.empty((x.shape[0], w.shape[0]) + out_hw)
    _untile_transform(M, AT, _tiles(out_hw[0], m), _tiles(out_hw[1], m), y)
    return gamma * y
