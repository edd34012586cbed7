"""``Dataset``, ``TensorDataset`` and ``DataLoader`` with PyTorch's names and behaviour
(re-exported from ``minigen.data``).

A ``DataLoader`` is re-iterable: each ``for`` over it is one epoch, in a fresh random order
when ``shuffle=True``. The order comes from its own generator when ``seed`` is given, else
from minigen's generator (``mg.manual_seed``), drawn at the start of each epoch as PyTorch
draws from its global generator. Batches are Tensors, stacked from the dataset's items; a
``TensorDataset`` yields tuples (one per stored tensor, also when there is one, as PyTorch).
``state_dict()`` holds the position in the current epoch (its order and how many batches
were taken), so a run resumed with ``load_state_dict`` sees exactly the batches it would
have seen.
"""
import math
import numbers

import numpy as np

from minigen import backend
from minigen.tensor import Tensor


class Dataset:
    """A map-style dataset: subclasses define ``__getitem__(i)`` and ``__len__()``. An item
    is an array, a Tensor, a number, or a tuple of those."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} does not define __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} does not define __len__")


def _raw(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


class TensorDataset(Dataset):
    """Tensors (or arrays) sharing their first dim; item i is the tuple of their rows i."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: give at least one tensor")
        self.tensors = tuple(_raw(t) for t in tensors)
        if any(t.ndim == 0 for t in self.tensors):
            raise ValueError("TensorDataset: tensors need a leading sample dim, got a 0-d one")
        lengths = [len(t) for t in self.tensors]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: tensors differ in their first dim: {lengths}")

    def __getitem__(self, index):
        return tuple(Tensor(t[index]) for t in self.tensors)

    def __len__(self):
        return len(self.tensors[0])

    def _batch(self, indices):
        return tuple(Tensor(t[backend.to_device(indices, backend.device_of(t))])
                     for t in self.tensors)


def _collate(items):
    """Stack a list of items (arrays, Tensors, numbers, or tuples of them) into Tensors."""
    if isinstance(items[0], (tuple, list)):
        return tuple(_collate([item[k] for item in items]) for k in range(len(items[0])))
    raws = [_raw(x) for x in items]
    return Tensor(backend.xp_of(*raws).stack(raws))


class DataLoader:
    """Mini-batches of ``dataset`` (PyTorch's ``DataLoader`` without worker processes):
    ``num_workers`` and ``pin_memory`` are accepted for PyTorch scripts and change nothing,
    batches are made in this process."""

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
                 num_workers=0, pin_memory=False):
        if (isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral)
                or batch_size < 1):
            raise ValueError(f"DataLoader: batch_size must be an integer >= 1, got "
                             f"{batch_size!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be an int >= 0, got {num_workers!r}")
        if len(dataset) == 0:
            raise ValueError("DataLoader: the dataset is empty")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last = shuffle, drop_last
        self._rng = None if seed is None else np.random.default_rng(seed)
        self._order, self._taken = None, 0  # the epoch in progress
        self._resuming = False

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _new_order(self):
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        rng = self._rng if self._rng is not None else backend.rng("cpu")
        return rng.permutation(n)

    def __iter__(self):
        """One epoch: a new one on every ``iter()``, except right after ``load_state_dict``,
        which continues the saved epoch."""
        if not self._resuming or self._order is None:
            self._order, self._taken = self._new_order(), 0
        self._resuming = False
        while self._taken < len(self):
            start = self._taken * self.batch_size
            indices = self._order[start:start + self.batch_size]
            self._taken += 1
            yield self._fetch(indices)

    def _fetch(self, indices):
        if hasattr(self.dataset, "_batch"):
            return self.dataset._batch(indices)
        return _collate([self.dataset[int(i)] for i in indices])

    def state_dict(self):
        """The position: the order of the epoch in progress and the batches taken from it
        (order None between epochs), and the loader's own generator state when it has one.
        Without a seed, later epochs draw from minigen's generator: checkpoint it too
        (``backend.get_rng_state``) for an exact resume."""
        between = self._order is None or self._taken >= len(self)
        return {
            "order": None if between else self._order.copy(),
            "taken": 0 if between else self._taken,
            "rng": None if self._rng is None else self._rng.bit_generator.state,
        }

    def load_state_dict(self, state):
        order = state["order"]
        if order is not None and len(order) != len(self.dataset):
            raise ValueError(f"DataLoader.load_state_dict: the saved epoch covers {len(order)} "
                             f"samples, the dataset has {len(self.dataset)}")
        if (state["rng"] is None) != (self._rng is None):
            raise ValueError("DataLoader.load_state_dict: saved with"
                             f"{'out' if state['rng'] is None else ''} a seed, this loader "
                             f"has{' none' if self._rng is None else ' one'}")
        self._order = None if order is None else np.asarray(order, dtype=np.int64)
        self._taken = int(state["taken"]) if order is not None else 0
        self._resuming = True
        if self._rng is not None:
            self._rng.bit_generator.state = state["rng"]
        return self
