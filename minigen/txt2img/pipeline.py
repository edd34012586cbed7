"""A trained text-to-image model and what it does: text-to-image with classifier-free
guidance on the caption, image-to-image with a prompt (SDEdit) and inpainting, each in the
model's space (an autoencoder's latents, or pixels) with the decoder back to images.

Every method takes prompts (one caption, or one per image), runs the diffusion code of
:mod:`minigen.diffusion` on the token ids as the condition (DDPM, DDIM, DPM-Solver++;
``guidance`` = w: Ho & Salimans 2022, eq. 6, one batched call per step) and returns images
(n, C, H, W) in [-1, 1].
"""
import numpy as np

from minigen import backend
from minigen.diffusion import inputs
from minigen.diffusion.trainer import SAMPLE_CHUNK_ELEMENTS, sample_ddpm
from minigen.errors import InvalidInput
from minigen.txt2img import masks, text

IDENTITY = {"shift": [0.0], "scale": [1.0]}
"""The diffusion code's normalisation of a space whose units the model already uses."""

CHUNK = 256
"""Images per pass of the sampling loops (bounds memory for any n)."""


class PixelSpace:
    """Pixel space as a space of factor 1: ``encode`` and ``decode`` are the identity, so
    that the same code trains and samples in pixel space (``latent=False``)."""

    factor = 1

    def __init__(self, shape):
        self.latent_shape = tuple(int(s) for s in shape)

    def encode(self, images):
        return np.asarray(images, dtype=np.float32)

    def decode(self, latents):
        return np.asarray(latents, dtype=np.float32)


class TextToImage:
    """A text-conditional diffusion model ``ddpm`` (its network a
    :class:`~minigen.txt2img.model.TextConditionedUNet`) with its ``tokenizer`` and ``space``
    (a :class:`~minigen.vae.autoencoder.LatentSpace` or :class:`PixelSpace`); ``config`` is
    the run's."""

    def __init__(self, ddpm, tokenizer, space, config):
        self.ddpm, self.tokenizer, self.space, self.config = ddpm, tokenizer, space, config

    @property
    def inpainting(self):
        """Whether the network is the inpainting model (mask and masked image as input)."""
        return bool(self.config["inpainting"])

    def tokens(self, prompts, n):
        """Token ids (n, L) of ``prompts``: one caption for all n, or a list of n."""
        prompts = [prompts] * n if isinstance(prompts, str) else list(prompts)
        if len(prompts) != n:
            raise InvalidInput(f"txt2img: {len(prompts)} prompts for {n} images; give one "
                               "prompt, or one per image")
        return text.encode(self.tokenizer, prompts)

    def _refuse_inpainting_run(self, what):
        if self.inpainting:
            raise InvalidInput(f"txt2img: cannot {what} with an inpainting run (its network "
                               "also reads a mask and a masked image); use it with --inpaint, "
                               "or a text-to-image run")

    def sample(self, prompts, n=None, guidance=0.0, sampler="ddim", steps=None, seed=0,
               progress=False):
        """Text-to-image: ``n`` images (default: one per prompt) drawn from the model at the
        prompts, in latent space, then decoded."""
        self._refuse_inpainting_run("sample")
        n = (1 if isinstance(prompts, str) else len(prompts)) if n is None else n
        y = self.tokens(prompts, n)
        z = sample_ddpm(self.ddpm, IDENTITY, n, self.space.latent_shape, sampler, steps,
                        seed=_generator(self, seed), progress=progress, y=y, guidance=guidance)
        return self.decode(z)

    def edit(self, images, prompts, strength, guidance=0.0, sampler="ddim", steps=50, seed=0,
             progress=False):
        """Image-to-image with a prompt: SDEdit (:func:`~minigen.diffusion.editing.sdedit`)
        of the latents of ``images`` at ``strength``, decoded."""
        self._refuse_inpainting_run("edit")
        images = self._images(images)
        y, rng = self.tokens(prompts, len(images)), _generator(self, seed)
        out = [self.ddpm.edit(self._encode(images[i:i + CHUNK]), strength, sampler=sampler,
                              steps=steps, y=y[i:i + CHUNK], guidance=guidance, seed=rng,
                              progress=progress)
               for i in range(0, len(images), CHUNK)]
        return self.decode(np.concatenate([backend.to_numpy(z) for z in out]))

    def inpaint(self, images, known, prompts, guidance=0.0, sampler="ddim", steps=None, seed=0,
                resample=1, progress=False):
        """Regenerate the pixels of ``images`` where ``known`` (n, H, W) is 0 according to
        the prompts. The inpainting model samples with the mask and the masked image's
        latent as input (``sampler``, ``steps``); any other run uses RePaint in latent space
        (:func:`~minigen.diffusion.editing.repaint`, all T steps, ``resample``), the known
        latent cells (:func:`~minigen.txt2img.masks.latent_known`) held to the image's."""
        images = self._images(images)
        known = np.asarray(known, dtype=np.float32)
        if known.shape != (len(images), *images.shape[2:]):
            raise InvalidInput(f"inpaint: mask must have shape {(len(images), *images.shape[2:])}"
                               f" (1 = keep, 0 = regenerate), got {known.shape}")
        y, rng = self.tokens(prompts, len(images)), _generator(self, seed)
        # the sampler's chains run in chunks of its own: the image condition must cover one
        chunk = min(CHUNK, SAMPLE_CHUNK_ELEMENTS // int(np.prod(self.space.latent_shape)))
        out = []
        for i in range(0, len(images), chunk):
            x, k, yy = images[i:i + chunk], known[i:i + chunk], y[i:i + chunk]
            if self.inpainting:
                cond = backend.to_device(masks.condition(self.space, x, k), self.device)
                with self.ddpm.model.conditioned_on(cond):
                    z = sample_ddpm(self.ddpm, IDENTITY, len(x), self.space.latent_shape,
                                    sampler, steps, seed=rng, progress=progress, y=yy,
                                    guidance=guidance)
            else:
                cells = masks.latent_known(k, masks.factor_of(self.space))
                mask = np.broadcast_to(cells, (len(x), *self.space.latent_shape))
                z = backend.to_numpy(self.ddpm.inpaint(
                    self._encode(x), mask, resample=resample, y=yy, guidance=guidance,
                    seed=rng, progress=progress))
            out.append(z)
        return self.decode(np.concatenate(out))

    @property
    def device(self):
        return inputs.model_dtype_device(self.ddpm.model)[1]

    def decode(self, latents):
        """Latents (n, c, h, w) -> images in [-1, 1], ``CHUNK`` at a time."""
        return np.concatenate([backend.to_numpy(self.space.decode(latents[i:i + CHUNK]))
                               for i in range(0, len(latents), CHUNK)]).clip(-1, 1)

    def _encode(self, images):
        return backend.to_device(encode(self.space, images), self.device)

    def _images(self, images):
        images = np.asarray(images, dtype=np.float32)
        shape = tuple(self.config["data_shape"])
        if images.ndim != 4 or images.shape[1:] != shape or not np.all(np.isfinite(images)):
            raise InvalidInput(f"txt2img: expected finite images (n, {', '.join(map(str, shape))})"
                               f" in [-1, 1], got an array of shape {images.shape}")
        return images


def encode(space, images):
    """``space.encode`` of ``images``, ``CHUNK`` at a time (bounded memory for any n)."""
    return np.concatenate([space.encode(images[i:i + CHUNK])
                           for i in range(0, len(images), CHUNK)])


def _generator(pipeline, seed):
    return inputs.generator(seed, pipeline.device)
