"""PyTorch's legacy constructors and types, so old scripts run unchanged: ``FloatTensor``
and friends, ``autograd.Variable`` (a Tensor since PyTorch 0.4).

``mg.FloatTensor(data)`` is a float32 tensor of the data and ``mg.FloatTensor(64, 1)`` a
zero-filled one of that shape (PyTorch leaves it uninitialised); ``x.type(mg.FloatTensor)``
casts to float32, as ``x.type(mg.Tensor)`` does (``mg.Tensor``'s legacy dtype is the default
one).
"""
import numpy as np

from minigen.tensor import Tensor


class TensorType:
    """A legacy tensor type: calling it builds a tensor of its dtype; ``x.type(it)`` casts."""

    def __init__(self, name, dtype):
        self.__name__, self.dtype = name, np.dtype(dtype)

    def __call__(self, *args, requires_grad=False):
        data = Tensor(*args).data
        return Tensor(data.astype(self.dtype, copy=False), requires_grad=requires_grad)

    def __repr__(self):
        return f"minigen.{self.__name__}"


FloatTensor = TensorType("FloatTensor", np.float32)
DoubleTensor = TensorType("DoubleTensor", np.float64)
HalfTensor = TensorType("HalfTensor", np.float16)
LongTensor = TensorType("LongTensor", np.int64)
IntTensor = TensorType("IntTensor", np.int32)
ByteTensor = TensorType("ByteTensor", np.uint8)
BoolTensor = TensorType("BoolTensor", np.bool_)


def Variable(data, requires_grad=False, volatile=False):  # noqa: N802 (PyTorch's name)
    """PyTorch's ``Variable``: the tensor itself (``requires_grad=True`` sets the flag)."""
    if not isinstance(data, Tensor):
        data = Tensor(data)
    if requires_grad:
        data.requires_grad = True
    return data
