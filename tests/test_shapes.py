"""Captioned shapes: rendering, the grammar and its inverse, the held-out compositions, and
the judge, exact on fresh renders, >= 99% under blur and noise, and blind to no attribute."""
import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from minigen import data as D
from minigen import shapes as S
from minigen.errors import InvalidInput


@pytest.fixture(scope="module")
def fresh():
    return D.load_captioned("shapes", 2000, seed=11, split="all")


def test_render_layout_and_colours():
    images, captions = S.captioned(50, seed=0)
    assert images.shape == (50, 3, 32, 32) and images.dtype == np.float32
    pixels = {tuple(p) for p in images.transpose(0, 2, 3, 1).reshape(-1, 3)}
    assert pixels <= {(-1.0, -1.0, -1.0)} | {tuple(2 * np.array(c) - 1) for c in S.COLOURS.values()}
    np.testing.assert_array_equal(S.captioned(50, seed=0)[0], images)  # one seed, one set
    assert S.captioned(50, seed=1)[1] != captions
    one = S.render(["a large red square on the left"], seed=0)[0]
    red = (one[0] == 1) & (one[1] == -1)
    assert red.sum() == one.max(axis=0).__gt__(-1).sum() and red[:, :16].sum() == red.sum()


def test_shape_masks_have_the_documented_areas():
    centres = np.random.default_rng(0).uniform(14, 18, size=(200, 2))  # rasterised anywhere
    for r in S.SIZES.values():
        areas = [np.mean([S.shape_mask(s, x, y, r).sum() for x, y in centres]) for s in S.SHAPES]
        expected = [S.AREA_PER_RADIUS2[s] * r * r for s in S.SHAPES]
        np.testing.assert_allclose(areas, expected, rtol=0.03)


def test_captions_parse_back_to_their_scenes():
    scenes = S.sample_scenes(500, seed=2, split="all")
    assert all(S.parse(s.caption) == s for s in scenes)
    assert S.parse("  A Small RED circle on the   left ") == S.parse("a small red circle on the left")
    assert S.parse("") == S.Scene() and S.Scene().caption == ""
    assert max(len(s.caption.split()) for s in scenes) == S.MAX_WORDS
    assert {w for s in scenes for w in s.caption.split()} == set(S.VOCABULARY)
    shares = np.mean([len(s.things) == 2 for s in scenes])
    assert 0.4 < shares < 0.6


@pytest.mark.parametrize("caption, message", [
    ("a pink circle on the left", r"unknown word 'pink'.*the vocabulary is: a above at blue"),
    ("a circle red on the left", "does not follow the grammar"),
    ("a small red circle", "does not follow the grammar"),
    ("a red circle above", "does not follow the grammar"),
])
def test_parse_errors(caption, message):
    with pytest.raises(InvalidInput, match=message):
        S.parse(caption)


def _pairs(scenes):
    return [(t.colour, t.shape) for s in scenes for t in s.things]


def test_held_out_compositions_never_appear_in_training():
    train = S.sample_scenes(3000, seed=3, split="train")
    assert not set(_pairs(train)) & set(S.HELD_OUT)
    seen = set(_pairs(train))
    assert {c for c, _ in seen} == set(S.COLOURS) and {s for _, s in seen} == set(S.SHAPES)
    assert len(seen) == len(S.COLOURS) * len(S.SHAPES) - len(S.HELD_OUT)
    held = S.sample_scenes(300, seed=4, split="held_out")
    assert all(set(_pairs([s])) & set(S.HELD_OUT) for s in held)
    assert set(_pairs(held)) >= set(S.HELD_OUT)
    assert set(_pairs(S.sample_scenes(300, seed=5, split="all"))) >= set(S.HELD_OUT)
    with pytest.raises(InvalidInput, match="split must be one of train, held_out, all"):
        S.sample_scenes(1, split="test")


def test_the_judge_is_exact_on_fresh_renders(fresh):
    images, captions = fresh
    assert S.adheres(images, captions).all()
    for image, caption in zip(images[:200], captions):
        found = S.read(image)
        scene = S.parse(caption)
        assert len(found) == len(scene.things)
        assert sorted((f.colour, f.shape) for f in found) == sorted(
            (t.colour, t.shape) for t in scene.things)


def test_the_judge_reads_blurred_noisy_renders(fresh):
    images, captions = fresh
    blurred = ndimage.gaussian_filter(images, (0, 0, 0.7, 0.7))
    noisy = blurred + 0.2 * np.random.default_rng(6).standard_normal(images.shape)
    assert S.adheres(np.clip(noisy, -1, 1), captions).mean() >= 0.99
    assert S.adheres(np.zeros_like(images[:20]) - 1, captions[:20]).sum() == 0
    assert S.adheres(images[:20], [""] * 20).all()  # the empty caption asks for nothing


def _changed(scene, rng):
    """The scene with one attribute changed (the judge must notice)."""
    i = rng.integers(len(scene.things))
    thing = scene.things[i]
    field = ["colour", "shape"] + (["size"] if len(scene.things) == 1 else [])
    field = field[rng.integers(len(field))]
    options = {"colour": list(S.COLOURS), "shape": list(S.SHAPES), "size": list(S.SIZES)}[field]
    others = [o for o in options if o != getattr(thing, field)
              and all(o != t.colour for t in scene.things if field == "colour")]
    things = list(scene.things)
    things[i] = dataclasses.replace(thing, **{field: others[rng.integers(len(others))]})
    return dataclasses.replace(scene, things=tuple(things))


def test_the_judge_notices_every_kind_of_change():
    rng = np.random.default_rng(7)
    scenes = S.sample_scenes(400, seed=8, split="all")
    captions = [s.caption for s in scenes]
    changed = [_changed(s, rng) for s in scenes]
    assert not S.adheres(S.render(changed, seed=9), captions).any()
    opposite = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
    moved = [dataclasses.replace(s, place=opposite[s.place]) if s.place
             else dataclasses.replace(s, things=s.things[::-1]) for s in scenes]
    assert not S.adheres(S.render(moved, seed=10), captions).any()
    pairs = [s for s in scenes if len(s.things) == 2]
    other = [dataclasses.replace(s, relation=S.RELATIONS[1 - S.RELATIONS.index(s.relation)])
             for s in pairs]
    assert not S.adheres(S.render(other, seed=11), [s.caption for s in pairs]).any()
    extra = S.render(["a red circle left of a blue square"], seed=0)
    assert not S.adheres(extra, ["a small red circle on the left"]).any()
    parts = S.attributes("a small red circle on the left", S.read(extra[0]))
    assert parts == {"count": False, "colour": True, "shape": True, "size": True, "position": True}
    assert all(S.attributes("", S.read(extra[0])).values())


def test_features(fresh):
    images, _ = fresh
    f = S.features(images[:100])
    assert f.shape == (100, 84) and np.isfinite(f).all()
    np.testing.assert_array_equal(S.features(images[:100]), f)
    # the colour blocks add up to the object pixels; the fits of the largest object lie in [0, 1]
    np.testing.assert_allclose(f[:, :80].sum(1) * 64, (images[:100].max(1) > 0).sum((1, 2)))
    assert ((f[:, 80:83] > 0) & (f[:, 80:83] <= 1)).all()


def test_load_captioned():
    images, captions = D.load_captioned("shapes", 8, seed=1, split="held_out")
    assert images.shape == (8, 3, 32, 32) and len(captions) == 8
    np.testing.assert_array_equal(D.load_dataset("shapes", n=8, seed=1),
                                  D.load_captioned("shapes", 8, seed=1)[0])
    with pytest.raises(InvalidInput, match="'moons' has no captions; captioned sets are shapes"):
        D.load_captioned("moons", 8)
