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
import json
import os

import numpy as np

from minigen import backend, checkpoint, nn, optim
from minigen import data as datasets
from minigen.diffusion.ddpm import DDPM
from minigen.diffusion.schedule import NoiseSchedule
from minigen.trainer import CHECKPOINT_FILE, Trainer

VECTOR_DEFAULTS = dict(
    model="MLP", model_config=dict(hidden=(128, 128, 128), activation="silu", time_dim=16,
                                   fourier_features=6),
    schedule=dict(kind="quadratic", T=1000), prediction="eps", variance="fixed_small",
    clip_x0=None, batch_size=256, lr=2e-2, warmup_steps=100, ema_decay=0.995, grad_clip=1.0,
)
"""2D sets. Sharp data (modes or curves much narrower than the data's spread) are resolved
only at small noise levels, so the defaults favour them: the quadratic schedule spends about
twice as many of the uniformly drawn training steps t below noise std 0.3 as the linear one
(t < ~180 instead of ~90 of 1000); lr 2e-2 (1e-2 and 3e-3 train too slowly in 8000 steps,
4e-2 is unstable); a 16-d time embedding, so that the data inputs weigh more against it in
the first layer; Fourier features of the input (``fourier_features=6``: sin and cos of
2^k x, k < 6, Tancik et al. 2020), without which the MLP blurs sharp edges and narrow modes
(6000 steps, seed 0, ancestral: checkerboard 81% -> 94-95% of samples inside the support,
grid25 59% -> 99% high quality, ring8 95% -> 99.7%; held-out sets and the protocol in
docs/tuning.md).

Measured (2500 ancestral samples, PacGAN protocol, 8000 steps, seeds 0-4; high-quality share
/ reverse KL): grid25 78% / 0.05 (linear schedule, lr 1e-2, time_dim 32: 33% / 0.33, seeds 0-2;
the misses lie on grid lines between neighbouring modes), ring8 95% / 0.002 (seeds 0-3; before
88%, seed 0). S-curve, 6000 steps, 2000 samples: curve precision 0.99, coverage 1.0 (before 0.98).
Tried without gain: "x0" or "v" prediction, "fixed_large", width 256, depth 4, relu, EMA
0.999 or 0.99, a final lr of lr/100 or lr/2, 1000 warm-up steps; batch 512 adds ~5 points
on grid25 (4 seeds) for 1.9x the training time."""

IMAGE_DEFAULTS = dict(
    model="UNet",
    model_config=dict(base_channels=32, channel_mults=(1, 2), num_res_blocks=1, dropout=0.0,
                      groups=8, time_dim=128),
    schedule=dict(kind="linear", T=1000), prediction="eps", variance="fixed_small", clip_x0=1.0,
    batch_size=64, lr=1e-3, warmup_steps=200, ema_decay=0.995, grad_clip=1.0,
)
"""Small images such as the 8x8 digits (self-attention at the lowest resolution unless
``attention_resolutions`` is given). Measured (1 thread, batch 64): a training step takes
0.3 s CPU at 8x8 and 1.2 s at 16x16."""


def defaults_for(data):
    """The default options for data of this shape (vectors or images)."""
    data = np.asarray(data)
    if data.ndim == 2:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in VECTOR_DEFAULTS.items()}
    if data.ndim == 4:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in IMAGE_DEFAULTS.items()}
    raise ValueError(
        "DDPMTrainer: data must be vectors (n, d) or images (n, C, H, W), got shape "
        f"{data.shape}"
    )


def fit_normalization(data):
    """``{"shift", "scale"}`` (lists) with x_model = (x - shift) / scale: per-feature mean and
    std for vectors, the centre and half-width of the value range for images."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim == 2:
        shift, scale = data.mean(axis=0), data.std(axis=0)
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


def build_model(name, config, data_shape):
    """The denoiser ``name`` ("MLP" or "UNet") for data of ``data_shape`` (n, ...)."""
    config = dict(config)
    if name == "MLP":
        config.setdefault("in_features", data_shape[1])
        config.setdefault("out_features", data_shape[1])
    elif name == "UNet":
        if data_shape[2] != data_shape[3]:
            raise ValueError(
                "DDPMTrainer: the UNet needs square images, got "
                f"{data_shape[2]}x{data_shape[3]}"
            )
        config.setdefault("in_channels", data_shape[1])
        config.setdefault("image_size", data_shape[2])
        lowest = config["image_size"] // 2 ** (len(config.get("channel_mults", (1, 2))) - 1)
        config.setdefault("attention_resolutions", (lowest,))
    return nn.build_model(name, config)


class DDPMTrainer(Trainer):
    """Train a DDPM on ``data`` ((n, d) vectors or (n, C, H, W) images, in any units).

    Options (defaults from :data:`VECTOR_DEFAULTS` / :data:`IMAGE_DEFAULTS` by data rank):
    ``model`` ("MLP" | "UNet") and ``model_config`` (constructor arguments), ``schedule`` (a
    :class:`NoiseSchedule` config dict), ``prediction``, ``variance``, ``clip_x0``,
    ``batch_size``, ``lr`` (peak, reached after ``warmup_steps``, then cosine decay to
    lr/10 at ``steps``), ``ema_decay``, ``grad_clip`` (max global grad norm, None = off),
    ``normalization`` (None = fitted to the data), ``data_name`` (for config.json),
    ``figures`` (write figures at each checkpoint), ``device``.
    """

    kind = "ddpm"

    def __init__(self, data, out_dir, steps, seed=0, checkpoint_every=1000, progress=True,
                 figures=True, data_name=None, device="cpu", normalization=None, **options):
        data = np.asarray(data)
        opts = defaults_for(data)
        unknown = sorted(set(options) - set(opts))
        if unknown:
            raise ValueError(
                f"DDPMTrainer: unknown options {unknown}; valid options are "
                f"{sorted(opts)}"
            )
        opts.update(options)
        if not np.all(np.isfinite(data)):
            raise ValueError("DDPMTrainer: data contains NaN or inf values")
        if len(data) < 2:
            raise ValueError(f"DDPMTrainer: need at least 2 training examples, got {len(data)}")
        normalization = normalization or fit_normalization(data)
        config = {"data": data_name, "data_shape": list(data.shape[1:]),
                  "normalization": normalization, **opts}
        super().__init__(out_dir, steps, seed=seed, checkpoint_every=checkpoint_every,
                         progress=progress, config=config)
        self.opts, self.figures, self.device = opts, figures, device
        self.data_raw = data
        self.model = build_model(opts["model"], opts["model_config"], data.shape).to(device)
        dtype = self.model.parameters()[0].dtype
        self.data = backend.to_device(normalize(data, normalization).astype(dtype), device)
        self.config["model_config"] = self.model.config
        self.ddpm = DDPM(self.model, NoiseSchedule.from_config(opts["schedule"]),
                         variance=opts["variance"], clip_x0=opts["clip_x0"],
                         prediction=opts["prediction"])
        self.optimizer = optim.Adam(self.model, lr=opts["lr"])
        self.ema = optim.EMA(self.model, decay=opts["ema_decay"])
        self.samples, self.quality = None, {}  # of the latest figures (EMA weights)

    # --- Trainer interface ---------------------------------------------------------------
    def train_step(self, step):
        rng = backend.rng("cpu")
        n, T = len(self.data), self.ddpm.schedule.T
        index = rng.integers(0, n, size=self.opts["batch_size"])
        t = rng.integers(0, T, size=len(index))
        noise = rng.standard_normal((len(index),) + self.data.shape[1:], dtype=self.data.dtype)
        x0 = self.data[backend.to_device(index, self.device)]
        lr = optim.warmup_cosine(step, self.opts["lr"], self.opts["warmup_steps"], self.steps,
                                 min_lr=self.opts["lr"] / 10)
        self.optimizer.lr = lr
        self.optimizer.zero_grad()
        loss = self.ddpm.loss(x0, t=t, noise=backend.to_device(noise, self.device))
        loss.backward()
        metrics = {"loss": loss.item(), "lr": lr}
        if self.opts["grad_clip"]:
            metrics["grad_norm"] = optim.clip_grad_norm_(self.model, self.opts["grad_clip"])
        self.optimizer.step()
        self.ema.update()
        return metrics

    def state(self):
        return {"model": self.model.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state(self, state):
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])

    def on_checkpoint(self, step):
        if self.figures:
            from minigen import viz

            self.samples, self.quality = viz.ddpm_figures(self, final=step == self.steps)

    # --- sampling --------------------------------------------------------------------------
    def sample(self, n, sampler="ddpm", steps=None, eta=0.0, seed=0, progress=False,
               return_trajectory=False):
        """``n`` samples in data units from the EMA weights (see :func:`sample_ddpm`)."""
        with self.ema.swap(self.model):
            return sample_ddpm(self.ddpm, self.config["normalization"], n, self.data.shape[1:],
                               sampler, steps, eta, seed, progress, return_trajectory)


def sample_ddpm(ddpm, normalization, n, sample_shape, sampler="ddpm", steps=None, eta=0.0, seed=0,
                progress=False, return_trajectory=False):
    """``n`` samples of ``ddpm`` mapped back to data units with ``normalization``.

    ``sampler`` "ddpm" (ancestral, Algorithm 2, all T steps), "ddim" (``steps``, default 50,
    with ``eta``) or "dpm++2m" (DPM-Solver++(2M), ``steps``, default 20). With
    ``return_trajectory`` returns ``(samples, {t: x_t})``, the trajectory left in model units
    (it is what the model sees)."""
    shape = (int(n),) + tuple(sample_shape)
    if sampler == "ddpm":
        if steps not in (None, ddpm.schedule.T):
            raise ValueError(f"sample: the ddpm sampler runs all T = {ddpm.schedule.T} steps; "
                             f"use --sampler ddim for {steps} steps")
        out = ddpm.sample(shape, progress=progress, seed=seed, return_trajectory=return_trajectory)
    elif sampler == "ddim":
        out = ddpm.ddim_sample(shape, 50 if steps is None else steps, eta=eta, progress=progress,
                               seed=seed, return_trajectory=return_trajectory)
    elif sampler == "dpm++2m":
        out = ddpm.dpm_solver_sample(shape, 20 if steps is None else steps, progress=progress,
                                     seed=seed, return_trajectory=return_trajectory)
    else:
        raise ValueError(f"sample: sampler must be one of 'ddpm', 'ddim', 'dpm++2m', got "
                         f"{sampler!r}")
    if return_trajectory is not False:
        x, trajectory = out
        return denormalize(backend.to_numpy(x), normalization), trajectory
    return denormalize(backend.to_numpy(out), normalization)


def train_ddpm(data, steps, out_dir, seed=0, resume=False, progress=True, figures=True,
               checkpoint_every=1000, device="cpu", **options):
    """Train a DDPM in ``out_dir`` and return the :class:`DDPMTrainer` (``minigen train ddpm``).

    ``data``: a dataset name of ``minigen.data.DATASETS`` (drawn with ``seed``; "digits" are
    the 8x8 images), a path to a ``.npy``/``.npz`` file, or an array. ``options``: see
    :class:`DDPMTrainer`. With ``resume`` and a checkpoint in ``out_dir`` the run continues
    (to ``steps``) with the seed, options and normalisation it was started with, bit for bit
    as if it had never stopped; without a checkpoint it starts afresh. ``device`` ("cpu" or
    "cuda") is where the model trains; a run may resume on the other device."""
    resuming = resume and os.path.exists(os.path.join(os.fspath(out_dir), CHECKPOINT_FILE))
    if resuming:
        config = read_run_config(out_dir)
        if config.get("kind") != "ddpm":
            raise ValueError(
                f"train_ddpm: {out_dir!s} holds a {config.get('kind')!r} run, not a "
                "DDPM"
            )
        seed = config["seed"]
    data_name = None
    if isinstance(data, (str, os.PathLike)):
        data_name = os.fspath(data)
        data = datasets.load_dataset(data_name, seed=seed)
    if resuming:
        options = {k: config[k] for k in defaults_for(data)}
        options["normalization"] = config["normalization"]
    trainer = DDPMTrainer(data, out_dir, steps, seed=seed, progress=progress, figures=figures,
                          checkpoint_every=checkpoint_every, data_name=data_name, device=device,
                          **options)
    if resuming:
        trainer.resume()
    trainer.fit()
    return trainer


def read_run_config(run_dir):
    """The ``config.json`` of a run directory, with a clear error when there is none."""
    path = os.path.join(os.fspath(run_dir), "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir!s} is not a minigen run directory (no config.json)")
    with open(path) as f:
        return json.load(f)


def load_run(run_dir, use_ema=True, device="cpu"):
    """``(ddpm, config)`` of a trained DDPM run, the model holding the EMA weights (or the raw
    ones with ``use_ema=False``), in eval mode."""
    config = read_run_config(run_dir)
    if config.get("kind") != "ddpm":
        raise ValueError(f"load_run: {run_dir!s} holds a {config.get('kind')!r} run, not a DDPM")
    state = checkpoint.load(os.path.join(os.fspath(run_dir), CHECKPOINT_FILE))
    model = nn.build_model(config["model"], config["model_config"])
    model.load_state_dict(state["model"])
    if use_ema:
        ema = optim.EMA(model, decay=config["ema_decay"])
        ema.load_state_dict(state["ema"])
        ema.copy_to(model)
    model.to(device).eval()
    ddpm = DDPM(model, NoiseSchedule.from_config(config["schedule"]), variance=config["variance"],
                clip_x0=config["clip_x0"], prediction=config["prediction"])
    return ddpm, config


def sample_run(run_dir, n, sampler="ddpm", steps=None, eta=0.0, seed=0, progress=False,
               device="cpu"):
    """``n`` samples (data units, a NumPy array) from the trained DDPM run in ``run_dir``,
    computed on ``device``."""
    ddpm, config = load_run(run_dir, device=device)
    return sample_ddpm(ddpm, config["normalization"], n, config["data_shape"], sampler, steps,
                       eta, seed, progress)
