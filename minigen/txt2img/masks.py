"""Masks of inpainting in latent space. Convention as RePaint's (:func:`~minigen.diffusion.
editing.repaint`): 1 = known (kept), 0 = unknown (generated).

A pixel mask (n, H, W) becomes a latent mask (n, 1, H/f, W/f) in which a latent cell is
known only if all f x f pixels it encodes are (:func:`latent_known`). The inpainting model
of Stable Diffusion reads, besides z_t, that latent mask and the latent of the masked image
(unknown pixels set to 0) (:func:`condition`); it trains on random rectangles
(:func:`random_known`).
"""
import numpy as np

from minigen.errors import InvalidInput


def latent_known(known, factor):
    """(n, H, W) pixel masks -> (n, 1, H/f, W/f) float32 latent masks, 1 where every pixel of
    the cell is known."""
    known = np.asarray(known)
    n, h, w = known.shape
    if h % factor or w % factor:
        raise InvalidInput(f"inpaint: mask of {h}x{w} pixels is not a multiple of the "
                           f"autoencoder's factor {factor}")
    cells = known.reshape(n, h // factor, factor, w // factor, factor).min(axis=(2, 4))
    return cells[:, None].astype(np.float32)


def condition(space, images, known):
    """The inpainting model's extra input (n, 1 + c, h, w): the latent mask and the latent of
    ``images`` with the unknown pixels set to 0."""
    known = np.asarray(known, dtype=np.float32)
    masked = space.encode(np.asarray(images, np.float32) * known[:, None])
    return np.concatenate([latent_known(known, factor_of(space)), masked], axis=1)


def random_known(n, size, factor, rng):
    """(n, H, W) float32 training masks: all known but one rectangle of whole latent cells
    (sides of 1/4 to all of the latent image, uniformly placed), drawn from ``rng``."""
    h, w = size[0] // factor, size[1] // factor
    known = np.ones((n, h, w), np.float32)
    sides_h = rng.integers(max(1, h // 4), h + 1, size=n)
    sides_w = rng.integers(max(1, w // 4), w + 1, size=n)
    tops = (rng.random(n) * (h - sides_h + 1)).astype(int)
    lefts = (rng.random(n) * (w - sides_w + 1)).astype(int)
    for row, top, left, a, b in zip(known, tops, lefts, sides_h, sides_w):
        row[top:top + a, left:left + b] = 0
    return known.repeat(factor, axis=1).repeat(factor, axis=2)


def factor_of(space):
    """The downsampling factor f of a latent space (its autoencoder's) or of pixel space
    (``factor`` = 1)."""
    return space.config["factor"] if hasattr(space, "config") else space.factor
