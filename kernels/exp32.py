"""e^a in float32 as plain arithmetic, so that Numba loops calling it vectorise.

Without Intel's SVML, LLVM cannot vectorise a loop that calls ``math.exp``: every element
pays a scalar libm call, and a fused sigmoid loop lost to NumPy's own SIMD ``numpy.exp``
over five whole-array passes (docs/history.md#what-was-tried). Written out as
Cody & Waite's range reduction and the minimax polynomial of Cephes' ``expf`` (Moshier
1989), the same loop is one SIMD pass:

1. n = round(a / ln 2), r = a - n ln 2, with ln 2 split into a part exact in float32 and a
   correction (so r carries no error from the product n ln 2); |r| <= ln(2) / 2;
2. e^r = 1 + r + r^2 P(r), P of degree 5 (Cephes' coefficients);
3. e^a = e^r 2^n, the power of two built from its bits (``float32_from_bits``).

Accuracy: the sigmoid built on it is within 3 ulp of the float64 truth wherever the result
is a normal float32 (test ``test_exp32_sigmoid_is_within_3_ulp``, which also bounds NumPy's
formula on the same points). Range: a > 88.72283 (ln of the largest float32) gives +inf;
a < -86 is computed as e^-86 (4.5e-38), which is right for 1 + e^a (it rounds to 1, as in
the sigmoid) and not for e^a alone. NaN propagates.
"""
import numpy
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

f32 = numpy.float32
LOG2E = f32(1.44269504088896341)
LN2_HI = f32(0.693359375)  # ln 2 to 9 bits: n * LN2_HI is exact for |n| <= 2^15
LN2_LO = f32(-2.12194440e-4)  # ln 2 - LN2_HI
P = (f32(1.9875691500e-4), f32(1.3981999507e-3), f32(8.3334519073e-3), f32(4.1665795894e-2),
     f32(1.6666665459e-1), f32(5.0000001201e-1))
MAX_ARG = f32(88.72283)
MIN_ARG = f32(-86.0)

# Loops over arrays: NumPy's error model (no ZeroDivisionError branch, which stops LLVM
# from vectorising a division) and IEEE arithmetic in source order.
OPTIONS = dict(cache=True, fastmath=False, error_model="numpy")


@intrinsic
def float32_from_bits(typingctx, bits):
    """The float32 whose IEEE bits are the int32 ``bits`` (a register bitcast)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@njit(**OPTIONS)
def exp32(a):
    """e^a of a float32 (see the module docstring for the steps, accuracy and range)."""
    clamped = min(max(a, MIN_ARG), MAX_ARG)
    n = numpy.floor(clamped * LOG2E + f32(0.5))  # step 1
    r = clamped - n * LN2_HI - n * LN2_LO
    poly = ((((P[0] * r + P[1]) * r + P[2]) * r + P[3]) * r + P[4]) * r + P[5]
    e_r = poly * (r * r) + r + f32(1)  # step 2
    # step 3: n is in [-124, 128], where 2^(n-1) is a normal float32 (biased exponent
    # n + 126 >= 1) and e^r * 2 is exact; the clamp only keeps a NaN's n in range
    k = min(max(numpy.int32(n), numpy.int32(-125)), numpy.int32(128))
    e = (e_r * f32(2)) * float32_from_bits((k + numpy.int32(126)) << 23)
    return f32(numpy.inf) if a > MAX_ARG else e
