"""``Trainer``: the training loop the DDPM and GAN trainers share.

A subclass builds its models and optimizers in ``__init__`` (after ``super().__init__``,
which seeds minigen's generators) and implements

- ``train_step(step) -> dict[str, float]``: one optimization step, returning its losses/metrics;
- ``state() -> dict`` and ``load_state(state)``: everything that must survive a restart
  (``model.state_dict()``, ``opt.state_dict()``, ``ema.state_dict()``, data-iterator state...);
- optionally ``on_step_end(step)``: after each step (``step`` = steps done), e.g. snapshots;
- optionally ``on_checkpoint(step)``: figures or samples written next to each checkpoint.

``fit()`` runs the loop with a progress bar, stops with ``TrainingDiverged`` on the first
NaN/inf metric (the last checkpoint on disk stays the last good one), and writes
``out_dir/checkpoint.npz`` every ``checkpoint_every`` steps and at the end, plus
``history.json`` (metrics per step) and ``config.json`` (``{"kind": ..., config...}``).

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
import json
import math
import os

import numpy as np
from tqdm.auto import tqdm

from minigen import backend, checkpoint, distributed

CHECKPOINT_FILE = "checkpoint.npz"
# Top-level checkpoint keys the trainer itself uses; state() must not use them.
RESERVED_KEYS = ("step", "history", "rng", "config")


def check_options(owner, options, defaults):
    """``defaults`` updated with ``options``; a TypeError (as for an unexpected keyword
    argument) names any option that ``defaults`` does not have. A dict option updates a
    dict default key by key (``schedule={"T": 500}`` keeps the default schedule's kind)."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"{owner}: unknown options {unknown}; valid options are "
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
    """Model units -> data units (the dtype of ``samples`` is kept)."""
    samples = np.asarray(samples)
    shift, scale = _affine(normalization, samples.ndim)
    return (samples * scale + shift).astype(samples.dtype)


def read_run_config(run_dir):
    """The ``config.json`` of a run directory, with a clear error when there is none."""
    path = os.path.join(os.fspath(run_dir), "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir!s} is not a minigen run directory (no config.json)")
    with open(path) as f:
        return json.load(f)


def read_run(run_dir, kind):
    """``(config, state)`` of the ``kind`` ("ddpm" | "gan") run saved in ``run_dir`` by
    :meth:`Trainer.save_checkpoint`: its config and what the trainer's ``state()`` returned."""
    config = read_run_config(run_dir)
    if config.get("kind") != kind:
        raise ValueError(f"{run_dir!s} holds a {config.get('kind')!r} run, not a {kind!r} run")
    path = os.path.join(os.fspath(run_dir), CHECKPOINT_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir!s} has no checkpoint ({CHECKPOINT_FILE}) yet")
    saved = checkpoint.load(path)
    return saved["config"], {k: v for k, v in saved.items() if k not in RESERVED_KEYS}


class TrainingDiverged(RuntimeError):
    """A metric became NaN or infinite; the run stopped without overwriting its checkpoint."""


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

    # --- files (rank 0 only) -------------------------------------------------------------
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
        path = os.path.join(self.out_dir, name)
        with open(path + ".tmp", "w") as f:
            json.dump(obj, f, indent=indent)
        os.replace(path + ".tmp", path)

    def save_checkpoint(self):
        """Write ``out_dir/checkpoint.npz`` (atomically), history.json and config.json; on
        rank 0 only (the other ranks hold the same state)."""
        if not self.is_main:
            return
        state = self.state()
        clash = sorted(set(state) & set(RESERVED_KEYS))
        if clash:
            raise ValueError(f"{type(self).__name__}.state() uses reserved keys {clash}")
        checkpoint.save(
            {**state, "step": self.step, "history": self.history,
             "rng": backend.get_rng_state(), "config": self.run_config()},
            self.checkpoint_path,
        )
        self._write_json("history.json", self.history)
        self._write_json("config.json", self.run_config(), indent=1)
        rng_state = backend.get_rng_state()
        self.on_checkpoint(self.step)
        backend.set_rng_state(rng_state)  # figures must not shift the training's random stream

    def resume(self):
        """Load ``out_dir/checkpoint.npz``: subclass state, step, history and RNG state, so
        that ``fit()`` continues exactly where the saved run was."""
        saved = checkpoint.load(self.checkpoint_path)
        self.load_state({k: v for k, v in saved.items() if k not in RESERVED_KEYS})
        self.step = int(saved["step"])
        self.history = saved["history"]
        backend.set_rng_state(saved["rng"])
        return self

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

    def fit(self):
        """Run steps ``self.step .. steps-1``; returns the history (dict of lists)."""
        if self.is_main:
            os.makedirs(self.out_dir, exist_ok=True)
            self._write_json("config.json", self.run_config(), indent=1)
        bar = tqdm(total=self.steps, initial=self.step, disable=not self.progress or not
                   self.is_main, desc=type(self).__name__, dynamic_ncols=True)
        try:
            while self.step < self.steps:
                step = self.step
                metrics = {name: float(value) for name, value in self.train_step(step).items()}
                bad = [name for name, value in metrics.items() if not math.isfinite(value)]
                if bad:
                    if self.is_main:
                        self._write_json("history.json", self.history)
                    last = "no checkpoint was written yet"
                    if os.path.exists(self.checkpoint_path):
                        last = f"the last good checkpoint is {self.checkpoint_path}"
                    raise TrainingDiverged(
                        f"{type(self).__name__}: metric {bad[0]!r} is {metrics[bad[0]]} at step "
                        f"{step} (non-finite: {bad}); {last}. Lower the learning rate, clip "
                        "gradients or check the data."
                    )
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
