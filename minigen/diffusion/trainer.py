"""Training a DDPM (Algorithm 1) on vectors or images, and loading a trained run back.

``DDPMTrainer`` is a :class:`minigen.trainer.Trainer`: Adam with linear warm-up and cosine
decay, gradient-norm clipping, an EMA of the weights (samples and figures use it), atomic
checkpoints with bit-exact resume, a progress bar, and a stop on a NaN/inf loss.

Data are normalised before training and the normalisation is stored with the run, so users
can train on their own arrays in any units and get samples back in those units:
vectors (n, d) per feature to zero mean and unit std; images (n, C, H, W) from their value
range to [-1, 1] (the range that ``clip_x0=1.0`` assumes). Vectors get a time-conditioned
:class:`minigen.nn.MLP`, images a :class:`minigen.nn.UNet`.

All randomness of a training step (the batch, t and the noise) comes from minigen's CPU
generator, whose state the checkpoint holds: a resumed run ends bit-identical to an
uninterrupted one, on the GPU too.
"""
import os

import numpy as np

from minigen import backend, nn, optim
from minigen import data as datasets
from minigen import options as checks
from minigen.diffusion import edm
from minigen.diffusion.classifier_guidance import classifier_guided_sample
from minigen.diffusion.ddpm import DDPM
from minigen.diffusion.edm import EDM
from minigen.diffusion.schedule import NoiseSchedule
from minigen.errors import InvalidInput
from minigen.minibatch import Minibatch
from minigen.nn.mlp import ACTIVATIONS
from minigen.nn.module import eval_mode
from minigen.tensor import no_grad
from minigen.rundir import (
    check_resume_data, data_fingerprint, warn_ignored_on_resume, open_run, read_run,
)
from minigen.trainer import (
    Trainer, denormalize, fit_normalization, load_data, load_labelled_data, normalize,
    sample_in_chunks,
)

EDM_DEFAULTS = dict(p_mean=edm.P_MEAN, p_std=edm.P_STD)
"""The options of ``formulation="edm"`` runs (Table 1 of Karras et al. 2022), besides
``sigma_data``: the std of the data as normalised (1 for vectors, 0.5 for images in [-1, 1],
the paper's value)."""

VECTOR_DEFAULTS = dict(
    model="MLP", model_config=dict(hidden=(128, 128, 128), activation="silu", time_dim=16,
                                   fourier_features=6),
    schedule=dict(kind="quadratic", T=1000), prediction="eps", variance="fixed_small",
    clip_x0=None, batch_size=256, lr=2e-2, warmup_steps=100, ema_decay=0.995, grad_clip=1.0,
    conditional=False, label_dropout=0.1, min_snr_gamma=None, formulation="ddpm", **EDM_DEFAULTS,
    sigma_data=1.0,
)
"""Defaults for 2-D sets, chosen for sharp data (modes or curves much narrower than the
data's spread), which are resolved only at small noise levels: the quadratic schedule spends
more training steps there than the linear one, and Fourier features of the input (sin and cos
of 2^k x, k < 6; Tancik et al. 2020) let the MLP resolve sharp edges and narrow modes. What
was tried, on which sets, and the held-out check: docs/tuning.md."""

IMAGE_DEFAULTS = dict(
    model="UNet",
    model_config=dict(base_channels=32, channel_mults=(1, 2), num_res_blocks=1, dropout=0.0,
                      groups=8, time_dim=128),
    schedule=dict(kind="linear", T=1000), prediction="eps", variance="fixed_small", clip_x0=1.0,
    batch_size=64, lr=1e-3, warmup_steps=200, ema_decay=0.995, grad_clip=1.0,
    conditional=False, label_dropout=0.1, min_snr_gamma=None, formulation="ddpm", **EDM_DEFAULTS,
    sigma_data=0.5,
)
"""Small images such as the 8x8 digits (self-attention at the lowest resolution unless
``attention_resolutions`` is given)."""


Option = checks.Option
_SIZE = dict(low=1, high=checks.MAX_COUNT)
_COMMON_DENOISER = dict(
    time_dim=Option("int", "size of the time embedding", **_SIZE, none="no time input"),
    num_classes=Option("int", "classes of a conditional run (set from the labels)", **_SIZE,
                       none="unconditional"),
    dtype=Option("choice", "parameter dtype", choices=("float32", "float64")),
)
DENOISER_OPTIONS = {
    "MLP": dict(
        hidden=Option("ints", "hidden layer widths", **_SIZE),
        activation=Option("choice", "activation", choices=tuple(sorted(ACTIVATIONS))),
        fourier_features=Option("int", "Fourier feature octaves of the input", low=0, high=30,
                                none="none"),
        in_features=Option("int", "input size (set from the data)", **_SIZE),
        out_features=Option("int", "output size (set from the data)", **_SIZE),
        **_COMMON_DENOISER),
    "UNet": dict(
        base_channels=Option("int", "width of the first level (even, >= 4)", low=4,
                             high=65536),
        channel_mults=Option("ints", "width multiplier of each level", low=1, high=64),
        num_res_blocks=Option("int", "residual blocks per level", low=1, high=64),
        attention_resolutions=Option("ints", "feature-map sizes with self-attention", **_SIZE),
        dropout=Option("float", "dropout in the residual blocks", low=0, high=1, open="high"),
        groups=Option("int", "GroupNorm groups", **_SIZE),
        adagn=Option("bool", "adaptive group norm from the time/class embedding"),
        resblock_updown=Option("bool", "BigGAN residual blocks for up/downsampling"),
        rescale_residual=Option("bool", "res block outputs divided by sqrt(2)"),
        in_channels=Option("int", "image channels (set from the data)", **_SIZE),
        image_size=Option("int", "image side (set from the data)", **_SIZE),
        **_COMMON_DENOISER),
}
"""The ``model_config`` entries of each denoiser (its constructor arguments)."""

_BETA = dict(low=0, high=1, open="both")
SCHEDULE_OPTIONS = dict(
    kind=Option("choice", "the schedule", choices=("linear", "quadratic", "cosine", "sigmoid",
                                                   "custom")),
    T=Option("int", "diffusion steps", low=1, high=100_000),
    beta_start=Option("float", "beta_1 (linear, quadratic, sigmoid)", **_BETA),
    beta_end=Option("float", "beta_T (linear, quadratic, sigmoid)", **_BETA),
    s=Option("float", "offset of the cosine schedule", low=0, open="low"),
    max_beta=Option("float", "largest beta of the cosine schedule", **_BETA),
    start=Option("float", "sigmoid range start"),
    end=Option("float", "sigmoid range end"),
    betas=Option("floats", "the betas of a custom schedule", **_BETA),
)
"""The ``schedule`` entries (:meth:`NoiseSchedule.from_config`)."""

OPTIONS = dict(
    model=Option("choice", "the denoiser: MLP for vectors, UNet for images",
                 choices=("MLP", "UNet")),
    model_config=Option("dict", "constructor arguments of the denoiser",
                        table=lambda o: DENOISER_OPTIONS[o["model"]]),
    schedule=Option("dict", "the noise schedule", table=SCHEDULE_OPTIONS),
    prediction=Option("choice", "the network's target", choices=("eps", "x0", "v")),
    variance=Option("choice", "reverse-process variance", choices=("fixed_small", "fixed_large")),
    clip_x0=Option("float", "clip the predicted x0 to [-c, c]", low=0, open="low", none="off"),
    batch_size=Option("int", "global batch", **_SIZE),
    lr=Option("float", "peak learning rate of Adam", low=0, open="low"),
    warmup_steps=Option("int", "steps of linear learning-rate warm-up", low=0,
                        high=checks.MAX_COUNT),
    ema_decay=Option("float", "decay of the EMA of the weights", low=0, high=1, open="high"),
    grad_clip=Option("float", "largest global gradient norm", low=0, open="low", none="off"),
    conditional=Option("bool", "train on the data's labels (classifier-free guidance)"),
    label_dropout=Option("float", "probability of the null class in training", low=0, high=1,
                         open="high"),
    min_snr_gamma=Option("float", "ddpm: weight the loss by min-SNR-gamma (Hang et al. 2023)",
                         low=0, open="low", none="off: L_simple"),
    formulation=Option("choice", "DDPM (Ho et al. 2020) or EDM (Karras et al. 2022)",
                       choices=("ddpm", "edm")),
    sigma_data=Option("float", "edm: the std of the normalised data", low=0, open="low"),
    p_mean=Option("float", "edm: P_mean, the mean of ln(sigma) in training"),
    p_std=Option("float", "edm: P_std, the std of ln(sigma) in training", low=0, open="low"),
)
"""Every ``DDPMTrainer`` option: its type, range or choices, and meaning (docs/guide.md)."""


def options_for(data):
    """:data:`OPTIONS` for data of this shape: the model is the MLP for vectors, the UNet for
    images."""
    model = defaults_for(data)["model"]
    return {**OPTIONS, "model": Option("choice", f"the denoiser ({model} for data of this "
                                       "shape)", choices=(model,))}


def defaults_for(data):
    """The default options for data of this shape (vectors or images)."""
    data = np.asarray(data)
    if data.ndim == 2:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in VECTOR_DEFAULTS.items()}
    if data.ndim == 4:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in IMAGE_DEFAULTS.items()}
    raise InvalidInput(
        "DDPMTrainer: data must be vectors (n, d) or images (n, C, H, W), got shape "
        f"{data.shape}"
    )


DDPM_ONLY, EDM_ONLY = ("schedule", "prediction", "variance", "clip_x0", "min_snr_gamma"), (
    "sigma_data", "p_mean", "p_std")


def diffusion_model(model, opts):
    """The :class:`DDPM` or :class:`~minigen.diffusion.edm.EDM` (``opts["formulation"]``;
    runs from before EDM are DDPMs) of ``model`` with the options (or a run's config)
    ``opts``."""
    if opts.get("formulation", "ddpm") == "edm":
        return EDM(model, opts["sigma_data"], opts["p_mean"], opts["p_std"])
    return DDPM(model, NoiseSchedule.from_config(opts["schedule"]), variance=opts["variance"],
                clip_x0=opts["clip_x0"], prediction=opts["prediction"],
                min_snr_gamma=opts.get("min_snr_gamma"))


def check_formulation(opts, defaults):
    """Refuse options of the other formulation set away from their defaults (they would do
    nothing)."""
    other = DDPM_ONLY if opts["formulation"] == "edm" else EDM_ONLY
    changed = [k for k in other if opts[k] != defaults[k]]
    if changed:
        raise InvalidInput(f"DDPMTrainer: {', '.join(changed)}: not an option of "
                           f"formulation={opts['formulation']!r}")


def denoiser_config(name, config, data_shape):
    """``config`` of the denoiser ``name`` ("MLP" or "UNet") completed for data of
    ``data_shape`` (n, ...): input and output sizes, the attention resolution."""
    config = dict(config)
    if name == "MLP":
        config.setdefault("in_features", data_shape[1])
        config.setdefault("out_features", data_shape[1])
    elif name == "UNet":
        if data_shape[2] != data_shape[3]:
            raise InvalidInput(
                "DDPMTrainer: the UNet needs square images, got "
                f"{data_shape[2]}x{data_shape[3]}"
            )
        config.setdefault("in_channels", data_shape[1])
        config.setdefault("image_size", data_shape[2])
        lowest = config["image_size"] // 2 ** (len(config.get("channel_mults", (1, 2))) - 1)
        config.setdefault("attention_resolutions", (lowest,))
    return config


class DenoiserSteps:
    """The optimisation half of a diffusion trainer (this one and the text-to-image one):
    Adam at the warm-up + cosine learning rate, the gradient reduced over the ranks, global
    norm clipping and the EMA of the weights, on ``self.model``, ``self.optimizer``,
    ``self.ema``, ``self.minibatch`` and ``self.opts``; and the state they checkpoint."""

    def optimize(self, step, loss):
        """One step on the scalar Tensor ``loss()``; returns its metrics (loss, lr,
        grad_norm)."""
        lr = optim.warmup_cosine(step, self.opts["lr"], self.opts["warmup_steps"], self.steps,
                                 min_lr=self.opts["lr"] / 10)
        self.optimizer.lr = lr
        self.optimizer.zero_grad()
        loss = loss()
        loss.backward()
        self.minibatch.reduce(self.model)
        metrics = {**self.minibatch.mean({"loss": loss.item()}), "lr": lr}
        if self.opts["grad_clip"]:
            metrics["grad_norm"] = optim.clip_grad_norm_(self.model, self.opts["grad_clip"])
        self.optimizer.step()
        self.ema.update()
        return metrics

    def schedules_tied_to_steps(self, done, planned):
        """The cosine decay after the warm-up is set by the total number of steps."""
        return ["the learning rate's cosine decay"] if done - 1 > self.opts["warmup_steps"] else []

    def state(self):
        return {"model": self.model.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state(self, state):
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])


class DDPMTrainer(DenoiserSteps, Trainer):
    """Train a DDPM on ``data`` ((n, d) vectors or (n, C, H, W) images, in any units).

    Options (defaults from :data:`VECTOR_DEFAULTS` / :data:`IMAGE_DEFAULTS` by data rank):
    ``model`` ("MLP" | "UNet") and ``model_config`` (constructor arguments), ``schedule`` (a
    :class:`NoiseSchedule` config dict), ``prediction``, ``variance``, ``clip_x0``,
    ``batch_size``, ``lr`` (peak, reached after ``warmup_steps``, then cosine decay to
    lr/10 at ``steps``), ``ema_decay``, ``grad_clip`` (max global grad norm, None = off),
    ``normalization`` (None = fitted to the data), ``data_name`` (for config.json),
    ``figures`` (write figures at each checkpoint), ``device``.

    ``formulation="edm"`` trains the same network in the EDM formulation instead (Karras et
    al. 2022, :class:`~minigen.diffusion.edm.EDM`: options ``sigma_data``, ``p_mean``,
    ``p_std``; the DDPM-only ones, ``schedule``, ``prediction``, ``variance``, ``clip_x0``
    and ``min_snr_gamma``, must then keep their defaults, and vice versa). ``self.ddpm`` is
    the DDPM or the EDM.

    Classifier-free guidance (Ho & Salimans 2022, Algorithm 1): with ``conditional`` True,
    ``labels`` (one integer >= 0 per row of ``data``) condition the denoiser
    (``num_classes`` = max label + 1), and each training label is replaced by the null class
    with probability ``label_dropout`` so that the same network also learns the
    unconditional model that guided sampling (:meth:`DDPM.model_output`) needs.

    ``comm``: the ranks that train this model together (see
    :class:`minigen.trainer.Trainer`); ``batch_size`` is the global batch over all of them.
    """

    kind = "ddpm"

    def __init__(self, data, out_dir, steps, seed=0, checkpoint_every=1000, progress=True,
                 figures=True, data_name=None, device="cpu", normalization=None, labels=None,
                 comm=None,
                 **options):
        data = np.asarray(data)
        opts = checks.check("DDPMTrainer", options_for(data), options, defaults_for(data))
        check_formulation(opts, defaults_for(data))
        if not np.all(np.isfinite(data)):
            raise InvalidInput("DDPMTrainer: data contains NaN or inf values")
        if len(data) < 2:
            raise InvalidInput(f"DDPMTrainer: need at least 2 training examples, got {len(data)}")
        self.labels = _check_labels(labels, data, opts) if opts["conditional"] else None
        normalization = normalization or fit_normalization(data)
        config = {"data": data_name, "data_shape": list(data.shape[1:]),
                  "data_fingerprint": data_fingerprint(data), "normalization": normalization,
                  **opts}
        super().__init__(out_dir, steps, seed=seed, checkpoint_every=checkpoint_every,
                         progress=progress, config=config, comm=comm)
        self.opts, self.figures, self.device = opts, figures, device
        self.data_raw = data
        model_config = denoiser_config(opts["model"], opts["model_config"], data.shape)
        if self.labels is not None:
            model_config["num_classes"] = int(self.labels.max()) + 1
        self.model = nn.build_model(opts["model"], model_config).to(device)
        dtype = self.model.parameters()[0].dtype
        self.data = backend.to_device(normalize(data, normalization).astype(dtype), device)
        self.config["model_config"] = self.model.config
        self.ddpm = diffusion_model(self.model, opts)  # a DDPM, or an EDM
        checks.check_batch("DDPMTrainer", opts["batch_size"], self.comm)
        checks.check_memory("DDPMTrainer", opts["batch_size"],
                            lambda m: self._probe_loss(self.data[:m]), self.comm, device=device)
        self.optimizer = optim.Adam(self.model, lr=opts["lr"])
        self.minibatch = Minibatch(opts["batch_size"], comm=self.comm)
        self.ema = optim.EMA(self.model, decay=opts["ema_decay"])
        self.samples, self.quality = None, {}  # of the latest figures (EMA weights)
        # a fixed batch, t and noise for health_metrics (its own generator: the training's
        # random stream is not touched)
        probe = np.random.default_rng(0)
        self._probe_batch = (
            self.data[backend.to_device(probe.integers(0, len(data), size=min(len(data), 256)),
                                        device)],
            int(probe.integers(2**31)),
        )

    # --- Trainer interface ---------------------------------------------------------------
    def train_step(self, step):
        """Algorithm 1 on a minibatch (this process's rows of it: see
        :mod:`minigen.minibatch`), with label dropout to the null class for guidance (Ho &
        Salimans 2022, Algorithm 1), Adam at the scheduled lr, gradient clipping and EMA."""
        batch = self.minibatch
        index = batch.integers(0, len(self.data), size=batch.m)
        y = None
        if self.labels is not None:
            y = self.labels[index]
            y[batch.random(batch.m) < self.opts["label_dropout"]] = self.model.num_classes
        x0 = self.data[backend.to_device(index, self.device)]
        return self.optimize(step, lambda: self.ddpm.loss(x0, y=y, seed=batch))

    def health_metrics(self):
        """The loss (Algorithm 1) on a fixed batch, t and noise at the current weights."""
        x0, seed = self._probe_batch
        with no_grad():
            return {"loss": self._probe_loss(x0, seed).item()}

    def _probe_loss(self, x0, seed=0):
        """The loss of ``x0`` with t and noise drawn from ``seed``, the model in eval mode
        (the training's random stream is not touched)."""
        with eval_mode(self.model):
            return self.ddpm.loss(x0, seed=seed)

    def on_checkpoint(self, step):
        if self.figures:
            from minigen.diffusion import figures

            final = step == self.steps
            self.samples, forward, reverse = figures.checkpoint_samples(self, final)
            self.quality = self.evaluate(self.samples, final)
            figures.ddpm_figures(self, self.samples, forward, reverse, self.quality)

    def evaluate(self, samples, final=True):
        """The numbers of :func:`minigen.evaluate.evaluate_samples` for ``samples`` (data
        units) of this run's data set; for images only at the end (the classifier takes a
        few seconds to train), else {}."""
        from minigen.evaluate import evaluate_samples

        if samples.ndim == 4 and not final:
            return {}
        reference = self.data_raw if samples.ndim == 2 else None
        return evaluate_samples(samples, self.config.get("data"), reference=reference)

    # --- sampling --------------------------------------------------------------------------
    def sample(self, n, sampler=None, steps=None, eta=0.0, seed=0, progress=False,
               return_trajectory=False, y=None, guidance=0.0):
        """``n`` samples in data units from the EMA weights (see :func:`sample_ddpm`)."""
        with self.ema.swap(self.model):
            return sample_ddpm(self.ddpm, self.config["normalization"], n, self.data.shape[1:],
                               sampler, steps, eta, seed, progress, return_trajectory, y,
                               guidance)


MAX_CLASSES = 2**16
"""Most classes a conditional run takes (each has a row in the label embedding)."""


def _check_labels(labels, data, opts):
    if labels is None:
        raise InvalidInput("DDPMTrainer: conditional=True needs labels, one per row of the data "
                         "(labelled sets: digits, " + ", ".join(datasets.MIXTURES)
                         + ", or a .npz holding x and y)")
    labels = np.asarray(labels)
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu" or labels.min() < 0:
        raise InvalidInput(f"DDPMTrainer: labels must be {len(data)} integers >= 0 (one per row "
                         f"of the data), got dtype {labels.dtype} and shape {labels.shape}")
    if labels.max() >= MAX_CLASSES:
        raise InvalidInput(f"DDPMTrainer: labels are class numbers 0..K-1 with K at most "
                           f"{MAX_CLASSES}, got a largest label of {labels.max()}; number the "
                           "classes from 0")
    return labels.astype(np.int64)


SAMPLE_CHUNK_ELEMENTS = 1 << 18
"""Values per sampling chunk (131072 2-D points, 4096 8x8 images): the chain's memory is
bounded by the chunk, not by ``n``."""


DDPM_SAMPLERS = ("ddpm", "ddim", "dpm++2m", "dpm++2m-sde")


def sample_ddpm(ddpm, normalization, n, sample_shape, sampler=None, steps=None, eta=0.0, seed=0,
                progress=False, return_trajectory=False, y=None, guidance=0.0, out=None,
                check_finite=False, classifier=None, classifier_scale=1.0):
    """``n`` samples of ``ddpm`` mapped back to data units with ``normalization``.

    ``sampler`` "ddpm" (ancestral, Algorithm 2, all T steps), "ddim" (``steps``, default 50,
    with ``eta``), "dpm++2m" (DPM-Solver++(2M), ``steps``, default 20) or "dpm++2m-sde"
    (SDE-DPM-Solver++(2M), ``steps``, default 20); ``y`` (labels) and
    ``guidance`` as in :meth:`DDPM.model_output`. The chains run in chunks of
    :data:`SAMPLE_CHUNK_ELEMENTS` values, one generator (``seed``) drawing for all of them in
    turn; ``out`` (n, *sample_shape) receives them if given, ``check_finite`` refuses NaN/inf
    samples (see :func:`minigen.trainer.sample_in_chunks`). With a ``classifier``
    p_phi(y | x_t, t) the chains are guided toward ``y`` with scale ``classifier_scale``
    (:func:`~minigen.diffusion.classifier_guidance.classifier_guided_sample`; ``y`` also
    conditions a conditional model). With ``return_trajectory`` (one
    chunk: all ``n`` at once) returns ``(samples, {t: x_t})``, the trajectory left in model
    units (it is what the model sees).

    An :class:`~minigen.diffusion.edm.EDM` samples with ``sampler`` "heun" (Algorithm 1, the
    default) or "stochastic" (Algorithm 2) in ``steps`` steps (default 18: 35 network
    evaluations), without trajectory."""
    if isinstance(ddpm, EDM):
        sampler = edm.SAMPLERS[0] if sampler is None else sampler
        allowed = edm.SAMPLERS
    else:
        sampler = "ddpm" if sampler is None else sampler
        allowed = DDPM_SAMPLERS
        if sampler == "ddpm" and steps not in (None, ddpm.schedule.T):
            raise InvalidInput(f"sample: the ddpm sampler runs all T = {ddpm.schedule.T} steps; "
                               f"use --sampler ddim for {steps} steps")
    if sampler not in allowed:
        raise InvalidInput(f"sample: this {type(ddpm).__name__} run's sampler must be one of "
                           f"{', '.join(map(repr, allowed))}, got {sampler!r}")
    if seed is not None and not hasattr(seed, "standard_normal"):
        seed = backend.xp_for(ddpm.model.parameters()[0].device).random.default_rng(seed)
    per_row = None if y is None or np.ndim(y) == 0 else np.asarray(backend.to_numpy(y))
    done = [0]  # samples drawn so far: per-row labels follow the chunks

    def draw(m, return_trajectory=False):
        shape = (m, *sample_shape)
        labels = y if per_row is None else per_row[done[0]:done[0] + m]
        done[0] += m
        kw = dict(progress=progress, seed=seed, return_trajectory=return_trajectory, y=labels,
                  guidance=guidance)
        if classifier is not None:
            conditional = getattr(ddpm.model, "num_classes", None) is not None
            x = classifier_guided_sample(ddpm, classifier, shape, labels, classifier_scale,
                                         sampler, steps, eta, seed, progress,
                                         labels if conditional else None, guidance)
        elif sampler in edm.SAMPLERS:
            x = ddpm.sample(shape, 18 if steps is None else steps, sampler, seed=seed, y=labels,
                            guidance=guidance, progress=progress)
        elif sampler == "ddpm":
            x = ddpm.sample(shape, **kw)
        elif sampler == "ddim":
            x = ddpm.ddim_sample(shape, 50 if steps is None else steps, eta=eta, **kw)
        else:
            x = ddpm.dpm_solver_sample(shape, 20 if steps is None else steps,
                                       sde=sampler == "dpm++2m-sde", **kw)
        if return_trajectory is not False:
            return x
        x = backend.to_numpy(x)
        return x, denormalize(x, normalization)

    if classifier is not None and (y is None or return_trajectory is not False):
        raise InvalidInput("sample: classifier guidance needs a label y and returns no "
                           "trajectory")
    if return_trajectory is not False:
        x, trajectory = draw(int(n), return_trajectory)
        return denormalize(backend.to_numpy(x), normalization), trajectory
    chunk = max(1, SAMPLE_CHUNK_ELEMENTS // int(np.prod(sample_shape)))
    return sample_in_chunks(draw, n, chunk, out=out, check_finite=check_finite)


def train_ddpm(data, steps, out_dir, seed=None, resume=False, progress=True, figures=True,
               checkpoint_every=1000, device="cpu", labels=None, overwrite=False, comm=None,
               **options):
    """Train a DDPM in ``out_dir`` and return the :class:`DDPMTrainer` (``minigen train ddpm``).

    ``data``: a dataset name of ``minigen.data.DATASETS`` (drawn with ``seed``, default 0;
    "digits" are the 8x8 images), a path to a ``.npy``/``.npz`` file, or an array (with
    ``labels`` for a ``conditional`` run; a named set or file brings its own: see
    :func:`minigen.data.load_labelled`). ``options``: see :class:`DDPMTrainer`. ``out_dir``
    belongs to one run (:func:`minigen.rundir.open_run`): a directory that holds a run is
    refused unless ``resume`` or ``overwrite``. With ``resume`` the run continues (to
    ``steps``) with the seed, options and normalisation it was started with, bit for bit as if
    it had never stopped (to a total beyond the planned one, a ``ResumeNotice`` says why not:
    the learning rate decays over the planned total), after checking that it is a DDPM run
    and ``data`` are its data; options given that it ignores are named in a warning; a
    directory without a run is refused, a run without a checkpoint starts at step 0. ``device`` ("cpu" or "cuda") is where the model trains; a run may resume on the
    other device. ``comm``: the ranks that train together (default: all ranks of
    ``mpiexec``, or this process alone); a run may resume at another number of ranks."""
    saved = open_run(out_dir, "ddpm", resume, overwrite)
    if saved is not None:
        warn_ignored_on_resume({"seed": seed, **options}, saved, stacklevel=2)
        seed = saved["seed"]
    seed = 0 if seed is None else seed
    conditional = (saved if saved is not None else options).get("conditional")
    if conditional and isinstance(data, (str, os.PathLike)):
        data_name = os.fspath(data)
        data, labels = load_labelled_data(data_name, seed, "--conditional")
    else:
        data, data_name = load_data(data, seed)
    if saved is not None:
        check_resume_data(saved, data, out_dir)
        options = {k: saved.get(k, v) for k, v in defaults_for(data).items()}
        options["normalization"] = saved["normalization"]
    trainer = DDPMTrainer(data, out_dir, steps, seed=seed, progress=progress, figures=figures,
                          checkpoint_every=checkpoint_every, data_name=data_name, device=device,
                          labels=labels, comm=comm, **options)
    return trainer.fit_run(saved is not None, overwrite)


def load_run(run_dir, use_ema=True, device="cpu"):
    """``(ddpm, config)`` of a trained DDPM run, the model holding the EMA weights (or the raw
    ones with ``use_ema=False``), in eval mode."""
    config, state = read_run(run_dir, "ddpm")
    model = load_weights(nn.build_model(config["model"], config["model_config"]), state,
                         config, use_ema, device)
    return diffusion_model(model, config), config


def load_weights(model, state, config, use_ema=True, device="cpu"):
    """``model`` holding a diffusion run's weights from its checkpoint ``state``: the EMA
    of them (``use_ema``) or the raw ones, on ``device``, in eval mode."""
    model.load_state_dict(state["model"])
    if use_ema:
        ema = optim.EMA(model, decay=config["ema_decay"])
        ema.load_state_dict(state["ema"])
        ema.copy_to(model)
    return model.to(device).eval()


def sample_run(run_dir, n, sampler=None, steps=None, eta=0.0, seed=0, progress=False,
               device="cpu", label=None, guidance=0.0, out=None, classifier=None, scale=1.0):
    """``n`` samples (data units, a NumPy array) from the trained DDPM run in ``run_dir``,
    computed on ``device`` in bounded memory (written into ``out`` if given); ``label`` (an
    int; None: the null class) and ``guidance`` for class-conditional runs
    (:meth:`DDPM.model_output`). ``classifier``: the directory of a classifier run trained
    for this run (:mod:`minigen.diffusion.classifier`), which guides the chains toward
    ``label`` with scale ``scale`` (classifier guidance, Dhariwal & Nichol 2021). NaN/inf
    samples raise ``NonFiniteSamples`` (``minigen.errors``)."""
    ddpm, config = load_run(run_dir, device=device)
    if classifier is not None and isinstance(ddpm, EDM):
        raise InvalidInput("sample: classifier guidance is for DDPM runs; this run is EDM")
    if classifier is not None:
        from minigen.diffusion.classifier import check_pairing, load_classifier

        classifier, clf_config = load_classifier(classifier, device=device)
        check_pairing(clf_config, config, "sample")
        if label is None or not 0 <= label < clf_config["num_classes"]:
            raise InvalidInput(f"sample: classifier guidance needs a label in [0, "
                               f"{clf_config['num_classes'] - 1}], got {label}")
    return sample_ddpm(ddpm, config["normalization"], n, config["data_shape"], sampler, steps,
                       eta, seed, progress, y=_run_label(ddpm, label), guidance=guidance, out=out,
                       check_finite=True, classifier=classifier, classifier_scale=scale)


def edit_run(run_dir, x, strength, sampler="ddpm", steps=50, eta=0.0, seed=0, progress=False,
             device="cpu", label=None, guidance=0.0):
    """SDEdit (:meth:`DDPM.edit`) of the rows of ``x`` (data units) with the trained DDPM run
    in ``run_dir``: one output per row, in data units."""
    ddpm, config = _load_ddpm_run(run_dir, device, "edit_run (SDEdit)")
    x = _inputs(x, config, "edit_run")
    out = ddpm.edit(backend.to_device(normalize(x, config["normalization"]), device), strength,
                    sampler=sampler, steps=steps, eta=eta, y=_run_label(ddpm, label),
                    guidance=guidance, seed=seed, progress=progress)
    return denormalize(backend.to_numpy(out), config["normalization"])


def inpaint_run(run_dir, x, mask, resample=1, jump=1, seed=0, progress=False, device="cpu",
                label=None, guidance=0.0):
    """RePaint (:meth:`DDPM.inpaint`) of the rows of ``x`` (data units) where ``mask`` is 0,
    with the trained DDPM run in ``run_dir``: one completion per row, in data units, whose
    known entries (``mask`` 1) are ``x``'s exactly."""
    ddpm, config = _load_ddpm_run(run_dir, device, "inpaint_run (RePaint)")
    given, mask = np.shape(x), np.asarray(mask)
    x = _inputs(x, config, "inpaint_run")
    if mask.shape == given and len(given) == x.ndim - 1:
        mask = mask[:, None]  # grayscale (n, H, W), as _inputs takes x
    if mask.shape != x.shape:
        raise InvalidInput(f"inpaint_run: mask has shape {mask.shape}, x has {x.shape}; they "
                         "must be equal")
    out = ddpm.inpaint(backend.to_device(normalize(x, config["normalization"]), device), mask,
                       resample=resample, jump=jump, y=_run_label(ddpm, label),
                       guidance=guidance, seed=seed, progress=progress)
    out = denormalize(backend.to_numpy(out), config["normalization"])
    return np.where(mask == 1, x, out)  # exact in data units, not round-tripped through float32


def _load_ddpm_run(run_dir, device, fn):
    """:func:`load_run` of a run in the DDPM formulation, which ``fn`` is written for."""
    ddpm, config = load_run(run_dir, device=device)
    if isinstance(ddpm, EDM):
        raise InvalidInput(f"{fn} works on DDPM runs; {run_dir} holds an EDM run")
    return ddpm, config


def _run_label(ddpm, label):
    """``label`` of the ``*_run`` functions: None (the null class) or a class 0..K-1 of a
    conditional run; K itself, the null class, is asked for by omitting the label."""
    classes = getattr(ddpm.model, "num_classes", None)
    if label is not None and classes is not None and not 0 <= label < classes:
        raise InvalidInput(f"label must lie in [0, {classes - 1}] (omit it for the null class, "
                           f"i.e. unconditional sampling), got {label}")
    return label


def _inputs(x, config, fn):
    """``x`` as float32 rows of the run's data shape (grayscale (n, H, W) accepted)."""
    x = np.asarray(x, dtype=np.float32)
    shape = tuple(config["data_shape"])
    if x.ndim == len(shape) and len(shape) == 3:
        x = x[:, None]
    if x.shape[1:] != shape or not np.all(np.isfinite(x)):
        raise InvalidInput(f"{fn}: expected finite rows of shape {shape} (the run's data), got an "
                         f"array of shape {x.shape}")
    return x
