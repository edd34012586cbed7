"""``torch.autograd``'s names: ``grad``, ``Function``, ``no_grad``/``enable_grad`` and the
legacy ``Variable`` (the tensor itself)."""
from minigen.legacy import Variable  # noqa: F401
from minigen.tensor import Function, enable_grad, grad, no_grad  # noqa: F401
