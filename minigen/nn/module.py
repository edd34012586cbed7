"""``Module`` and ``Parameter``: parameters found from attributes, state dicts, modes, devices.

A Module's parameters are its ``Parameter`` attributes and those of its sub-modules (also
inside lists, tuples and dicts), visited in a deterministic order: attributes sorted by
name, list items by index. Their dotted names (``blocks.0.conv.weight``) key the state dict.
"""
import contextlib

import numpy as np

from minigen import backend
from minigen.tensor import Tensor


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
    def named_children(self):
        for name in sorted(vars(self)):
            if name.startswith("_"):
                continue
            for full, item in _children(getattr(self, name), name):
                if isinstance(item, Module):
                    yield full, item

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return [m for _, m in self.named_modules()]

    def named_parameters(self, prefix=""):
        for name in sorted(vars(self)):
            if name.startswith("_"):
                continue
            for full, item in _children(getattr(self, name), name):
                full = f"{prefix}.{full}" if prefix else full
                if isinstance(item, Parameter):
                    yield full, item
                else:
                    yield from item.named_parameters(full)

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def register_buffer(self, name, array):
        """A non-trained array saved in the state dict (e.g. BatchNorm's running stats)."""
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
        return int(sum(p.size for p in self.parameters()))

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
        missing = sorted(set(targets) - set(state))
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

    def to(self, device):
        """Move every parameter and buffer to ``device`` ('cpu' or 'cuda') in place."""
        for p in self.parameters():
            p.data = backend.to_device(p.data, device)
            p.grad = None
        for _, mod, name in self.named_buffers():
            mod._buffers[name] = backend.to_device(mod._buffers[name], device)
        return self

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
