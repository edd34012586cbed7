"""``Trainer``: the training loop the DDPM and GAN trainers share.

A subclass builds its models and optimizers in ``__init__`` (after ``super().__init__``,
which seeds minigen's generators) and implements

- ``train_step(step) -> dict[str, float]``: one optimization step, returning its losses/metrics;
- ``state() -> dict`` and ``load_state(state)``: everything that must survive a restart
  (``model.state_dict()``, ``opt.state_dict()``, ``ema.state_dict()``, data-iterator state...);
- optionally ``on_step_end(step)``: after each step (``step`` = steps done), e.g. snapshots;
- optionally ``on_checkpoint(step)``: figures or samples written next to each checkpoint;
- optionally ``health_metrics()``: metrics at the current weights (e.g. the loss on a fixed
  batch) that must be finite for a checkpoint to be written;
- optionally ``schedules_tied_to_steps(done, planned)``: the schedules set by the total number
  of steps (see :meth:`Trainer.schedules_tied_to_steps`).

``fit()`` runs the loop with a progress bar and writes ``out_dir/checkpoint.npz`` every
``checkpoint_every`` steps and at the end, plus ``history.json`` (metrics per step) and
``config.json`` (``{"kind": ..., config...}``). Three concerns live in their own modules:

- the run directory (:mod:`minigen.rundir`): one run and one writer per directory (a fresh
  ``fit()`` into a run raises ``RunExists`` unless ``overwrite=True``; another process
  writing it raises ``RunBusy``), atomic files, stale temporary files removed;
- stop signals and divergence (:mod:`minigen.stopping`): Ctrl-C or SIGTERM stops the loop at
  the next step boundary, which all ranks agree on, saves that step and raises
  ``TrainingInterrupted``; no checkpoint holds a non-finite value, and a NaN/inf metric or
  state raises ``TrainingDiverged`` naming the last good checkpoint;
- data parallelism (:mod:`minigen.distributed`), below.

Exact resume: the checkpoint holds the subclass's ``state()``, the step counter, the history
and the state of minigen's CPU generator (``backend.get_rng_state``). A run stopped after N
steps and resumed to its planned total ends with the same parameters, bit for bit, as a run
never stopped, provided all randomness of ``train_step`` comes from ``backend.rng()`` or from
generators whose state is part of ``state()``. A run extended beyond the total it was
planned for matches a longer run only when no schedule depends on the total; otherwise
``resume()`` says so in a ``ResumeNotice`` and the remaining steps follow the schedules of
a run of the new total.

Data parallelism (``comm``, default :func:`minigen.distributed.world`: one process without an
MPI launcher, all ranks under ``mpiexec``): every rank runs the same loop on the same global
random stream; ``train_step`` draws its minibatch and steps its optimizers through a
:class:`minigen.minibatch.Minibatch`, which keeps this rank's rows of each global batch and
reduces gradients and metrics over the ranks, so that all ranks hold the same state at every
step, and the loop agrees on stop signals and checks. Rank 0 alone (``is_main``) writes
files, figures and the progress bar; the checkpoint holds only that shared state, so a run
resumes at any number of processes (docs/scaling.md).
"""
import math
import os
import signal
import warnings

import numpy as np
from tqdm.auto import tqdm

from minigen import backend, distributed, stopping
from minigen import data as datasets
from minigen.errors import (  # noqa: F401  (RunExists, RunMismatch: importable from here)
    InvalidInput, InvalidOption, NonFiniteSamples, ResumeNotice, RunExists, RunMismatch,
)
from minigen.rundir import (  # noqa: F401  (the names the trainers import from here)
    CHECKPOINT_FILE, CONFIG_FILE, HISTORY_FILE, RESERVED_KEYS, RUN_FILES, RunDirectory,
    check_resume_data, check_writable_directory, data_fingerprint, warn_ignored_on_resume,
    open_run, read_run, read_run_config,
)
from minigen.stopping import (  # noqa: F401
    TrainingDiverged, TrainingInterrupted, nonfinite_arrays,
)


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


def load_labelled_data(name, seed, what):
    """``(data, labels)`` of the labelled data set or ``.npz`` ``name`` (drawn with ``seed``,
    :func:`minigen.data.load_labelled`); an ``InvalidInput`` when it cannot be loaded or holds
    no labels, naming ``what`` asked for them (e.g. "--conditional")."""
    try:
        data, labels = datasets.load_labelled(name, seed=seed)
    except (ValueError, OSError, ImportError) as err:
        raise InvalidInput(str(err)) from err
    if labels is None:
        raise InvalidInput(f"{what}: {name!r} has no labels (labelled sets: digits, mnist5k, "
                           + ", ".join(datasets.MIXTURES) + ", or a .npz holding x and y)")
    return data, labels


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
        self.run_dir = RunDirectory(self.out_dir, self.comm)  # its files, its lock
        self.saved_step = None  # the step that out_dir/checkpoint.npz holds, once known
        self._owns_run = False  # True once fit() has claimed out_dir or resume() read it
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

    def schedules_tied_to_steps(self, done, planned):
        """The names of the schedules (e.g. a learning rate decayed to its end) whose values
        over the first ``done`` steps differ between a run of ``planned`` steps and one of
        ``self.steps``: a resumed run whose total changed then cannot equal a run of the new
        total. None here."""
        return []

    # --- the run directory ---------------------------------------------------------------
    @property
    def is_main(self):
        """True on the rank that writes the run directory (always, in a single process)."""
        return self.comm.rank == 0

    @property
    def checkpoint_path(self):
        return self.run_dir.checkpoint_path

    def run_config(self):
        """What ``config.json`` holds: the run kind, seed, steps and the subclass's config."""
        return {"kind": self.kind, "seed": self.seed, "steps": self.steps, **self.config}

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
        self.run_dir.save(state, self.step, self.history, self.run_config())
        self.saved_step = self.step

    def check_state(self, state=None):
        """Raise ``TrainingDiverged`` unless every float array of ``state`` (default
        ``self.state()``: parameters, optimizer and EMA state...) and every
        ``health_metrics()`` value is finite."""
        what = self._nonfinite(self.state() if state is None else state, self.step)
        if what:
            self._diverged(what)

    def _nonfinite(self, state, step):
        """What in ``state`` (after ``step``) or the health metrics is NaN/inf, or None."""
        bad = nonfinite_arrays(state)
        if bad:
            return (f"after step {step} {bad[0]!r} holds NaN/inf values"
                    + (f" (and {len(bad) - 1} more arrays)" if len(bad) > 1 else ""))
        rng_state = backend.get_rng_state()
        metrics = {name: float(value) for name, value in self.health_metrics().items()}
        backend.set_rng_state(rng_state)
        bad = [name for name, value in metrics.items() if not math.isfinite(value)]
        if bad:
            return f"at the weights after step {step} the {bad[0]!r} is {metrics[bad[0]]}"
        return None

    def _diverged(self, what):
        self.run_dir.write_json(HISTORY_FILE, self.history)
        last = "no checkpoint was written yet"
        if self.saved_step is not None:
            last = f"the last good checkpoint is {self.checkpoint_path} (step {self.saved_step})"
        raise TrainingDiverged(f"{type(self).__name__}: {what}; {last}. Lower the learning "
                               "rate, clip gradients or check the data.")

    def resume(self):
        """Load ``out_dir/checkpoint.npz``: subclass state, step, history and RNG state, so
        that ``fit()`` continues exactly where the saved run was. Takes the directory's lock
        (held until ``fit()`` ends); refuses a checkpoint that holds NaN/inf values."""
        self.run_dir.acquire()
        try:
            state, step, history, rng, config = self.run_dir.load()
            self.load_state(state)
            bad = self._nonfinite(state, step)
            if bad:
                raise InvalidInput(f"--resume: {self.checkpoint_path} (step {step}) is not a "
                                   f"good state to continue from ({bad}); train a new run")
        except BaseException:
            self.run_dir.release()
            raise
        self.step = self.saved_step = step
        self.history = history
        backend.set_rng_state(rng)
        self._owns_run = True
        self._note_extension((config or {}).get("steps"))
        return self

    def fit_run(self, resumed, overwrite=False):
        """What every ``train_*`` function ends with: a resumed run continues from its
        checkpoint (a run with none yet starts at step 0), then :meth:`fit`. Returns self."""
        if resumed and os.path.exists(self.checkpoint_path):
            self.resume()
        self.fit(overwrite=overwrite or resumed)
        return self

    def _note_extension(self, planned):
        if planned is None or planned == self.steps:
            return
        tied = self.schedules_tied_to_steps(self.step, planned)
        if not tied:
            return
        warnings.warn(
            f"the run was planned for {planned} steps, a total that sets {' and '.join(tied)}, "
            f"so training it to {self.steps} cannot equal a {self.steps}-step run; "
            f"from step {self.step} on it follows the schedules of a {self.steps}-step run",
            ResumeNotice, stacklevel=3)

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
        ``RunExists``); a resumed run continues its own. The directory's lock is held until
        the loop ends."""
        try:
            self.run_dir.claim(self.run_config(), fresh=not self._owns_run, overwrite=overwrite)
            self._owns_run = True
            with stopping.deferred_stop_signals():
                self._loop()
        finally:
            self.run_dir.release()
        return self.history

    def _loop(self):
        bar = tqdm(total=self.steps, initial=self.step, disable=not self.progress or not
                   self.is_main, desc=type(self).__name__, dynamic_ncols=True)
        try:
            while self.step < self.steps:
                signum = stopping.agreed_stop(self.comm)
                if signum is not None:
                    self._stop(signum)
                step = self.step
                metrics = {name: float(value) for name, value in self.train_step(step).items()}
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

    def _stop(self, signum):
        """Save a checkpoint of the current step (unless it was just saved); once it is on
        disk, every rank raises TrainingInterrupted naming it."""
        if self.saved_step != self.step:
            self._write_checkpoint()
        distributed.any_rank(False, self.comm)  # no rank ends before rank 0 has saved
        raise TrainingInterrupted(
            f"interrupted ({signal.Signals(signum).name}): {self.checkpoint_path} holds step "
            f"{self.step} of {self.steps}; continue with resume=True (--resume)", signum)
