"""The everyday PyTorch surface a ported script needs: top-level math, ``dim``/``keepdim``,
legacy constructors, aliases and stand-ins, Tensor methods, pooling layers, attention masks.
Forward values against PyTorch (skipped without it), gradients against finite differences."""
import numpy as np
import pytest

import minigen as mg
import minigen.functional as F
from minigen import nn
from minigen.data import DataLoader, TensorDataset
from minigen.testing import gradcheck, gradgradcheck

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4, 5))


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("name", ["sqrt", "exp", "log", "sin", "cos", "sigmoid", "tanh", "abs"])
def test_top_level_math_matches_torch(torch, name):
    x = np.abs(X) + 0.1
    np.testing.assert_allclose(getattr(mg, name)(mg.tensor(x)).data,
                               getattr(torch, name)(torch.tensor(x)).numpy(), rtol=1e-12)


CALLS = [  # (name, args, kwargs) called as mg.name(x, ...) and torch.name(x, ...)
    ("sum", (), {"dim": 1}),
    ("sum", (), {"dim": (0, 2), "keepdim": True}),
    ("mean", (), {"dim": -1, "keepdim": True}),
    ("cumsum", (), {"dim": 1}),
    ("flatten", (), {"start_dim": 1}),
    ("argmax", (), {"dim": 2, "keepdim": True}),
    ("log_softmax", (), {"dim": 1}),
    ("softmax", (), {"dim": 0}),
    ("logsumexp", (), {"dim": 2}),
    ("var", (), {"dim": 1}),
    ("std", (), {"dim": 1, "keepdim": True}),
    ("var", (), {"dim": 0, "unbiased": False}),
    ("squeeze", (), {"dim": 1}),
    ("unsqueeze", (), {"dim": 1}),
    ("flip", (), {"dims": (0, 2)}),
]


@pytest.mark.parametrize("name,args,kwargs", CALLS)
def test_dim_keywords_match_torch(torch, name, args, kwargs):
    ours = getattr(mg, name)(mg.tensor(X), *args, **kwargs)
    theirs = getattr(torch, name)(torch.tensor(X), *args, **kwargs)
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-12)
    method = getattr(mg.tensor(X), name)(*args, **kwargs) if hasattr(mg.Tensor, name) else ours
    np.testing.assert_allclose(method.data, theirs.numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_with_dim_returns_values_and_indices_as_torch(torch, name):
    values, indices = getattr(mg.tensor(X), name)(dim=1, keepdim=True)
    theirs = getattr(torch.tensor(X), name)(dim=1, keepdim=True)
    np.testing.assert_allclose(values.data, theirs.values.numpy())
    np.testing.assert_array_equal(indices.data, theirs.indices.numpy())
    assert getattr(mg.tensor(X), name)(axis=1).shape == (3, 5)  # NumPy's meaning with axis


def test_cat_and_stack_take_dim(torch):
    a, b = X[:, :2], X[:, 2:]
    np.testing.assert_array_equal(mg.cat([mg.tensor(a), mg.tensor(b)], dim=1).data, X)
    np.testing.assert_array_equal(mg.stack([mg.tensor(a), mg.tensor(a)], dim=-1).data,
                                  torch.stack([torch.tensor(a)] * 2, dim=-1).numpy())


def test_dim_and_axis_together_is_an_error():
    with pytest.raises(TypeError, match="dim or axis"):
        mg.tensor(X).sum(axis=0, dim=0)


def test_squeeze_with_dim_leaves_a_longer_axis_as_torch():
    assert mg.tensor(X).squeeze(dim=1).shape == (3, 4, 5)
    with pytest.raises(ValueError, match="not 1"):
        mg.tensor(X).squeeze(1)  # NumPy's rule without the keyword


def test_dim_reductions_are_differentiable():
    x = mg.tensor(RNG.standard_normal((3, 4)))
    for fn in (lambda t: t.max(dim=1).values, lambda t: t.var(dim=0, keepdim=True),
               lambda t: mg.log_softmax(t, dim=1), lambda t: t.sum(dim=1) ** 2):
        gradcheck(fn, [x])
        gradgradcheck(fn, [x])


def test_legacy_constructors():
    x = mg.randn(40, 1, 28, 28)
    assert mg.Tensor(x.shape).shape == (40, 1, 28, 28)
    assert mg.Tensor(64, 1).shape == (64, 1) and mg.Tensor(64, 1).dtype == np.float32
    assert not mg.Tensor(64, 1).requires_grad
    assert mg.Tensor([40, 1]).shape == (2,)  # a list is data
    assert isinstance(x.shape, mg.Size) and x.shape.numel() == 40 * 28 * 28
    assert mg.FloatTensor(2, 3).dtype == np.float32 and mg.FloatTensor(2, 3).shape == (2, 3)
    np.testing.assert_array_equal(mg.FloatTensor(np.array([[1, 2]])).data, [[1.0, 2.0]])
    assert mg.LongTensor([1, 2]).dtype == np.int64
    ones = mg.Tensor(4, 1).fill_(1.0)
    np.testing.assert_array_equal(ones.data, np.ones((4, 1)))
    with pytest.raises(TypeError, match="sizes must be ints"):
        mg.Tensor(2, 1.5)


def test_variable_is_the_tensor():
    t = mg.tensor([1.0, 2.0])
    v = mg.autograd.Variable(t, requires_grad=True)
    assert v is t and t.requires_grad
    assert mg.autograd.Variable(np.zeros(2)).shape == (2,)


def test_type_casts_to_tensor_types_and_refuses_non_numbers():
    x = mg.tensor(np.arange(3))
    assert x.type(mg.Tensor).dtype == np.float32  # mg.Tensor's legacy dtype
    assert x.type(mg.FloatTensor).dtype == np.float32
    assert x.type(mg.DoubleTensor).dtype == np.float64
    assert x.type(mg.float).dtype == np.float32
    assert x.type() == "int64"
    with pytest.raises(TypeError, match="not a tensor dtype"):
        x.type(object)
    with pytest.raises(ValueError, match="neither a device .* nor a dtype"):
        x.to(str)


def test_aliases_and_stand_ins():
    import minigen.backends.cudnn as cudnn
    import minigen.nn.functional as nnf
    import minigen.nn.parallel as parallel
    from minigen.optim.lr_scheduler import StepLR

    assert nnf is F and nn.functional is F
    assert mg.float is np.float32 and mg.double is np.float64 and mg.long is np.int64
    assert mg.accelerator.is_available() == mg.cuda_available() == mg.cuda.is_available()
    assert mg.accelerator.current_accelerator() == ("cuda" if mg.cuda_available() else None)
    cudnn.benchmark = True
    lin = nn.Linear(2, 3)
    x = mg.randn(4, 2)
    np.testing.assert_array_equal(parallel.data_parallel(lin, x, range(2)).data, lin(x).data)
    assert StepLR is mg.optim.lr_scheduler.StepLR
    import minigen.utils.data as utils_data

    assert utils_data.DataLoader is DataLoader and mg.utils.data.TensorDataset is TensorDataset
    assert mg.sqrt is F.sqrt and mg.sum is F.sum


def test_tensor_methods_match_torch(torch):
    a, b = np.array([[1.0, 0.0], [2.0, 2.0]]), np.array([[1.0, 3.0], [2.0, 0.0]])
    np.testing.assert_array_equal(mg.tensor(a).eq(mg.tensor(b)).data,
                                  torch.tensor(a).eq(torch.tensor(b)).numpy())
    np.testing.assert_array_equal(mg.tensor(a).nonzero().data, torch.tensor(a).nonzero().numpy())
    for ours, theirs in zip(mg.tensor(a).nonzero(as_tuple=True),
                            torch.tensor(a).nonzero(as_tuple=True)):
        np.testing.assert_array_equal(ours.data, theirs.numpy())
    np.testing.assert_allclose(mg.tensor(a).pow(3).data, torch.tensor(a).pow(3).numpy())
    assert mg.tensor(X).view_as(mg.zeros(12, 5)).shape == (12, 5)
    assert mg.tensor(a).is_cuda is False


def test_clone_copies_and_passes_the_gradient():
    x = mg.tensor(RNG.standard_normal(3))
    c = x.clone()
    c.data[0] = 99.0
    assert x.data[0] != 99.0
    gradcheck(lambda t: t.clone() * t, [x])
    gradgradcheck(lambda t: t.clone() * t, [x])


def test_bernoulli_draws_with_the_given_probabilities():
    mg.manual_seed(0)
    p = mg.full((20000,), 0.3, dtype=np.float64)
    draws = mg.bernoulli(p)
    assert draws.dtype == np.float64 and set(np.unique(draws.data)) <= {0.0, 1.0}
    assert abs(draws.data.mean() - 0.3) < 0.02
    np.testing.assert_array_equal(mg.bernoulli(mg.tensor([0.0, 1.0])).data, [0.0, 1.0])
    with pytest.raises(TypeError, match="floating point"):
        mg.bernoulli(mg.tensor([0, 1]))


@pytest.mark.parametrize("layer,args", [("MaxPool2d", (2,)), ("MaxPool2d", (3, 2, 1)),
                                        ("AvgPool2d", (2,)), ("AvgPool2d", (3, 1, 1))])
def test_pool_layers_match_torch(torch, layer, args):
    x = RNG.standard_normal((2, 3, 7, 7))
    ours = getattr(nn, layer)(*args)(mg.tensor(x))
    theirs = getattr(torch.nn, layer)(*args)(torch.tensor(x))
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-12)


def test_pool_layer_refuses_return_indices():
    with pytest.raises(ValueError, match="return_indices"):
        nn.MaxPool2d(2, return_indices=True)


def test_dataloader_accepts_num_workers_and_pin_memory():
    loader = DataLoader(TensorDataset(np.arange(6.0)), batch_size=4, num_workers=2,
                        pin_memory=True)
    assert [b[0].shape for b in loader] == [(4,), (2,)]
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(TensorDataset(np.arange(6.0)), num_workers=-1)


def _attention_inputs():
    q, k, v = (RNG.standard_normal((2, 4, 3)) for _ in range(3))
    return q, k, v


@pytest.mark.parametrize("mask", ["float", "bool", "causal"])
def test_attention_masks_match_torch(torch, mask):
    q, k, v = _attention_inputs()
    float_mask = RNG.standard_normal((4, 4))
    bool_mask = RNG.random((4, 4)) > 0.3
    bool_mask[:, 0] = True  # every query may attend somewhere
    kw = {"float": {"attn_mask": float_mask}, "bool": {"attn_mask": bool_mask},
          "causal": {"is_causal": True}}[mask]
    ours = F.scaled_dot_product_attention(
        *map(mg.tensor, (q, k, v)),
        **{k_: mg.tensor(v_) if k_ == "attn_mask" else v_ for k_, v_ in kw.items()})
    theirs = torch.nn.functional.scaled_dot_product_attention(
        *map(torch.tensor, (q, k, v)),
        **{k_: torch.tensor(v_) if k_ == "attn_mask" else v_ for k_, v_ in kw.items()})
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-10, atol=1e-12)


def test_attention_float_mask_is_added_not_thresholded():
    q, k, v = (mg.tensor(a) for a in _attention_inputs())
    shifted = F.scaled_dot_product_attention(q, k, v, mg.full((4, 4), 5.0, dtype=np.float64))
    np.testing.assert_allclose(shifted.data, F.scaled_dot_product_attention(q, k, v).data)
    mask = mg.tensor(RNG.standard_normal((4, 4)))
    gradcheck(lambda a, b, c, m: F.scaled_dot_product_attention(a, b, c, m), [q, k, v, mask])


def test_one_element_message_names_reductions_tensor_has():
    with pytest.raises(ValueError, match="exactly one element") as info:
        bool(mg.ones(3))
    for name in ("any", "all", "sum", "max"):
        if f".{name}()" in str(info.value):
            assert hasattr(mg.Tensor, name)
    assert ".sum()" in str(info.value)
