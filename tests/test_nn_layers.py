"""nn layers against independent NumPy formulas (direct loops for the convolutions), their
PyTorch-style initialisation, BatchNorm's running statistics, and gradient checks of each
layer with respect to its input and parameters."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigen as mg
import minigen.nn as nn
from minigen.testing import gradcheck, gradgradcheck
from tests.references import conv2d_loop, conv_transpose2d_loop

F64 = np.float64


def check_module_gradients(module, inputs, forward=None, directions=None, check=gradcheck):
    """``check`` (gradcheck or gradgradcheck) of ``module`` with respect to its float64
    ``inputs`` and all its parameters: the parameters are swapped for the checker's perturbed
    tensors during each call."""
    forward = forward or (lambda m, *xs: m(*xs))
    names = [name for name, _ in module.named_parameters()]
    values = [p.data for _, p in module.named_parameters()]

    def slot(name):
        *path, attr = name.split(".")
        owner = module
        for part in path:
            owner = owner[int(part)] if isinstance(owner, list) else getattr(owner, part)
        return owner, attr

    def fn(*tensors):
        xs, ps = tensors[:len(inputs)], tensors[len(inputs):]
        saved = [getattr(*slot(name)) for name in names]
        for name, p in zip(names, ps):
            setattr(*slot(name), p)
        try:
            return forward(module, *xs)
        finally:
            for name, p in zip(names, saved):
                setattr(*slot(name), p)

    probe = [mg.tensor(v, requires_grad=True) for v in list(inputs) + values]
    out = fn(*probe)
    mg.grad(out, probe[len(inputs):], grad_outputs=np.ones(out.shape))  # raises if one is unused
    assert check(fn, list(inputs) + values, directions=directions)


def randomize_affine(module, seed=0):
    """Give norm layers non-trivial weight/bias so the affine part is tested too."""
    rng = np.random.default_rng(seed)
    for _, p in module.named_parameters():
        p.data = rng.standard_normal(p.shape).astype(p.dtype)
    return module


# --- convolutions ---------------------------------------------------------------------
@given(
    st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(3, 6),
    st.sampled_from([1, 2, 3]), st.integers(1, 2), st.integers(0, 2), st.booleans(),
)
def test_conv2d_matches_direct_loop(n, cin, cout, size, k, stride, padding, bias):
    mg.manual_seed(n + cin + size)
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=bias, dtype=F64)
    x = np.random.default_rng(size).standard_normal((n, cin, size, size))
    y = conv(mg.tensor(x)).numpy()
    b = None if conv.bias is None else conv.bias.data
    np.testing.assert_allclose(y, conv2d_loop(x, conv.weight.data, b, stride, padding), atol=1e-12)


@given(
    st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4),
    st.sampled_from([1, 2, 3]), st.integers(1, 3), st.integers(0, 1), st.booleans(), st.data(),
)
def test_conv_transpose2d_matches_direct_loop(n, cin, cout, size, k, stride, padding, bias, data):
    output_padding = data.draw(st.integers(0, stride - 1))
    if (size - 1) * stride - 2 * padding + k + output_padding < 1:
        return  # empty output: rejected by the layer, covered in test_conv_errors
    mg.manual_seed(size)
    conv = nn.ConvTranspose2d(cin, cout, k, stride, padding, output_padding, bias=bias, dtype=F64)
    x = np.random.default_rng(size).standard_normal((n, cin, size, size))
    y = conv(mg.tensor(x)).numpy()
    b = None if conv.bias is None else conv.bias.data
    ref = conv_transpose2d_loop(x, conv.weight.data, b, stride, padding, output_padding)
    np.testing.assert_allclose(y, ref, atol=1e-12)


@pytest.mark.parametrize("cls, cin, cout, fan_in", [
    (nn.Conv2d, 3, 40, 3 * 9),  # Conv2d: fan_in = in_channels * kh * kw
    (nn.ConvTranspose2d, 3, 40, 40 * 9),  # PyTorch: weight dim 1 (out_channels) * kh * kw
    (nn.ConvTranspose2d, 40, 3, 3 * 9),
])
def test_conv_init_is_pytorch_default(cls, cin, cout, fan_in):
    mg.manual_seed(0)
    conv = cls(cin, cout, 3)
    bound = 1 / math.sqrt(fan_in)
    for p in (conv.weight.data, conv.bias.data):
        assert p.dtype == np.float32
        assert np.abs(p).max() <= bound
    w = conv.weight.data
    assert np.abs(w).max() > 0.95 * bound  # uniform on the whole interval, not a narrower one
    assert abs(w.std() - bound / math.sqrt(3)) < 0.1 * bound


def test_conv_shapes_and_errors():
    conv = nn.Conv2d(3, 5, (3, 1), stride=2, padding=1)
    assert conv.weight.shape == (5, 3, 3, 1) and conv(mg.zeros(2, 3, 7, 7)).shape == (2, 5, 4, 5)
    up = nn.ConvTranspose2d(5, 3, 4, stride=2, padding=1)
    assert up.weight.shape == (5, 3, 4, 4) and up(mg.zeros(2, 5, 4, 4)).shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match="channels"):
        conv(mg.zeros(2, 4, 7, 7))
    with pytest.raises(ValueError, match="output_padding"):
        nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)(mg.zeros(1, 2, 3, 3))


@pytest.mark.parametrize("layer", [
    lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1, dtype=F64),
    lambda: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1, dtype=F64),
])
def test_conv_gradients(layer):
    mg.manual_seed(1)
    check_module_gradients(layer(), [np.random.default_rng(0).standard_normal((2, 2, 5, 5))])


@pytest.mark.parametrize("layer, channels", [
    (lambda: nn.Conv2d(4, 16, 4, stride=2, padding=1, dtype=F64), 4),
    (lambda: nn.ConvTranspose2d(16, 4, 4, stride=2, padding=1, dtype=F64), 16),
])
def test_strided_4x4_conv_gradients(layer, channels):
    """DCGAN's layers, whose convolutions run as Winograd F(2x2, 2x2) on the input's four
    phases (kernels.polyphase), forward and both backward passes."""
    mg.manual_seed(2)
    check_module_gradients(layer(), [np.random.default_rng(0).standard_normal((2, channels, 6, 6))],
                           directions=4)


# --- normalisation --------------------------------------------------------------------
def norm_ref(x, axes, eps):
    mu = x.mean(axis=axes, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True) + eps)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_group_norm_formula(dtype, tol):
    gn = randomize_affine(nn.GroupNorm(3, 6, eps=1e-3, dtype=dtype))
    x = np.random.default_rng(0).standard_normal((4, 6, 3, 5)) * 3 + 1
    y = gn(mg.tensor(x, dtype=dtype))
    assert y.dtype == dtype
    ref = norm_ref(x.reshape(4, 3, 2, 3, 5), (2, 3, 4), 1e-3).reshape(x.shape)
    ref = ref * gn.weight.data.reshape(1, 6, 1, 1) + gn.bias.data.reshape(1, 6, 1, 1)
    np.testing.assert_allclose(y.numpy(), ref, rtol=tol, atol=tol)


def test_layer_norm_formula():
    ln = randomize_affine(nn.LayerNorm((3, 4), dtype=F64))
    assert nn.LayerNorm(7).weight.shape == (7,)
    x = np.random.default_rng(1).standard_normal((2, 5, 3, 4)) * 2 - 1
    ref = norm_ref(x, (2, 3), 1e-5) * ln.weight.data + ln.bias.data
    np.testing.assert_allclose(ln(mg.tensor(x)).numpy(), ref, atol=1e-12)


def test_norm_init_and_errors():
    for layer in (nn.GroupNorm(2, 4), nn.LayerNorm(4), nn.BatchNorm2d(4)):
        assert np.all(layer.weight.data == 1) and np.all(layer.bias.data == 0)
    with pytest.raises(ValueError, match="not divisible into 3 groups"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match="GroupNorm"):
        nn.GroupNorm(2, 4)(mg.zeros(1, 6, 2, 2))


@pytest.mark.parametrize("layer, shape", [
    (lambda: nn.GroupNorm(2, 4, dtype=F64), (2, 4, 3, 3)),
    (lambda: nn.LayerNorm(5, dtype=F64), (3, 5)),
    (lambda: nn.BatchNorm2d(3, dtype=F64), (4, 3, 2, 2)),
])
def test_norm_gradients(layer, shape):
    x = np.random.default_rng(2).standard_normal(shape)
    check_module_gradients(randomize_affine(layer()), [x])


def test_batch_norm_training_statistics():
    bn = randomize_affine(nn.BatchNorm2d(3, momentum=0.2, dtype=F64))
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((4, 3, 5, 2)) * s + m for s, m in ((2.0, 1.0), (0.5, -3.0))]
    running_mean, running_var = np.zeros(3), np.ones(3)

    def affine(z):
        return z * bn.weight.data.reshape(1, 3, 1, 1) + bn.bias.data.reshape(1, 3, 1, 1)

    for x in xs:
        y = bn(mg.tensor(x)).numpy()
        np.testing.assert_allclose(y, affine(norm_ref(x, (0, 2, 3), 1e-5)), atol=1e-12)
        running_mean = 0.8 * running_mean + 0.2 * x.mean(axis=(0, 2, 3))
        running_var = 0.8 * running_var + 0.2 * x.var(axis=(0, 2, 3), ddof=1)  # unbiased
        np.testing.assert_allclose(bn.running_mean, running_mean, atol=1e-12)
        np.testing.assert_allclose(bn.running_var, running_var, atol=1e-12)

    bn.eval()
    x = rng.standard_normal((2, 3, 5, 2))
    y = bn(mg.tensor(x)).numpy()
    ref = (x - running_mean.reshape(1, 3, 1, 1)) / np.sqrt(running_var.reshape(1, 3, 1, 1) + 1e-5)
    np.testing.assert_allclose(y, affine(ref), atol=1e-12)
    np.testing.assert_array_equal(bn.running_mean, running_mean)  # eval leaves them alone

    state = bn.state_dict()
    assert {"running_mean", "running_var", "num_batches_tracked", "weight", "bias"} == set(state)
    assert state["num_batches_tracked"] == 2 and state["num_batches_tracked"].dtype == np.int64
    fresh = nn.BatchNorm2d(3, momentum=0.2, dtype=F64).load_state_dict(state).eval()
    np.testing.assert_array_equal(fresh(mg.tensor(x)).numpy(), y)
    with pytest.raises(ValueError, match="more than 1 value"):
        bn.train()(mg.zeros(1, 3, 1, 1, dtype=F64))


# --- embeddings -----------------------------------------------------------------------
@pytest.mark.parametrize("dim", [4, 32])
def test_sinusoidal_embedding_formula(dim):
    t = np.array([0, 1, 7, 999])
    emb = nn.SinusoidalEmbedding(dim)(t)
    assert emb.shape == (4, dim) and emb.dtype == np.float32 and not emb.requires_grad
    half = dim // 2
    for b, tb in enumerate(t):
        for i in range(half):
            f = 10000.0 ** (-i / (half - 1))
            assert emb.numpy()[b, i] == pytest.approx(math.sin(tb * f), abs=1e-6)
            assert emb.numpy()[b, half + i] == pytest.approx(math.cos(tb * f), abs=1e-6)
    floats = nn.SinusoidalEmbedding(dim, dtype=F64)(t.astype(float) + 0.5).numpy()
    assert floats.dtype == F64 and floats[0, 0] == pytest.approx(math.sin(0.5), abs=1e-15)
    with pytest.raises(ValueError, match="even"):
        nn.SinusoidalEmbedding(5)
    with pytest.raises(ValueError, match="1-D"):
        nn.SinusoidalEmbedding(4)(np.zeros((2, 1)))


def test_sinusoidal_embedding_table_gives_the_direct_values():
    """Integer steps are gathered from a cached table; the values are those of the formula
    computed for each step directly (as for float steps), bit for bit, across table growth."""
    emb = nn.SinusoidalEmbedding(16, dtype=F64)
    for t in (np.array([3, 0, 3, 999]), np.arange(5000, 5010), np.array([70000, 2]),
              np.array([-1, 4]), np.array([], dtype=int)):
        for steps in (t, t.astype(np.uint32)):
            np.testing.assert_array_equal(emb(steps).numpy(), emb._embed(steps, np))
    assert len(emb._table) == 2 * 5009 + 2  # grown for t = 5009, not for 70000
    with pytest.raises(ValueError, match="1-D"):
        nn.SinusoidalEmbedding(4)(np.zeros((2, 1)))


def test_embedding_lookup_and_gradient():
    mg.manual_seed(0)
    emb = nn.Embedding(4, 3, dtype=F64)
    idx = np.array([2, 0, 2])
    out = emb(idx)
    np.testing.assert_array_equal(out.numpy(), emb.weight.data[idx])
    (out * mg.tensor(np.arange(9.0).reshape(3, 3))).sum().backward()
    expected = np.zeros((4, 3))
    np.add.at(expected, idx, np.arange(9.0).reshape(3, 3))  # repeated rows accumulate
    np.testing.assert_array_equal(emb.weight.grad, expected)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        emb(np.array([4]))
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([1.0]))


# --- attention ------------------------------------------------------------------------
def test_self_attention_formula():
    mg.manual_seed(0)
    att = nn.SelfAttention2d(4, 2, dtype=F64)
    randomize_affine(att.norm)
    x = np.random.default_rng(4).standard_normal((2, 4, 3, 2))
    n, c, h, w = x.shape
    g = norm_ref(x.reshape(n, 2, -1), 2, 1e-5).reshape(x.shape)
    g = g * att.norm.weight.data.reshape(1, c, 1, 1) + att.norm.bias.data.reshape(1, c, 1, 1)
    wqkv, bqkv = att.qkv.weight.data[:, :, 0, 0], att.qkv.bias.data
    qkv = np.einsum("oc,ncp->nop", wqkv, g.reshape(n, c, h * w)) + bqkv[None, :, None]
    q, k, v = qkv[:, :c], qkv[:, c:2 * c], qkv[:, 2 * c:]  # (n, c, positions)
    scores = np.einsum("ncp,ncq->npq", q, k) / math.sqrt(c)
    a = np.exp(scores - scores.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    out = np.einsum("npq,ncq->ncp", a, v)
    ref = x + (np.einsum("oc,ncp->nop", att.proj.weight.data[:, :, 0, 0], out)
               + att.proj.bias.data[None, :, None]).reshape(x.shape)
    np.testing.assert_allclose(att(mg.tensor(x)).numpy(), ref, atol=1e-12)


def test_self_attention_gradients():
    mg.manual_seed(0)
    att = randomize_affine(nn.SelfAttention2d(4, 2, dtype=F64), seed=5)
    check_module_gradients(att, [np.random.default_rng(6).standard_normal((2, 4, 3, 3))])


# --- MLP ------------------------------------------------------------------------------
def test_mlp_matches_numpy_forward():
    mg.manual_seed(0)
    mlp = nn.MLP(2, 3, hidden=(5, 4), activation="tanh", time_dim=8, dtype=F64)
    x = np.random.default_rng(5).standard_normal((6, 2))
    t = np.arange(6) * 100
    h = np.concatenate([x, nn.SinusoidalEmbedding(8, F64)(t).numpy()], axis=1)
    for i, layer in enumerate(mlp.layers):
        h = h @ layer.weight.data.T + layer.bias.data
        h = np.tanh(h) if i < len(mlp.layers) - 1 else h
    np.testing.assert_allclose(mlp(mg.tensor(x), t).numpy(), h, atol=1e-12)
    assert [layer.weight.shape for layer in mlp.layers] == [(5, 10), (4, 5), (3, 4)]


def test_mlp_bench_architecture_and_activations():
    mlp = nn.MLP(2, 2, time_dim=32)  # the W1 denoiser: 2+32 -> 128 -> 128 -> 128 -> 2, SiLU
    shapes = [layer.weight.shape for layer in mlp.layers]
    assert shapes == [(128, 34), (128, 128), (128, 128), (2, 128)]
    assert isinstance(mlp.act, nn.SiLU) and mlp(mg.zeros(3, 2), np.array([0, 5, 9])).shape == (3, 2)
    x = mg.tensor(np.linspace(-3, 3, 13).reshape(-1, 1))
    refs = {  # exact (erf) GELU, PyTorch's default, as F.gelu documents
        "relu": lambda v: np.maximum(v, 0), "leaky_relu": lambda v: np.where(v > 0, v, 0.2 * v),
        "tanh": np.tanh, "silu": lambda v: v / (1 + np.exp(-v)),
        "gelu": np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2)))),
    }
    for name, ref in refs.items():
        y = nn.make_activation(name)(x).numpy()
        np.testing.assert_allclose(y, ref(x.numpy()), atol=1e-12)
    v = x.numpy()
    tanh_gelu = 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
    np.testing.assert_allclose(nn.GELU(approximate="tanh")(x).numpy(), tanh_gelu, atol=1e-12)
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU(approximate="fast")
    with pytest.raises(ValueError, match="'gelu', 'leaky_relu', 'relu', 'silu', 'tanh'"):
        nn.MLP(2, 2, activation="swish")


def test_mlp_time_argument_errors_and_gradients():
    mg.manual_seed(0)
    plain = nn.MLP(3, 1, hidden=(4,), activation="leaky_relu", dtype=F64)
    check_module_gradients(plain, [np.random.default_rng(7).standard_normal((5, 3))])
    with pytest.raises(ValueError, match="time_dim=None"):
        plain(mg.zeros(2, 3, dtype=F64), np.array([1, 2]))
    timed = nn.MLP(2, 2, hidden=(4,), time_dim=4)
    with pytest.raises(ValueError, match="pass t"):
        timed(mg.zeros(2, 2))
    with pytest.raises(ValueError, match="t has 3 entries"):
        timed(mg.zeros(2, 2), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"\(batch, 2\)"):
        timed(mg.zeros(2, 3), np.array([1, 2]))


@pytest.mark.parametrize("make, shape", [
    (lambda: nn.MLP(3, 1, hidden=(4, 4), activation="leaky_relu", dtype=F64), (4, 3)),
    (lambda: nn.MLP(2, 2, hidden=(4,), activation="silu", time_dim=4, dtype=F64), (3, 2)),
    (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, dtype=F64), nn.GroupNorm(2, 4, dtype=F64),
                           nn.SiLU(), nn.Conv2d(4, 1, 3, stride=2, dtype=F64)), (2, 2, 5, 5)),
])
def test_double_backward_through_layers(make, shape):
    """Second derivatives with respect to inputs and parameters, as gradient penalties
    (R1, WGAN-GP) need them from a discriminator."""
    mg.manual_seed(0)
    module = make()
    x = np.random.default_rng(8).standard_normal(shape)
    forward = (lambda m, z: m(z, np.arange(3))) if getattr(module, "time_dim", None) else None
    check_module_gradients(module, [x], forward=forward, check=gradgradcheck)
