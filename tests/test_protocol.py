"""PyTorch's Tensor protocol (issue 18): number protocol, view/size, dtype casts, in-place
fills, the default dtype at creation and the creation functions with PyTorch's names."""
import operator

import numpy as np
import pytest

import minigen as mg
from minigen.testing import gradcheck, gradgradcheck


# --- number protocol -------------------------------------------------------------------------
def test_one_element_tensors_are_numbers():
    assert bool(mg.tensor(0.0)) is False and bool(mg.tensor([2.0])) is True
    assert float(mg.tensor(2.5)) == 2.5 and int(mg.tensor([[7]])) == 7
    assert [10, 11, 12][mg.tensor(2)] == 12 and operator.index(mg.tensor(1)) == 1
    t = mg.tensor(3.0)
    taken = "yes" if t > 0 else "no"  # the tiny-diffusion idiom `if t > 0:`
    assert taken == "yes"


@pytest.mark.parametrize("convert, name", [(bool, "bool()"), (float, "float()"), (int, "int()")])
def test_many_element_tensors_refuse_the_number_protocol_naming_the_size(convert, name):
    with pytest.raises(ValueError, match=rf"{re_escape(name)} .* got 6 \(shape \(2, 3\)\)"):
        convert(mg.zeros(2, 3))
    with pytest.raises(ValueError, match="got 0"):
        convert(mg.zeros(0))


def re_escape(s):
    import re

    return re.escape(s)


def test_float_tensor_is_not_an_index():
    with pytest.raises(TypeError, match="integer tensors"):
        operator.index(mg.tensor(1.0))


# --- view and size -----------------------------------------------------------------------------
def test_view_and_size_follow_pytorch():
    x = mg.arange(24).reshape(2, 3, 4)
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4 and x.numel() == 24
    assert x.view(-1).shape == (24,) and x.view(6, -1).shape == (6, 4) and x.view((4, 6)).shape == (4, 6)
    np.testing.assert_array_equal(x.view(4, -1).numpy(), np.arange(24).reshape(4, 6))
    with pytest.raises(ValueError, match="only one dimension can be -1"):
        x.view(-1, -1)
    with pytest.raises(ValueError, match="cannot reshape"):
        x.view(5, -1)
    with pytest.raises(IndexError, match="dim 3 out of range for a 3-d"):
        x.size(3)


def test_view_is_differentiable():
    x = mg.tensor(np.arange(6.0), requires_grad=True)
    (x.view(2, -1) * mg.tensor(np.arange(6.0).reshape(2, 3))).sum().backward()
    np.testing.assert_array_equal(x.grad, np.arange(6.0))


# --- dtype and device casts ------------------------------------------------------------------
def test_cast_methods_give_pytorch_dtypes():
    x = mg.tensor([1.5, -2.5], dtype=np.float64)
    assert x.float().dtype == np.float32 and x.double().dtype == np.float64
    assert x.long().dtype == np.int64 and x.int().dtype == np.int32
    np.testing.assert_array_equal(x.long().numpy(), [1, -2])  # truncation, as PyTorch
    assert x.type() == "float64" and x.type(mg.float32).dtype == np.float32
    assert x.to("float32").dtype == np.float32 and x.to(mg.float32).dtype == np.float32
    assert x.to("cpu", mg.float32).dtype == np.float32 and x.to(dtype="float16").dtype == np.float16
    assert x.to(mg.zeros(1)).dtype == np.float32  # another tensor's device and dtype
    assert x.to("cpu") is x and x.double() is x
    with pytest.raises(ValueError, match="neither a device"):
        x.to("flot32")


def test_cast_is_differentiable_and_the_gradient_comes_back_in_the_source_dtype():
    x = mg.tensor([1.0, 2.0, 3.0], dtype=np.float64, requires_grad=True)
    y = x.float()
    assert y.requires_grad and y.dtype == np.float32
    (y * y).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad, [2.0, 4.0, 6.0])
    # through a float32 round trip: a linear map, so a large step is exact up to float32 rounding
    gradcheck(lambda t: (t.to(mg.float32) * 2).to(mg.float64), [np.array([0.5, -1.25])],
              eps=1e-2, atol=1e-4, rtol=1e-4)
    gradgradcheck(lambda t: t.to("float64") ** 3, [np.array([0.5, -1.25])])


# --- in-place fills ----------------------------------------------------------------------------
def test_inplace_fills_keep_the_array_and_return_the_tensor():
    p = mg.nn.Parameter(np.zeros((1000, 50), dtype=np.float32))
    array = p.data
    with mg.no_grad():
        assert p.fill_(2.0) is p and np.all(p.data == 2.0)
        p.zero_()
        assert np.all(p.data == 0)
        p.normal_(1.0, 2.0)
        n = p.data.size
        assert abs(p.data.mean() - 1.0) < 5 * 2.0 / np.sqrt(n)
        assert abs(p.data.std() - 2.0) < 5 * 2.0 / np.sqrt(2 * n)
        p.uniform_(-3.0, 1.0)
        assert p.data.min() >= -3.0 and p.data.max() < 1.0
        assert abs(p.data.mean() + 1.0) < 5 * (4 / np.sqrt(12)) / np.sqrt(n)
    assert p.data is array and p.dtype == np.float32


def test_inplace_fill_refused_on_a_tensor_that_records_gradients():
    p = mg.nn.Parameter(np.zeros(3, dtype=np.float32))
    for op in (lambda: p.fill_(1), lambda: p.zero_(), lambda: p.normal_(), lambda: p.uniform_()):
        with pytest.raises(RuntimeError, match="requires grad .*no_grad"):
            op()
    mg.zeros(3).fill_(1.0)  # no grad needed: allowed anywhere


def test_inplace_random_fills_follow_manual_seed():
    mg.manual_seed(3)
    a = mg.zeros(5).normal_().numpy().copy()
    mg.manual_seed(3)
    np.testing.assert_array_equal(mg.zeros(5).normal_().numpy(), a)


# --- default dtype at creation ---------------------------------------------------------------
def test_python_data_takes_the_default_dtype_and_numpy_arrays_keep_theirs():
    assert mg.Tensor([1.0, 2.0]).dtype == np.float32 and mg.Tensor(0.5).dtype == np.float32
    assert mg.tensor([1.0, 2.0]).dtype == np.float32
    assert mg.Tensor([1, 2]).dtype == np.int64
    assert mg.Tensor(np.zeros(2)).dtype == np.float64  # as torch.from_numpy
    assert mg.tensor(np.zeros(2)).dtype == np.float64


# --- creation ----------------------------------------------------------------------------------
def test_like_functions_copy_shape_dtype_and_device():
    x = mg.zeros(2, 3, dtype=np.float64)
    for fn in (mg.zeros_like, mg.ones_like, mg.randn_like, mg.rand_like):
        y = fn(x)
        assert y.shape == (2, 3) and y.dtype == np.float64 and y.device == "cpu"
        assert fn(x, dtype=mg.float32).dtype == np.float32
    np.testing.assert_array_equal(mg.ones_like(x).numpy(), np.ones((2, 3)))
    assert mg.randn_like(x, requires_grad=True).requires_grad


def test_full_arange_linspace_dtypes_and_values():
    assert mg.full((2, 2), 7).dtype == np.int64 and mg.full((2,), 0.5).dtype == np.float32
    assert mg.full((2,), True).dtype == np.bool_
    np.testing.assert_array_equal(mg.full((2, 3), 1.5, dtype=mg.float64).numpy(), np.full((2, 3), 1.5))
    np.testing.assert_array_equal(mg.arange(5).numpy(), np.arange(5))
    assert mg.arange(5).dtype == np.int64 and mg.arange(0, 1, 0.25).dtype == np.float32
    np.testing.assert_array_equal(mg.arange(2, 10, 3).numpy(), [2, 5, 8])
    np.testing.assert_allclose(mg.linspace(-1, 1, 5).numpy(), [-1, -0.5, 0, 0.5, 1])
    assert mg.linspace(0, 1, 3).dtype == np.float32


def test_randint_range_and_seed():
    mg.manual_seed(0)
    a = mg.randint(3, 7, (4000,))
    assert a.dtype == np.int64 and set(np.unique(a.numpy())) == {3, 4, 5, 6}
    b = mg.randint(10, (2, 3))
    assert b.shape == (2, 3) and b.numpy().min() >= 0 and b.numpy().max() < 10
    mg.manual_seed(0)
    np.testing.assert_array_equal(mg.randint(3, 7, (4000,)).numpy(), a.numpy())
    with pytest.raises(ValueError, match="low < high"):
        mg.randint(5, 5, (2,))


def test_from_numpy_shares_memory_and_keeps_float64():
    a = np.zeros(3)
    t = mg.from_numpy(a)
    a[1] = 4.0
    assert t.dtype == np.float64 and t.numpy()[1] == 4.0
    with pytest.raises(TypeError, match="numpy.ndarray"):
        mg.from_numpy([1.0])
