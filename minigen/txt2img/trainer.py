"""Training text-to-image diffusion on captioned images, in an autoencoder's latent space
(latent diffusion, Rombach et al. 2022) or in pixel space (``latent=False``), and loading a
trained run back as a :class:`~minigen.txt2img.pipeline.TextToImage`.

One training step is the DDPM's Algorithm 1 in the chosen space with the caption as the
condition (Rombach et al. 2022, the loss after eq. 3):

    L_LDM = E_{E(x), y, eps ~ N(0, I), t} || eps - eps_theta(z_t, t, tau_theta(y)) ||^2,

z_0 = E(x) the scaled latent of the image (:class:`~minigen.vae.autoencoder.LatentSpace`),
tau_theta the text encoder, trained jointly with the UNet through this loss. Each caption is
replaced by the empty one with probability ``caption_dropout`` (the null condition of
classifier-free guidance). With ``inpainting`` the UNet also reads a random mask and the
latent of the masked image (:mod:`minigen.txt2img.masks`), Stable Diffusion's inpainting
model.

The network's target is the noise eps, or with ``prediction`` x_0 or v = sqrt(abar_t) eps -
sqrt(1 - abar_t) z_0 (Salimans & Ho 2022); the inpainting model predicts v by default. With
eps, copying the known part of the image means outputting (z_t - sqrt(abar_t) z_0) /
sqrt(1 - abar_t): an error e in that output becomes e sqrt((1 - abar_t) / abar_t) in the
sampler's estimate of z_0 (60 e at t = 900 of the linear schedule), and L_simple weights the
z_0 error by abar_t / (1 - abar_t), so the eps model learns to read the masked latent only at
low noise, after the sampler has fixed the scene's layout, and redraws the known part. With
v, copying is v = -z_0 where the noise dominates, an error that reaches z_0 unamplified.

Adam with warm-up and cosine decay, gradient clipping and an EMA of the weights, the
run-directory guarantees and exact resume come from :class:`minigen.trainer.Trainer`.
"""
import os

import numpy as np

from minigen import backend, optim
from minigen import options as checks
from minigen.diffusion.ddpm import DDPM
from minigen.diffusion.schedule import NoiseSchedule
from minigen.diffusion.trainer import OPTIONS as DDPM_OPTIONS
from minigen.diffusion.trainer import DenoiserSteps, load_weights
from minigen.errors import InvalidInput
from minigen.minibatch import Minibatch
from minigen.nn.module import eval_mode
from minigen.nn.unet import UNet
from minigen.rundir import (
    check_resume_data, data_fingerprint, warn_ignored_on_resume, open_run, read_run,
)
from minigen.tensor import no_grad
from minigen.trainer import Trainer
from minigen.txt2img import masks, text
from minigen.txt2img.model import TextConditionedUNet
from minigen.txt2img.pipeline import PixelSpace, TextToImage, encode
from minigen.vae.autoencoder import LatentSpace, train_autoencoder

DEFAULTS = dict(
    latent=True,
    n=20_000,
    text_config=dict(dim=64, layers=2, heads=4),
    model_config=dict(base_channels=32, channel_mults=(1, 2), num_res_blocks=1, groups=8,
                      time_dim=128),
    schedule=dict(kind="linear", T=1000),
    batch_size=64,
    lr=1e-3,
    warmup_steps=200,
    ema_decay=0.995,
    grad_clip=1.0,
    caption_dropout=0.1,
    inpainting=False,
    prediction=None,
)
"""Options of ``Txt2ImgTrainer`` / ``train_txt2img``: a narrow UNet (cross-attention at
its lowest resolution) and a two-layer text encoder, sized to train on a CPU."""

SAVED_WITHOUT = dict(prediction="eps")
"""The value of an option that a run's config.json lacks: the runs saved before
``prediction`` was an option trained on the noise."""

AUTOENCODER = dict(factor=4, latent_channels=4, base_channels=32, batch_size=32)
"""The first stage that ``train_txt2img`` trains when given none: 32x32 images to 4x8x8
latents (downsampling 4, as the issue and Stable Diffusion's f = 8 family)."""

AUTOENCODER_STEPS = 2000

PIXEL_MODEL = dict(channel_mults=(1, 2, 2))
"""The UNet levels in pixel space (``latent=False``): 32x32 images need one more level than
8x8 latents to reach the same lowest resolution."""

Option = checks.Option
_SIZE = dict(low=1, high=checks.MAX_COUNT)
OPTIONS = dict(
    latent=Option("bool", "train in the autoencoder's latent space (false: pixel space)"),
    n=Option("int", "training scenes drawn from the seed", low=2, high=checks.MAX_COUNT),
    text_config=Option("dict", "the text encoder", table=dict(
        dim=Option("int", "token embedding size (the UNet's context_dim)", **_SIZE),
        layers=Option("int", "transformer layers", **_SIZE),
        heads=Option("int", "attention heads (divides dim)", **_SIZE),
    )),
    model_config=Option("dict", "the UNet", table=dict(
        base_channels=Option("int", "width of the first level (even, >= 4)", low=4,
                             high=65536),
        channel_mults=Option("ints", "width multiplier of each level", low=1, high=64),
        num_res_blocks=Option("int", "residual blocks per level", low=1, high=64),
        attention_resolutions=Option("ints", "feature-map sizes with self- and "
                                     "cross-attention", **_SIZE),
        groups=Option("int", "GroupNorm groups", **_SIZE),
        time_dim=Option("int", "size of the time embedding", **_SIZE),
    )),
    **{k: DDPM_OPTIONS[k] for k in ("schedule", "batch_size", "lr", "warmup_steps",
                                    "ema_decay", "grad_clip")},
    caption_dropout=Option("float", "probability of the empty caption in training", low=0,
                           high=1, open="high"),
    inpainting=Option("bool", "train the inpainting model (mask and masked image as input)"),
    prediction=Option("choice", "the network's target", choices=("eps", "x0", "v"),
                      none="v for the inpainting model, eps otherwise"),
)
"""Every ``Txt2ImgTrainer`` option: its type, range or choices, and meaning (docs/guide.md)."""


def build_model(config):
    """The :class:`TextConditionedUNet` of a run's ``config`` (new weights)."""
    tokenizer = text.tokenizer()
    c, h, _ = config["latent_shape"]
    unet = dict(config["model_config"])
    unet.setdefault("attention_resolutions",
                    (h // 2 ** (len(unet.get("channel_mults", (1, 2))) - 1),))
    encoder = text.encoder(tokenizer, **config["text_config"])
    inputs = 2 * c + 1 if config["inpainting"] else c
    return TextConditionedUNet(encoder, UNet(in_channels=inputs, out_channels=c, image_size=h,
                                             context_dim=config["text_config"]["dim"], **unet),
                               text.null_condition(tokenizer)), tokenizer


def space_of(config, device="cpu"):
    """The run's space: the :class:`LatentSpace` of its autoencoder run, or pixels."""
    if config["latent"]:
        return LatentSpace(config["autoencoder"], device)
    return PixelSpace(config["data_shape"])


class Txt2ImgTrainer(DenoiserSteps, Trainer):
    """Train text-conditional diffusion on ``images`` (n, C, H, W) in [-1, 1] and their
    ``captions`` (n strings of the shapes grammar), in the latent space of the autoencoder
    run ``autoencoder`` (a run directory; not needed with ``latent=False``). Options:
    :data:`DEFAULTS` and :data:`OPTIONS`."""

    kind = "txt2img"

    def __init__(self, images, captions, out_dir, steps, autoencoder=None, seed=0,
                 checkpoint_every=1000, progress=True, figures=True, data_name=None,
                 device="cpu", comm=None, **options):
        opts = checks.check("Txt2ImgTrainer", OPTIONS, options, DEFAULTS)
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or len(captions) != len(images):
            raise InvalidInput(f"Txt2ImgTrainer: need images (n, C, H, W) and one caption per "
                               f"image, got shape {images.shape} and {len(captions)} captions")
        if opts["latent"] and autoencoder is None:
            raise InvalidInput("Txt2ImgTrainer: latent=True needs an autoencoder run "
                               "(--autoencoder RUN), or latent=False for pixel space")
        opts["prediction"] = opts["prediction"] or ("v" if opts["inpainting"] else "eps")
        if not opts["latent"]:
            opts["model_config"] = {**opts["model_config"], **PIXEL_MODEL,
                                    **options.get("model_config", {})}
        self.space = (LatentSpace(os.fspath(autoencoder), device) if opts["latent"]
                      else PixelSpace(images.shape[1:]))
        config = {"data": data_name, "data_shape": list(images.shape[1:]),
                  "data_fingerprint": data_fingerprint(images),
                  "autoencoder": None if autoencoder is None else os.path.abspath(autoencoder),
                  "latent_shape": list(self.space.latent_shape), **opts}
        super().__init__(out_dir, steps, seed=seed, checkpoint_every=checkpoint_every,
                         progress=progress, config=config, comm=comm)
        self.opts, self.figures, self.device = opts, figures, device
        self.model, self.tokenizer = build_model(config)
        self.model.to(device)
        self.images = images
        self.tokens = text.encode(self.tokenizer, list(captions))
        self.latents = backend.to_device(encode(self.space, images), device)
        clip = None if opts["latent"] else 1.0
        self.ddpm = DDPM(self.model, NoiseSchedule.from_config(opts["schedule"]), clip_x0=clip,
                         prediction=opts["prediction"])
        checks.check_batch("Txt2ImgTrainer", opts["batch_size"], self.comm)
        self.optimizer = optim.Adam(self.model, lr=opts["lr"])
        self.minibatch = Minibatch(opts["batch_size"], comm=self.comm)
        self.ema = optim.EMA(self.model, decay=opts["ema_decay"])
        self._probe = np.random.default_rng(0).integers(0, len(images), size=min(len(images),
                                                                                 128))

    def train_step(self, step):
        """Algorithm 1 in latent (or pixel) space with the captions, each replaced by the
        empty one with probability ``caption_dropout``; for the inpainting model a random
        mask and the masked image's latent join the input."""
        batch = self.minibatch
        index = batch.integers(0, len(self.latents), size=batch.m)
        y = self.tokens[index].copy()
        y[batch.random(batch.m) < self.opts["caption_dropout"]] = self.model.null_condition
        return self.optimize(step, lambda: self._loss(index, y, batch))

    def _loss(self, index, y, rng):
        """L_LDM of the rows ``index`` with conditions ``y``, t and eps drawn from ``rng``."""
        z0 = self.latents[backend.to_device(index, self.device)]
        if not self.opts["inpainting"]:
            return self.ddpm.loss(z0, y=y, seed=rng)
        known = masks.random_known(len(index), self.images.shape[2:],
                                    masks.factor_of(self.space), rng)
        condition = masks.condition(self.space, self.images[index], known)
        with self.model.conditioned_on(backend.to_device(condition, self.device)):
            return self.ddpm.loss(z0, y=y, seed=rng)

    def health_metrics(self):
        """The loss on a fixed batch, t and noise at the current weights."""
        with no_grad(), eval_mode(self.model):
            return {"loss": self._loss(self._probe, self.tokens[self._probe],
                                       np.random.default_rng(1)).item()}

    def on_checkpoint(self, step):
        if self.figures:
            from minigen.txt2img import figures

            with self.ema.swap(self.model):
                figures.prompt_grid(self.pipeline(), os.path.join(self.out_dir, "samples.png"))

    def pipeline(self):
        """This run's model (current weights) as a :class:`TextToImage`."""
        return TextToImage(self.ddpm, self.tokenizer, self.space, self.config)


def train_txt2img(data, steps, out_dir, autoencoder=None, seed=None, resume=False,
                  progress=True, figures=True, checkpoint_every=1000, device="cpu",
                  overwrite=False, comm=None, autoencoder_steps=AUTOENCODER_STEPS, **options):
    """Train text-to-image diffusion in ``out_dir`` and return the :class:`Txt2ImgTrainer`
    (``minigen train txt2img``). ``data``: "shapes" (``n`` scenes drawn with ``seed``,
    default 0) or a pair (images in [-1, 1], captions). ``autoencoder``: the run directory of
    a trained autoencoder (:func:`minigen.vae.autoencoder.train_autoencoder`); when None (and
    ``latent``) one is trained first, ``autoencoder_steps`` steps on the same images, in
    ``out_dir`` + "-autoencoder" (with the same ``resume``/``overwrite``). ``resume`` and
    ``overwrite`` as for :func:`minigen.diffusion.trainer.train_ddpm`: a resumed run keeps
    its seed, options and autoencoder."""
    saved = open_run(out_dir, "txt2img", resume, overwrite)
    if saved is not None:
        warn_ignored_on_resume({"seed": seed, "autoencoder": autoencoder, **options}, saved,
                               stacklevel=2)
        seed, autoencoder = saved["seed"], saved["autoencoder"]
        options = {**SAVED_WITHOUT, **{k: saved[k] for k in DEFAULTS if k in saved}}
    checks.check("Txt2ImgTrainer", OPTIONS, options, DEFAULTS)
    seed = 0 if seed is None else seed
    n = options.get("n", DEFAULTS["n"])
    images, captions, data_name = text.training_data(data, n, seed)
    if saved is not None:
        check_resume_data(saved, images, out_dir)
    if autoencoder is None and options.get("latent", True):
        autoencoder = os.fspath(out_dir).rstrip(os.sep) + "-autoencoder"
        train_autoencoder(images, autoencoder_steps, autoencoder, seed=seed, resume=resume,
                          progress=progress, figures=figures, device=device,
                          overwrite=overwrite, comm=comm, **AUTOENCODER)
    trainer = Txt2ImgTrainer(images, captions, out_dir, steps, autoencoder=autoencoder,
                             seed=seed, checkpoint_every=checkpoint_every, progress=progress,
                             figures=figures, data_name=data_name, device=device, comm=comm,
                             **options)
    return trainer.fit_run(saved is not None, overwrite)


def load_txt2img(run_dir, use_ema=True, device="cpu"):
    """The trained run in ``run_dir`` as a :class:`TextToImage` (EMA weights unless
    ``use_ema=False``), in eval mode."""
    config, state = read_run(run_dir, "txt2img")
    model, tokenizer = build_model(config)
    model = load_weights(model, state, config, use_ema, device)
    ddpm = DDPM(model, NoiseSchedule.from_config(config["schedule"]),
                clip_x0=None if config["latent"] else 1.0,
                prediction={**SAVED_WITHOUT, **config}["prediction"])
    return TextToImage(ddpm, tokenizer, space_of(config, device), config)
