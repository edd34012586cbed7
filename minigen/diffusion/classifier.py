"""Training the noise-aware classifier p_phi(y | x_t, t) of classifier guidance (Dhariwal &
Nichol 2021, Sec. 4: "we train a classifier p_phi(y | x_t, t) on noisy images x_t"), and
loading it back.

Each step draws a labelled minibatch (x_0, y), t ~ Uniform{0..T-1} and x_t ~ q(x_t | x_0)
(Ho et al. 2020, eq. 4, :meth:`DDPM.q_sample`) under the schedule of the DDPM it will guide,
and descends the cross-entropy of the classifier's logits at (x_t, t). The classifier works
in that DDPM's model units: trained from a DDPM run (``data`` a run directory) it takes the
run's data, labels, normalisation and schedule; trained from data it fits the normalisation
and takes the schedule as a DDPM trained on the same data would by default.
:func:`load_classifier` returns it with that config, and sampling
(:func:`minigen.diffusion.trainer.sample_run`) refuses a classifier whose schedule or
normalisation differ from the run's.

Vectors get a time-conditioned :class:`minigen.nn.MLP` (logits out), images a
:class:`minigen.nn.UNetEncoder`. The loop is the shared :class:`minigen.trainer.Trainer`:
checkpoints, exact resume and the run-directory guarantees as for the other families.
"""
import os

import numpy as np

from minigen import backend, nn, optim
from minigen import data as datasets
from minigen import functional as F
from minigen import options as checks
from minigen.diffusion.ddpm import DDPM
from minigen.diffusion.schedule import NoiseSchedule
from minigen.diffusion.trainer import SCHEDULE_OPTIONS, defaults_for as ddpm_defaults
from minigen.errors import InvalidInput
from minigen.minibatch import Minibatch
from minigen.nn.module import eval_mode
from minigen.rundir import (
    check_resume_data, data_fingerprint, warn_ignored_on_resume, open_run, read_run,
    read_run_config,
)
from minigen.tensor import Tensor, no_grad
from minigen.trainer import Trainer, fit_normalization, load_labelled_data, normalize

VECTOR_DEFAULTS = dict(model="MLP", model_config=dict(hidden=(128, 128, 128), activation="silu",
                                                      time_dim=16),
                       batch_size=256, lr=2e-3, checkpoint_every=1000)
"""For 2-D sets: the 2-D denoiser's MLP with K logits out, without its Fourier features
(their sines are constants of the input: guidance needs the gradient with respect to it)."""

IMAGE_DEFAULTS = dict(model="UNetEncoder", model_config=dict(base_channels=32,
                                                             channel_mults=(1, 2),
                                                             num_res_blocks=1, groups=8,
                                                             time_dim=128),
                      batch_size=64, lr=1e-3, checkpoint_every=1000)
"""For small images: the default UNet's down path and middle block plus a pooled head."""

Option = checks.Option
_SIZE = dict(low=1, high=checks.MAX_COUNT)
CLASSIFIER_MODELS = {
    "MLP": dict(hidden=Option("ints", "hidden layer widths", **_SIZE),
                activation=Option("choice", "activation", choices=("silu", "relu", "gelu",
                                                                   "tanh", "leaky_relu")),
                time_dim=Option("int", "size of the time embedding", **_SIZE)),
    "UNetEncoder": dict(base_channels=Option("int", "width of the first level (even, >= 4)",
                                             low=4, high=65536),
                        channel_mults=Option("ints", "width multiplier of each level", low=1,
                                             high=64),
                        num_res_blocks=Option("int", "residual blocks per level", low=1,
                                              high=64),
                        attention_resolutions=Option("ints", "feature-map sizes with "
                                                     "self-attention", **_SIZE),
                        groups=Option("int", "GroupNorm groups", **_SIZE),
                        time_dim=Option("int", "size of the time embedding", **_SIZE)),
}
"""The ``model_config`` entries of each classifier network."""

OPTIONS = dict(
    model=Option("choice", "the classifier: MLP for vectors, UNetEncoder for images",
                 choices=tuple(CLASSIFIER_MODELS)),
    model_config=Option("dict", "constructor arguments of the classifier",
                        table=lambda o: CLASSIFIER_MODELS[o["model"]]),
    batch_size=Option("int", "global batch", **_SIZE),
    lr=Option("float", "learning rate of Adam (cosine decay to lr/10)", low=0, open="low"),
    checkpoint_every=Option("int", "steps between checkpoints", **_SIZE),
)
"""Every ``ClassifierTrainer`` option: its type, range or choices, and meaning
(docs/guide.md)."""


def defaults_for(data):
    """The default options for data of this shape (vectors or images)."""
    defaults = VECTOR_DEFAULTS if np.ndim(data) == 2 else IMAGE_DEFAULTS
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in defaults.items()}


class ClassifierTrainer(Trainer):
    """Train p_phi(y | x_t, t) on ``data`` (data units) with ``labels`` (integers 0..K-1, one
    per row), x_t drawn under ``schedule`` (a :class:`NoiseSchedule` config) after mapping
    the data with ``normalization`` (the DDPM's). Options: :data:`OPTIONS`. Metrics per
    step: loss (cross-entropy), accuracy (on the step's noisy batch) and lr."""

    kind = "classifier"

    def __init__(self, data, labels, out_dir, steps, schedule, normalization, seed=0,
                 progress=True, data_name=None, source_run=None, device="cpu", comm=None,
                 **options):
        data = np.asarray(data)
        if data.ndim not in (2, 4) or len(data) < 2:
            raise InvalidInput(f"ClassifierTrainer: data must be vectors (n, d) or images "
                               f"(n, C, H, W) with n >= 2, got shape {data.shape}")
        table = {**OPTIONS, "model": Option("choice", "the classifier", choices=(
            defaults_for(data)["model"],))}
        o = checks.check("ClassifierTrainer", table, options, defaults_for(data))
        labels = _check_labels(labels, len(data))
        schedule = checks.check_table(SCHEDULE_OPTIONS, schedule) if isinstance(
            schedule, dict) else schedule
        config = {"data": data_name, "source_run": source_run,
                  "data_shape": list(data.shape[1:]), "data_fingerprint": data_fingerprint(data),
                  "normalization": normalization, "schedule": dict(schedule),
                  "num_classes": int(labels.max()) + 1, **o}
        super().__init__(out_dir, steps, seed=seed, checkpoint_every=o["checkpoint_every"],
                         progress=progress, config=config, comm=comm)
        self.opts, self.device, self.labels = o, device, labels
        self.model = nn.build_model(o["model"], self._model_config(data.shape)).to(device)
        self.config["network"] = self.model.config
        dtype = self.model.parameters()[0].dtype
        self.data = backend.to_device(normalize(data, normalization).astype(dtype), device)
        # the forward process of the DDPM this classifier guides (only q_sample is used)
        self.forward_process = DDPM(self.model, NoiseSchedule.from_config(schedule))
        checks.check_batch("ClassifierTrainer", o["batch_size"], self.comm)
        self.optimizer = optim.Adam(self.model, lr=o["lr"])
        self.minibatch = Minibatch(o["batch_size"], comm=self.comm)
        probe = np.random.default_rng(0)
        self._probe = probe.integers(0, len(data), size=min(len(data), 256))

    def _model_config(self, shape):
        config = dict(self.opts["model_config"])
        classes = int(self.labels.max()) + 1
        if self.opts["model"] == "MLP":
            return {**config, "in_features": shape[1], "out_features": classes}
        lowest = shape[2] // 2 ** (len(config["channel_mults"]) - 1)
        config.setdefault("attention_resolutions", (lowest,))
        return {**config, "num_classes": classes, "in_channels": shape[1],
                "image_size": shape[2]}

    def loss(self, index, seed):
        """The cross-entropy of the classifier at (x_t, t) for the rows ``index``, t and the
        noise drawn from ``seed`` (a Generator or Minibatch), and the batch's accuracy."""
        rng = seed
        t = rng.integers(0, self.forward_process.schedule.T, size=len(index))
        x0 = self.data[backend.to_device(index, self.device)]
        noise = rng.standard_normal(x0.shape, dtype=x0.dtype)
        x_t = self.forward_process.q_sample(x0, t, backend.to_device(noise, self.device))
        logits = self.model(Tensor(x_t), t)
        y = self.labels[backend.to_numpy(index)]
        accuracy = float((backend.to_numpy(logits.data).argmax(1) == y).mean())
        return F.cross_entropy(logits, y), accuracy

    def train_step(self, step):
        batch = self.minibatch
        lr = optim.warmup_cosine(step, self.opts["lr"], 0, self.steps,
                                 min_lr=self.opts["lr"] / 10)
        self.optimizer.lr = lr
        self.optimizer.zero_grad()
        loss, accuracy = self.loss(batch.integers(0, len(self.data), size=batch.m), batch)
        loss.backward()
        batch.reduce(self.model)
        self.optimizer.step()
        return {**batch.mean({"loss": loss.item(), "accuracy": accuracy}), "lr": lr}

    def schedules_tied_to_steps(self, done, planned):
        return ["the learning rate's cosine decay"] if done > 1 else []

    def health_metrics(self):
        """The loss on a fixed batch, t and noise at the current weights."""
        with no_grad(), eval_mode(self.model):
            return {"loss": self.loss(self._probe, np.random.default_rng(1))[0].item()}

    def state(self):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


def _check_labels(labels, n):
    labels = None if labels is None else np.asarray(labels)
    if labels is None or labels.shape != (n,) or labels.dtype.kind not in "iu" or (
            labels.size and labels.min() < 0):
        raise InvalidInput(f"ClassifierTrainer: needs labels, {n} integers >= 0 (one per row; "
                           "labelled sets: digits, mnist5k, " + ", ".join(datasets.MIXTURES)
                           + ", or a .npz holding x and y)")
    if labels.max() < 1:
        raise InvalidInput("ClassifierTrainer: the labels hold one class; a classifier needs "
                           "at least two")
    return labels.astype(np.int64)


def _source(data, seed):
    """``(x, labels, data_name, schedule, normalization, source_run)`` for ``data``: a DDPM
    run directory (its data drawn with the run's seed, labels, schedule and normalisation), or a dataset name or file
    (a DDPM's default schedule for that shape, the normalisation fitted here)."""
    source_run = None
    if isinstance(data, (str, os.PathLike)) and os.path.isdir(data):
        config = read_run_config(data)
        if config.get("kind") != "ddpm":
            raise InvalidInput(f"--data {data}: the directory holds a {config.get('kind')!r} "
                               "run; a classifier is trained from a DDPM run or from data")
        if not config.get("data"):
            raise InvalidInput(f"--data {data}: the DDPM run was trained on an array without "
                               "a name; give the data set or file itself")
        source_run, data, seed = os.fspath(data), config["data"], config["seed"]
    name = os.fspath(data) if isinstance(data, (str, os.PathLike)) else None
    if name is None:
        raise InvalidInput("train_classifier: data must be a DDPM run directory, a data set "
                           "name or a .npy/.npz file")
    x, labels = load_labelled_data(name, seed, "train_classifier")
    if source_run is not None:
        saved = read_run_config(source_run)
        check_resume_data(saved, x, source_run)
        return x, labels, name, saved["schedule"], saved["normalization"], source_run
    return x, labels, name, ddpm_defaults(x)["schedule"], fit_normalization(x), None


def train_classifier(data, steps, out_dir, seed=None, resume=False, overwrite=False,
                     progress=True, figures=True, device="cpu", comm=None, **options):
    """Train the noise-aware classifier in ``out_dir`` and return the
    :class:`ClassifierTrainer` (``minigen train classifier``). ``data``: a DDPM run directory
    (the classifier then takes its data, labels, schedule and normalisation, and the run's
    seed for the data draw), or a labelled data set name or ``.npz``. ``resume`` and
    ``overwrite`` as for :func:`minigen.diffusion.train_ddpm`; ``figures`` is accepted for
    the command line's sake (a classifier run writes none)."""
    saved = open_run(out_dir, "classifier", resume, overwrite)
    if saved is not None:
        warn_ignored_on_resume({"seed": seed, **options}, saved, stacklevel=2)
        seed = saved["seed"]
        options = {k: saved[k] for k in OPTIONS}
    seed = 0 if seed is None else seed
    x, labels, name, schedule, normalization, source_run = _source(data, seed)
    if saved is not None:
        check_resume_data(saved, x, out_dir)
    trainer = ClassifierTrainer(x, labels, out_dir, steps, schedule, normalization, seed=seed,
                                progress=progress, data_name=name, source_run=source_run,
                                device=device, comm=comm, **options)
    return trainer.fit_run(saved is not None, overwrite)


def load_classifier(run_dir, device="cpu"):
    """``(classifier, config)`` of a trained classifier run, in eval mode."""
    config, state = read_run(run_dir, "classifier")
    model = nn.build_model(config["model"], config["network"])
    model.load_state_dict(state["model"])
    return model.to(device).eval(), config


def check_pairing(classifier_config, ddpm_config, where):
    """Refuse (one line) a classifier whose schedule or normalisation is not the DDPM run's:
    its gradients would be those of another noise level or another scale of the data."""
    if NoiseSchedule.from_config(classifier_config["schedule"]).config != NoiseSchedule.from_config(
            ddpm_config["schedule"]).config:
        raise InvalidInput(f"{where}: the classifier was trained under the schedule "
                           f"{classifier_config['schedule']}, the DDPM run uses "
                           f"{ddpm_config['schedule']}; train it from the run (--data RUN)")
    for key in ("shift", "scale"):
        a, b = (np.asarray(c["normalization"][key]) for c in (classifier_config, ddpm_config))
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-6):
            raise InvalidInput(f"{where}: the classifier's normalisation differs from the DDPM "
                               "run's (another data set or draw); train it from the run "
                               "(--data RUN)")
    if classifier_config["data_shape"] != ddpm_config["data_shape"]:
        raise InvalidInput(f"{where}: the classifier takes data of shape "
                           f"{classifier_config['data_shape']}, the run "
                           f"{ddpm_config['data_shape']}")
