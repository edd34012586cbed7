"""Trigonometric and hyperbolic functions beyond sin/cos: tan, their inverses, atan2, sinh,
cosh and the inverse hyperbolics. Each derivative is the textbook one, written with
differentiable ops so that second derivatives exist. Integer inputs give the default float
dtype (PyTorch's rule)."""
from minigen import backend
from minigen.functional import ops
from minigen.functional.unary import elementwise, floating

tan = elementwise("tan", lambda xp, x: xp.tan(x), lambda x, y: 1 + y * y,
                  "tan(x); d/dx = 1 + tan(x)^2.")
asin = elementwise("asin", lambda xp, x: xp.arcsin(x), lambda x, y: ops.pow(1 - x * x, -0.5),
                   "arcsin(x) on [-1, 1]; d/dx = 1 / sqrt(1 - x^2).")
acos = elementwise("acos", lambda xp, x: xp.arccos(x), lambda x, y: -ops.pow(1 - x * x, -0.5),
                   "arccos(x) on [-1, 1]; d/dx = -1 / sqrt(1 - x^2).")
atan = elementwise("atan", lambda xp, x: xp.arctan(x), lambda x, y: 1 / (1 + x * x),
                   "arctan(x); d/dx = 1 / (1 + x^2).")
sinh = elementwise("sinh", lambda xp, x: xp.sinh(x), lambda x, y: cosh(x),
                   "sinh(x); d/dx = cosh(x).")
cosh = elementwise("cosh", lambda xp, x: xp.cosh(x), lambda x, y: sinh(x),
                   "cosh(x); d/dx = sinh(x).")
asinh = elementwise("asinh", lambda xp, x: xp.arcsinh(x), lambda x, y: ops.pow(x * x + 1, -0.5),
                    "arsinh(x); d/dx = 1 / sqrt(x^2 + 1).")
acosh = elementwise("acosh", lambda xp, x: xp.arccosh(x), lambda x, y: ops.pow(x * x - 1, -0.5),
                    "arcosh(x) for x >= 1; d/dx = 1 / sqrt(x^2 - 1).")
atanh = elementwise("atanh", lambda xp, x: xp.arctanh(x), lambda x, y: 1 / (1 - x * x),
                    "artanh(x) on (-1, 1); d/dx = 1 / (1 - x^2).")


class Atan2(ops.Binary):
    def forward(self, y, x):
        return backend.xp_of(y).arctan2(y, x)

    def backward(self, gz):
        y, x = self.inputs
        r2 = x * x + y * y
        return self._unbroadcast(gz * x / r2, -gz * y / r2)


def atan2(y, x):
    """The angle of the point (x, y) in (-pi, pi] (argument order y, x as in PyTorch);
    d/dy = x / r^2, d/dx = -y / r^2."""
    y, x = ops.promote(y, x)
    return Atan2()(floating(y), floating(x))
