"""Option tables: each trainer option's name, type, range or choices and meaning, and the one
check of them that the trainers' constructors, the command line's flags and ``--set`` share.

A trainer keeps a table ``{name: Option}`` next to its defaults and calls :func:`check` first
thing, so that a bad value is refused with one line naming the option before anything is
built, allocated or written; :func:`check_batch` and :func:`check_memory` then refuse a
batch that the ranks cannot share or the memory cannot hold, estimated from the autograd
graph of a small batch. The
tables are listed in docs/guide.md.
"""
import math
import numbers
import os

from minigen import backend, distributed
from minigen.errors import InvalidInput
from minigen.graph import graph_bytes
from minigen.trainer import check_options

MAX_COUNT = 2**31 - 1
"""Largest batch, step count or width an option accepts, and the command line's largest
--n, --steps and --batch-size: beyond it no run fits in memory or time."""

MEMORY_FRACTION = 0.9
"""Share of the available memory a training step may be estimated to take."""


class Option:
    """One option: ``kind`` "int", "float", "bool", "choice", "ints" / "floats" (a list of
    ``length`` values, any length when None) or "dict" (its keys checked by ``table``: a dict
    of Options, or a function of the merged options returning one); numbers lie in
    [``low``, ``high``] (``open``: "low", "high" or "both" ends excluded; floats are always
    finite); ``choices`` for "choice"; ``none`` says what None means where None is allowed;
    ``meaning`` is the help text."""

    def __init__(self, kind, meaning, low=None, high=None, open="", choices=None, none=None,
                 length=None, table=None):
        self.kind, self.meaning, self.low, self.high, self.open = kind, meaning, low, high, open
        self.choices, self.none, self.length, self.table = choices, none, length, table

    def describe(self):
        """What a valid value is, e.g. "a number in [0, 1)" or "an integer >= 1"."""
        if self.kind == "choice":
            text = (repr(self.choices[0]) if len(self.choices) == 1 else
                    f"one of {tuple(self.choices)}")
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "dict":
            text = "a dict"
        else:
            what = {"int": "an integer", "ints": "integers", "float": "a finite number",
                    "floats": "finite numbers"}[self.kind]
            if self.kind in ("ints", "floats"):
                count = "a list of" if self.length is None else f"a list of {self.length}"
                what = f"{count} {what}"
            text = what + self._range()
        return text if self.none is None else f"{text}, or null ({self.none})"

    def _range(self):
        low_open, high_open = self.open in ("low", "both"), self.open in ("high", "both")
        if self.low is not None and self.high is not None:
            return (f" in {'(' if low_open else '['}{_number(self.low)}, "
                    f"{_number(self.high)}{')' if high_open else ']'}")
        if self.low is not None:
            return f" {'>' if low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f" {'<' if high_open else '<='} {_number(self.high)}"
        return ""

    def parse(self, value, options=None):
        """``value`` checked and normalised (integral floats to int, lists of a "dict" option's
        entries checked by its table); otherwise a ``ValueError`` whose message continues
        the option's name: " must be ..." or, for an entry of a dict, ".entry must be ...".
        ``options``: the merged options that a "dict" table function reads."""
        if value is None and self.none is not None:
            return None
        if self.kind == "dict":
            if not isinstance(value, dict):
                raise ValueError(f" must be a dict, got {value!r}")
            table = self.table(options) if callable(self.table) else self.table
            return check_table(table, value)
        if self.kind in ("ints", "floats"):
            items = list(value) if isinstance(value, (list, tuple)) else None
            if items is None or (self.length is not None and len(items) != self.length) or (
                    self.length is None and not items):
                raise ValueError(f" must be {self.describe()}, got {value!r}")
            try:
                return [self._scalar(item, self.kind[:-1]) for item in items]
            except ValueError:
                raise ValueError(f" must be {self.describe()}, got {value!r}") from None
        try:
            return self._scalar(value, self.kind)
        except ValueError:
            raise ValueError(f" must be {self.describe()}, got {value!r}") from None

    def _scalar(self, value, kind):
        if kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise ValueError
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError
        if kind == "int":
            if not float(value).is_integer():
                raise ValueError
            value = int(value)
        elif not math.isfinite(value):
            raise ValueError
        else:
            value = float(value)
        low_open, high_open = self.open in ("low", "both"), self.open in ("high", "both")
        if self.low is not None and (value < self.low or low_open and value == self.low):
            raise ValueError
        if self.high is not None and (value > self.high or high_open and value == self.high):
            raise ValueError
        return value


def check_table(table, values):
    """``values`` (a dict) with every entry checked by ``table``; an entry that the table
    does not name is refused with the list of those it does (the ``ValueError``'s message
    continues the dict's name, see :meth:`Option.parse`)."""
    checked = dict(values)
    for name, option in table.items():
        if name in values:
            try:
                checked[name] = option.parse(values[name], checked)
            except ValueError as err:
                raise ValueError(f".{name}{err}") from None
    unknown = sorted(set(values) - set(table))
    if unknown:
        raise ValueError(f" has no entries {unknown}; valid entries are {sorted(table)}")
    return checked


def check(owner, table, options, defaults):
    """``defaults`` updated with ``options`` (unknown names refused by
    :func:`minigen.trainer.check_options`), every value checked against ``table``: an
    ``InvalidInput`` naming the first bad option and what it must be. Dict options are checked
    entry by entry, after the plain options they may depend on."""
    merged = check_options(owner, options, defaults)
    order = sorted(table, key=lambda name: table[name].kind == "dict")
    for name in order:
        if name in merged:
            try:
                merged[name] = table[name].parse(merged[name], merged)
            except ValueError as err:
                raise InvalidInput(f"{owner}: {name}{err}") from None
    return merged


def check_batch(owner, batch_size, comm=None, group=1):
    """Refuse (``InvalidInput``) a global ``batch_size`` that the ranks of ``comm`` cannot
    share: each needs at least one ``group`` of rows (a PacGAN pack)."""
    comm = distributed.world() if comm is None else comm
    if batch_size // group < comm.size:
        raise InvalidInput(f"{owner}: batch_size {batch_size} is the global batch, split over "
                           f"{comm.size} ranks: it must be at least {comm.size * group}")


def check_memory(owner, batch_size, step_graph, comm=None, group=1, device="cpu"):
    """Refuse (``InvalidInput``) a global ``batch_size`` whose training step, estimated by
    :func:`step_memory` with ``step_graph`` for a rank's share, cannot fit in
    :data:`MEMORY_FRACTION` of the memory available on ``device``."""
    comm = distributed.world() if comm is None else comm
    share = math.ceil(batch_size / group / comm.size) * group
    need = step_memory(step_graph, share, group)
    free = available_memory(device)
    if need > MEMORY_FRACTION * free:
        per_example = step_memory(step_graph, 2 * group, group) - step_memory(
            step_graph, group, group)
        raise InvalidInput(f"{owner}: batch_size {batch_size} needs about {_size(need)} per "
                           f"training step{' on each rank' if comm.size > 1 else ''} "
                           f"({_size(per_example / group)} per example), {_size(free)} of "
                           f"memory are available on {device}; use a smaller batch_size")


def step_memory(step_graph, batch, group=1):
    """Bytes that a training step of ``batch`` examples is estimated to take: twice what the
    autograd graph of its loss holds (the forward arrays, then as much again for their
    gradients), the graph's bytes extrapolated linearly in the batch from those of
    ``step_graph(group)`` and ``step_graph(2 * group)`` (``step_graph(m)`` builds the loss of
    ``m`` examples, a multiple of ``group``)."""
    one, two = (graph_bytes(step_graph(m * group)) for m in (1, 2))
    return 2 * (one + (two - one) * (batch - group) / group)


def available_memory(device="cpu"):
    """Bytes that new arrays can take on ``device`` now: free GPU memory, or the host's
    ``MemAvailable`` (free pages where /proc/meminfo is missing)."""
    if backend.normalize_device(device) == "cuda":
        import cupy

        return cupy.cuda.runtime.memGetInfo()[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _number(x):
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TiB"


def rows(table, prefix=""):
    """``(name, what it must be, meaning)`` of each option of ``table`` and, dotted, of each
    entry of its dict options with a fixed table: the lists of docs/guide.md."""
    for name, option in table.items():
        yield prefix + name, option.describe(), option.meaning
        if option.kind == "dict" and isinstance(option.table, dict):
            yield from rows(option.table, f"{prefix}{name}.")
