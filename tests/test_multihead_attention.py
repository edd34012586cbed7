"""nn.MultiheadAttention: against PyTorch's module with copied weights (self- and
cross-attention, every mask form, both layouts), padding masks giving exactly zero weight,
gradient and double-gradient checks driven by hypothesis, and its argument errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigen as mg
import minigen.nn as nn
from minigen.testing import gradgradcheck
from tests.test_nn_layers import check_module_gradients, randomize_affine

F64 = np.float64


def _pair(torch, embed_dim=8, heads=2, kdim=None, bias=True, batch_first=True, seed=0):
    """A minigen module and PyTorch's, with minigen's (random, nonzero-bias) weights copied."""
    mg.manual_seed(seed)
    mine = randomize_affine(nn.MultiheadAttention(embed_dim, heads, bias=bias, kdim=kdim, vdim=kdim,
                                                  batch_first=batch_first, dtype=F64), seed)
    theirs = torch.nn.MultiheadAttention(embed_dim, heads, bias=bias, kdim=kdim, vdim=kdim,
                                         batch_first=batch_first, dtype=torch.float64)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in mine.state_dict().items()})
    return mine, theirs


def _padding(n, s, seed):
    """A key-padding mask (N, S), True on the padded tail of each row, each row keeping >= 1 key."""
    lengths = np.random.default_rng(seed).integers(1, s + 1, size=n)
    return np.arange(s)[None, :] >= lengths[:, None]


MASKS = {
    "none": lambda n, length, s, h: {},
    "padding": lambda n, length, s, h: {"key_padding_mask": _padding(n, s, 1)},
    "float padding": lambda n, length, s, h: {
        "key_padding_mask": np.random.default_rng(2).standard_normal((n, s))},
    "causal": lambda n, length, s, h: {"attn_mask": ~np.tril(np.ones((length, s), bool))},
    "per head": lambda n, length, s, h: {
        "attn_mask": np.random.default_rng(3).standard_normal((n * h, length, s)),
        "key_padding_mask": np.where(_padding(n, s, 4), -np.inf, 0.0)},
}


@pytest.mark.parametrize("mask", sorted(MASKS))
@pytest.mark.parametrize("kdim", [None, 5])
def test_matches_pytorch(mask, kdim):
    torch = pytest.importorskip("torch")
    mine, theirs = _pair(torch, kdim=kdim)
    rng = np.random.default_rng(5)
    n, length, s = 3, 4, 4 if mask == "causal" else 6
    q = rng.standard_normal((n, length, 8))
    kv = rng.standard_normal((n, s, kdim or 8))
    masks = MASKS[mask](n, length, s, 2)
    for average in (True, False):
        out, w = mine(mg.tensor(q), mg.tensor(kv), mg.tensor(kv), average_attn_weights=average,
                      **masks)
        t_out, t_w = theirs(torch.tensor(q), torch.tensor(kv), torch.tensor(kv),
                            average_attn_weights=average,
                            **{k: torch.tensor(v) for k, v in masks.items()})
        np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(w.numpy(), t_w.detach().numpy(), atol=1e-12)
    out, w = mine(mg.tensor(q), mg.tensor(kv), mg.tensor(kv), need_weights=False, **masks)
    assert w is None
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), atol=1e-12)


def test_self_attention_sequence_first_and_without_bias_match_pytorch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(6).standard_normal((5, 2, 8))  # (L, N, E)
    for bias in (True, False):
        mine, theirs = _pair(torch, heads=4, bias=bias, batch_first=False)
        out, w = mine(*[mg.tensor(x)] * 3)
        t_out, t_w = theirs(*[torch.tensor(x)] * 3)
        np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(w.numpy(), t_w.detach().numpy(), atol=1e-12)


def test_padded_keys_get_zero_weight_and_do_not_change_the_output():
    mg.manual_seed(0)
    attn = nn.MultiheadAttention(8, 2, kdim=3, vdim=3, batch_first=True, dtype=F64)
    rng = np.random.default_rng(7)
    q, kv = rng.standard_normal((2, 4, 8)), rng.standard_normal((2, 5, 3))
    pad = _padding(2, 5, 8)
    out, w = attn(mg.tensor(q), mg.tensor(kv), mg.tensor(kv), key_padding_mask=pad,
                  average_attn_weights=False)
    assert np.all(w.numpy()[np.broadcast_to(pad[:, None, None, :], w.shape)] == 0.0)
    np.testing.assert_allclose(w.numpy().sum(-1), 1.0, atol=1e-12)
    changed = np.where(pad[..., None], 1e3 * rng.standard_normal(kv.shape), kv)
    out2, _ = attn(mg.tensor(q), mg.tensor(changed), mg.tensor(changed), key_padding_mask=pad)
    np.testing.assert_array_equal(out.numpy(), out2.numpy())


def test_initialisation_and_state_dict_keys_are_pytorchs():
    mg.manual_seed(0)
    attn = nn.MultiheadAttention(64, 4)
    assert set(attn.state_dict()) == {"in_proj_weight", "in_proj_bias", "out_proj.weight",
                                      "out_proj.bias"}
    bound = np.sqrt(6.0 / (64 + 192))  # Xavier-uniform over the (3E, E) in-projection
    w = attn.in_proj_weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert not attn.in_proj_bias.numpy().any() and not attn.out_proj.bias.numpy().any()
    assert set(nn.MultiheadAttention(8, 2, kdim=3).state_dict()) == {
        "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias", "out_proj.weight",
        "out_proj.bias"}


def test_dropout_only_in_training():
    mg.manual_seed(0)
    attn = nn.MultiheadAttention(8, 2, dropout=0.5, batch_first=True)
    x = mg.randn(2, 6, 8)
    a, _ = attn(x, x, x)
    b, _ = attn(x, x, x)
    assert not np.allclose(a.numpy(), b.numpy())
    attn.eval()
    a, _ = attn(x, x, x)
    b, _ = attn(x, x, x, need_weights=False)
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 2), length=st.integers(1, 3), s=st.integers(1, 4),
       heads=st.sampled_from([1, 2]), kdim=st.sampled_from([None, 3]), pad=st.booleans())
def test_gradients(n, length, s, heads, kdim, pad):
    mg.manual_seed(0)
    attn = randomize_affine(nn.MultiheadAttention(4, heads, kdim=kdim, vdim=kdim, batch_first=True,
                                                   dtype=F64))
    rng = np.random.default_rng(n * 100 + length * 10 + s)
    mask = _padding(n, s, 9) if pad else None
    q, kv = rng.standard_normal((n, length, 4)), rng.standard_normal((n, s, kdim or 4))
    check_module_gradients(attn, [q, kv], lambda m, a, c: m(a, c, c, key_padding_mask=mask)[0],
                           directions=3)


@settings(max_examples=5, deadline=None)
@given(length=st.integers(1, 3), s=st.integers(1, 4), self_attention=st.booleans())
def test_double_gradients(length, s, self_attention):
    mg.manual_seed(0)
    attn = randomize_affine(nn.MultiheadAttention(4, 2, batch_first=True, dtype=F64))
    rng = np.random.default_rng(length * 10 + s)
    q, kv = rng.standard_normal((2, length, 4)), rng.standard_normal((2, s, 4))
    mask = _padding(2, s, 10)
    if self_attention:
        assert gradgradcheck(lambda x: attn(x, x, x, key_padding_mask=_padding(2, length, 10))[0],
                             [q], directions=2)
    else:
        assert gradgradcheck(lambda a, c: attn(a, c, c, key_padding_mask=mask)[0], [q, kv],
                             directions=2)


@pytest.mark.parametrize("build, call, message", [
    (lambda: nn.MultiheadAttention(6, 4), None, "not divisible into 4 heads"),
    (lambda: nn.MultiheadAttention(4, 2, add_bias_kv=True), None, "add_bias_kv"),
    (lambda: nn.MultiheadAttention(4, 2, batch_first=True), lambda m, x: m(x[0], x, x), "expected 3-D"),
    (lambda: nn.MultiheadAttention(4, 2, batch_first=True), lambda m, x: m(x, x[:1], x[:1]), "batch 2"),
    (lambda: nn.MultiheadAttention(4, 2, batch_first=True),
     lambda m, x: m(x, x, x, key_padding_mask=np.zeros((2, 2), bool)), r"key_padding_mask must have shape"),
    (lambda: nn.MultiheadAttention(4, 2, batch_first=True),
     lambda m, x: m(x, x, x, attn_mask=np.zeros((2, 3, 3), bool)), r"attn_mask must have shape"),
    (lambda: nn.MultiheadAttention(4, 2, batch_first=True),
     lambda m, x: m(x, x, x, key_padding_mask=np.zeros((2, 3), int)), "boolean or float"),
])
def test_errors(build, call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        module = build()
        call(module, mg.randn(2, 3, 4))
