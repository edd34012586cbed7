"""The text-to-image evaluation harness with stand-in models: a perfect one (renders the
caption) scores ~100% and the real-vs-real Fréchet distance; wrong ones score near 0."""
import numpy as np
import pytest

from minigen import evaluate_txt2img as E
from minigen import shapes
from minigen.errors import InvalidInput

OTHER = {"red": "blue", "green": "red", "blue": "yellow", "yellow": "cyan", "cyan": "green"}


def perfect(captions):
    return shapes.render(captions, seed=123)


def recoloured(captions, colour):
    """Renders each caption with each colour swapped by ``colour(old)``."""
    scenes = [shapes.parse(c) for c in captions]
    return shapes.render([shapes.Scene(tuple(shapes.Thing(colour(t.colour), t.shape, t.size)
                                             for t in s.things), s.place, s.relation)
                          for s in scenes], seed=123)


def wrong_colour(captions):
    return recoloured(captions, OTHER.get)


def test_adherence_of_perfect_and_wrong_generators():
    assert E.adherence(perfect, n=100, seed=1) == {"train": 1.0, "held_out": 1.0}
    assert E.adherence(wrong_colour, n=100, seed=1) == {"train": 0.0, "held_out": 0.0}
    blank = E.adherence(lambda c: -np.ones((len(c), 3, 32, 32)), n=20)
    assert blank == {"train": 0.0, "held_out": 0.0}
    held = [shapes.parse(c) for c in E.prompts(50, seed=2, split="held_out")]
    assert all({(t.colour, t.shape) for t in s.things} & set(shapes.HELD_OUT) for s in held)
    with pytest.raises(InvalidInput, match=r"generate\(captions\): expected images of shape "
                                           r"\(20, 3, 32, 32\), got \(20, 3, 8, 8\)"):
        E.adherence(lambda c: np.zeros((len(c), 3, 8, 8)), n=20)


def test_breakdown_names_the_failing_part():
    captions = E.prompts(100, seed=12, split="all")
    assert E.breakdown(perfect(captions), captions) == dict.fromkeys(
        ["count", "colour", "shape", "size", "position"], 1.0)
    wrong = E.breakdown(wrong_colour(captions), captions)
    assert wrong["count"] == 1.0 and wrong["colour"] < 0.2 and wrong["shape"] <= wrong["colour"]
    scenes = [shapes.parse(c) for c in captions]
    squares = shapes.render([shapes.Scene(tuple(shapes.Thing(t.colour, "square", t.size)
                                                 for t in s.things), s.place, s.relation)
                             for s in scenes], seed=123)
    parts = E.breakdown(squares, captions)
    share = np.mean([all(t.shape == "square" for t in s.things) for s in scenes])
    assert parts["colour"] == parts["size"] == parts["position"] == 1.0
    np.testing.assert_allclose(parts["shape"], share)
    blank = E.breakdown(-np.ones((3, 3, 32, 32)), captions[:3])
    assert blank == dict.fromkeys(["count", "colour", "shape", "size", "position"], 0.0)


def test_frechet_is_at_the_baseline_for_renders_and_far_for_wrong_colours():
    """The distance compares distributions: swapping colours one for one leaves the colour
    distribution of balanced prompts nearly as it was; painting everything red does not."""
    captions = E.prompts(300, seed=3, split="all")
    right = E.frechet(perfect(captions), captions, seed=4)
    swapped = E.frechet(wrong_colour(captions), captions, seed=4)
    red = E.frechet(recoloured(captions, lambda c: "red"), captions, seed=4)
    assert right["real_vs_real"] == red["real_vs_real"] > 0
    assert right["fd"] < 1.5 * right["real_vs_real"] < swapped["fd"]
    assert red["fd"] > 20 * red["real_vs_real"]


def test_edit_success():
    perfect_edit = E.edit_success(lambda images, captions: shapes.render(captions, seed=5),
                                  n=100, seed=5)
    assert perfect_edit == {"success": 1.0, "changed": 1.0, "kept": 1.0}
    unchanged = E.edit_success(lambda images, captions: images, n=100, seed=5)
    assert unchanged["success"] == unchanged["changed"] == 0.0 and unchanged["kept"] == 1.0
    moved = E.edit_success(lambda images, captions: shapes.render(captions, seed=6), n=100, seed=5)
    assert moved["changed"] == 1.0 and moved["success"] == moved["kept"] < 0.8


def test_inpaint_success():
    def perfect_inpaint(images, masks, captions):
        return masks * shapes.render(captions, seed=7) + (1 - masks) * images

    assert E.inpaint_success(perfect_inpaint, n=100, seed=7) == {
        "in_region": 1.0, "adherence": 1.0, "outside_mse": 0.0}
    kept = E.inpaint_success(lambda images, masks, captions: images, n=100, seed=7)
    assert kept["in_region"] == kept["adherence"] == 0.0 and kept["outside_mse"] == 0.0
    everywhere = E.inpaint_success(lambda images, masks, captions: shapes.render(captions, seed=8),
                                   n=100, seed=7)
    assert everywhere["in_region"] == 1.0 and everywhere["outside_mse"] > 0.005
    shifted = E.inpaint_success(lambda images, masks, captions: images + 0.2 * (1 - masks),
                                n=10, seed=7)  # 0.2 in [-1, 1] is 0.1 in [0, 1]: squared 0.01
    np.testing.assert_allclose(shifted["outside_mse"], 0.01)


def test_reconstruction_mse_in_the_autoencoders_units_outside_the_masks():
    assert E.reconstruction_mse(lambda x: x, n=50, seed=3) == 0.0
    # every pixel off by 0.2 in [-1, 1] is off by 0.1 in [0, 1]: squared 0.01
    np.testing.assert_allclose(E.reconstruction_mse(lambda x: x + 0.2, n=50, seed=3), 0.01, rtol=1e-5)
    # the same pixels as inpaint_success: a change inside the masks does not count
    images, masks, _, _ = E._inpainting_cases(50, 3)
    assert E.reconstruction_mse(lambda x: x + masks, n=50, seed=3) == 0.0


def test_masks_cover_the_changed_object_only():
    sources, targets, changed = E._edits(200, 9, pairs=1.0)
    images = shapes.render(sources, 9)
    for image, scene, index in zip(images, sources, changed):
        mask = E._half_mask(scene, index).astype(bool)
        inside = [f for f in shapes.read(image * mask - (1 - mask))]
        assert [(f.colour, f.shape) for f in inside] == [
            (scene.things[index].colour, scene.things[index].shape)]
