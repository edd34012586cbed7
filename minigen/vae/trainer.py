"""The VAE trainer: the loop around :class:`minigen.vae.vae.VAE` on the shared ``Trainer``.

It owns what is not the algorithm: options, the data in model units and its held-out part,
the default networks (MLPs on flattened inputs, as in the paper's experiments), the
optimizer, the held-out evaluation at each checkpoint (ELBO, IWAE-k bound, active units),
figures, and saving, loading and sampling runs. Images are mapped onto [0, 1] and modelled
with the Bernoulli decoder (the paper's MNIST setting); vectors are standardised per
feature and modelled with the Gaussian decoder. Bounds are in nats per example in those
model units. Every training draw (minibatch, eps) comes from minigen's CPU generator
through a :class:`~minigen.minibatch.Minibatch`: a resumed run continues bit for bit.
"""
import os

import numpy as np

from minigen import backend, nn, optim
from minigen import options as checks
from minigen.errors import InvalidInput
from minigen.minibatch import Minibatch
from minigen.nn.mlp import ACTIVATIONS
from minigen.nn.module import Module
from minigen.rundir import (
    check_resume_data, data_fingerprint, warn_ignored_on_resume, open_run, read_run,
)
from minigen.tensor import Tensor
from minigen.trainer import (
    Trainer, denormalize, fit_normalization, load_data, normalize,
    sample_in_chunks,
)
from minigen.vae import figures as plots
from minigen.vae.vae import LIKELIHOODS, VAE, log_mean_exp

DEFAULTS = dict(
    latent_dim=2,
    hidden=[128, 128],
    activation="tanh",
    likelihood="gaussian",
    beta=1.0,
    batch_size=100,
    lr=1e-3,
    holdout=0.1,
    eval_k=100,
    checkpoint_every=1000,
)
"""Default options of ``VAETrainer`` / ``train_vae`` for vectors (n, d): a Gaussian decoder,
a 2-D latent space, batch 100 (the paper's M), Adam (the paper used Adagrad)."""

IMAGE_DEFAULTS = {**DEFAULTS, "latent_dim": 10, "hidden": [500], "likelihood": "bernoulli"}
"""Defaults for images: the paper's MNIST networks (one hidden layer of 500 tanh units, a
Bernoulli decoder) with 10 latent dimensions (its Figure 2 spans 3 to 200)."""

EVAL_CHUNK = 1000
"""Rows per network pass in the held-out evaluation and in sampling."""


def defaults_for(data):
    """The default options for data of this shape: ``IMAGE_DEFAULTS`` for images (n, C, H,
    W), ``DEFAULTS`` for vectors."""
    return dict(IMAGE_DEFAULTS if np.ndim(data) == 4 else DEFAULTS)


Option = checks.Option
SIZE = dict(low=1, high=checks.MAX_COUNT)
TRAINING_OPTIONS = dict(
    beta=Option("float", "weight of the KL term in the loss (1: the ELBO)", low=0),
    batch_size=Option("int", "global batch m", **SIZE),
    lr=Option("float", "Adam's learning rate", low=0, open="low"),
    holdout=Option("float", "share of the data held out for the bounds", low=0, high=1,
                   open="high"),
    eval_k=Option("int", "k of the held-out IWAE bound L_k", **SIZE),
    checkpoint_every=Option("int", "steps between checkpoints", **SIZE),
)
"""The options every VAE-like trainer has (this one and the autoencoder's)."""

OPTIONS = dict(
    latent_dim=Option("int", "latent dimensions", **SIZE),
    hidden=Option("ints", "MLP hidden sizes (the decoder's reversed)", **SIZE),
    activation=Option("choice", "MLP activation", choices=tuple(ACTIVATIONS)),
    likelihood=Option("choice", "the decoder's distribution of x given z", choices=LIKELIHOODS),
    **TRAINING_OPTIONS,
)
"""Every ``VAETrainer`` option: its type, range or choices, and meaning (docs/guide.md)."""


class Autoencoder(Module):
    """The encoder and decoder as one module (one optimizer, one state dict)."""

    def __init__(self, encoder, decoder):
        self.encoder, self.decoder = encoder, decoder


def build_networks(config):
    """(the networks, the latent shape) of a VAE run's ``config`` (options and
    ``data_shape``): the MLP encoder (features -> 2 latent_dim) and decoder (latent_dim ->
    features, twice that for the Gaussian decoder's mean and log-variance)."""
    features = int(np.prod(config["data_shape"]))
    hidden, act = tuple(config["hidden"]), config["activation"]
    out = features * (2 if config["likelihood"] == "gaussian" else 1)
    latent = config["latent_dim"]
    return Autoencoder(nn.MLP(features, 2 * latent, hidden, activation=act),
                       nn.MLP(latent, out, hidden[::-1], activation=act)), (latent,)


def to_model_units(x, normalization, flatten=True):
    """Data -> model units: images onto [0, 1], vectors standardised; flattened to (n,
    features) when ``flatten`` (the MLPs' input)."""
    y = normalize(x, normalization)
    if np.ndim(x) == 4:
        y = (y + 1) / 2
    return (y.reshape(len(y), -1) if flatten else y).astype(np.float32)


def to_data_units(y, config):
    """Model units (n, features) -> data units of the run's ``data_shape``."""
    shape = tuple(config["data_shape"])
    y = np.asarray(y, dtype=np.float32)
    if len(shape) == 3:
        y = 2 * y - 1
    return denormalize(y.reshape(len(y), *shape), config["normalization"])


class VAETrainer(Trainer):
    """Trains a VAE on ``data`` (vectors (n, d) or images (n, C, H, W)).

    Options (``DEFAULTS`` for vectors, ``IMAGE_DEFAULTS`` for images): ``latent_dim``;
    MLP ``hidden`` sizes and ``activation``; ``likelihood`` "bernoulli" | "gaussian";
    ``beta``, the KL weight of the loss; ``batch_size`` m and Adam's ``lr``; ``holdout``,
    the share of the data kept out of training (drawn with the seed) for the held-out
    bounds; ``eval_k``, the k of the IWAE bound reported at each checkpoint;
    ``checkpoint_every``. Metrics per step: loss (the beta-weighted negative ELBO),
    reconstruction (-log p(x | z)) and kl, in nats per example. ``curve`` holds the held-out
    evaluation (:meth:`evaluate`) at each checkpoint step. ``figures``: samples.png,
    reconstructions.png (images), manifold.png (images with a 2-D latent) and
    heldout.png at each checkpoint. ``device`` and ``comm`` as for the other trainers.
    """

    kind = "vae"
    flatten = True  # the MLPs take flattened images
    build = staticmethod(build_networks)
    option_names = tuple(DEFAULTS)  # what a run keeps when it is resumed

    def __init__(self, data, out_dir, steps, seed=0, progress=True, figures=True, dataset=None,
                 device="cpu", comm=None, **options):
        o = self.check_options(options, data)
        super().__init__(out_dir, steps, seed=seed, checkpoint_every=o["checkpoint_every"],
                         progress=progress, comm=comm)
        checks.check_batch(type(self).__name__, o["batch_size"], self.comm)
        self.options, self.figures = o, figures
        x = np.asarray(data, dtype=np.float32)
        if x.ndim not in (2, 4) or len(x) < 2:
            raise InvalidInput(f"VAETrainer: data must be vectors (n, d) or images (n, C, H, W) "
                               f"with n >= 2, got shape {x.shape}")
        if o["likelihood"] == "bernoulli" and x.ndim == 2:
            raise InvalidInput("VAETrainer: the Bernoulli decoder models images; use "
                               "likelihood='gaussian' for vectors")
        normalization = fit_normalization(x)
        y = to_model_units(x, normalization, self.flatten)
        held = int(round(o["holdout"] * len(y)))
        if len(y) - held < 1:
            raise InvalidInput(f"VAETrainer: holdout {o['holdout']} leaves no training data")
        order = np.random.default_rng(seed).permutation(len(y))
        self.train_x, self.heldout_x = y[order[held:]], y[order[:held]]
        self.device = backend.normalize_device(device)
        self.config = {
            "dataset": dataset,
            "data_shape": list(x.shape[1:]),
            "data_fingerprint": data_fingerprint(data),
            "normalization": normalization,
            **o,
        }
        networks, latent_shape = self.build(self.config)
        self.networks = networks.to(self.device)
        self.vae = VAE(self.networks.encoder, self.networks.decoder, latent_shape,
                       o["likelihood"], o["beta"])
        self.optimizer = optim.Adam(self.networks, lr=o["lr"])
        self.minibatch = Minibatch(o["batch_size"], 1, self.comm)
        self.curve = {"step": [], "elbo": [], "iwae": [], "active_units": []}

    def check_options(self, options, data):
        """The options checked against ``OPTIONS`` and merged with the defaults for ``data``."""
        return checks.check("VAETrainer", OPTIONS, options, defaults_for(data))

    def train_step(self, step):
        o = self.options
        m = o["batch_size"]
        index = self.minibatch.integers(len(self.train_x), size=m)
        eps = self.minibatch.standard_normal((m, *self.vae.latent_shape)).astype(np.float32)
        x, e = (Tensor(backend.to_device(a, self.device)) for a in (self.train_x[index], eps))
        loss, rec, kl = self.vae.loss(x, e)
        self.optimizer.zero_grad()
        loss.backward()
        self.minibatch.step(self.optimizer, self.networks)
        return self.minibatch.mean({"loss": loss.item(), "reconstruction": rec.item(),
                                    "kl": kl.item()})

    def evaluation_data(self):
        """The held-out data in model units (the training data when ``holdout`` is 0)."""
        return self.heldout_x if len(self.heldout_x) else self.train_x

    def tensor(self, x):
        """A NumPy array as a Tensor on the trainer's device."""
        return Tensor(backend.to_device(np.ascontiguousarray(x), self.device))

    def evaluate(self, x=None, k=None):
        """The bounds on ``x`` (model units; default :meth:`evaluation_data`), in nats per
        example: ``elbo`` (log p(x, z) - log q(z | x) at one z per example, an unbiased
        estimate of the bound), ``iwae`` (L_k from the same z and k - 1 more, k =
        ``eval_k`` by default) and the number of ``active_units``. Draws from its own
        generator: the training's random stream is untouched."""
        x = self.evaluation_data() if x is None else x
        k = self.options["eval_k"] if k is None else k
        rng = np.random.default_rng(0)
        rows = max(1, EVAL_CHUNK // k)
        weights = []
        for start in range(0, len(x), rows):
            chunk = self.tensor(x[start:start + rows])
            weights.append(self.vae.log_weights(chunk, rng.standard_normal(
                (k, chunk.shape[0], *self.vae.latent_shape))))
        weights = np.concatenate(weights, axis=1)
        units, _ = self.vae.active_units(self.tensor(x))
        return {"elbo": float(weights[0].mean()),
                "iwae": float(log_mean_exp(weights, axis=0).mean()), "active_units": units}

    def on_step_end(self, step):
        """The held-out evaluation at each checkpoint step, kept in ``curve`` (the paper's
        Figure 2)."""
        if step % self.checkpoint_every == 0 or step == self.steps:
            result = self.evaluate()
            self.curve["step"].append(step)
            for name, value in result.items():
                self.curve.setdefault(name, []).append(value)

    def samples(self, n, seed=0):
        """n samples in data units: the decoder's mean at z ~ N(0, I) drawn with ``seed``."""
        return _sample(self.vae, n, self.config, seed)

    def on_checkpoint(self, step):
        if not self.figures:
            return
        def path(name):
            return os.path.join(self.out_dir, f"{name}.png")

        if len(self.config["data_shape"]) == 3:
            x = self.evaluation_data()[:20]
            plots.reconstructions(self.images(x), self.images(self.vae.reconstruct(self.tensor(x))),
                                  path("reconstructions"))
            z = np.random.default_rng(0).standard_normal((64, *self.vae.latent_shape))
            plots.samples(self.images(_decode(self.vae, z)), path("samples"))
            if self.vae.latent_shape == (2,):
                plots.manifold(self.images(_decode(self.vae, plots.manifold_grid(20))),
                               path("manifold"))
        else:
            data = to_data_units(self.train_x[:2000], self.config)
            plots.samples(self.samples(2000), path("samples"), data=data)
        if self.curve["step"]:
            plots.heldout_bound(self.curve, path("heldout"))

    def images(self, y):
        """Model units (pixels in [0, 1], any shape of n rows) -> images in [-1, 1], the
        range of the figures' image grids."""
        return 2 * np.asarray(y).reshape(len(y), *self.config["data_shape"]) - 1

    def state(self):
        return {"networks": self.networks.state_dict(), "optimizer": self.optimizer.state_dict(),
                "curve": self.curve}

    def load_state(self, state):
        self.networks.load_state_dict(state["networks"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.curve = state["curve"]


def _decode(vae, z):
    """The decoder's mean at latent points ``z`` (NumPy), in model units."""
    device = vae.decoder.parameters()[0].device
    return vae.decode_mean(Tensor(backend.to_device(np.asarray(z, dtype=np.float32), device)))


def _sample(vae, n, config, seed=None, out=None, check_finite=False):
    """n samples in data units, ``EVAL_CHUNK`` at a time: one decoder pass per chunk."""
    rng = np.random.default_rng(seed)

    def draw(m):
        y = _decode(vae, rng.standard_normal((m, *vae.latent_shape)))
        with np.errstate(over="ignore"):
            return y, to_data_units(y, config)

    return sample_in_chunks(draw, n, EVAL_CHUNK, out=out, check_finite=check_finite)


def train_vae(data, steps, out_dir, seed=None, resume=False, progress=True, figures=True,
              device="cpu", overwrite=False, comm=None, **options):
    """Train a VAE and return the ``VAETrainer`` (the CLI's ``minigen train vae``).

    ``data``: a dataset name of ``minigen.data.DATASETS``, a ``.npy``/``.npz`` path or an
    array, as for ``train_gan``; ``options`` override ``DEFAULTS`` / ``IMAGE_DEFAULTS``.
    ``out_dir``, ``resume``, ``overwrite``, ``device`` and ``comm`` behave as for
    :func:`minigen.gan.train_gan`: a resumed run keeps its seed and options (those given
    and ignored are named in an ``IgnoredOptions`` warning) and continues bit for bit."""
    return train_run(VAETrainer, data, steps, out_dir, seed, resume, progress, figures, device,
                     overwrite, comm, options)


def train_run(cls, data, steps, out_dir, seed, resume, progress, figures, device, overwrite,
              comm, options):
    """Open ``out_dir`` for a run of the trainer class ``cls`` (fresh, or resumed with its
    saved seed and options), build the trainer and fit it."""
    saved = open_run(out_dir, cls.kind, resume, overwrite)
    if saved is not None:
        kept = {name: saved[name] for name in cls.option_names}
        asked = {"seed": seed, **options}
        asked.pop("checkpoint_every", None)
        warn_ignored_on_resume(asked, {**kept, "seed": saved["seed"]}, stacklevel=3)
        options = {**kept, **{name: options[name] for name in ("checkpoint_every",)
                              if name in options}}
        seed = saved["seed"]
    seed = 0 if seed is None else seed
    data, dataset = load_data(data, seed)
    if saved is not None:
        check_resume_data(saved, data, out_dir)
    trainer = cls(data, out_dir, steps, seed=seed, progress=progress, figures=figures,
                  dataset=dataset, device=device, comm=comm, **options)
    return trainer.fit_run(saved is not None, overwrite)


def load_vae(run_dir, kind="vae"):
    """(the :class:`VAE` in eval mode, the run's config) rebuilt from the ``kind`` run
    ("vae", or "autoencoder": :mod:`minigen.vae.autoencoder`) saved in ``run_dir``."""
    config, state = read_run(run_dir, kind)
    networks, latent_shape = trainer_class(kind).build(config)
    networks.load_state_dict(state["networks"])
    networks.eval()
    return VAE(networks.encoder, networks.decoder, latent_shape, config["likelihood"],
               config["beta"]), config


def trainer_class(kind):
    """The trainer of a run ``kind``: ``VAETrainer`` or the autoencoder's."""
    if kind == "autoencoder":
        from minigen.vae.autoencoder import AutoencoderTrainer

        return AutoencoderTrainer
    return VAETrainer


def sample_run(run_dir, n, seed=None, device="cpu", out=None):
    """n samples (float32, data units) from the VAE saved in ``run_dir``: one decoder pass
    per chunk at z ~ N(0, I), on ``device``, into ``out`` if given. NaN/inf samples raise
    ``NonFiniteSamples``."""
    if int(n) < 1:
        raise InvalidInput(f"sample_run: n must be >= 1, got {n}")
    vae, config = load_vae(run_dir)
    vae.encoder.to(device)
    vae.decoder.to(device)
    return _sample(vae, int(n), config, seed, out=out, check_finite=True)
