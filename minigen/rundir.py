"""A run directory: the files of one training run, and the rules that keep them one run's.

    DIR/config.json      {"kind", "seed", "steps", options...}, written when the run starts
    DIR/checkpoint.npz   the trainer's state, the step, the history, the RNG state, the config
    DIR/history.json     the metrics of every step
    DIR/.minigen.lock    the pid of the process that writes the run, while it runs
    DIR/*.png            figures of the trainers

The rules (:class:`RunDirectory`):

- one run per directory: a fresh run refuses a directory that holds a run (config.json or
  checkpoint.npz: ``RunExists``) unless ``overwrite``, and refuses a directory that is not
  empty and holds no run (someone's other files) even with ``overwrite``; the refusals
  change nothing on disk;
- one writer per directory: the process that trains a run (fresh, resumed or overwritten)
  holds an advisory lock (``fcntl.flock``) on the lock file for the whole run; another
  writer is refused (``RunBusy``, naming the holder's pid); the kernel releases the lock of
  a process that dies, so a stale lock file of a dead process is simply taken over;
- every file is written atomically (:func:`minigen.checkpoint.atomic_write`), so a reader
  (``minigen sample``) always sees a whole checkpoint, and a kill at any moment leaves the
  previous one; the temporary files such a kill leaves are removed when the next run starts;
- a resume continues the run's own kind and data: :func:`open_run` and
  :func:`check_resume_data` refuse anything else before any work.

Under ``mpiexec`` rank 0 alone writes and holds the lock; every rank checks and the ranks
agree (:func:`minigen.distributed.any_rank`) before rank 0 writes.
"""
import contextlib
import hashlib
import json
import os
import warnings

import numpy as np

from minigen import backend, checkpoint, distributed
from minigen.errors import (
    IgnoredOptions, InvalidInput, MissingFile, ResumeNotice, RunBusy, RunExists, RunMismatch,
)

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, one writer is the user's to ensure
    fcntl = None

CHECKPOINT_FILE = "checkpoint.npz"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
LOCK_FILE = ".minigen.lock"
RUN_FILES = (CONFIG_FILE, CHECKPOINT_FILE)  # a directory holding either of them holds a run
RESERVED_KEYS = ("step", "history", "rng", "config")
"""Top-level checkpoint keys the trainer itself uses; a trainer's ``state()`` must not."""


def read_run_config(run_dir):
    """The ``config.json`` of a run directory, with a clear error when there is none."""
    path = os.path.join(os.fspath(run_dir), CONFIG_FILE)
    if not os.path.isfile(path):
        raise MissingFile(f"{run_dir!s} is not a minigen run directory (no {CONFIG_FILE})")
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as err:
        raise InvalidInput(f"{path} is not readable JSON ({err})") from err


def read_run(run_dir, kind):
    """``(config, state)`` of the ``kind`` ("ddpm" | "gan") run saved in ``run_dir`` by
    :meth:`minigen.trainer.Trainer.save_checkpoint`: its config and what the trainer's
    ``state()`` returned (one checkpoint file, read whole: consistent while a run writes)."""
    config = read_run_config(run_dir)
    if config.get("kind") != kind:
        raise RunMismatch(f"{run_dir!s} holds a {config.get('kind')!r} run, not a {kind!r} run")
    path = os.path.join(os.fspath(run_dir), CHECKPOINT_FILE)
    if not os.path.isfile(path):
        raise MissingFile(f"{run_dir!s} has no checkpoint ({CHECKPOINT_FILE}) yet")
    saved = checkpoint.load(path)
    return saved["config"], {k: v for k, v in saved.items() if k not in RESERVED_KEYS}


def open_run(out_dir, kind, resume=False, overwrite=False):
    """Check the run directory ``out_dir`` of a ``kind`` training run before any work;
    changes nothing on disk. Returns the saved config of the run that ``resume`` continues
    (from its checkpoint, else its config.json), or None when the run starts afresh.

    Refuses with one clear error: ``resume`` together with ``overwrite``; a path that is a
    file or not writable; a fresh start (no ``resume``) into a directory that holds a run,
    unless ``overwrite``, or into a non-empty directory that holds no run; a ``resume`` of a
    directory that does not exist, or of a run of another kind. A ``resume`` of an empty
    directory starts the run afresh with a ``ResumeNotice``."""
    out_dir = os.fspath(out_dir)
    if resume and overwrite:
        raise InvalidInput("--resume continues the run in the directory and --overwrite "
                           "replaces it: give one of them")
    check_writable_directory(out_dir, "--out")
    run = RunDirectory(out_dir, distributed.SingleProcess())
    held = run.held()
    if resume and not os.path.isdir(out_dir):
        raise MissingFile(f"--resume: {out_dir} does not exist, there is no run to resume; "
                          "start the run without --resume")
    if not resume or not held:
        run.check_fresh(overwrite, "continue it with --resume, or replace it with "
                                   "--overwrite (or choose another --out)")
        if resume:
            warnings.warn(f"--resume: {out_dir} holds no run yet; it starts at step 0",
                          ResumeNotice, stacklevel=3)
        return None
    config = (checkpoint.load(run.checkpoint_path)["config"] if CHECKPOINT_FILE in held
              else read_run_config(out_dir))
    if config.get("kind") != kind:
        raise RunMismatch(f"--resume: {out_dir} holds a {config.get('kind')!r} run, not a "
                          f"{kind!r} run")
    return config


def check_writable_directory(path, option):
    """A clear error, before any work, when ``path`` cannot be a directory we write into:
    it is a file, or it (or, if it does not exist yet, its nearest existing parent) is not a
    writable directory."""
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise InvalidInput(f"{option} {path}: exists and is not a directory")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise InvalidInput(f"{option} {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidInput(f"{option} {path}: {existing} is not writable")


def data_fingerprint(data):
    """``{"shape", "dtype", "sha256"}`` of an array: stored with a run so that a resume can
    tell whether it is given the run's own data (a named set is drawn again with the run's
    seed, so the same set gives the same fingerprint)."""
    array = np.ascontiguousarray(backend.to_numpy(data))
    return {"shape": list(array.shape), "dtype": str(array.dtype),
            "sha256": hashlib.sha256(array.data).hexdigest()}


def check_resume_data(config, data, run_dir):
    """Refuse (``RunMismatch``) to resume the run of ``config`` on other data than its own:
    another shape or, for runs that stored a fingerprint, other values or dtype."""
    name = config.get("data") or config.get("dataset") or "an array"
    shape = list(np.shape(data))
    saved = config.get("data_fingerprint")
    expected = saved["shape"] if saved else [None, *config["data_shape"]]
    if len(shape) != len(expected) or any(e not in (None, s) for e, s in zip(expected, shape)):
        shown = "x".join("n" if e is None else str(e) for e in expected)
        raise RunMismatch(f"--resume: {run_dir!s} was trained on data of shape {shown} "
                          f"({name}), got shape {'x'.join(map(str, shape))}; resume with "
                          "the run's data or train a new run in another directory")
    if saved and data_fingerprint(data) != saved:
        raise RunMismatch(f"--resume: the data are not the ones {run_dir!s} was trained on "
                          f"({name}): same shape, other values or dtype; resume with the "
                          "run's data or train a new run in another directory")


def warn_ignored_on_resume(given, config, stacklevel=2):
    """Warn (:class:`~minigen.errors.IgnoredOptions`, one line) that a resume ignores options
    given to it: ``given`` maps option names to the values asked for (None = not given);
    those that differ from the run's ``config`` are named with the value the run keeps.
    ``stacklevel`` counts from the caller, as for :func:`warnings.warn`."""
    ignored = [f"{name}={value!r} (the run's: {config.get(name)!r})"
               for name, value in given.items()
               if value is not None and _plain(value) != _plain(config.get(name))]
    if ignored:
        warnings.warn("--resume continues the run with its own settings and ignores "
                      + ", ".join(ignored), IgnoredOptions, stacklevel=stacklevel + 1)


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


class RunLock:
    """The advisory lock of one run directory: ``fcntl.flock`` on ``DIR/.minigen.lock``,
    which holds the pid of its holder. Released by :meth:`release` (which removes the file)
    or by the kernel when the process ends, however it ends."""

    def __init__(self, directory):
        self.path = os.path.join(os.fspath(directory), LOCK_FILE)
        self.file = None

    @property
    def held(self):
        return self.file is not None

    def acquire(self):
        """Take the lock, or raise ``RunBusy`` naming the pid of the live process that holds
        it. A lock file whose holder died is free (the kernel dropped its lock): it is taken
        over. Taking a lock this object holds does nothing."""
        if self.held or fcntl is None:
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        while True:
            f = open(self.path, "a+")
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "unknown"
                f.close()
                raise RunBusy(f"{os.path.dirname(self.path)} is in use: minigen process "
                              f"{holder} is writing this run; wait for it to end or choose "
                              "another --out") from None
            if self._same_file(f):
                break
            f.close()  # its holder removed the file as we opened it: lock the new one
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self.file = f

    def _same_file(self, f):
        try:
            return os.stat(self.path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            return False

    def release(self):
        """Remove the lock file and drop the lock (in this order: a process that opened the
        file meanwhile sees that it was removed and locks a new one)."""
        if not self.held:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.file.close()
        self.file = None


class RunDirectory:
    """The directory ``path`` of one training run, seen from one rank of ``comm``: rank 0
    writes and holds the lock, every rank takes part in the checks (see the module
    docstring for the rules)."""

    def __init__(self, path, comm=None):
        self.path = os.fspath(path)
        self.comm = distributed.world() if comm is None else comm
        self.is_main = self.comm.rank == 0
        self.lock = RunLock(self.path)

    def file(self, name):
        return os.path.join(self.path, name)

    @property
    def checkpoint_path(self):
        return self.file(CHECKPOINT_FILE)

    def held(self):
        """The run files (config.json, checkpoint.npz) the directory holds."""
        return [name for name in RUN_FILES if os.path.exists(self.file(name))]

    def foreign(self):
        """The entries of a directory that holds no run, other than a lock file and the
        temporary files of interrupted saves: the user's own files."""
        if not os.path.isdir(self.path):
            return []
        return sorted(name for name in os.listdir(self.path) if name != LOCK_FILE
                      and not checkpoint.TEMPORARY_NAME.match(name))

    def check_fresh(self, overwrite, how):
        """Refuse a fresh run here: ``RunExists`` when the directory holds a run (unless
        ``overwrite``; ``how`` says what to do instead), ``InvalidInput`` when it holds other
        files. Reads only; all ranks agree."""
        held = self.held()
        if distributed.any_rank(bool(held) and not overwrite, self.comm):
            raise RunExists(f"{self.path} already holds a run ({', '.join(held)}): {how}")
        other = [] if held else self.foreign()
        if distributed.any_rank(bool(other), self.comm):
            shown = ", ".join(other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3
                                            else "")
            raise InvalidInput(f"{self.path} is not empty and holds no minigen run ({shown}): "
                               "choose an empty or new directory (--overwrite replaces only a "
                               "minigen run)")

    def acquire(self):
        """Take the lock on rank 0; every rank raises ``RunBusy`` when it is held."""
        busy = None
        if self.is_main:
            try:
                self.lock.acquire()
            except RunBusy as error:
                busy = error
        if distributed.any_rank(busy is not None, self.comm):
            raise busy or RunBusy(f"{self.path} is in use by another minigen process")

    def release(self):
        self.lock.release()

    def claim(self, config, fresh, overwrite=False):
        """Make the directory this run's, under its lock: a ``fresh`` run checks again that
        it may start here (see :meth:`check_fresh`), deletes the files of the run it
        ``overwrite``s and writes ``config.json``; every run removes stale temporary files."""
        if fresh:  # before the lock too: a refusal leaves even the lock file alone
            self.check_fresh(overwrite, "resume it (resume=True / --resume) or replace it "
                                        "(overwrite=True / --overwrite)")
            if self.is_main:
                check_writable_directory(self.path, "out_dir")
        self.acquire()
        if fresh:
            self.check_fresh(overwrite, "resume it (resume=True / --resume) or replace it "
                                        "(overwrite=True / --overwrite)")
        if self.is_main:
            os.makedirs(self.path, exist_ok=True)
            checkpoint.remove_temporaries(self.path)
            if fresh:  # config.json is replaced, never missing: a kill here leaves a run
                for name in (CHECKPOINT_FILE, HISTORY_FILE):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.file(name))
                self.write_json(CONFIG_FILE, config, indent=1)

    def write_json(self, name, obj, indent=None):
        """Write ``name`` atomically (rank 0 only)."""
        if self.is_main:
            checkpoint.atomic_write(self.file(name), lambda f: json.dump(obj, f, indent=indent),
                                    binary=False)

    def save(self, state, step, history, config):
        """Write checkpoint.npz (``state`` with the step, history, RNG state and config),
        history.json and config.json atomically (rank 0 only)."""
        if self.is_main:
            checkpoint.save({**state, "step": step, "history": history,
                             "rng": backend.get_rng_state(), "config": config},
                            self.checkpoint_path)
            self.write_json(HISTORY_FILE, history)
            self.write_json(CONFIG_FILE, config, indent=1)

    def load(self):
        """The checkpoint as saved: ``(state, step, history, rng, config)``."""
        saved = checkpoint.load(self.checkpoint_path)
        state = {k: v for k, v in saved.items() if k not in RESERVED_KEYS}
        return state, int(saved["step"]), saved["history"], saved["rng"], saved.get("config")
