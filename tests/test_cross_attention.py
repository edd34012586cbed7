"""The UNet's cross-attention to a token sequence (latent diffusion): gradient checks of the
block in float64 over hypothesis-drawn sizes, padding masks, the UNet's context option and
its errors, and the default UNet left as it was."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigen as mg
import minigen.nn as nn
from minigen.errors import InvalidInput
from minigen.nn.cross_attention import CrossAttention2d
from tests.test_nn_layers import check_module_gradients, randomize_affine
from tests.test_nn_unet import TINY

F64 = np.float64


def padding_mask(lengths, L):
    """(N, L) booleans, True at the padding after each row's ``lengths`` tokens."""
    return np.arange(L)[None, :] >= np.asarray(lengths)[:, None]


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 2), st.sampled_from([2, 4]), st.integers(2, 3), st.integers(1, 4),
       st.integers(1, 5), st.sampled_from([1, 2]), st.data())
def test_cross_attention_gradients_float64(n, channels, size, tokens, context_dim, heads, data):
    mg.manual_seed(n + size + tokens)
    block = randomize_affine(CrossAttention2d(channels, context_dim, groups=2, heads=heads,
                                              dtype=F64), seed=size)
    rng = np.random.default_rng(tokens)
    x = rng.standard_normal((n, channels, size, size))
    context = rng.standard_normal((n, tokens, context_dim))
    lengths = data.draw(st.lists(st.integers(1, tokens), min_size=n, max_size=n))
    mask = padding_mask(lengths, tokens)
    check_module_gradients(block, [x, context], forward=lambda m, x, c: m(x, c, mask),
                           directions=4)


def test_padding_tokens_do_not_change_the_output():
    mg.manual_seed(0)
    block = CrossAttention2d(4, 3, groups=2, heads=2, dtype=F64)
    rng = np.random.default_rng(0)
    x, context = rng.standard_normal((2, 4, 3, 3)), rng.standard_normal((2, 5, 3))
    mask = padding_mask([2, 4], 5)
    changed = np.where(mask[:, :, None], rng.standard_normal(context.shape) * 100, context)
    out = block(mg.tensor(x), mg.tensor(context), mask).numpy()
    np.testing.assert_allclose(block(mg.tensor(x), mg.tensor(changed), mask).numpy(), out,
                               atol=1e-10)
    assert not np.allclose(block(mg.tensor(x), mg.tensor(changed)).numpy(), out, atol=1e-3)


def test_one_visible_token_adds_the_same_vector_at_every_position():
    # softmax over a single key is 1: every position receives that token's value, so the
    # residual (a 1x1 conv of it) is constant over H and W.
    mg.manual_seed(1)
    block = CrossAttention2d(4, 3, groups=2, dtype=F64)
    rng = np.random.default_rng(1)
    x, context = rng.standard_normal((2, 4, 3, 3)), rng.standard_normal((2, 4, 3))
    residual = block(mg.tensor(x), mg.tensor(context), padding_mask([1, 1], 4)).numpy() - x
    np.testing.assert_allclose(residual, residual[:, :, :1, :1] + 0 * residual, atol=1e-12)
    assert np.ptp(residual) > 1e-3


def test_unet_with_context_gradients_reach_every_parameter():
    mg.manual_seed(2)
    unet = nn.UNet(**TINY, context_dim=6, dtype=F64)
    kinds = [[type(m).__name__ for m in s] for s in [unet.middle]]
    assert kinds == [["ResBlock", "SelfAttention2d", "CrossAttention2d", "ResBlock"]]
    rng = np.random.default_rng(2)
    x, context = rng.standard_normal((2, 2, 8, 8)), rng.standard_normal((2, 3, 6))
    t, mask = np.array([3, 170]), padding_mask([3, 1], 3)
    check_module_gradients(unet, [x, context], directions=3,
                           forward=lambda m, x, c: m(x, t, context=c, context_mask=mask))


def test_unet_context_changes_the_output_and_default_unet_is_unchanged():
    mg.manual_seed(3)
    unet = nn.UNet(**TINY, context_dim=5)
    x, t = mg.randn(2, 2, 8, 8), np.array([1, 2])
    a = unet(x, t, context=mg.randn(2, 3, 5)).numpy()
    b = unet(x, t, context=mg.randn(2, 3, 5)).numpy()
    assert a.shape == (2, 2, 8, 8) and np.abs(a - b).max() > 1e-4
    plain = nn.UNet(**TINY)
    assert "context_dim" not in plain.config and "out_channels" not in plain.config
    blocks = [type(m).__name__ for s in unet.down + [unet.middle] + unet.up for m in s]
    plain_blocks = [type(m).__name__ for s in plain.down + [plain.middle] + plain.up for m in s]
    assert [b for b in blocks if b != "CrossAttention2d"] == plain_blocks
    assert blocks.count("CrossAttention2d") == blocks.count("SelfAttention2d") == 7


def test_unet_out_channels():
    unet = nn.UNet(**{**TINY, "in_channels": 5}, out_channels=2)
    assert unet(mg.randn(1, 5, 8, 8), np.array([0])).shape == (1, 2, 8, 8)
    clone = nn.build_model("UNet", unet.config)
    assert clone.out_conv.weight.shape == (2, 4, 3, 3)


@pytest.mark.parametrize("kwargs, call, message", [
    ({}, dict(context=np.zeros((2, 3, 5))), "no cross-attention"),
    ({"context_dim": 5}, {}, r"context must have shape \(2, L, 5\), got None"),
    ({"context_dim": 5}, dict(context=np.zeros((2, 3, 4))), r"\(2, L, 5\), got \(2, 3, 4\)"),
    ({"context_dim": 5}, dict(context=np.zeros((2, 3, 5)), context_mask=np.zeros((2, 2), bool)),
     r"context_mask must have shape \(2, 3\)"),
])
def test_unet_context_errors(kwargs, call, message):
    unet = nn.UNet(**TINY, **kwargs)
    call = {k: mg.tensor(v) if k == "context" else v for k, v in call.items()}
    with pytest.raises(InvalidInput, match=message):
        unet(mg.randn(2, 2, 8, 8), np.array([0, 1]), **call)


@pytest.mark.parametrize("kwargs, message", [
    (dict(context_dim=0), "context_dim must be None or >= 1"),
    (dict(out_channels=0), "out_channels must be None or >= 1"),
    (dict(context_dim=4, attention_resolutions=()), "needs at least one attention resolution"),
])
def test_unet_context_config_errors(kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        nn.UNet(**{**TINY, **kwargs})
