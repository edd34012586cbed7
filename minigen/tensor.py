"""The autograd engine: Tensor, Function (one node of the graph), topological order, backward.

A ``Tensor`` wraps one NumPy or CuPy array. Applying a ``Function`` to tensors computes the
result on raw arrays (``forward``) and, when gradients are on, records the function as the
result's ``creator``. ``backward`` visits the functions in reverse topological order and calls
each one's ``backward``, which is written with differentiable ops: run with
``create_graph=True`` it records a graph of its own, so gradients can be differentiated again.

The operators and methods of Tensor (``+``, ``@``, ``.sum()``, ``.to()``, ...) are defined
in ``minigen.functional`` and attached there; this module holds only the graph machinery.
"""
import contextlib
import weakref

import numpy as np

import kernels
from minigen import backend


DEFAULT_DTYPE = np.float32


class Config:
    enable_grad = True


@contextlib.contextmanager
def _grad_mode(enabled):
    previous = Config.enable_grad
    Config.enable_grad = enabled
    try:
        yield
    finally:
        Config.enable_grad = previous


def no_grad():
    """Context manager: ops inside record no graph (inference, parameter updates)."""
    return _grad_mode(False)


def enable_grad():
    return _grad_mode(True)


def is_grad_enabled():
    return Config.enable_grad


class Tensor:
    """An array with an optional gradient and a link to the Function that produced it.

    Arrays keep their dtype (a float64 NumPy array stays float64, as ``torch.from_numpy``);
    Python numbers and lists of floats become ``DEFAULT_DTYPE`` (float32), as in PyTorch."""

    __slots__ = ("data", "_grad", "_requires_grad", "creator", "__weakref__")
    __array_ufunc__ = None  # ndarray <op> Tensor defers to Tensor's reflected operator
    __hash__ = object.__hash__  # hashable by identity (as in PyTorch), though == is elementwise

    def __init__(self, data, requires_grad=False):
        if type(data) is not np.ndarray:
            if isinstance(data, Tensor):
                data = data.data
            elif not hasattr(data, "__cuda_array_interface__"):
                python_data = not isinstance(data, np.generic)
                data = np.asarray(data)
                if python_data and data.dtype == np.float64:
                    data = data.astype(DEFAULT_DTYPE)  # Python floats take the default dtype
        self.data = data
        self._grad = None
        self.requires_grad = requires_grad
        self.creator = None

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if value and self.data.dtype.kind != "f":
            raise TypeError(
                f"requires_grad=True needs floating-point data, got dtype {self.data.dtype}"
            )
        self._requires_grad = bool(value)

    # --- array facts -------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return backend.device_of(self.data)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(backend.to_numpy(self.data), separator=", ", precision=4)
        extra = ", requires_grad=True" if self.requires_grad else ""
        extra += "" if self.device == "cpu" else ", device='cuda'"
        return f"tensor({body}, dtype={self.dtype}{extra})"

    def __array__(self, dtype=None, copy=None):
        a = backend.to_numpy(self.data)
        return a if dtype is None else a.astype(dtype)

    # --- gradient ----------------------------------------------------------------------
    @property
    def grad(self):
        """The accumulated gradient as a raw array (None before any backward)."""
        return None if self._grad is None else self._grad.data

    @grad.setter
    def grad(self, value):
        self._grad = None if value is None else Tensor(value)

    @property
    def grad_tensor(self):
        """The gradient as a Tensor; after ``backward(create_graph=True)`` it has a graph."""
        return self._grad

    def backward(self, grad=None, create_graph=False):
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad."""
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad and has no graph "
                "(was it computed under no_grad, or from tensors without requires_grad?)"
            )
        leaves = {}
        grads = backprop([self], [grad], create_graph, leaves=leaves)
        handed_out = set()
        for key, g in grads.items():
            leaf = leaves[key]
            if not create_graph:  # one own, writable array per leaf (no shared or broadcast views)
                fresh = id(g.data) not in handed_out and g.data.flags.c_contiguous
                g = Tensor(g.data if fresh and _writeable(g.data) else g.data.copy())
                handed_out.add(id(g.data))
            leaf._grad = g if leaf._grad is None else _accumulate(leaf._grad, g, create_graph)

    # --- conversions -------------------------------------------------------------------
    def detach(self):
        return Tensor(self.data)

    def numpy(self):
        return backend.to_numpy(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: tensor has {self.data.size} elements, expected 1")
        return self.data.reshape(-1)[0].item()

    def tolist(self):
        return self.numpy().tolist()


def _writeable(array):
    return getattr(array.flags, "writeable", True)  # CuPy arrays are always writeable


def _accumulate(a, b, create_graph):
    if create_graph:
        return a + b
    return Tensor(kernels.add(a.data, b.data))


def as_tensor(x, like=None):
    """``x`` as a Tensor; Python/NumPy scalars take the dtype and device of ``like``."""
    if isinstance(x, Tensor):
        return x
    if like is not None and np.isscalar(x):
        xp = backend.xp_of(like.data)
        return Tensor(xp.asarray(x, dtype=like.data.dtype))
    return Tensor(x)


class Function:
    """One differentiable operation. Subclasses define ``forward`` on raw arrays and
    ``backward`` on Tensors (with differentiable ops, so it can be differentiated again)."""

    def __call__(self, *inputs):
        xs = [x.data for x in inputs]
        first = xs[0]
        for a in xs[1:]:
            if type(a) is not type(first) and backend.device_of(a) != backend.device_of(first):
                raise ValueError(
                    f"{type(self).__name__}: inputs are on different devices "
                    f"({', '.join(backend.device_of(x) for x in xs)}); move them with .to(device)"
                )
        ys = self.forward(*xs)
        if not isinstance(ys, tuple):
            ys = (ys,)
        outputs = [Tensor(y) for y in ys]
        if Config.enable_grad and any(x._requires_grad for x in inputs):
            self.inputs = inputs
            self.outputs = [weakref.ref(o) for o in outputs]
            for o in outputs:
                if o.data.dtype.kind == "f":  # integer and boolean results carry no gradient
                    o._requires_grad = True
                    o.creator = self
        return outputs[0] if len(outputs) == 1 else outputs

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, *gys):
        raise NotImplementedError

    def output(self, i=0):
        """The i-th output Tensor (alive during backward), for rules that reuse it."""
        return self.outputs[i]()


class ToDevice(Function):
    def __init__(self, device):
        self.device = device

    def forward(self, x):
        self.source = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return gy.to(self.source)


class Cast(Function):
    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.source = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return Cast(self.source)(gy)


def _topological_order(roots, stop=()):
    """Functions reachable from ``roots``, each before the functions that produced its inputs
    (reversed depth-first post-order, iterative so deep graphs need no recursion); tensors
    whose ids are in ``stop`` are treated as leaves."""
    order, seen = [], set()
    stack = [(t.creator, False) for t in roots if t.creator is not None]
    while stack:
        f, expanded = stack.pop()
        if expanded:
            order.append(f)
            continue
        if id(f) in seen:
            continue
        seen.add(id(f))
        stack.append((f, True))
        for x in f.inputs:
            if x.creator is not None and id(x.creator) not in seen and id(x) not in stop:
                stack.append((x.creator, False))
    order.reverse()
    return order


def backprop(outputs, grad_outputs, create_graph=False, leaves=None, wanted=None, partial=False):
    """Reverse-mode sweep from ``outputs``.

    Returns ``{id(tensor): gradient Tensor}`` for the leaves that require grad (filling
    ``leaves`` with ``{id: tensor}``) or, when ``wanted`` (a dict ``{id: tensor}``) is given,
    for those tensors only; ``partial=True`` stops the sweep at the wanted tensors (partial
    derivatives, as a Function's backward needs). Gradients of intermediate tensors are freed
    as soon as they have been passed on.
    """
    grads = {}
    for out, g in zip(outputs, grad_outputs):
        if g is None:
            if out.data.size != 1:
                raise ValueError(
                    f"backward: gradient can be implied only for a scalar output, got shape "
                    f"{out.shape}; pass grad= (an array/Tensor of that shape)"
                )
            xp = backend.xp_of(out.data)
            g = Tensor(xp.ones_like(out.data))
        else:
            g = as_tensor(g)
            if g.shape != out.shape:
                raise ValueError(f"backward: grad shape {g.shape} != output shape {out.shape}")
        grads[id(out)] = _accumulate(grads[id(out)], g, create_graph) if id(out) in grads else g
    if leaves is not None:
        leaves.update({id(o): o for o in outputs if o.creator is None})
    captured = {}
    if wanted is not None:
        for key in wanted:
            if key in grads:
                captured[key] = grads[key]
    with _grad_mode(create_graph):
        for f in _topological_order(outputs, wanted if partial else ()):
            gys = []
            for ref in f.outputs:
                o = ref()
                g = None if o is None else grads.pop(id(o), None)
                if g is None and o is not None:
                    g = Tensor(backend.xp_of(o.data).zeros_like(o.data))
                gys.append(g)
            if all(g is None for g in gys):
                continue
            gxs = f.backward(*gys)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            for x, gx in zip(f.inputs, gxs):
                if gx is None or not x.requires_grad:
                    continue
                if gx.data.dtype != x.data.dtype:
                    gx = Cast(x.data.dtype)(gx)
                key = id(x)
                grads[key] = _accumulate(grads[key], gx, create_graph) if key in grads else gx
                if wanted is not None and key in wanted:
                    captured[key] = grads[key]
                elif leaves is not None and x.creator is None:
                    leaves[key] = x
    if wanted is not None:
        return captured
    return {k: v for k, v in grads.items() if k in leaves}


def grad(outputs, inputs, grad_outputs=None, create_graph=False, allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs`` (a tuple of Tensors), without
    touching any ``.grad``. With ``create_graph=True`` the results carry their own graph, so
    they can be differentiated again (gradient penalties, double-backward checks)."""
    single = isinstance(inputs, Tensor)
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, (Tensor,)) or hasattr(grad_outputs, "shape"):
        grad_outputs = [grad_outputs]
    for o in outputs:
        if not o.requires_grad:
            raise RuntimeError("grad: an output does not require grad (no graph to differentiate)")
    wanted = {id(x): x for x in inputs}
    found = backprop(outputs, grad_outputs, create_graph, wanted=wanted)
    result = []
    for x in inputs:
        g = found.get(id(x))
        if g is None:
            if not allow_unused:
                raise RuntimeError(
                    f"grad: an input of shape {x.shape} is not used in the graph of the outputs "
                    "(pass allow_unused=True to get None for it)"
                )
        elif not create_graph:
            g = Tensor(g.data)
        result.append(g)
    return result[0] if single else tuple(result)
