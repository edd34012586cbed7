"""``Module`` and ``Parameter``: parameters found from attributes, state dicts, modes, devices.

A Module's parameters are its ``Parameter`` attributes and those of its sub-modules (also
inside lists, tuples and dicts), visited in a deterministic order: attributes sorted by
name, list items by index. Their dotted names (``blocks.0.conv.weight``) key the state dict;
containers (``Sequential``, ``ModuleList``, ``ModuleDict``) name their items ``0``, ``1``, ...
or by key, as PyTorch does, so the same architecture has the same keys in both libraries.
"""
import contextlib
import itertools
import re

import numpy as np

from minigen import backend
from minigen.functional.cast import parse_to_args
from minigen.tensor import Tensor

_COUNTER = "num_batches_tracked"


class Parameter(Tensor):
    """A Tensor that a Module owns and an optimizer updates (requires grad by default)."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)


def _children(value, prefix):
    """(name, item) pairs of Parameters/Modules held directly in an attribute value."""
    if isinstance(value, (Parameter, Module)):
        yield prefix, value
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _children(v, f"{prefix}.{i}")
    elif isinstance(value, dict):
        for k in sorted(value):
            yield from _children(value[k], f"{prefix}.{k}")


class Module:
    """Base class of layers and models: subclasses set attributes and define ``forward``."""

    training = True

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    # --- traversal ---------------------------------------------------------------------
    def _members(self):
        """(name, value) pairs that may hold parameters and sub-modules: the public
        attributes sorted by name (containers yield their items instead)."""
        for name in sorted(vars(self)):
            if not name.startswith("_"):
                yield name, getattr(self, name)

    def named_children(self):
        for name, value in self._members():
            for full, item in _children(value, name):
                if isinstance(item, Module):
                    yield full, item

    def children(self):
        return [m for _, m in self.named_children()]

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return [m for _, m in self.named_modules()]

    def named_parameters(self, prefix=""):
        for name, value in self._members():
            for full, item in _children(value, name):
                full = f"{prefix}.{full}" if prefix else full
                if isinstance(item, Parameter):
                    yield full, item
                else:
                    yield from item.named_parameters(full)

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def apply(self, fn):
        """Call ``fn(module)`` on every sub-module, then on this one (PyTorch's order, e.g.
        ``model.apply(init_weights)``); returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def register_buffer(self, name, array):
        """A non-trained array saved in the state dict (e.g. BatchNorm's running stats)."""
        array = array.data if isinstance(array, Tensor) else array
        self.__dict__.setdefault("_buffers", {})[name] = array

    def named_buffers(self, prefix=""):
        for mod_name, mod in self.named_modules(prefix):
            for name in sorted(mod.__dict__.get("_buffers", {})):
                yield (f"{mod_name}.{name}" if mod_name else name), mod, name

    def __setattr__(self, name, value):
        buffers = self.__dict__.get("_buffers")
        if buffers is not None and name in buffers:
            buffers[name] = value  # keep a registered buffer in the state dict
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        buffers = self.__dict__.get("_buffers", {})
        if name in buffers:
            return buffers[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def num_parameters(self):
        return int(sum(p.data.size for p in self.parameters()))

    # --- state -------------------------------------------------------------------------
    def state_dict(self):
        """``{dotted name: NumPy array copy}`` of every parameter and buffer."""
        state = {name: backend.to_numpy(p.data).copy() for name, p in self.named_parameters()}
        for full, mod, name in self.named_buffers():
            state[full] = backend.to_numpy(mod._buffers[name]).copy()
        return state

    def load_state_dict(self, state, strict=True):
        """Copy arrays into the parameters and buffers, checking every key and shape first
        (a bad state dict raises before anything is changed)."""
        targets = {name: (p.data, p) for name, p in self.named_parameters()}
        for full, mod, name in self.named_buffers():
            targets[full] = (mod._buffers[name], (mod, name))
        state = migrate_keys(state, targets)
        # checkpoints from before BatchNorm counted its batches keep the current count (as PyTorch)
        missing = sorted(k for k in set(targets) - set(state) if not k.endswith(_COUNTER))
        unexpected = sorted(set(state) - set(targets))
        problems = []
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        for name in sorted(set(targets) & set(state)):
            have, want = np.shape(state[name]), targets[name][0].shape
            if tuple(have) != tuple(want):
                problems.append(f"{name}: checkpoint shape {tuple(have)} != model shape {tuple(want)}")
        if problems:
            raise ValueError(f"load_state_dict ({type(self).__name__}): " + "; ".join(problems))
        for name in sorted(set(targets) & set(state)):
            current, owner = targets[name]
            value = backend.to_device(np.asarray(state[name], dtype=current.dtype), backend.device_of(current))
            if isinstance(owner, Parameter):
                owner.data[...] = value  # in place: references to the array stay valid
            else:
                owner[0]._buffers[owner[1]] = value.copy()
        return self

    # --- modes and devices -------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    def to(self, *args, device=None, dtype=None):
        """Move every parameter and buffer to a device ('cpu' or 'cuda') and/or cast the
        floating-point ones to ``dtype``, in place: ``to(device)``, ``to(dtype)``,
        ``to(device, dtype)`` as PyTorch. Integer buffers (batch counters) keep their dtype."""
        device, dtype = parse_to_args(args, device, dtype)

        def convert(array):
            if device is not None:
                array = backend.to_device(array, device)
            if dtype is not None and array.dtype.kind == "f":
                array = array.astype(dtype, copy=False)
            return array

        for p in self.parameters():
            p.data = convert(p.data)
            p.grad = None
        for _, mod, name in self.named_buffers():
            mod._buffers[name] = convert(mod._buffers[name])
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    # --- display -----------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()})"]
        for name, child in self.named_children():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        if len(lines) == 1:
            return lines[0]
        lines[0] = lines[0][:-1]
        lines.append(f")  # {self.num_parameters():,} parameters")
        return "\n".join(lines)


@contextlib.contextmanager
def eval_mode(model):
    """``model`` in eval mode (no dropout, running statistics) inside the block, its previous
    mode restored after; callables without ``eval`` (e.g. plain functions) pass through."""
    was_training = getattr(model, "training", False)
    if was_training:
        model.eval()
    try:
        yield model
    finally:
        if was_training:
            model.train(True)


# Before minigen named container items as PyTorch does, Sequential kept them in an attribute
# ``layers`` (``net.layers.0.weight``, now ``net.0.weight``).
_LEGACY_SEGMENT = re.compile(r"(?:^|(?<=\.))layers\.(?=\d+(?:\.|$))")


def migrate_keys(state, wanted):
    """``state`` with the keys of older checkpoints renamed to the ``wanted`` names: a key
    that is not wanted is renamed when dropping some of its ``layers.`` segments before an
    index gives a wanted key that ``state`` lacks. Optimizer and EMA states are keyed by the
    same names and use the same migration."""
    free = set(wanted) - set(state)
    renamed = {}
    for key, value in state.items():
        new = key
        if key not in wanted and free:
            spots = [m.start() for m in _LEGACY_SEGMENT.finditer(key)]
            for r in range(1, len(spots) + 1):
                for subset in itertools.combinations(reversed(spots), r):
                    candidate = key
                    for at in subset:  # from the right, so earlier positions stay valid
                        candidate = candidate[:at] + candidate[at + len("layers."):]
                    if candidate in free:
                        new = candidate
                        break
                if new != key:
                    break
            free.discard(new)
        renamed[new] = value
    return renamed
