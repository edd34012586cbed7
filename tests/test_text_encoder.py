"""The word-level tokenizer of the shapes grammar and the Transformer text encoder: ids,
errors, padding invariance, gradient checks."""
import numpy as np
import pytest

import minigen as mg
import minigen.nn as nn
from minigen import shapes
from minigen.errors import InvalidInput
from minigen.testing import gradgradcheck
from minigen.tokenizer import Tokenizer
from tests.test_nn_layers import check_module_gradients, randomize_affine

F64 = np.float64
CAPTIONS = ["a small red circle on the left", "", "a red circle left of a blue square",
            "a Large CYAN triangle   at the bottom"]


def test_tokenizer_round_trip_and_layout():
    tok = Tokenizer.for_shapes()
    assert len(tok) == 2 + len(shapes.VOCABULARY) and tok.max_length == 1 + shapes.MAX_WORDS
    ids = tok(CAPTIONS)
    assert ids.shape == (4, tok.max_length) and ids.dtype == np.int64
    assert (ids[:, 0] == tok.bos_id).all()
    np.testing.assert_array_equal((ids != tok.pad_id).sum(1), [8, 1, 9, 8])
    assert tok.decode(ids) == [" ".join(c.lower().split()) for c in CAPTIONS]
    assert tok("a small red circle on the left").shape == (1, tok.max_length)
    assert tok(CAPTIONS, length=12).shape == (4, 12)
    # every caption of the grammar fits
    scenes = shapes.sample_scenes(200, 0, split="all")
    assert tok.decode(tok([s.caption for s in scenes])) == [s.caption for s in scenes]


@pytest.mark.parametrize("call, message", [
    (lambda tok: tok(["a pink circle"]), r"unknown word 'pink' in 'a pink circle'; the vocabulary "
                                         r"is: a above at blue"),
    (lambda tok: tok(["a " * 9]), "has 9 words, more than the 8"),
    (lambda tok: tok(["a"], length=3), "shorter than max_length 9"),
    (lambda tok: Tokenizer(["Red"], 3), "lower-case words"),
])
def test_tokenizer_errors(call, message):
    with pytest.raises(InvalidInput, match=message):
        call(Tokenizer.for_shapes())


def _encoder(seed=0, **kw):
    mg.manual_seed(seed)
    tok = Tokenizer.for_shapes()
    return tok, randomize_affine(nn.TextEncoder(len(tok), 12, dim=8, heads=2, dtype=F64, **kw), seed)


def test_text_encoder_shapes_and_mask():
    tok, enc = _encoder()
    ids = tok(CAPTIONS)
    emb, mask = enc(ids)
    assert emb.shape == (4, tok.max_length, 8) and emb.dtype == F64
    np.testing.assert_array_equal(mask, ids == tok.pad_id)
    assert not mask[:, 0].any()  # <bos>: the empty caption has one token to attend to
    assert np.isfinite(emb.numpy()).all()
    with pytest.raises(ValueError, match="L <= 12"):
        enc(np.zeros((1, 13), np.int64))


def test_padding_does_not_change_the_real_tokens():
    tok, enc = _encoder(1)
    short, mask = enc(tok(CAPTIONS))
    long, long_mask = enc(tok(CAPTIONS, length=12))
    real = ~mask
    np.testing.assert_allclose(long.numpy()[:, :tok.max_length][real], short.numpy()[real],
                               atol=1e-12)
    assert long_mask[:, tok.max_length:].all()
    # each caption alone, as in a batch of different lengths
    for i, caption in enumerate(CAPTIONS):
        alone, _ = enc(tok([caption]))
        np.testing.assert_allclose(alone.numpy()[0][real[i]], short.numpy()[i][real[i]], atol=1e-12)


def test_captions_are_told_apart():
    mg.manual_seed(2)
    tok = Tokenizer.for_shapes()
    enc = nn.TextEncoder(len(tok), tok.max_length, dim=8, heads=2)
    emb, mask = enc(tok(["a small red circle on the left", "a small blue circle on the left"]))
    assert np.abs(emb.numpy()[0] - emb.numpy()[1]).max() > 0.1


def test_text_encoder_gradients():
    tok, enc = _encoder(3, depth=1)
    ids = tok(CAPTIONS[:3])
    check_module_gradients(enc, [], lambda m: m(ids)[0], directions=3)


def test_transformer_block_double_gradients():
    mg.manual_seed(4)
    block = randomize_affine(nn.TransformerBlock(4, 2, mlp_ratio=2, dtype=F64), 4)
    x = np.random.default_rng(4).standard_normal((2, 3, 4))
    mask = np.array([[False, False, True], [False, False, False]])
    check_module_gradients(block, [x], lambda m, a: m(a, mask), directions=3)
    assert gradgradcheck(lambda a: block(a, mask), [x], directions=2)
