"""Engine behaviour: graph traversal, accumulation, no_grad, higher-order gradients, dtypes,
numerical stability, clear errors, and the public gradcheck tool itself."""
import numpy as np
import pytest

import minigen as mg
import minigen.functional as F
from minigen.tensor import Function
from minigen.testing import GradcheckError, gradcheck, gradgradcheck


def test_deep_graph_needs_no_recursion():
    x = mg.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0001**5000], rtol=1e-3)


def test_gradients_accumulate_for_reused_nodes_and_across_calls():
    x = mg.tensor([2.0, -3.0], requires_grad=True)
    y = x * x + x  # x used three times
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1)
    (x * 4.0).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1 + 4)


def test_diamond_graph_visits_each_node_once():
    x = mg.tensor(3.0, requires_grad=True)
    a = x * 2.0
    b, c = a * a, a + 1.0
    (b * c).backward()  # d/dx [(2x)^2 (2x+1)] = 8x(2x+1) + 8x^2
    assert x.grad == pytest.approx(8 * 3 * 7 + 8 * 9)


def test_intermediate_gradients_are_not_kept():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    (h * h).sum().backward()
    assert h.grad is None and x.grad is not None


def test_no_grad_records_nothing():
    x = mg.tensor([1.0], requires_grad=True)
    with mg.no_grad():
        y = x * 2.0
    assert not y.requires_grad and y.creator is None
    assert mg.is_grad_enabled()


def test_second_and_third_derivatives():
    x = mg.tensor([0.5, -1.2], dtype=np.float64, requires_grad=True)
    (g,) = [mg.grad((x**4).sum(), x, create_graph=True)]
    np.testing.assert_allclose(g.data, 4 * x.data**3)
    h = mg.grad(g.sum(), x, create_graph=True)
    np.testing.assert_allclose(h.data, 12 * x.data**2)
    k = mg.grad(h.sum(), x)
    np.testing.assert_allclose(k.data, 24 * x.data)


def test_backward_create_graph_gives_differentiable_grad():
    x = mg.tensor([1.5], dtype=np.float64, requires_grad=True)
    F.tanh(x).sum().backward(create_graph=True)
    gt = x.grad_tensor
    assert gt.requires_grad
    (d2,) = [mg.grad(gt.sum(), x)]
    t = np.tanh(1.5)
    np.testing.assert_allclose(d2.data, -2 * t * (1 - t * t))


def test_grad_does_not_touch_dot_grad_and_reports_unused():
    x, z = mg.tensor([1.0], requires_grad=True), mg.tensor([1.0], requires_grad=True)
    y = (x * 2.0).sum()
    assert mg.grad(y, x).data == pytest.approx(2.0)
    assert x.grad is None
    with pytest.raises(RuntimeError, match="not used"):
        mg.grad((x * 2.0).sum(), [x, z])
    assert mg.grad((x * 2.0).sum(), [x, z], allow_unused=True)[1] is None


def test_float32_stays_float32_with_python_scalars():
    x = mg.randn(3, 4, requires_grad=True)
    y = (2.0 * x + 1.5) / 3.0 - x**2
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_mixed_dtypes_promote_and_gradients_keep_each_dtype():
    a = mg.tensor([1.0, 2.0], dtype=np.float32, requires_grad=True)
    b = mg.tensor([3.0, 4.0], dtype=np.float64, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_logsumexp_softmax_stable_at_large_logits():
    x = mg.tensor([[1000.0, 999.0, -1000.0]], requires_grad=True)
    lse = F.logsumexp(x, axis=-1)
    assert np.isfinite(lse.data).all()
    assert lse.item() == pytest.approx(1000.0 + np.log1p(np.exp(-1.0)), rel=1e-6)
    s = F.softmax(x)
    np.testing.assert_allclose(s.data.sum(), 1.0, rtol=1e-6)
    lse.sum().backward()
    np.testing.assert_allclose(x.grad, s.data, atol=1e-6)


def test_bce_with_logits_stable_at_100():
    x = mg.tensor([100.0, -100.0, 100.0, -100.0], dtype=np.float64, requires_grad=True)
    t = mg.tensor([1.0, 0.0, 0.0, 1.0], dtype=np.float64)
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    np.testing.assert_allclose(loss.data, [0.0, 0.0, 100.0, 100.0], atol=1e-12)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad, [0.0, 0.0, 1.0, -1.0], atol=1e-12)


def test_sigmoid_saturates_without_overflow():
    with np.errstate(over="raise"):
        y = F.sigmoid(mg.tensor([-1000.0, 1000.0]))
    np.testing.assert_array_equal(y.data, [0.0, 1.0])


def test_dropout_scales_and_respects_training_flag():
    mg.manual_seed(0)
    x = mg.ones(200, 200)
    y = F.dropout(x, 0.3, training=True)
    kept = (y.data != 0).mean()
    assert abs(kept - 0.7) < 0.01
    np.testing.assert_allclose(y.data[y.data != 0], 1 / 0.7, rtol=1e-6)
    assert F.dropout(x, 0.3, training=False) is x
    with pytest.raises(ValueError, match="dropout"):
        F.dropout(x, 1.5)


def test_manual_seed_reproduces_draws():
    mg.manual_seed(123)
    a = mg.randn(5).data
    mg.manual_seed(123)
    np.testing.assert_array_equal(a, mg.randn(5).data)


def test_tensor_methods_and_properties():
    t = mg.tensor(np.arange(6.0).reshape(2, 3))
    assert t.shape == (2, 3) and t.ndim == 2 and t.dtype == np.float64 and t.device == "cpu"
    assert t.T.shape == (3, 2) and t.permute(1, 0).shape == (3, 2) and t.reshape(3, 2).shape == (3, 2)
    assert t.sum().item() == 15.0 and t.max(axis=1).tolist() == [2.0, 5.0]
    assert mg.tensor([1.0]).dtype == np.float32 and mg.tensor([1, 2]).dtype.kind == "i"
    np.testing.assert_array_equal(np.asarray(t), t.data)
    assert (np.ones(3) + mg.tensor([1.0, 2.0, 3.0])).tolist() == [2.0, 3.0, 4.0]
    assert t.to("cpu") is t
    assert "requires_grad=True" in repr(mg.zeros(2, requires_grad=True))


def test_clear_errors():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        mg.randn(2, 3) @ mg.randn(4, 5)
    with pytest.raises(ValueError, match=r"linear: input has 3 features"):
        F.linear(mg.randn(2, 3), mg.randn(4, 5))
    with pytest.raises(ValueError, match=r"conv2d: input has 3 channels but weight"):
        F.conv2d(mg.randn(1, 3, 5, 5), mg.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: kernel"):
        F.conv2d(mg.randn(1, 1, 2, 2), mg.randn(1, 1, 3, 3))
    with pytest.raises(ValueError, match="scalar output"):
        mg.randn(3, requires_grad=True).backward()
    with pytest.raises(TypeError, match="floating-point"):
        mg.tensor([1, 2], requires_grad=True)
    with pytest.raises(ValueError, match="mse_loss: input shape"):
        F.mse_loss(mg.randn(3), mg.randn(3, 1))
    with pytest.raises(ValueError, match="group_norm"):
        F.group_norm(mg.randn(1, 6, 2, 2), 4)
    with pytest.raises(ValueError, match="reshape"):
        mg.randn(6).reshape(4, 2)
    with pytest.raises(ValueError, match="avg_pool2d"):
        F.avg_pool2d(mg.randn(1, 1, 5, 4), 2, padding=2)
    with pytest.raises(RuntimeError, match="does not require grad"):
        mg.randn(1).backward()


class _FakeCuda(np.ndarray):
    """An ndarray that passes for a CuPy array (module name, CUDA array interface): lets the
    device check run without a GPU."""

    __cuda_array_interface__ = {}


_FakeCuda.__module__ = "cupy._fake"


def test_mixing_devices_is_a_clear_error():
    a = mg.Tensor(np.ones(3).view(_FakeCuda))
    with pytest.raises(ValueError, match=r"different devices \(cuda, cpu\)"):
        a + mg.tensor(np.ones(3))


def test_cuda_device_without_gpu_is_a_clear_error():
    if mg.cuda_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="CuPy"):
        mg.zeros(2, device="cuda")


class _WrongSquare(Function):
    def forward(self, x):
        return x * x

    def backward(self, gy):
        return gy * self.inputs[0] * 2.1  # wrong on purpose


def test_gradcheck_catches_a_wrong_backward_elementwise_and_directionally():
    x = mg.tensor(np.linspace(0.5, 1.5, 6))
    with pytest.raises(GradcheckError):
        gradcheck(lambda t: _WrongSquare()(t), [x])
    big = mg.tensor(np.linspace(0.5, 1.5, 500))
    with pytest.raises(GradcheckError):
        gradcheck(lambda t: _WrongSquare()(t), [big])
    assert gradcheck(lambda t: t * t, [big])


def test_gradgradcheck_catches_a_non_differentiable_backward():
    class DetachedSquare(Function):
        def forward(self, x):
            return x * x

        def backward(self, gy):  # correct value, but computed off the graph
            return mg.Tensor(gy.data * 2 * self.inputs[0].data)

    x = mg.tensor(np.linspace(0.5, 1.5, 4))
    assert gradcheck(lambda t: DetachedSquare()(t), [x])
    with pytest.raises(GradcheckError):
        gradgradcheck(lambda t: DetachedSquare()(t), [x])


def test_gradcheck_requires_float64():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(F.tanh, [mg.randn(3)])
