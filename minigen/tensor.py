"""The autograd engine: Tensor, Function (one node of the graph), topological order, backward.

A ``Tensor`` wraps one NumPy or CuPy array. Applying a ``Function`` to tensors computes the
result on raw arrays (``forward``) and, when gradients are on, records the function as the
result's ``creator``. ``backward`` visits the functions in reverse topological order and calls
each one's ``backward``, which is written with differentiable ops: run with
``create_graph=True`` it records a graph of its own, so gradients can be differentiated again.

Two checks keep a backward from silently computing with the wrong numbers, as PyTorch's do:
every Tensor carries a version counter (``_version``), bumped by every write minigen sees
(``t.data = ...``, item assignment, ``fill_`` and friends, optimizer steps); a Function
records its inputs' versions and ``backward`` refuses when one has changed since. And a
backward frees the graph it ran through (its Functions drop their inputs), so a second
backward through it is refused unless the first was given ``retain_graph=True``. Writes
into the raw array (``t.data[...] = v``) bypass the counter, as writes through ``.data`` do in
PyTorch: docs/from-pytorch.md says what is caught.

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


class Size(tuple):
    """A shape, as PyTorch's ``torch.Size``: a tuple that ``Tensor(size)`` reads as a shape."""

    __slots__ = ()

    def numel(self):
        return int(np.prod(self, dtype=np.int64))


def _legacy_shape(args):
    """The shape of PyTorch's legacy constructor ``Tensor(*sizes)`` / ``Tensor(size)``."""
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in args):
        raise TypeError(f"Tensor(*sizes): sizes must be ints, got {args}; for data give one "
                        "array, list or number")
    return tuple(int(n) for n in args)


class Tensor:
    """An array with an optional gradient and a link to the Function that produced it.

    Arrays keep their dtype (a float64 NumPy array stays float64, as ``torch.from_numpy``);
    Python numbers and lists of floats become ``DEFAULT_DTYPE`` (float32), as in PyTorch.
    PyTorch's legacy forms make a zero-filled ``DEFAULT_DTYPE`` tensor of a shape: several
    ints (``Tensor(64, 1)``) or a ``Size`` (``Tensor(x.shape)``); PyTorch leaves it
    uninitialised."""

    __slots__ = ("_data", "_version", "_grad", "_requires_grad", "creator", "__weakref__")
    __array_ufunc__ = None  # ndarray <op> Tensor defers to Tensor's reflected operator
    __hash__ = object.__hash__  # hashable by identity (as in PyTorch), though == is elementwise

    def __init__(self, data, *sizes, requires_grad=False):
        if sizes or type(data) is Size:
            data = np.zeros(_legacy_shape((data, *sizes) if sizes else data), DEFAULT_DTYPE)
        elif type(data) is not np.ndarray:
            if isinstance(data, Tensor):
                data = data.data
            elif not hasattr(data, "__cuda_array_interface__"):
                python_data = not isinstance(data, np.generic)
                data = np.asarray(data)
                if python_data and data.dtype == np.float64:
                    data = data.astype(DEFAULT_DTYPE)  # Python floats take the default dtype
        self._data = data
        self._version = 0
        self._grad = None
        self.requires_grad = requires_grad
        self.creator = None

    @property
    def data(self):
        """The raw NumPy/CuPy array. Assigning a new array counts as an in-place change."""
        return self._data

    @data.setter
    def data(self, array):
        self._data = array
        self._version += 1

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
        return Size(self._data.shape)

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

    def backward(self, grad=None, retain_graph=None, create_graph=False):
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad.

        The graph is freed as it is used unless ``retain_graph`` (default: ``create_graph``)."""
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad and has no graph "
                "(was it computed under no_grad, or from tensors without requires_grad?)"
            )
        leaves = {}
        retain = create_graph if retain_graph is None else retain_graph
        grads = backprop([self], [grad], create_graph, leaves=leaves, free=not retain)
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
    ``backward`` on Tensors (with differentiable ops, so it can be differentiated again).
    ``output_version`` is the version its outputs had when made: 0, except for an in-place op
    whose output is the tensor it changed."""

    output_version = 0

    def __call__(self, *inputs):
        xs = [x._data for x in inputs]
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
            self.versions = [x._version for x in inputs]
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


FREED = (
    "backward: trying to backward through the graph a second time (its saved values were "
    "freed by the first backward or grad); pass retain_graph=True to the first call if you "
    "need to go through the graph again"
)


def _topological_order(roots, stop=()):
    """Functions reachable from ``roots``, each before the functions that produced its inputs
    (reversed depth-first post-order, iterative so deep graphs need no recursion); tensors
    whose ids are in ``stop`` are treated as leaves. A freed Function (inputs None) raises."""
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
        if f.inputs is None:
            raise RuntimeError(FREED)
        for x in f.inputs:
            if x.creator is not None and id(x.creator) not in seen and id(x) not in stop:
                stack.append((x.creator, False))
    order.reverse()
    return order


def _leading_to(order, wanted):
    """The Functions of ``order`` through which some tensor of ``wanted`` is reached (the
    others would compute gradients nobody asked for)."""
    needed = set()
    for f in reversed(order):  # producers before consumers
        if any(id(x) in wanted or id(x.creator) in needed for x in f.inputs):
            needed.add(id(f))
    return needed


def _check_versions(f):
    """Refuse to differentiate ``f`` when one of its inputs or outputs changed in place."""
    changed = [(f"input {i}", x, v) for i, (x, v) in enumerate(zip(f.inputs, f.versions))
               if x._version != v]
    changed += [(f"output {i}", o, f.output_version) for i, o in enumerate(r() for r in f.outputs)
                if o is not None and o._version != f.output_version]
    if changed:
        what, t, v = changed[0]
        raise RuntimeError(
            "backward: one of the variables needed for gradient computation has been modified "
            f"by an inplace operation: the {what} of {type(f).__name__} ({t.dtype} tensor of "
            f"shape {t.shape}) is at version {t._version}; expected version {v} instead. Make "
            "the change after backward, or change a copy (y = x * 1)"
        )


def backprop(outputs, grad_outputs, create_graph=False, leaves=None, wanted=None, partial=False,
             free=False):
    """Reverse-mode sweep from ``outputs``.

    Returns ``{id(tensor): gradient Tensor}`` for the leaves that require grad (filling
    ``leaves`` with ``{id: tensor}``) or, when ``wanted`` (a dict ``{id: tensor}``) is given,
    for those tensors only; ``partial=True`` stops the sweep at the wanted tensors (partial
    derivatives, as a Function's backward needs). Gradients of intermediate tensors are freed
    as soon as they have been passed on; ``free=True`` also frees each Function that ran (a
    later sweep through it raises). Every Function checks first that no tensor it saw has been
    changed in place since the forward.
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
    order = _topological_order(outputs, wanted if partial else ())
    needed = _leading_to(order, wanted) if wanted is not None and not partial else None
    pending = {}  # with free: the tensors whose gradient waits (ids must stay theirs)
    with _grad_mode(create_graph):
        for f in order:
            if needed is not None and id(f) not in needed:
                continue
            _check_versions(f)
            gys = []
            for ref in f.outputs:
                o = ref()
                g = None if o is None else grads.pop(id(o), None)
                pending.pop(id(o), None)
                if g is None and o is not None:
                    g = Tensor(backend.xp_of(o.data).zeros_like(o.data))
                gys.append(g)
            if all(g is None for g in gys):
                continue
            gxs = f.backward(*gys)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            inputs = f.inputs
            if free:
                f.inputs = None
            for x, gx in zip(inputs, gxs):
                if gx is None or not x.requires_grad:
                    continue
                if gx.data.dtype != x.data.dtype:
                    gx = Cast(x.data.dtype)(gx)
                key = id(x)
                grads[key] = _accumulate(grads[key], gx, create_graph) if key in grads else gx
                if free:
                    pending[key] = x
                if wanted is not None and key in wanted:
                    captured[key] = grads[key]
                elif leaves is not None and x.creator is None:
                    leaves[key] = x
    if wanted is not None:
        return captured
    return {k: v for k, v in grads.items() if k in leaves}


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs`` (a tuple of Tensors), without
    touching any ``.grad``. With ``create_graph=True`` the results carry their own graph, so
    they can be differentiated again (gradient penalties, double-backward checks). Only the
    part of the graph that leads to ``inputs`` runs, and it is freed unless ``retain_graph``
    (default: ``create_graph``)."""
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
    retain = create_graph if retain_graph is None else retain_graph
    found = backprop(outputs, grad_outputs, create_graph, wanted=wanted, free=not retain)
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
