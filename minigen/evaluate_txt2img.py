"""How well a text-to-image model does what its captions ask, on the captioned shapes of
:mod:`minigen.shapes`, whose judge reads every attribute back exactly.

Each measure takes the model as a callable, so it is tested with stand-ins ("perfect" models
that render the caption, wrong ones) and used with any sampler, guidance weight or model:

* :func:`adherence` ``(generate, n, seed)``: ``generate(captions) -> images`` (n, 3, 32, 32)
  in [-1, 1]; the share of samples whose every caption attribute the judge reads back, on
  prompts of seen compositions (``"train"``) and of held-out ones (``"held_out"``).
  :func:`breakdown` says which parts (count, colour, shape, size, position) fail.
* :func:`frechet` ``(images, captions, seed)``: the Fréchet distance between the judge's
  features (:func:`minigen.shapes.features`) of the images and of fresh renders of the same
  captions, with the real-vs-real baseline (two independent renders of those captions):
  near the baseline, the samples are distributed as renders are.
* :func:`edit_success` ``(edit, n, seed)``: ``edit(images, captions) -> images``
  (image-to-image with a prompt, e.g. SDEdit): rendered scenes, each with one attribute of
  one object (colour or shape) changed in its caption. Success: the judge reads the new
  caption back and every object stays within ``KEEP`` pixels of where it was.
* :func:`inpaint_success` ``(inpaint, n, seed)``: ``inpaint(images, masks, captions) ->
  images``: two-object scenes, the mask (n, 1, 32, 32) covering the half of the image that
  holds one object (1 = regenerate; the halves never share an object's pixel), the caption
  asking for that object with a new colour or shape. Reported: the share with the requested
  object (colour and shape) centred in the masked half, the share adhering to the whole
  caption, and the mean squared change of the pixels outside the mask, to compare with
  :func:`reconstruction_mse`, the autoencoder's error on the same pixels of the same images,
  in the same units (per pixel and channel, images mapped to [0, 1], as the autoencoder's
  trainer reports ``mse``).

Sources and prompts are drawn from ``seed`` (:func:`minigen.shapes.sample_scenes`) and
rendered with ``minigen.shapes.render(scenes, seed)``, so ``render(new_captions, seed)`` is
the perfect edit: the jitter draws depend only on the layout, which no edit changes.
"""
import dataclasses

import numpy as np

from minigen import metrics, shapes
from minigen.errors import InvalidInput

KEEP = 3.0
"""How far (pixels) an edit may move an object's centre and still keep its position."""


def _images(images, n, what):
    images = np.asarray(images)
    if images.shape != (n, 3, shapes.SIZE, shapes.SIZE):
        raise InvalidInput(f"{what}: expected images of shape ({n}, 3, {shapes.SIZE}, "
                           f"{shapes.SIZE}), got {images.shape}")
    return images


def prompts(n: int, seed=0, split: str = "train") -> list:
    """``n`` evaluation captions of ``split`` (see :func:`minigen.shapes.sample_scenes`)."""
    return [s.caption for s in shapes.sample_scenes(n, seed, split)]


def adherence(generate, n: int = 200, seed=0, splits=("train", "held_out")) -> dict:
    """``{split: share of the n samples for which the judge reads back every attribute of the
    caption}`` for prompts of each split (seen compositions: ``"train"``)."""
    out = {}
    for split in splits:
        captions = prompts(n, seed, split)
        images = _images(generate(captions), n, "adherence: generate(captions)")
        out[split] = float(shapes.adheres(images, captions).mean())
    return out


def breakdown(images, captions) -> dict:
    """``{part: share of the images that show it}`` for the parts of
    :func:`minigen.shapes.attributes` (count, colour, shape, size, position), each judged on
    its own: where a model fails, when :func:`adherence` says that it does."""
    images = _images(images, len(captions), "breakdown: images")
    parts = [shapes.attributes(c, shapes.read(x)) for c, x in zip(captions, images)]
    return {k: float(np.mean([p[k] for p in parts])) for k in parts[0]} if parts else {}


def frechet(images, captions, seed=0) -> dict:
    """``{"fd": Fréchet distance of the images to fresh renders of their captions,
    "real_vs_real": the same for a second, independent render}`` in the judge's features.
    Both reference sets have as many images as ``images`` (use >= 200: the features have 84
    dimensions)."""
    images = _images(images, len(captions), "frechet: images")
    rng = np.random.default_rng(seed)
    reference = shapes.features(shapes.render(captions, rng))
    real = shapes.features(shapes.render(captions, rng))
    return {"fd": metrics.frechet_distance(shapes.features(images), reference),
            "real_vs_real": metrics.frechet_distance(real, reference)}


def _changed(scene, index, rng):
    """The scene with the colour or the shape of thing ``index`` changed (another colour
    than the other thing's, so the judge can tell the two apart)."""
    thing = scene.things[index]
    if rng.random() < 0.5:
        taken = {t.colour for t in scene.things}
        options = [c for c in shapes.COLOURS if c not in taken]
        new = dataclasses.replace(thing, colour=options[rng.integers(len(options))])
    else:
        options = [s for s in shapes.SHAPES if s != thing.shape]
        new = dataclasses.replace(thing, shape=options[rng.integers(len(options))])
    things = list(scene.things)
    things[index] = new
    return dataclasses.replace(scene, things=tuple(things))


def _edits(n, seed, pairs):
    """(sources, targets, index of the changed thing): ``n`` training-split scenes and the
    same scenes with one thing changed, the change again a training-split composition."""
    rng = np.random.default_rng(seed)
    sources, targets, changed = [], [], []
    while len(sources) < n:
        scene = shapes.sample_scenes(1, rng, "train", pairs)[0]
        index = int(rng.integers(len(scene.things)))
        target = _changed(scene, index, rng)
        if (target.things[index].colour, target.things[index].shape) in shapes.HELD_OUT:
            continue
        sources.append(scene)
        targets.append(target)
        changed.append(index)
    return sources, targets, changed


def _kept(before, after) -> bool:
    """Every object of ``before`` has one in ``after`` within ``KEEP`` pixels."""
    return len(before) == len(after) and all(
        min(np.hypot(a.x - b.x, a.y - b.y) for b in after) <= KEEP for a in before)


def edit_success(edit, n: int = 200, seed=0) -> dict:
    """``{"success", "changed", "kept"}``: shares of the n edits whose result the judge reads
    as the new caption (``changed``), whose objects stay in place (``kept``), and both."""
    sources, targets, _ = _edits(n, seed, pairs=0.5)
    images = shapes.render(sources, seed)
    captions = [t.caption for t in targets]
    out = _images(edit(images, captions), n, "edit_success: edit(images, captions)")
    changed = shapes.adheres(out, captions)
    kept = np.array([_kept(shapes.read(a), shapes.read(b)) for a, b in zip(images, out)])
    return {"success": float((changed & kept).mean()), "changed": float(changed.mean()),
            "kept": float(kept.mean())}


def _half_mask(scene, index) -> np.ndarray:
    """(32, 32) float32: 1 on the half of the image that holds thing ``index`` of a pair."""
    mask = np.zeros((shapes.SIZE, shapes.SIZE), np.float32)
    first = index == 0  # the first thing is the one on the left / at the top
    half = slice(None, shapes.SIZE // 2) if first else slice(shapes.SIZE // 2, None)
    if scene.relation == "left of":
        mask[:, half] = 1
    else:
        mask[half, :] = 1
    return mask


def _mse01(a, b, weights):
    """Per image, the weighted mean squared difference of a and b mapped from [-1, 1] to [0, 1]."""
    weights = np.broadcast_to(weights, a.shape)
    return (((a - b) / 2) ** 2 * weights).sum(axis=(1, 2, 3)) / weights.sum(axis=(1, 2, 3))


def _inpainting_cases(n, seed):
    """(images, masks (n, 1, 32, 32), targets, index of the changed thing) of n two-object
    scenes, each mask covering the half with the thing to change."""
    sources, targets, changed = _edits(n, seed, pairs=1.0)
    masks = np.stack([_half_mask(s, i) for s, i in zip(sources, changed)])[:, None]
    return shapes.render(sources, seed), masks, targets, changed


def reconstruction_mse(autoencode, n: int = 200, seed=0) -> float:
    """The yardstick of :func:`inpaint_success`'s ``outside_mse``: the mean squared error of
    ``autoencode(images) -> images`` (e.g. an autoencoder's decoder after its encoder) on the
    same n images and outside the same masks, per pixel and channel, images mapped to
    [0, 1]."""
    images, masks, _, _ = _inpainting_cases(n, seed)
    out = _images(autoencode(images), n, "reconstruction_mse: autoencode(images)")
    return float(_mse01(out, images, 1 - masks).mean())


def inpaint_success(inpaint, n: int = 200, seed=0) -> dict:
    """``{"in_region", "adherence", "outside_mse"}``: the share of the n inpaintings with an
    object of the requested colour and shape centred in the masked half, the share the judge
    reads as the whole new caption, and the mean squared change of the pixels outside the
    mask (in the units of :func:`reconstruction_mse`)."""
    images, masks, targets, changed = _inpainting_cases(n, seed)
    captions = [t.caption for t in targets]
    out = _images(inpaint(images, masks, captions), n,
                  "inpaint_success: inpaint(images, masks, captions)")
    in_region = []
    for image, mask, target, index in zip(out, masks[:, 0], targets, changed):
        want = target.things[index]
        in_region.append(any(
            f.colour == want.colour and f.shape == want.shape
            and mask[min(int(f.y), shapes.SIZE - 1), min(int(f.x), shapes.SIZE - 1)] == 1
            for f in shapes.read(image)))
    return {"in_region": float(np.mean(in_region)),
            "adherence": float(shapes.adheres(out, captions).mean()),
            "outside_mse": float(_mse01(out, images, 1 - masks).mean())}
