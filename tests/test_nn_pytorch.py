"""nn as a PyTorch user writes it (issue 18): constructor signatures in PyTorch's order,
``inplace=``, loss modules, Identity/Flatten/Embedding, ``Module.apply``/``.to(dtype)``,
``nn.init`` against its formulas, ``nn.utils``."""
import inspect
import math

import numpy as np
import pytest

import minigen as mg
import minigen.functional as F
from minigen import nn, optim

F64 = np.float64

# (minigen class, PyTorch's class name): every layer with a PyTorch counterpart
LAYERS = ["Linear", "Conv2d", "ConvTranspose2d", "BatchNorm1d", "BatchNorm2d", "GroupNorm",
          "LayerNorm", "Embedding", "Dropout", "ReLU", "LeakyReLU", "SiLU", "Tanh", "Sigmoid",
          "GELU", "Flatten", "Identity", "Conv1d", "Upsample", "ReLU6", "SELU", "CELU", "Softsign",
          "Hardsigmoid", "Hardswish", "Mish", "MultiheadAttention"]
LOSSES = ["MSELoss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss"]


def _names(cls):
    return [n for n, p in inspect.signature(cls.__init__).parameters.items()
            if n != "self" and p.kind is p.POSITIONAL_OR_KEYWORD and n not in ("device", "dtype")]


@pytest.mark.parametrize("name", LAYERS)
def test_layer_arguments_are_pytorchs_in_pytorchs_order(name):
    torch = pytest.importorskip("torch")
    mine, theirs = _names(getattr(nn, name)), _names(getattr(torch.nn, name))
    assert mine == theirs[:len(mine)], f"{name}: {mine} vs PyTorch {theirs}"


@pytest.mark.parametrize("name", LOSSES)
def test_loss_arguments_are_pytorchs(name):
    torch = pytest.importorskip("torch")
    assert set(_names(getattr(nn, name))) <= set(_names(getattr(torch.nn, name)))


def test_positional_arguments_land_where_pytorch_puts_them():
    conv = nn.Conv2d(3, 8, 3, 2, 1, 1, 1, False)
    assert conv.stride == 2 and conv.padding == 1 and conv.bias is None
    tconv = nn.ConvTranspose2d(3, 8, 4, 2, 1, 1, 1, False)
    assert tconv.output_padding == 1 and tconv.bias is None
    assert nn.LeakyReLU(0.2, True).negative_slope == 0.2 and nn.Dropout(0.3, True).p == 0.3
    assert nn.GroupNorm(2, 4, 1e-3, False).weight is None and nn.LayerNorm(4, 1e-3, False).bias is None
    assert nn.Linear(2, 3, False).bias is None
    for act in (nn.ReLU(inplace=True), nn.SiLU(True), nn.LeakyReLU(inplace=True)):
        x = mg.tensor([-1.0, 2.0])
        act(x)
        np.testing.assert_array_equal(x.numpy(), [-1.0, 2.0])  # accepted, input never overwritten
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(1, 1, 3, padding_mode="mirror")


def test_conv_groups_shape_the_weight_as_pytorch():
    assert nn.Conv2d(4, 8, 3, groups=2).weight.shape == (8, 2, 3, 3)
    assert nn.ConvTranspose2d(4, 8, 3, groups=2).weight.shape == (4, 4, 3, 3)


# --- losses ---------------------------------------------------------------------------------------
def test_loss_modules_match_their_formulas():
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((4, 3)), rng.uniform(size=(4, 3))
    p = 1 / (1 + np.exp(-x))
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    X, T = mg.tensor(x), mg.tensor(t)
    np.testing.assert_allclose(nn.MSELoss()(X, T).item(), ((x - t) ** 2).mean())
    np.testing.assert_allclose(nn.MSELoss(reduction="sum")(X, T).item(), ((x - t) ** 2).sum())
    np.testing.assert_allclose(nn.BCELoss()(mg.tensor(p), T).item(), bce.mean(), rtol=1e-12)
    np.testing.assert_allclose(nn.BCEWithLogitsLoss()(X, T).item(), bce.mean(), rtol=1e-12)
    w = rng.uniform(size=3)
    np.testing.assert_allclose(nn.BCELoss(weight=mg.tensor(w), reduction="sum")(mg.tensor(p), T).item(),
                               (bce * w).sum(), rtol=1e-12)
    np.testing.assert_allclose(nn.BCEWithLogitsLoss(weight=mg.tensor(w), reduction="none")(X, T).numpy(),
                               bce * w, rtol=1e-12)
    with pytest.raises(ValueError, match="reduction must be"):
        nn.MSELoss(reduction="avg")


def test_bce_loss_is_finite_at_saturated_probabilities_and_matches_pytorch():
    p = mg.tensor([0.0, 1.0, 0.5], requires_grad=True)
    loss = nn.BCELoss()(p, mg.tensor([1.0, 0.0, 1.0]))
    loss.backward()
    assert np.isfinite(loss.item()) and np.all(np.isfinite(p.grad))
    torch = pytest.importorskip("torch")
    q = np.random.default_rng(1).uniform(0.01, 0.99, (5, 2))
    t = np.random.default_rng(2).uniform(size=(5, 2))
    ref = torch.nn.BCELoss()(torch.from_numpy(q), torch.from_numpy(t)).item()
    np.testing.assert_allclose(nn.BCELoss()(mg.tensor(q), mg.tensor(t)).item(), ref, rtol=1e-12)


def _needs(name):
    if not hasattr(F, name):
        pytest.skip(f"F.{name} is not in this branch yet (issue 17 builds it)")


def test_cross_entropy_and_nll_modules_match_pytorchs_formula():
    _needs("cross_entropy")
    _needs("nll_loss")
    rng = np.random.default_rng(3)
    logits, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -log_p[np.arange(6), y]
    np.testing.assert_allclose(nn.CrossEntropyLoss()(mg.tensor(logits), mg.tensor(y)).item(),
                               expected.mean(), rtol=1e-10)
    np.testing.assert_allclose(nn.NLLLoss(reduction="sum")(mg.tensor(log_p), mg.tensor(y)).item(),
                               expected.sum(), rtol=1e-10)


# --- layers ---------------------------------------------------------------------------------------
def test_identity_flatten_and_embedding():
    x = mg.randn(2, 3, 4, 5)
    assert nn.Identity(54, unused=1)(x) is x
    assert nn.Flatten()(x).shape == (2, 60) and nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Flatten(2)(x).shape == (2, 3, 20)
    np.testing.assert_array_equal(nn.Flatten()(x).numpy(), x.numpy().reshape(2, 60))
    emb = nn.Embedding(10, 3)
    idx = np.array([[1, 2], [9, 0]])
    out = emb(mg.tensor(idx))
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out.numpy(), emb.weight.data[idx])


def test_module_apply_visits_children_then_self():
    model = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.Linear(3, 3), nn.ReLU()))
    seen = []
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    assert seen == ["Linear", "Linear", "ReLU", "Sequential", "Sequential"]

    def init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
            nn.init.ones_(m.weight)

    model.apply(init_weights)
    assert all(np.all(p.data == (1 if name.endswith("weight") else 0))
               for name, p in model.named_parameters())


def test_module_to_dtype_and_float_input_rule():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)).to(mg.float64)
    assert all(p.dtype == F64 for p in model.parameters())
    assert model[1].running_mean.dtype == F64 and model[1].num_batches_tracked.dtype == np.int64
    assert model(mg.randn(4, 2, dtype=F64)).dtype == F64
    assert model.float()[0].weight.dtype == np.float32


def test_clip_grad_norm_is_one_function_under_both_names():
    assert nn.utils.clip_grad_norm_ is optim.clip_grad_norm_


# --- nn.init -------------------------------------------------------------------------------------
def _stats_ok(sample, mean, std):
    """Sample mean and std within 6 standard errors of the formula's (n = sample size)."""
    n = sample.size
    assert abs(sample.mean() - mean) < 6 * std / math.sqrt(n), (sample.mean(), mean)
    assert abs(sample.std() - std) < 6 * std / math.sqrt(n), (sample.std(), std)


@pytest.mark.parametrize("shape", [(300, 200), (64, 32, 3, 3)])
def test_init_functions_follow_pytorchs_formulas(shape):
    mg.manual_seed(0)
    w = nn.Parameter(np.zeros(shape, dtype=np.float32))
    receptive = int(np.prod(shape[2:]))
    fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    assert nn.init.calculate_fan_in_and_fan_out(w) == (fan_in, fan_out)
    xavier = math.sqrt(2.0 / (fan_in + fan_out))
    assert nn.init.xavier_uniform_(w) is w
    _stats_ok(w.data, 0.0, xavier)
    assert np.abs(w.data).max() <= math.sqrt(3) * xavier
    _stats_ok(nn.init.xavier_normal_(w, gain=2.0).data, 0.0, 2 * xavier)
    he = math.sqrt(2.0 / fan_in)
    _stats_ok(nn.init.kaiming_uniform_(w).data, 0.0, he)
    assert np.abs(w.data).max() <= math.sqrt(3) * he
    _stats_ok(nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu").data, 0.0,
              math.sqrt(2.0 / fan_out))
    _stats_ok(nn.init.kaiming_normal_(w, a=0.2).data, 0.0, math.sqrt(2 / (1.04 * fan_in)))
    _stats_ok(nn.init.normal_(w, 1.0, 0.1).data, 1.0, 0.1)
    _stats_ok(nn.init.uniform_(w, -2.0, 0.0).data, -1.0, 2 / math.sqrt(12))
    assert np.all(nn.init.constant_(w, 0.3).data == np.float32(0.3))
    assert w.requires_grad and w.dtype == np.float32


def test_calculate_gain_table_and_default_layer_init():
    expected = {"linear": 1, "conv2d": 1, "sigmoid": 1, "tanh": 5 / 3, "relu": math.sqrt(2),
                "leaky_relu": math.sqrt(2 / (1 + 0.01**2)), "selu": 0.75}
    for name, gain in expected.items():
        assert nn.init.calculate_gain(name) == pytest.approx(gain)
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    # the layers' default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) is kaiming_uniform_(a=sqrt(5))
    fan_in = 50
    bound = math.sqrt(3) * nn.init.calculate_gain("leaky_relu", math.sqrt(5)) / math.sqrt(fan_in)
    assert bound == pytest.approx(1 / math.sqrt(fan_in))
    torch = pytest.importorskip("torch")
    for name in expected:
        assert nn.init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))


def test_init_refuses_a_1d_tensor_for_fans_and_unknown_modes():
    with pytest.raises(ValueError, match="at least 2 dims"):
        nn.init.xavier_uniform_(nn.Parameter(np.zeros(3, dtype=np.float32)))
    with pytest.raises(ValueError, match="fan_in"):
        nn.init.kaiming_normal_(nn.Parameter(np.zeros((3, 3), dtype=np.float32)), mode="fan")
