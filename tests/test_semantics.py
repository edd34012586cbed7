"""The documented semantics (docs/semantics.md) without PyTorch: the traps of issues 11, 17
and 18 as literal values, so they are checked where PyTorch is not installed too."""
import math

import numpy as np
import pytest

import minigen as mg
import minigen.functional as F
import minigen.nn as nn
from minigen.functional.promotion import promote_types, result_type


def test_comparisons_are_elementwise_bool_tensors_without_gradient():
    x = mg.tensor([0.0, 1.0, 2.0], requires_grad=True)
    for out, expected in [(x == 1, [0, 1, 0]), (x != 0, [0, 1, 1]), (x < 1, [1, 0, 0]),
                          (x <= 1, [1, 1, 0]), (x > 1, [0, 0, 1]), (x >= 1, [0, 1, 1]),
                          (x == mg.tensor([0.0, 0.0, 2.0]), [1, 0, 1]), (1 == x, [0, 1, 0])]:
        assert out.dtype == bool and not out.requires_grad
        np.testing.assert_array_equal(out.numpy(), np.array(expected, dtype=bool))
    assert (x == "text") is False and (x == None) is False  # noqa: E711 (other types: identity)


def test_tensors_stay_hashable_by_identity():
    a, b = mg.tensor([1.0]), mg.tensor([1.0])
    assert len({a, b}) == 2 and {a: 1, b: 2}[b] == 2
    layer = nn.Linear(2, 2)
    params = layer.parameters()
    assert len(set(params)) == len(params) == 2
    assert {id(p) for p in params} == {id(p) for _, p in layer.named_parameters()}


def test_requires_grad_refused_on_non_float_tensors_however_set():
    with pytest.raises(TypeError, match="floating-point"):
        mg.tensor([1, 2], requires_grad=True)
    t = mg.tensor([1, 2])
    with pytest.raises(TypeError, match="floating-point"):
        t.requires_grad = True
    assert not t.requires_grad
    y = mg.tensor([1.0, 3.0], requires_grad=True).argmax()
    assert y.dtype == np.int64 and not y.requires_grad and y.creator is None


def test_promotion_follows_pytorch():
    f32, f64, i32, i64 = (np.dtype(d) for d in ("float32", "float64", "int32", "int64"))
    assert promote_types(i64, f32) == f32 and promote_types(f32, f64) == f64
    assert result_type(np.zeros(2, i32), 0.5) == f32
    assert result_type(np.zeros(2, i32), 2) == i32
    assert result_type(np.zeros(2, f32), np.zeros((), f64)) == f32
    assert result_type(np.zeros(2, i64), np.zeros((), f64)) == f64
    assert result_type(np.zeros(2, f32), np.zeros(2, f64)) == f64
    assert result_type(True, np.zeros(2, bool)) == np.dtype(bool)


def test_integer_tensors_give_float_results_where_numpy_does():
    x = mg.tensor(np.arange(4))
    y = x * 0.5
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), [0, 0.5, 1, 1.5])
    m = mg.tensor([1, 2, 3]).mean()
    assert m.dtype == np.float32 and m.item() == 2.0
    q = mg.tensor([1, 2]) / mg.tensor([2, 2])
    assert q.dtype == np.float32 and q.tolist() == [0.5, 1.0]
    p = 0.7 ** mg.tensor(np.arange(3, dtype=np.int32))
    np.testing.assert_allclose(p.numpy(), [1, 0.7, 0.49], rtol=1e-6)
    assert (mg.tensor([1, 2]) + 1).dtype == np.int64
    s = mg.tensor([0, 2]).sigmoid()
    assert s.dtype == np.float32
    np.testing.assert_allclose(s.numpy(), [0.5, 1 / (1 + math.exp(-2))], rtol=1e-6)


def test_powers_at_zero_and_negative_bases():
    x = mg.tensor([0.0, 1.0, 2.0], dtype=np.float64, requires_grad=True)
    (0.0**x).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])  # PyTorch: 0 where base 0, x >= 0
    np.testing.assert_array_equal((0.0**x).numpy(), [1.0, 0.0, 0.0])
    e = mg.tensor([-2.0, -1.0, 0.0, 1.0, 3.0], dtype=np.float64)
    np.testing.assert_array_equal(((-2.0) ** e).numpy(), [0.25, -0.5, 1.0, -2.0, -8.0])
    z = mg.tensor([0.0], dtype=np.float64, requires_grad=True)
    (z**0).sum().backward()
    assert z.grad[0] == 0.0
    a, b = (mg.tensor([0.0], dtype=np.float64, requires_grad=True) for _ in range(2))
    (a**b).sum().backward()
    assert (a**b).item() == 1.0 and a.grad[0] == 0.0 and b.grad[0] == 0.0
    b = mg.tensor([0.3], dtype=np.float64, requires_grad=True)
    a.grad = None
    (a**b).sum().backward()
    assert a.grad[0] == math.inf and b.grad[0] == 0.0


def test_where_accepts_number_branches():
    c = np.array([True, False])
    assert mg.where(c, 4, 2).tolist() == [4, 2] and mg.where(c, 4, 2).dtype == np.int64
    x = mg.tensor([1.0, 2.0])
    assert mg.where(c, x, 0.0).tolist() == [1.0, 0.0] and mg.where(c, x, 0.0).dtype == np.float32


def test_zero_dim_reductions_and_softmax_over_axis_0_and_minus_1():
    x = mg.tensor(3.0)
    for axis in (0, -1):
        assert x.sum(axis).item() == 3.0 and x.mean(axis).item() == 3.0
        assert F.softmax(x, axis=axis).item() == 1.0
        assert F.log_softmax(x, axis=axis).item() == 0.0
        assert F.logsumexp(x, axis=axis).item() == 3.0
    with pytest.raises(ValueError, match="axis 1 is out of range"):
        x.sum(1)


def test_empty_reductions_are_nan_not_zero_division():
    with np.errstate(all="ignore"):
        assert np.isnan(mg.zeros(0).mean().item())
        assert np.isnan(mg.zeros(0, 3).mean(axis=0).numpy()).all()
        assert np.isnan(mg.zeros(0, 3).var(axis=0).numpy()).all()
        assert np.isnan(F.mse_loss(mg.zeros(0), mg.zeros(0)).item())
        assert mg.zeros(0, 3).sum(axis=0).tolist() == [0, 0, 0]


def test_out_of_range_axes_and_empty_clip_raise():
    with pytest.raises(ValueError, match="stack: axis 77 is out of range"):
        mg.stack([mg.zeros(2, 2, 2)] * 2, axis=77)
    with pytest.raises(ValueError, match="cat: axis 5 is out of range"):
        mg.cat([mg.zeros(2)] * 2, axis=5)
    with pytest.raises(ValueError, match="transpose"):
        mg.zeros(2, 2).permute(0, 0)
    with pytest.raises(ValueError, match="swapaxes: axis 2"):
        mg.zeros(2, 2).swapaxes(0, 2)
    with pytest.raises(ValueError, match="clip: at least one"):
        mg.zeros(2).clip(None, None)


def test_var_and_std_take_ddof_or_correction():
    x = mg.tensor([1.0, 2.0, 4.0], dtype=np.float64)
    assert x.var().item() == pytest.approx(np.var([1, 2, 4]))
    assert x.var(ddof=1).item() == pytest.approx(np.var([1, 2, 4], ddof=1))
    assert x.std(correction=1).item() == pytest.approx(np.std([1, 2, 4], ddof=1))
    with pytest.raises(ValueError, match="disagree"):
        x.var(ddof=2, correction=1)


def test_sigmoid_and_logsigmoid_tails_in_float32():
    x = mg.tensor([-100.0, -20.0, 20.0, 100.0])
    s = F.sigmoid(x).numpy()  # sigmoid(-100) = 3.7e-44 is below float32's smallest normal
    expected = [0.0, math.exp(-20) / (1 + math.exp(-20)), 1 / (1 + math.exp(-20)), 1.0]
    np.testing.assert_allclose(s, expected, rtol=1e-6, atol=np.finfo(np.float32).tiny)
    assert s[1] > 0  # a tanh form rounds sigmoid(-20) to exactly 0 in float32
    np.testing.assert_allclose(F.logsigmoid(x).numpy(), [-100.0, -20.0, -math.exp(-20), -math.exp(-100)],
                               rtol=1e-6, atol=1e-45)


def test_matmul_linear_conv_refuse_mixed_float_dtypes():
    a32, a64 = mg.zeros(2, 2), mg.zeros(2, 2, dtype=np.float64)
    with pytest.raises(TypeError, match="matmul: operands have different float dtypes .*float32.*float64"):
        a32 @ a64
    with pytest.raises(TypeError, match="linear: .*float64.*float32"):
        F.linear(a64, a32)
    with pytest.raises(TypeError, match="conv2d: .*float32.*float64"):
        F.conv2d(mg.zeros(1, 1, 3, 3), mg.zeros(1, 1, 2, 2, dtype=np.float64))


def test_gelu_default_is_exact_erf_and_tanh_is_an_option():
    x = mg.tensor(np.linspace(-3, 3, 7), dtype=np.float64)
    exact = [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.numpy()]
    np.testing.assert_allclose(F.gelu(x).numpy(), exact, rtol=1e-12)
    assert not np.allclose(F.gelu(x, approximate="tanh").numpy(), exact, rtol=1e-6)
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(x, approximate="fast")


def test_new_op_errors_name_the_problem():
    with pytest.raises(ValueError, match="squeeze: axis 0 .* has length 2"):
        mg.zeros(2, 1).squeeze(0)
    with pytest.raises(IndexError, match="gather: index values must be in"):
        F.gather(mg.zeros(2, 3), 1, np.array([[3], [0]]))
    with pytest.raises(ValueError, match="one_hot: class values"):
        F.one_hot(np.array([0, 5]), 3)
    with pytest.raises(ValueError, match="nll_loss: target must hold class indices"):
        F.nll_loss(mg.zeros(2, 3), np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="groups=2 must divide"):
        F.conv2d(mg.zeros(1, 3, 4, 4), mg.zeros(2, 1, 1, 1), groups=2)
    with pytest.raises(ValueError, match="pad: mode must be 'constant', 'reflect'"):
        F.pad(mg.zeros(2, 2), (1, 1), mode="mirror")
    with pytest.raises(ValueError, match="max: the tensor of shape"):
        mg.zeros(0).max()


def test_prod_gradient_with_zero_factors():
    x = mg.tensor([2.0, 0.0, 3.0], dtype=np.float64, requires_grad=True)
    x.prod().backward()
    assert x.grad.tolist() == [0.0, 6.0, 0.0]
    y = mg.tensor([0.0, 0.0, 3.0], dtype=np.float64, requires_grad=True)
    y.prod().backward()
    assert y.grad.tolist() == [0.0, 0.0, 0.0]
