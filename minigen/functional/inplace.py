"""In-place writes with PyTorch's names: ``fill_``, ``zero_``, ``normal_``, ``uniform_``, and
item assignment ``x[index] = value``.

They overwrite ``x.data`` (the same array, so a Parameter's optimizer state and views stay
valid) and return ``x``. As in PyTorch they are refused on a tensor that requires grad while
gradients are being recorded: the graph would silently use the new values. Wrap them in
``mg.no_grad()`` (what ``nn.init`` does) to initialise parameters. The refusal also covers
non-leaf tensors (PyTorch rewrites their graph instead). Each fill bumps the tensor's version,
so a graph that saw the old values refuses to backward.
Random draws come from minigen's generator (``mg.manual_seed``).

Item assignment follows PyTorch's autograd rule: refused on a leaf that requires grad while
gradients are recorded; on any other tensor it is recorded as the function
``SetItem(previous x, value)``, so gradients flow to ``value`` and to the entries of the
previous ``x`` that were not overwritten.
"""
import weakref

from minigen import backend
from minigen.functional.ops import raw_index, cast, getitem, sum_to
from minigen.tensor import Function, Tensor, is_grad_enabled


def _writable(x, op):
    """``x`` after checking that it may change in place, its version bumped."""
    if x.requires_grad and is_grad_enabled():
        kind = "a leaf tensor" if x.creator is None else "a tensor"
        raise RuntimeError(
            f"{op}: {kind} that requires grad cannot be changed in place while gradients are "
            "recorded; wrap the call in `with mg.no_grad():`"
        )
    x._version += 1
    return x


def fill_(x, value):
    _writable(x, "fill_").data[...] = value
    return x


def zero_(x):
    return fill_(x, 0)


def normal_(x, mean=0.0, std=1.0):
    """Fill with N(mean, std^2) samples."""
    _writable(x, "normal_")
    x.data[...] = mean + std * backend.rng(x.device).standard_normal(x.shape)
    return x


def uniform_(x, a=0.0, b=1.0):
    """Fill with U(a, b) samples."""
    _writable(x, "uniform_")
    x.data[...] = backend.rng(x.device).uniform(a, b, size=x.shape)
    return x


class SetItem(Function):
    """``x`` with ``x[index] = value`` (on a copy): d/dx is the gradient with the written
    entries zeroed, d/dvalue the gradient at those entries summed over broadcasting."""

    def __init__(self, index):
        self.index = index

    def forward(self, x, value):
        y = x.copy()
        y[self.index] = value
        return y

    def backward(self, gy):
        x, value = self.inputs
        gx = SetItem(self.index)(gy, Tensor(backend.xp_of(gy.data).zeros((), gy.dtype)))
        gv = getitem(gy, self.index)
        return gx, sum_to(gv, value.shape) if gv.shape != value.shape else gv


def setitem(x, index, value):
    """``x[index] = value`` (PyTorch's semantics; see the module docstring)."""
    index = raw_index(index, backend.xp_of(x.data))
    value = cast(value if isinstance(value, Tensor) else backend.xp_of(x.data).asarray(value),
                 x.dtype)
    if not (is_grad_enabled() and (x.requires_grad or value.requires_grad)):
        x.data[index] = value.data
        x._version += 1
        return
    if x.requires_grad and x.creator is None:
        raise RuntimeError(
            "x[index] = value: a leaf tensor that requires grad cannot be changed in place "
            "while gradients are recorded; wrap it in `with mg.no_grad():`, or assign into "
            "a copy (y = x * 1; y[index] = value)"
        )
    previous = Tensor(x.data)  # takes x's place in the graph that produced it
    previous._requires_grad, previous.creator = x.requires_grad, x.creator
    if x.creator is not None:
        x.creator.outputs = [weakref.ref(previous) if r() is x else r for r in x.creator.outputs]
    y = SetItem(index)(previous, value)
    x.data, x.creator, x._requires_grad = y.data, y.creator, True
    y.creator.outputs, y.creator.output_version = [weakref.ref(x)], x._version
