"""``Trainer``: the training loop the DDPM and GAN trainers share.

A subclass builds its models and optimizers in ``__init__`` (after ``super().__init__``,
which seeds minigen's generators) and implements

- ``train_step(step) -> dict[str, float]``: one optimization step, returning its losses/metrics;
- ``state() -> dict`` and ``load_state(state)``: everything that must survive a restart
  (``model.state_dict()``, ``opt.state_dict()``, ``ema.state_dict()``, data-iterator state...);
- optionally ``on_step_end(step)``: after each step (``step`` = steps done), e.g. snapshots;
- optionally ``on_checkpoint(step)``: figures or samples written next to each checkpoint.

- optionally ``health_metrics()``: metrics at the current weights (e.g. the loss on a fixed
  batch) that must be finite for a checkpoint to be written.

``fit()`` runs the loop with a progress bar and writes ``out_dir/checkpoint.npz`` every
``checkpoint_every`` steps and at the end, plus ``history.json`` (metrics per step) and
``config.json`` (``{"kind": ..., config...}``). What a run directory guarantees:

- it belongs to one run: a fresh ``fit()`` into a directory that holds a run (config.json
  or checkpoint.npz) raises ``RunExists`` and changes nothing, unless ``overwrite=True``;
  ``config.json`` is written (atomically) only when the loop starts, after all validation;
- no checkpoint holds a non-finite value: before each one, every array of ``state()`` and the
  ``health_metrics()`` are checked, so the last checkpoint is the last good state; a NaN/inf
  metric or state stops the run with ``TrainingDiverged`` naming that checkpoint;
- Ctrl-C (SIGINT) stops the loop at the next step boundary, saves a checkpoint of that step
  (atomically) and raises ``TrainingInterrupted``; a second Ctrl-C stops at once;
- temporary files of interrupted saves (``kill -9``) are removed when the next run starts.

Exact resume: the checkpoint holds the subclass's ``state()``, the step counter, the history
and the state of minigen's CPU generator (``backend.get_rng_state``). A run stopped after N
steps and resumed to M ends with the same parameters, bit for bit, as an M-step run, provided
all randomness of ``train_step`` comes from ``backend.rng()`` or from generators whose state
is part of ``state()``.

Data parallelism (``comm``, default :func:`minigen.distributed.world`: one process without an
MPI launcher, all ranks under ``mpiexec``): every rank runs the same loop on the same global
random stream; ``train_step`` keeps this rank's shard of each global batch
(:func:`~minigen.distributed.packed_shard`), reduces gradients before clipping and the
optimizer (:func:`~minigen.distributed.allreduce_gradients`) and metrics
(:func:`~minigen.distributed.weighted_sum`), so that all ranks hold the same state at every
step. Rank 0 alone (``is_main``) writes files, figures and the progress bar; the checkpoint
holds only that shared state, so a run resumes at any number of processes (docs/scaling.md).
"""
import contextlib
import hashlib
import json
import math
import os
import signal
import threading

import numpy as np
from tqdm.auto import tqdm

from minigen import backend, checkpoint, distributed
from minigen import data as datasets
from minigen.errors import (
    InvalidInput, InvalidOption, MissingFile, NonFiniteSamples, RunExists, RunMismatch,
)

CHECKPOINT_FILE = "checkpoint.npz"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
RUN_FILES = (CONFIG_FILE, CHECKPOINT_FILE)  # a directory holding either of them holds a run
# Top-level checkpoint keys the trainer itself uses; state() must not use them.
RESERVED_KEYS = ("step", "history", "rng", "config")


def check_options(owner, options, defaults):
    """``defaults`` updated with ``options``; an ``InvalidOption`` (a TypeError, as for an
    unexpected keyword argument) names any option that ``defaults`` does not have. A dict option updates a
    dict default key by key (``schedule={"T": 500}`` keeps the default schedule's kind)."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise InvalidOption(f"{owner}: unknown options {unknown}; valid options are "
                        f"{sorted(defaults)}")
    merged = {**defaults, **options}
    for name, value in options.items():
        if isinstance(value, dict) and isinstance(defaults[name], dict):
            merged[name] = {**defaults[name], **value}
    return merged


def fit_normalization(data, per_feature_scale=True):
    """``{"shift", "scale"}`` (lists) with x_model = (x - shift) / scale, fitted to ``data``
    so that both model families train on unit-scale inputs in any data units. Vectors
    (n, d): the per-feature mean, and the per-feature std (``per_feature_scale``, the DDPM's
    choice) or one overall std (the GAN's: it keeps the data's geometry, e.g. round modes
    stay round). Images: the centre and half-width of the value range, onto [-1, 1]."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim == 2:
        shift = data.mean(axis=0)
        if per_feature_scale:
            scale = data.std(axis=0)
        else:
            scale = np.array([np.sqrt(((data - shift) ** 2).mean())])
    else:
        lo, hi = data.min(), data.max()
        shift, scale = np.array([(hi + lo) / 2]), np.array([(hi - lo) / 2])
    scale = np.where(scale > 1e-12, scale, 1.0)
    return {"shift": shift.tolist(), "scale": scale.tolist()}


def _affine(normalization, ndim):
    if ndim == 2:
        shape = (1, -1)
    else:
        shape = (1, -1, 1, 1) if len(normalization["shift"]) > 1 else (1, 1, 1, 1)
    shift = np.asarray(normalization["shift"], dtype=np.float64).reshape(shape)
    scale = np.asarray(normalization["scale"], dtype=np.float64).reshape(shape)
    return shift, scale


def normalize(data, normalization):
    """Data units -> model units, as float32."""
    shift, scale = _affine(normalization, np.ndim(data))
    return ((np.asarray(data) - shift) / scale).astype(np.float32)


def denormalize(samples, normalization):
    """Model units -> data units (the dtype of ``samples`` is kept; values beyond its range
    become inf, which ``sample_in_chunks(check_finite=True)`` reports)."""
    samples = np.asarray(samples)
    shift, scale = _affine(normalization, samples.ndim)
    with np.errstate(over="ignore"):
        return (samples * scale + shift).astype(samples.dtype)


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
    :meth:`Trainer.save_checkpoint`: its config and what the trainer's ``state()`` returned."""
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
    unless ``overwrite``; a resume of a run of another kind."""
    out_dir = os.fspath(out_dir)
    if resume and overwrite:
        raise InvalidInput("--resume continues the run in the directory and --overwrite "
                           "replaces it: give one of them")
    check_writable_directory(out_dir, "--out")
    held = [name for name in RUN_FILES if os.path.exists(os.path.join(out_dir, name))]
    if not held or overwrite:
        return None
    if not resume:
        raise RunExists(f"{out_dir} already holds a run ({', '.join(held)}): continue it with "
                        "--resume, or replace it with --overwrite (or choose another --out)")
    saved = os.path.join(out_dir, CHECKPOINT_FILE)
    config = checkpoint.load(saved)["config"] if CHECKPOINT_FILE in held else read_run_config(
        out_dir)
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


def load_data(data, seed):
    """``(array, name)`` of the training data: a dataset name of ``minigen.data.DATASETS``
    (drawn with ``seed``) or a ``.npy``/``.npz`` path, loaded (bad ones, or a set whose
    optional package is missing, raise ``InvalidInput``), or an array, returned as it is with
    name None."""
    if not isinstance(data, (str, os.PathLike)):
        return data, None
    name = os.fspath(data)
    try:
        return datasets.load_dataset(name, seed=seed), name
    except (ValueError, OSError, ImportError) as err:
        raise InvalidInput(str(err)) from err


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


def ignored_on_resume(given, config):
    """The one-line notice that a resume ignores options given to it, or None: ``given``
    maps option names to the values asked for (None = not given); those that differ from
    the run's ``config`` are named with the value the run keeps."""
    ignored = [f"{name}={value!r} (the run's: {config.get(name)!r})"
               for name, value in given.items()
               if value is not None and _plain(value) != _plain(config.get(name))]
    if not ignored:
        return None
    return ("--resume continues the run with its own settings and ignores "
            + ", ".join(ignored))


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def sample_in_chunks(draw, n, chunk_size, out=None, check_finite=False):
    """``n`` samples drawn ``chunk_size`` at a time, so that memory is bounded for any ``n``
    (only the output grows with it; ``out``, e.g. a ``np.lib.format.open_memmap``, bounds
    that too). ``draw(m)`` returns ``(model_units, data_units)`` NumPy arrays of m samples.
    ``check_finite``: raise ``NonFiniteSamples`` at the first chunk with a NaN/inf, saying
    whether the network produced it or the mapping back to data units overflowed."""
    n, chunk_size = int(n), int(chunk_size)
    if n < 1:
        raise InvalidInput(f"sample: n must be >= 1, got {n}")
    for start in range(0, n, chunk_size):
        model_units, data_units = draw(min(chunk_size, n - start))
        if check_finite:
            _check_finite_samples(model_units, data_units)
        if out is None:
            out = np.empty((n, *data_units.shape[1:]), dtype=data_units.dtype)
        out[start:start + len(data_units)] = data_units
    return out


def _check_finite_samples(model_units, data_units):
    bad = int(np.size(model_units) - np.count_nonzero(np.isfinite(model_units)))
    if bad:
        raise NonFiniteSamples(
            f"the network produced {bad} NaN/inf values of {np.size(model_units)} (its weights "
            "have diverged: sample from an earlier or a retrained run); nothing was written")
    bad = int(np.size(data_units) - np.count_nonzero(np.isfinite(data_units)))
    if bad:
        raise NonFiniteSamples(
            f"{bad} sample values overflow {data_units.dtype} when mapped back to data units "
            f"(largest finite: {np.finfo(data_units.dtype).max:.3g}); rescale the data before "
            "training; nothing was written")


class TrainingDiverged(RuntimeError):
    """A metric or the state became NaN or infinite; the run stopped, and its checkpoint (if
    any) is the last good state."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run at a step boundary, after saving a checkpoint of that step."""


class Trainer:
    """Base class of the DDPM and GAN trainers; the module docstring gives the contract."""

    kind = None  # "ddpm" | "gan": written to config.json so tools know what a run holds

    def __init__(self, out_dir, steps, seed=0, checkpoint_every=1000, progress=True, config=None,
                 comm=None):
        if int(steps) < 0:
            raise ValueError(f"Trainer: steps must be >= 0, got {steps}")
        if int(checkpoint_every) < 1:
            raise ValueError(f"Trainer: checkpoint_every must be >= 1, got {checkpoint_every}")
        self.out_dir = os.fspath(out_dir)
        self.steps = int(steps)
        self.seed = seed
        self.checkpoint_every = int(checkpoint_every)
        self.progress = progress
        self.config = dict(config or {})
        self.step = 0
        self.history = {"step": []}
        self.comm = distributed.world() if comm is None else comm
        self.saved_step = None  # the step that out_dir/checkpoint.npz holds, once known
        self._owns_dir = False  # True once fit() has claimed out_dir or resume() read it
        self._interrupted = False
        backend.manual_seed(seed)

    # --- what subclasses implement -------------------------------------------------------
    def train_step(self, step):
        raise NotImplementedError(f"{type(self).__name__} must implement train_step(step)")

    def state(self):
        raise NotImplementedError(f"{type(self).__name__} must implement state()")

    def load_state(self, state):
        raise NotImplementedError(f"{type(self).__name__} must implement load_state(state)")

    def on_step_end(self, step):
        """Called after each training step (``step`` = number of steps done), before the
        checkpoint of that step."""

    def on_checkpoint(self, step):
        """Called after each checkpoint is written (``step`` = number of steps done). It may
        draw from ``backend.rng()``: the CPU generator's state is restored afterwards."""

    def health_metrics(self):
        """Metrics at the current weights, e.g. the loss on a fixed batch, computed without
        changing the weights; a checkpoint is written only when all are finite (a finite
        loss at the weights before an update does not show that the update kept them
        usable). It may draw from ``backend.rng()``: the generator's state is restored."""
        return {}

    # --- files (written by rank 0 only) -----------------------------------------------
    @property
    def is_main(self):
        """True on the rank that writes the run directory (always, in a single process)."""
        return self.comm.rank == 0

    @property
    def checkpoint_path(self):
        return os.path.join(self.out_dir, CHECKPOINT_FILE)

    def run_config(self):
        """What ``config.json`` holds: the run kind, seed, steps and the subclass's config."""
        return {"kind": self.kind, "seed": self.seed, "steps": self.steps, **self.config}

    def _write_json(self, name, obj, indent=None):
        checkpoint.atomic_write(os.path.join(self.out_dir, name),
                                lambda f: json.dump(obj, f, indent=indent), binary=False)

    def save_checkpoint(self):
        """Write ``out_dir/checkpoint.npz`` (atomically, only of a finite state: see
        :meth:`check_state`), history.json and config.json, then call ``on_checkpoint``."""
        self._write_checkpoint()
        if self.is_main:
            rng_state = backend.get_rng_state()
            self.on_checkpoint(self.step)
            backend.set_rng_state(rng_state)  # figures must not shift the training's random stream

    def _write_checkpoint(self):
        state = self.state()
        clash = sorted(set(state) & set(RESERVED_KEYS))
        if clash:
            raise ValueError(f"{type(self).__name__}.state() uses reserved keys {clash}")
        self.check_state(state)
        if self.is_main:  # every rank holds the same state
            checkpoint.save(
                {**state, "step": self.step, "history": self.history,
                 "rng": backend.get_rng_state(), "config": self.run_config()},
                self.checkpoint_path,
            )
            self._write_json(HISTORY_FILE, self.history)
            self._write_json(CONFIG_FILE, self.run_config(), indent=1)
        self.saved_step = self.step

    def check_state(self, state=None):
        """Raise ``TrainingDiverged`` unless every float array of ``state`` (default
        ``self.state()``: parameters, optimizer and EMA state...) and every
        ``health_metrics()`` value is finite."""
        state = self.state() if state is None else state
        bad = nonfinite_arrays(state)
        if bad:
            self._diverged(f"after step {self.step} {bad[0]!r} holds NaN/inf values"
                           + (f" (and {len(bad) - 1} more arrays)" if len(bad) > 1 else ""))
        rng_state = backend.get_rng_state()
        metrics = {name: float(value) for name, value in self.health_metrics().items()}
        backend.set_rng_state(rng_state)
        bad = [name for name, value in metrics.items() if not math.isfinite(value)]
        if bad:
            self._diverged(f"at the weights after step {self.step} the {bad[0]!r} is "
                           f"{metrics[bad[0]]}")

    def _diverged(self, what):
        if self.is_main:
            self._write_json(HISTORY_FILE, self.history)
        last = "no checkpoint was written yet"
        if self.saved_step is not None:
            last = f"the last good checkpoint is {self.checkpoint_path} (step {self.saved_step})"
        raise TrainingDiverged(f"{type(self).__name__}: {what}; {last}. Lower the learning "
                               "rate, clip gradients or check the data.")

    def resume(self):
        """Load ``out_dir/checkpoint.npz``: subclass state, step, history and RNG state, so
        that ``fit()`` continues exactly where the saved run was."""
        saved = checkpoint.load(self.checkpoint_path)
        self.load_state({k: v for k, v in saved.items() if k not in RESERVED_KEYS})
        self.step = self.saved_step = int(saved["step"])
        self.history = saved["history"]
        backend.set_rng_state(saved["rng"])
        self._owns_dir = True
        return self

    def _claim_run_dir(self, overwrite):
        """Make out_dir this run's: refuse one that holds another run (unless ``overwrite``,
        which deletes that run's files), remove stale temporary files, and (fresh runs)
        write config.json. Nothing is written before the refusal; every rank checks, and the
        ranks agree before rank 0 writes."""
        if not self._owns_dir:
            held = [n for n in RUN_FILES if os.path.exists(os.path.join(self.out_dir, n))]
            if distributed.any_rank(bool(held) and not overwrite, self.comm):
                raise RunExists(f"{self.out_dir} already holds a run ({', '.join(held)}): "
                                "resume it (resume=True / --resume) or replace it "
                                "(overwrite=True / --overwrite)")
            if self.is_main:
                check_writable_directory(self.out_dir, "out_dir")
        if self.is_main:
            os.makedirs(self.out_dir, exist_ok=True)
            checkpoint.remove_temporaries(self.out_dir)
            if not self._owns_dir:
                for name in (*RUN_FILES, HISTORY_FILE):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(self.out_dir, name))
                self._write_json(CONFIG_FILE, self.run_config(), indent=1)
        self._owns_dir = True

    # --- the loop ------------------------------------------------------------------------
    def _record(self, step, metrics):
        """Append one row; every history list stays aligned with ``history["step"]``
        (None where a metric was not reported)."""
        n = len(self.history["step"])
        for name in metrics:
            self.history.setdefault(name, [None] * n)
        self.history["step"].append(step)
        for name, values in self.history.items():
            if name != "step":
                values.append(metrics.get(name))

    def fit(self, overwrite=False):
        """Run steps ``self.step .. steps-1``; returns the history (dict of lists).
        ``overwrite``: a fresh run may replace the run that ``out_dir`` holds (else
        ``RunExists``); a resumed run continues its own."""
        self._claim_run_dir(overwrite)
        bar = tqdm(total=self.steps, initial=self.step, disable=not self.progress or not
                   self.is_main, desc=type(self).__name__, dynamic_ncols=True)
        try:
            with self._interrupt_at_step_boundary():
                while self.step < self.steps:
                    if distributed.any_rank(self._interrupted, self.comm):
                        self._stop_interrupted()
                    step = self.step
                    metrics = {name: float(value)
                               for name, value in self.train_step(step).items()}
                    bad = [name for name, value in metrics.items() if not math.isfinite(value)]
                    if bad:
                        self._diverged(f"metric {bad[0]!r} is {metrics[bad[0]]} at step {step} "
                                       f"(non-finite: {bad})")
                    self._record(step, metrics)
                    self.step = step + 1
                    self.on_step_end(self.step)
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)
                    if self.step % self.checkpoint_every == 0 or self.step == self.steps:
                        self.save_checkpoint()
        finally:
            bar.close()
        return self.history

    @contextlib.contextmanager
    def _interrupt_at_step_boundary(self):
        """While the loop runs, Ctrl-C (SIGINT) only sets a flag that the loop reads between
        steps (a step cut in the middle would leave a half-updated state); a second Ctrl-C
        raises KeyboardInterrupt at once. Only the main thread can handle signals, and a
        SIGINT that is ignored stays ignored."""
        previous = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is not threading.main_thread() or previous in (
                signal.SIG_IGN, None):
            yield
            return

        def on_sigint(signum, frame):
            self._interrupted = True
            signal.signal(signal.SIGINT, signal.default_int_handler)

        self._interrupted = False
        signal.signal(signal.SIGINT, on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _stop_interrupted(self):
        """Save a checkpoint of the current step (unless it was just saved), then raise
        TrainingInterrupted naming it."""
        if self.saved_step != self.step:
            self._write_checkpoint()
        raise TrainingInterrupted(f"interrupted: {self.checkpoint_path} holds step {self.step} "
                                  f"of {self.steps}; continue with resume=True (--resume)")


def nonfinite_arrays(tree, path=""):
    """The paths ("model/weight", ...) of the floating-point arrays in the nested
    dict/list ``tree`` that hold a NaN or an infinity."""
    if isinstance(tree, dict):
        return [p for key, item in tree.items() for p in nonfinite_arrays(item, f"{path}/{key}")]
    if isinstance(tree, (list, tuple)):
        return [p for i, item in enumerate(tree) for p in nonfinite_arrays(item, f"{path}/{i}")]
    if isinstance(tree, float) or getattr(getattr(tree, "dtype", None), "kind", None) in ("f", "c"):
        xp = backend.xp_of(tree)
        if not bool(xp.all(xp.isfinite(tree))):
            return [path.lstrip("/")]
    return []
