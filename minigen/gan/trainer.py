"""The GAN trainer: the loop around :class:`minigen.gan.gan.GAN` on the shared ``Trainer``.

It owns what is not the algorithm: options and presets, the standardised data, the default
networks, the optimizers and their learning-rate schedule, the top-k schedule, an EMA of G,
figures (at checkpoints) and saving, loading and sampling runs. Everything random comes from
minigen's CPU generator, whose state the base trainer checkpoints: a resumed run continues
bit for bit. The data are standardised before training (vectors: minus their mean, divided
by one overall standard deviation, which keeps the geometry; images: their value range
mapped to [-1, 1], the range of G's tanh output) and samples are mapped back, so the same
settings work at any scale.
"""
import contextlib
import os

import numpy as np

from minigen import backend, nn, optim
from minigen import options as checks
from minigen.errors import InvalidInput
from minigen.gan import figures as plots
from minigen.gan.gan import GAN, NOISES, noise_prior, sigmoid, truncate
from minigen.gan.losses import LOSSES, discriminator_loss, generator_loss
from minigen.gan.models import DCGANDiscriminator, DCGANGenerator, build_model, with_labels
from minigen.gan.penalties import PENALTIES
from minigen.minibatch import Minibatch
from minigen.nn.module import eval_mode
from minigen.tensor import Tensor, no_grad
from minigen.rundir import (
    check_resume_data, data_fingerprint, warn_ignored_on_resume, open_run, read_run,
)
from minigen.trainer import (
    Trainer, fit_normalization, load_data, load_labelled_data, sample_in_chunks,
)

OPTIMIZERS = ("adam", "sgd")

DEFAULTS = dict(
    k=1,
    loss="nonsaturating",
    simultaneous=False,
    batch_size=256,
    lr=1e-3,
    betas=(0.5, 0.999),
    lr_decay=True,
    latent_dim=2,
    noise="normal",
    hidden=128,
    depth=3,
    base_channels=16,
    label_smoothing=0.0,
    penalty="none",
    penalty_weight=0.1,
    pack=1,
    input_scale=4.0,
    ema_decay=0.0,
    top_k=0.5,
    top_k_until=0.5,
    optimizer="adam",
    momentum=0.5,
    checkpoint_every=1000,
    conditional=False,
)
"""Default options of ``GANTrainer`` / ``train_gan`` for vector data (the CLI's defaults),
tuned for mode coverage on the PacGAN mixtures (docs/tuning.md)."""

PAPER = {**DEFAULTS, "loss": "minimax", "noise": "uniform", "optimizer": "sgd", "lr": 0.1,
         "momentum": 0.5, "lr_decay": False, "input_scale": 1.0, "top_k": 1.0,
         "top_k_until": 0.0}
"""Goodfellow et al. 2014, Algorithm 1 as printed: the minimax losses, k = 1, uniform noise,
minibatch SGD with momentum (the paper: "we used momentum in our experiments"), constant
learning rate, nothing added (no top-k, no input scaling). The learning rate is not in the
paper; 0.1 with momentum 0.5 is the setting of its pylearn2 code."""

PRESETS = {"tuned": DEFAULTS, "paper": PAPER}

IMAGE_DEFAULTS = {**DEFAULTS, "batch_size": 64, "lr": 2e-4, "latent_dim": 32, "input_scale": 1.0,
                  "top_k": 1.0}
"""Defaults for images: DCGAN's batch 64 and Adam(2e-4, beta1 0.5) (Radford et al. 2015, sec. 4),
without top-k (not measured on images)."""

ADDED_OPTIONS = dict(ema_decay=0.0, top_k=1.0, top_k_until=0.0, optimizer="adam", momentum=0.5,
                     conditional=False)
"""Options added after runs were first saved, with the values that reproduce such runs."""

DEFAULT_STEPS = 16000
"""Training steps that go with ``DEFAULTS`` (bench/coverage.py; docs/tuning.md)."""


def defaults_for(data, preset="tuned"):
    """The default options for data of this shape, vectors (n, d) or images (n, C, H, W):
    the ``preset`` "tuned" (``DEFAULTS`` / ``IMAGE_DEFAULTS``) or "paper" (``PAPER``)."""
    if preset not in PRESETS:
        raise InvalidInput(f"GANTrainer: preset must be one of {sorted(PRESETS)}, got {preset!r}")
    if preset == "tuned" and np.ndim(data) == 4:
        return dict(IMAGE_DEFAULTS)
    return dict(PRESETS[preset])


Option = checks.Option
_SIZE = dict(low=1, high=checks.MAX_COUNT)
_UNIT = dict(low=0, high=1, open="high")
OPTIONS = dict(
    k=Option("int", "discriminator steps per generator step", **_SIZE),
    loss=Option("choice", "the losses", choices=LOSSES),
    simultaneous=Option("bool", "update D and G from the same batch at once"),
    batch_size=Option("int", "global batch m (a multiple of pack)", **_SIZE),
    lr=Option("float", "learning rate of both optimizers", low=0, open="low"),
    betas=Option("floats", "Adam's betas", length=2, **_UNIT),
    lr_decay=Option("bool", "cosine decay of the learning rate to 0 over the run"),
    latent_dim=Option("int", "size of G's noise input", **_SIZE),
    noise=Option("choice", "the noise prior", choices=NOISES),
    hidden=Option("int", "MLP width (vectors)", **_SIZE),
    depth=Option("int", "MLP hidden layers (vectors)", **_SIZE),
    base_channels=Option("int", "DCGAN width (images)", **_SIZE),
    label_smoothing=Option("float", "one-sided label smoothing of D's real targets", **_UNIT),
    penalty=Option("choice", "gradient penalty", choices=PENALTIES),
    penalty_weight=Option("float", "R1's gamma or WGAN-GP's lambda", low=0),
    pack=Option("int", "PacGAN packing degree", **_SIZE),
    input_scale=Option("float", "factor on D's standardised input", low=0, open="low"),
    ema_decay=Option("float", "EMA of G's weights (0: off)", **_UNIT),
    top_k=Option("float", "share of the fakes kept in G's loss at the start", low=0, high=1,
                 open="low"),
    top_k_until=Option("float", "share of the run with top-k", low=0, high=1),
    optimizer=Option("choice", "optimizer of both networks", choices=OPTIMIZERS),
    momentum=Option("float", "SGD momentum", **_UNIT),
    checkpoint_every=Option("int", "steps between checkpoints", **_SIZE),
    conditional=Option("bool", "class-conditional G and D on the data's labels"),
)
"""Every ``GANTrainer`` option: its type, range or choices, and meaning (docs/guide.md)."""


def _check_options(options, defaults):
    o = checks.check("GANTrainer", OPTIONS, options, defaults)
    if o["batch_size"] % o["pack"]:
        raise InvalidInput(f"GANTrainer: batch_size {o['batch_size']} must be a multiple of "
                         f"pack {o['pack']}")
    o["betas"] = tuple(o["betas"])
    return o


class GANTrainer(Trainer):
    """Trains a GAN on ``data`` (an array of vectors (n, d) or images (n, C, H, W)).

    Options (``DEFAULTS`` for vectors, ``IMAGE_DEFAULTS`` for images): ``k`` D-steps per
    G-step; ``loss`` "minimax" | "nonsaturating" | "wasserstein"; ``simultaneous``;
    ``batch_size`` m; Adam ``lr`` and ``betas`` for both networks, with a cosine decay to 0
    over the run when ``lr_decay``; ``latent_dim`` and ``noise`` prior; MLP ``hidden`` width
    and ``depth`` (vectors) or DCGAN ``base_channels`` (images); one-sided
    ``label_smoothing``; ``penalty`` "none" | "r1" | "wgan-gp" with its ``penalty_weight``
    (R1's gamma, WGAN-GP's lambda); PacGAN ``pack``; ``input_scale`` multiplies D's
    (standardised) input, i.e. the initial resolution of D's first layer: with 1, D starts
    smooth at the scale of the whole data set and needs many steps to grow weights sharp
    enough to resolve narrow modes. ``ema_decay`` > 0 keeps an exponential moving average of
    G's weights (``optim.EMA``, with its warm-up), updated after each G step, and samples,
    figures and ``sample_run`` use it: averaging G's iterates damps the oscillation of the
    adversarial game (Yazici et al. 2019); 0 samples the raw G. ``top_k`` < 1: G's loss
    uses only the fakes D rates most real, a fraction max(top_k, 0.99^epoch) of the batch
    (Sinha et al. 2020), for the first ``top_k_until`` of the run, then the whole batch again
    (see ``kept_fraction``).
    ``figures``: write samples.png (and figure1.png for 1-D data) at each checkpoint.
    ``device``: "cpu" (NumPy) or "cuda" (CuPy) for both networks and their batches.
    ``generator``/``discriminator`` replace the default networks (D must then accept packed
    inputs). ``comm``: the ranks that train together, ``batch_size`` being their global batch
    (see :class:`minigen.trainer.Trainer` and :mod:`minigen.minibatch`). Metrics per step: d_loss, g_loss, d_real and d_fake (mean D(x) on real and fake
    samples; the mean critic score for "wasserstein"), and penalty when one is on.
    ``conditional``: the class-conditional GAN on ``labels`` (one integer >= 0 per row; G
    and D take the one-hot label as K more inputs, :func:`minigen.gan.models.with_labels`).
    """

    kind = "gan"

    def __init__(self, data, out_dir, steps, seed=0, progress=True, figures=True, generator=None,
                 discriminator=None, dataset=None, device="cpu", preset="tuned", comm=None,
                 labels=None, **options):
        o = _check_options(options, defaults_for(data, preset))
        super().__init__(out_dir, steps, seed=seed, checkpoint_every=o["checkpoint_every"],
                         progress=progress, comm=comm)
        self.options = o
        self.figures = figures
        x = np.asarray(data, dtype=np.float32)
        if x.ndim not in (2, 4) or len(x) < 2:
            raise InvalidInput(f"GANTrainer: data must be vectors (n, d) or images (n, C, H, W) "
                             f"with n >= 2, got shape {x.shape}")
        normalization = fit_normalization(x, per_feature_scale=False)
        self.shift = normalization["shift"] if x.ndim == 2 else normalization["shift"][0]
        self.scale = normalization["scale"][0]
        self.data = (x - np.asarray(self.shift, dtype=np.float32)) / np.float32(self.scale)
        self.labels = _check_labels(labels, len(x)) if o["conditional"] else None
        self.num_classes = 0 if self.labels is None else int(self.labels.max()) + 1
        self.device = backend.normalize_device(device)
        self.generator = (generator or self._default_generator()).to(self.device)
        self.discriminator = (discriminator or self._default_discriminator()).to(self.device)
        self.g_optimizer, self.d_optimizer = (self._optimizer(self.generator),
                                              self._optimizer(self.discriminator))
        checks.check_batch("GANTrainer", o["batch_size"], self.comm, group=o["pack"])
        self.gan = GAN(self.generator, self.discriminator, self.g_optimizer, self.d_optimizer,
                       self.data, o, self.device, Minibatch(o["batch_size"], o["pack"], self.comm),
                       labels=self.labels)
        checks.check_memory("GANTrainer", o["batch_size"], self._d_loss_graph, self.comm,
                            group=o["pack"], device=self.device)
        self.ema = optim.EMA(self.generator, o["ema_decay"]) if o["ema_decay"] else None
        self.snapshots = {}
        self.config = {
            "dataset": dataset,
            "data_shape": list(x.shape[1:]),
            "data_fingerprint": data_fingerprint(data),
            "preset": preset,
            "shift": self.shift,
            "scale": self.scale,
            "generator": _spec(self.generator),
            "discriminator": _spec(self.discriminator),
            **{name: list(v) if isinstance(v, tuple) else v for name, v in o.items()},
        }
        if self.labels is not None:  # the class shares that samples without a label follow
            counts = np.bincount(self.labels, minlength=self.num_classes)
            self.config["class_weights"] = (counts / counts.sum()).tolist()
        if self._one_d():
            self._snapshot(0)
        # a fixed real batch and noise for health_metrics (own generator: the training's
        # random stream is not touched)
        probe = np.random.default_rng(0)
        m = o["pack"] * max(1, min(o["batch_size"], 256) // o["pack"])
        index = probe.integers(len(self.data), size=m)
        self._probe_batch = [backend.to_device(a, self.device) for a in (
            self.data[index], noise_prior(m, o["latent_dim"], o["noise"], probe))]
        self._probe_labels = None if self.labels is None else self.labels[index]

    # --- networks and optimizers ---------------------------------------------------------
    def _default_generator(self):
        o, shape = self.options, self.data.shape
        latent = o["latent_dim"] + self.num_classes
        if len(shape) == 4:
            return DCGANGenerator(latent, shape[1], shape[2], o["base_channels"])
        return nn.MLP(latent, shape[1], (o["hidden"],) * o["depth"], activation="relu")

    def _default_discriminator(self):
        o, shape = self.options, self.data.shape
        if len(shape) == 4:
            if shape[2] != shape[3]:
                raise InvalidInput(f"GANTrainer: images must be square, got {shape[1:]}")
            return DCGANDiscriminator((shape[1] + self.num_classes) * o["pack"], shape[2],
                                      o["base_channels"])
        return nn.MLP((shape[1] + self.num_classes) * o["pack"], 1, (o["hidden"],) * o["depth"],
                      activation="leaky_relu")

    def _optimizer(self, model):
        o = self.options
        if o["optimizer"] == "sgd":
            return optim.SGD(model, lr=o["lr"], momentum=o["momentum"])
        return optim.Adam(model, lr=o["lr"], betas=o["betas"])

    # --- schedules -----------------------------------------------------------------------
    def learning_rate(self, step):
        """The lr of both optimizers at ``step``: constant, or cosine-decayed to 0 over the run
        (``lr_decay``)."""
        o = self.options
        return optim.warmup_cosine(step, o["lr"], 0, self.steps) if o["lr_decay"] else o["lr"]

    def kept_fraction(self, step):
        """Fraction of the fakes in G's loss at ``step``: top-k training (Sinha et al. 2020)
        keeps max(top_k, gamma^epoch) with gamma = 0.99, epoch = step m / n, so the
        fakes D rates worst, between modes, stop pulling G off the modes it has; after
        ``top_k_until`` of the run every fake counts again, which pulls those stragglers onto
        the modes (docs/tuning.md)."""
        o = self.options
        if o["top_k"] == 1 or step >= o["top_k_until"] * self.steps:
            return 1.0
        return max(o["top_k"], 0.99 ** (step * o["batch_size"] / len(self.data)))

    def schedules_tied_to_steps(self, done, planned):
        """The lr's cosine decay and the end of top-k are set by the total number of steps."""
        o = self.options
        top_k_ended = o["top_k"] < 1 and done > o["top_k_until"] * min(planned, self.steps)
        return ((["the learning rate's cosine decay"] if o["lr_decay"] and done > 1 else [])
                + (["the top-k fraction"] if top_k_ended else []))

    def train_step(self, step):
        self.g_optimizer.lr = self.d_optimizer.lr = self.learning_rate(step)
        self.gan.keep = self.kept_fraction(step)
        metrics = self.gan.iteration()
        if self.ema is not None:
            self.ema.update()
        return metrics

    def on_step_end(self, step):
        """Snapshots of p_g and D for the 1-D figure (Figure 1) after the steps of
        :func:`plots.moments` (the one before training is taken in ``__init__``)."""
        if self._one_d() and step in plots.moments(self.steps):
            self._snapshot(step)

    def health_metrics(self):
        """D's and G's losses (no penalty, all fakes) on a fixed batch at the current weights."""
        real, z = (Tensor(a) for a in self._probe_batch)
        y, loss = self._probe_labels, self.options["loss"]
        if y is not None:
            real = with_labels(real, y, self.num_classes)
        with no_grad(), eval_mode(self.generator), eval_mode(self.discriminator):
            fake_logits = self.gan.D(self.gan.generate(z, y))
            return {"d_loss": discriminator_loss(self.gan.D(real), fake_logits, loss).item(),
                    "g_loss": generator_loss(fake_logits, loss).item()}

    def _d_loss_graph(self, m):
        """D's loss on m real rows and m fakes, both networks in eval mode (the graph whose
        size estimates a step's memory; the training's random stream is not touched)."""
        o = self.options
        index = np.arange(m) % len(self.data)
        z = noise_prior(m, o["latent_dim"], o["noise"], np.random.default_rng(0))
        real, z = (Tensor(backend.to_device(a, self.device)) for a in (self.data[index], z))
        y = None if self.labels is None else self.labels[index]
        if y is not None:
            real = with_labels(real, y, self.num_classes)
        with eval_mode(self.generator), eval_mode(self.discriminator):
            return discriminator_loss(self.gan.D(real), self.gan.D(self.gan.generate(z, y)),
                                      o["loss"])

    def _one_d(self):
        """1-D data of an unconditional GAN: the run draws Figure 1."""
        return self.data.ndim == 2 and self.data.shape[1] == 1 and self.labels is None

    # --- figures -------------------------------------------------------------------------
    def samples(self, n, seed=0):
        """n samples of G in data units (G in eval mode, holding the EMA weights when
        ``ema_decay`` > 0), from noise drawn with ``seed``."""
        with self.ema.swap(self.generator) if self.ema else contextlib.nullcontext():
            return _sample(self.generator, n, self.config, seed)

    def _snapshot(self, step):
        """p_g and D(x) on a grid at ``step`` for the 1-D figure (outside the training RNG)."""
        lo, hi = np.percentile(self.data[:, 0], [0.5, 99.5])
        pad = 0.5 * (hi - lo)
        grid = np.linspace(lo - pad, hi + pad, 801, dtype=np.float32)[:, None]
        with no_grad():
            packed = np.repeat(grid, self.options["pack"], axis=1)  # D(x, ..., x) when packing
            logits = self.gan.critic(Tensor(backend.to_device(packed, self.device))).numpy()[:, 0]
        if self.options["loss"] != "wasserstein":
            logits = sigmoid(logits)
        self.snapshots[str(step)] = {
            "x": grid[:, 0] * self.scale + self.shift[0],
            "d": logits,
            "samples": self.samples(5000)[:, 0],
        }

    def on_checkpoint(self, step):
        if not self.figures:
            return
        path = os.path.join(self.out_dir, "samples.png")
        if self.data.ndim == 4:  # images in G's range [-1, 1]
            plots.plot_samples((self.samples(64) - self.shift) / self.scale, path)
            return
        x = self.data[:5000] * np.float32(self.scale) + np.asarray(self.shift, dtype=np.float32)
        plots.plot_samples(self.samples(2000), path, data=x)
        if self.snapshots:
            label = "critic" if self.options["loss"] == "wasserstein" else "D(x)"
            plots.plot_figure1(self.snapshots, x[:, 0], os.path.join(self.out_dir, "figure1.png"),
                               d_label=label)

    # --- checkpoint ----------------------------------------------------------------------
    def state(self):
        state = {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "g_optimizer": self.g_optimizer.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
            "snapshots": self.snapshots,
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state(self, state):
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.snapshots = state["snapshots"]


def _check_labels(labels, n):
    labels = None if labels is None else np.asarray(labels)
    if labels is None or labels.shape != (n,) or labels.dtype.kind not in "iu" or (
            labels.size and labels.min() < 0):
        raise InvalidInput(f"GANTrainer: conditional=True needs labels, {n} integers >= 0 (one "
                           "per row; labelled sets: digits, mnist5k, ring8, grid25, or a .npz "
                           "holding x and y)")
    return labels.astype(np.int64)


def _spec(model):
    if not hasattr(model, "config"):
        return None
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in model.config.items()}
    return {"class": type(model).__name__, "config": config}


def _sample(generator, n, config, seed=None, out=None, check_finite=False, truncation=None,
            label=None):
    """n samples of G in data units, 1000 at a time (see ``trainer.sample_in_chunks``), the
    noise truncated to [-psi, psi] when ``truncation`` = psi is given (:func:`truncate`). A
    conditional G draws class ``label`` (an int, or one per sample), or labels with the data's
    class shares when None."""
    rng = np.random.default_rng(seed)
    shift = np.asarray(config["shift"], dtype=np.float32)
    weights = config.get("class_weights")
    labels = None if label is None else np.broadcast_to(label, (n,))
    done = [0]  # samples drawn so far: per-sample labels follow the chunks

    def draw(m):
        z = noise_prior(m, config["latent_dim"], config["noise"], rng)
        if truncation is not None:
            z = truncate(z, truncation, config["noise"], rng)
        z = Tensor(backend.to_device(z, generator.parameters()[0].device))
        if weights is not None:
            y = (labels[done[0]:done[0] + m] if labels is not None
                 else rng.choice(len(weights), size=m, p=weights))
            z = with_labels(z, y, len(weights))
        done[0] += m
        x = backend.to_numpy(generator(z).data)
        with np.errstate(over="ignore"):  # overflow to inf is reported by check_finite
            return x, (x * np.float32(config["scale"]) + shift).astype(np.float32)

    with no_grad(), eval_mode(generator):
        return sample_in_chunks(draw, n, 1000, out=out, check_finite=check_finite)


def train_gan(data, steps, out_dir, seed=None, k=None, loss=None, resume=False, progress=True,
              figures=True, device="cpu", preset=None, overwrite=False, comm=None, labels=None,
              **options):
    """Train a GAN and return the ``GANTrainer`` (the CLI's ``minigen train gan``).

    ``data``: a dataset name of ``minigen.data.DATASETS`` (drawn with ``seed``, default 0), a
    path to a ``.npy``/``.npz`` file, or an array. ``preset``: "tuned" (default:
    ``DEFAULTS`` / ``IMAGE_DEFAULTS``) or "paper" (``PAPER``, Algorithm 1 as printed); ``k``,
    ``loss`` and ``options`` override it. ``out_dir`` belongs to one run
    (:func:`minigen.rundir.open_run`): a directory that holds a run is refused unless
    ``resume`` or ``overwrite``. With ``resume`` the run continues (to ``steps``, with
    ``checkpoint_every`` if given) with the seed and options it was started with, bit for bit
    as if it had never stopped (to a total beyond the planned one, a ``ResumeNotice`` says
    why not when a schedule is set by the total), after checking that it is a GAN run and
    ``data`` are its data; options given that it ignores are named in a warning; a
    directory without a run is refused, a run without a checkpoint starts at step 0. Runs saved before an option existed resume with the value that reproduces
    them (``ADDED_OPTIONS``). ``device``: "cpu" or "cuda" (CuPy); the random draws stay on
    the CPU generator, so a run may resume on either device. ``comm``: the ranks that train
    together (default: all ranks of ``mpiexec``, or this process alone); a run may resume at
    another number of ranks.
    """
    given = {"k": k, "loss": loss}
    options = {**{name: v for name, v in given.items() if v is not None}, **options}
    saved = open_run(out_dir, "gan", resume, overwrite)
    if saved is not None:
        kept = {name: saved.get(name, ADDED_OPTIONS.get(name)) for name in DEFAULTS}
        asked = {"seed": seed, "preset": preset, **options}
        asked.pop("checkpoint_every", None)
        warn_ignored_on_resume(asked, {**kept, "seed": saved["seed"],
                                       "preset": saved.get("preset", preset)}, stacklevel=2)
        options = {**kept, **{name: options[name] for name in ("checkpoint_every",)
                              if name in options}}
        seed, preset = saved["seed"], saved.get("preset", preset)
    seed = 0 if seed is None else seed
    if options.get("conditional") and isinstance(data, (str, os.PathLike)):
        dataset = os.fspath(data)
        data, labels = load_labelled_data(dataset, seed, "--conditional")
    else:
        data, dataset = load_data(data, seed)
    if saved is not None:
        check_resume_data(saved, data, out_dir)
    trainer = GANTrainer(data, out_dir, steps, seed=seed, progress=progress, figures=figures,
                         dataset=dataset, device=device, preset=preset or "tuned", comm=comm,
                         labels=labels, **options)
    return trainer.fit_run(saved is not None, overwrite)


def load_generator(run_dir, use_ema=True):
    """(G in eval mode, the run's config) rebuilt from ``run_dir``'s config and checkpoint;
    G holds the EMA weights when the run kept them (``ema_decay`` > 0) and ``use_ema``."""
    config, state = read_run(run_dir, "gan")
    spec = config["generator"]
    if spec is None:
        raise InvalidInput(f"load_generator: the generator of {run_dir} has no .config to "
                         "rebuild it from")
    generator = build_model(spec["class"], spec["config"])
    generator.load_state_dict(state["generator"])
    if use_ema and "ema" in state:
        optim.EMA(generator, config["ema_decay"]).load_state_dict(state["ema"]).copy_to(generator)
    return generator.eval(), config


def sample_run(run_dir, n, seed=None, device="cpu", out=None, truncation=None, label=None):
    """n samples (float32 NumPy array, data units) from the generator saved in ``run_dir``,
    computed on ``device`` in bounded memory (written into ``out`` if given); ``truncation``
    psi > 0: the truncation trick (:func:`minigen.gan.gan.truncate`); ``label``: the class of
    a conditional run, an int or (n,) ints (None: classes drawn with the data's shares).
    NaN/inf samples raise ``NonFiniteSamples`` (``minigen.errors``)."""
    if int(n) < 1:
        raise InvalidInput(f"sample_run: n must be >= 1, got {n}")
    if truncation is not None and not (np.isfinite(truncation) and truncation > 0):
        raise InvalidInput(f"sample_run: truncation must be a number > 0, got {truncation}")
    generator, config = load_generator(run_dir)
    classes = len(config.get("class_weights") or [])
    if label is not None:
        label = np.asarray(label)
        if label.dtype.kind not in "iu" or label.shape not in ((), (int(n),)) or (
                label.min() < 0 or label.max() >= classes):
            raise InvalidInput(f"sample_run: label {label if label.ndim == 0 else '(array)'} is "
                               "not a class of this run "
                               + (f"(0..{classes - 1}), an int or {n} ints" if classes
                                  else "(it is unconditional)"))
    return _sample(generator.to(device), int(n), config, seed, out=out, check_finite=True,
                   truncation=truncation, label=label)
