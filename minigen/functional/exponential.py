"""Exponentials and logarithms beyond exp/log: exp2, log2, rsqrt and logaddexp."""
import math

from minigen import backend
from minigen.functional import ops
from minigen.functional.unary import elementwise, floating

exp2 = elementwise("exp2", lambda xp, x: xp.exp2(x), lambda x, y: y * math.log(2.0),
                   "2^x; d/dx = 2^x ln 2.")
log2 = elementwise("log2", lambda xp, x: xp.log2(x), lambda x, y: 1 / (x * math.log(2.0)),
                   "log2(x); d/dx = 1 / (x ln 2).")
rsqrt = elementwise("rsqrt", lambda xp, x: 1 / xp.sqrt(x), lambda x, y: -0.5 * y * y * y,
                    "1 / sqrt(x); d/dx = -x^(-3/2) / 2.")


class LogAddExp(ops.Binary):
    def forward(self, a, b):
        return backend.xp_of(a).logaddexp(a, b)

    def backward(self, gy):
        a, b = self.inputs
        y = self.output()
        return self._unbroadcast(gy * ops.exp(a - y), gy * ops.exp(b - y))


def logaddexp(a, b):
    """log(exp(a) + exp(b)) without overflow; d/da = exp(a - y) = sigmoid(a - b)."""
    a, b = ops.promote(a, b)
    return LogAddExp()(floating(a), floating(b))
