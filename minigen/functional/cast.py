"""Conversions with PyTorch's names: dtype and device casts, Python numbers from one-element
tensors, ``view``/``view_as``/``size``, ``clone`` and ``nonzero``.

``to``/``type``/``float``/... are differentiable: the cast is the ``Cast`` Function, whose
backward casts the gradient back to the source dtype, so ``model(x.float())`` trains a
float32 model on float64 data without detaching it. ``bool(t)``, ``int(t)``, ``float(t)`` and
``operator.index(t)`` need exactly one element, as in PyTorch; anything else is an error that
names the size (NumPy's "ambiguous truth value" is the same rule).
"""
import numpy as np

from minigen import backend
from minigen.functional.ops import reshape
from minigen.tensor import DEFAULT_DTYPE, Cast, Function, Tensor, ToDevice


def _is_device(arg):
    return isinstance(arg, str) and (arg in ("cpu", "gpu") or arg.startswith("cuda"))


def as_dtype(dtype):
    """A NumPy dtype from a dtype, its name, or a tensor type (``mg.Tensor`` is the default
    float dtype, ``mg.FloatTensor`` float32, ...); dtypes that are not numbers are refused."""
    if dtype is Tensor:
        return np.dtype(DEFAULT_DTYPE)
    legacy = getattr(dtype, "dtype", None)  # a tensor type (mg.FloatTensor) holds its dtype
    dtype = np.dtype(legacy if isinstance(legacy, np.dtype) else dtype)
    if dtype.kind not in "biuf":
        raise TypeError(f"cast: {dtype} is not a tensor dtype; use mg.float32, mg.int64, ... or "
                        "a tensor type such as mg.FloatTensor")
    return dtype


def cast(x, dtype):
    """``x`` as ``dtype`` (differentiable; ``x`` itself when it already has that dtype)."""
    dtype = as_dtype(dtype)
    return x if x.dtype == dtype else Cast(dtype)(x)


def parse_to_args(args, device=None, dtype=None):
    """``(device, dtype)`` from PyTorch's ``to`` arguments: devices, dtypes, a tensor (its
    device and dtype), in any order, besides the keywords; None for what is not given."""
    for arg in args:
        if isinstance(arg, Tensor):
            device, dtype = arg.device, arg.dtype
        elif _is_device(arg):
            device = arg
        else:
            try:
                dtype = as_dtype(arg)
            except TypeError:
                raise ValueError(
                    f"to: {arg!r} is neither a device ('cpu', 'cuda') nor a dtype"
                ) from None
    return device, None if dtype is None else as_dtype(dtype)


def to(x, *args, device=None, dtype=None):
    """PyTorch's ``Tensor.to``: ``to(device)``, ``to(dtype)``, ``to(device, dtype)``,
    ``to(other_tensor)`` (its device and dtype) or keywords; returns ``x`` when nothing changes.
    Both the device copy and the cast are differentiable."""
    device, dtype = parse_to_args(args, device, dtype)
    if device is not None and backend.normalize_device(device) != x.device:
        x = ToDevice(device)(x)
    return x if dtype is None else cast(x, dtype)


def type_(x, dtype=None):
    """PyTorch's ``Tensor.type``: the dtype's name without an argument, else a cast (to a
    dtype, its name, or a tensor type: ``x.type(mg.FloatTensor)``, ``x.type(mg.Tensor)``)."""
    return x.dtype.name if dtype is None else cast(x, dtype)


def view(x, *shape):
    """PyTorch's ``view``: ``reshape`` (one ``-1`` may stand for the remaining size). minigen
    tensors do not share storage between views, so this is a copy-free reshape where NumPy
    can make one and a copy otherwise."""
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    if sum(1 for n in shape if n == -1) > 1:
        raise ValueError(f"view: only one dimension can be -1, got shape {shape}")
    return reshape(x, shape)


def view_as(x, other):
    return view(x, other.shape)


class Clone(Function):
    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return gy


def clone(x):
    """A copy of ``x`` that stays in the graph (its gradient passes through)."""
    return Clone()(x)


def nonzero(x, as_tuple=False):
    """Indices of the non-zero entries: an (n, ndim) int64 tensor, or with ``as_tuple`` one
    1-d tensor per axis (NumPy's ``nonzero``), as PyTorch's."""
    xp = backend.xp_of(x.data)
    if as_tuple:
        return tuple(Tensor(i.astype(np.int64)) for i in xp.nonzero(x.data))
    return Tensor(xp.argwhere(x.data).astype(np.int64))


def size(x, dim=None):
    """PyTorch's ``size``: the shape, or its length along ``dim`` (negative counts from the
    end). The element count is ``numel()``."""
    if dim is None:
        return x.shape
    if not -x.ndim <= dim < x.ndim:
        raise IndexError(f"size: dim {dim} out of range for a {x.ndim}-d tensor")
    return x.shape[dim]


def numel(x):
    return int(x.data.size)


def _reductions():
    """The reductions to suggest: ``any()``/``all()`` where Tensor has them."""
    names = [n for n in ("any", "all") if hasattr(Tensor, n)] + ["sum", "max"]
    return ", ".join(f".{n}()" for n in names)


def _one_element(x, what):
    if x.data.size != 1:
        raise ValueError(
            f"{what} of a tensor needs exactly one element, got {x.data.size} (shape {x.shape}); "
            f"reduce it first ({_reductions()}) or index one element"
        )
    return x.data.reshape(-1)[0].item()


def to_bool(x):
    return bool(_one_element(x, "bool()"))


def to_float(x):
    return float(_one_element(x, "float()"))


def to_int(x):
    return int(_one_element(x, "int()"))


def to_index(x):
    if x.dtype.kind not in "iub":
        raise TypeError(f"only integer tensors can be used as an index, got dtype {x.dtype}")
    return int(_one_element(x, "an index"))
