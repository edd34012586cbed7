"""One elementwise Function per formula: ``elementwise(name, compute, derivative, doc)``
builds the op from f on raw arrays and f' as differentiable ops of the input and output
(used by the trig and exponential modules). Integer inputs give the default float dtype
(PyTorch's rule)."""
from minigen import backend
from minigen.functional import ops
from minigen.functional.promotion import float_type
from minigen.tensor import Function, as_tensor


def floating(x):
    """``x`` as a float Tensor (integers: the default float dtype)."""
    x = as_tensor(x)
    return x if x.dtype.kind == "f" else ops.cast(x, float_type(x.dtype))


class Elementwise(Function):
    """y = f(x): ``compute(xp, x)`` gives f on raw arrays, ``derivative(x, y)`` gives f'
    as differentiable ops of the input x and the output y."""

    def forward(self, x):
        return self.compute(backend.xp_of(x), x)

    def backward(self, gy):
        return gy * self.derivative(self.inputs[0], self.output())


def elementwise(name, compute, derivative, doc):
    """The public function ``name`` of one ``Elementwise`` subclass."""
    cls = type(name.capitalize(), (Elementwise,),
               {"compute": staticmethod(compute), "derivative": staticmethod(derivative)})

    def op(x):
        return cls()(floating(x))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return op
