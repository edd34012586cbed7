"""Checkpoints: a nested dict of arrays and plain values in one ``.npz`` file, written atomically.

Layout of the file (a plain NumPy ``.npz``, readable with ``np.load``):

- every array leaf is one entry, named by its path of dict keys / list indices joined with
  ``/`` (``model/layers.0.weight``, ``optimizer/state/bias/exp_avg``);
- the entry ``__minigen__`` holds UTF-8 JSON: the format name and version, and the tree of
  the state with each array leaf replaced by ``{"__ndarray__": entry name}``. Everything that
  is not an array (ints of any size such as a NumPy generator's 128-bit state, floats, strings,
  bools, None, lists, dicts) lives in that JSON.

Dict keys must be non-empty strings without ``/``, backslash or NUL (they name zip entries).

Writing goes to a temporary file in the target's directory, which is flushed, fsync'ed and
then renamed over the target with ``os.replace`` (atomic on POSIX and Windows), so a crash in
the middle of a save leaves the previous checkpoint untouched (``atomic_write``; the
temporary file a ``kill -9`` leaves is deleted by ``remove_temporaries``). GPU (CuPy)
arrays are copied to the host with ``backend.to_numpy``; the live arrays are not moved.
``load`` returns NumPy arrays.
"""
import json
import os
import re
import uuid
import zipfile

import numpy as np

from minigen import backend
from minigen.errors import InvalidInput, MissingFile

FORMAT = "minigen-checkpoint"
FORMAT_VERSION = 1
META_KEY = "__minigen__"
ARRAY_MARKER = "__ndarray__"
SEPARATOR = "/"
# Not allowed in keys: in zip entry names "/" nests, "\\" becomes "/" on Windows, NUL ends the name.
BAD_KEY_CHARS = SEPARATOR + "\\\0"
TEMPORARY_SUFFIX = ".tmp"
TEMPORARY_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")  # what temporary_path makes


def _is_array(value):
    return isinstance(value, np.ndarray) or backend.device_of(value) == "cuda"


def _encode(value, path, arrays):
    """The JSON tree of ``value``; array leaves are moved into ``arrays`` under their path."""
    where = SEPARATOR.join(path) or "<root>"
    who = "minigen.save"
    if _is_array(value) or isinstance(value, np.generic):
        array = backend.to_numpy(value) if _is_array(value) else np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(f"{who}: array at {where!r} has dtype object, which cannot be saved")
        arrays[where] = array
        node = {ARRAY_MARKER: where}
        if isinstance(value, np.generic):
            node["scalar"] = True
        return node
    if isinstance(value, dict):
        node = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{who}: dict keys must be str, got {type(key).__name__} {key!r} at {where!r}"
                )
            if not key or key in (ARRAY_MARKER, META_KEY) or any(c in key for c in BAD_KEY_CHARS):
                raise ValueError(
                    f"{who}: invalid key {key!r} at {where!r} (keys must be non-empty, without "
                    f"{BAD_KEY_CHARS!r}, and not {ARRAY_MARKER!r} or {META_KEY!r})"
                )
            node[key] = _encode(item, path + [key], arrays)
        return node
    if isinstance(value, (list, tuple)):
        return [_encode(item, path + [str(i)], arrays) for i, item in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"{who}: cannot store {type(value).__name__} at {where!r}: use arrays, numbers, "
        "strings, None, lists and dicts (e.g. model.state_dict(), not the model)"
    )


def _decode(node, arrays):
    if isinstance(node, dict):
        if ARRAY_MARKER in node:
            array = arrays[node[ARRAY_MARKER]]
            return array[()] if node.get("scalar") else array
        return {key: _decode(item, arrays) for key, item in node.items()}
    if isinstance(node, list):
        return [_decode(item, arrays) for item in node]
    return node


def _write_npz(f, arrays):
    """What ``np.savez`` writes, without passing names as keyword arguments (an entry called
    ``file`` or ``allow_pickle`` would collide with savez's own parameters)."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def save(state, path):
    """Write the nested dict ``state`` to ``path`` (one ``.npz`` file) atomically.

    Tuples come back as lists, NumPy scalars as NumPy scalars of the same dtype, arrays as
    NumPy arrays (bit-exact, any dtype but object). The parent directory is created if needed.
    """
    if not isinstance(state, dict):
        raise TypeError(f"minigen.save: state must be a dict, got {type(state).__name__}")
    arrays = {}
    tree = _encode(state, [], arrays)
    meta = json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "tree": tree})
    arrays[META_KEY] = np.frombuffer(meta.encode("utf-8"), dtype=np.uint8)
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    atomic_write(path, lambda f: _write_npz(f, arrays))


def temporary_path(path):
    """Where :func:`atomic_write` puts the data for ``path`` before the rename: a hidden,
    unique name in the same directory (``.NAME.<12 hex>.tmp``)."""
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(directory, f".{name}.{uuid.uuid4().hex[:12]}{TEMPORARY_SUFFIX}")


def atomic_write(path, write, binary=True):
    """Create or replace the file ``path`` with what ``write(f)`` writes, atomically: into a
    temporary file of the same directory, flushed and fsync'ed, then renamed over ``path``
    (``os.replace``). A crash at any moment leaves either the old file or the new one, and at
    worst a temporary file that :func:`remove_temporaries` deletes."""
    path = os.fspath(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "xb" if binary else "x") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def remove_temporaries(directory):
    """Delete the temporary files that interrupted :func:`atomic_write` calls left in
    ``directory`` (e.g. after ``kill -9``); returns their names."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return []
    stale = sorted(name for name in os.listdir(directory) if TEMPORARY_NAME.match(name))
    for name in stale:
        os.unlink(os.path.join(directory, name))
    return stale


def load(path):
    """Read a checkpoint written by ``save``: the same nested structure, arrays as NumPy.

    Raises FileNotFoundError (``errors.MissingFile``) for a missing file and ValueError
    (``errors.InvalidInput``) naming the file for a truncated or corrupt file, an ``.npz``
    that minigen did not write, or a newer format.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFile(f"minigen.load: no checkpoint file at {path!r}")
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":
                raise ValueError("not an .npz (zip) archive")
        with np.load(path, allow_pickle=False) as npz:
            if META_KEY not in npz.files:
                raise ValueError(f"an .npz without the {META_KEY!r} entry, not written by minigen")
            meta = json.loads(bytes(npz[META_KEY]).decode("utf-8"))
            arrays = {name: npz[name] for name in npz.files if name != META_KEY}
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"its metadata does not describe a {FORMAT!r} file")
        if meta.get("version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"it has format version {meta['version']}, newer than this minigen's "
                f"{FORMAT_VERSION}: upgrade minigen"
            )
        return _decode(meta["tree"], arrays)
    except Exception as error:  # zipfile.BadZipFile, OSError, EOFError, zlib/JSON errors ...
        detail = error if type(error) is ValueError else f"{type(error).__name__}: {error}"
        raise InvalidInput(
            f"minigen.load: {path!r} is not a readable minigen checkpoint (truncated, corrupt "
            f"or foreign file): {detail}"
        ) from error
