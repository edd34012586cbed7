"""Autograd refuses what it cannot get right: in-place changes of tensors a graph saw (version
counters), a second backward through a freed graph, and item assignment on leaves; item
assignment elsewhere is differentiable."""
import numpy as np
import pytest

import minigen as mg
from minigen import nn, optim
from minigen.testing import gradcheck, gradgradcheck

INPLACE = "modified by an inplace operation"


def _cube_sum():
    w = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    return w, (w ** 3).sum()


def test_fill_under_no_grad_between_forward_and_backward_is_refused():
    w, y = _cube_sum()
    with mg.no_grad():
        w.fill_(10.0)
    with pytest.raises(RuntimeError, match=INPLACE + ".*PowConst.*version 1; expected version 0"):
        y.backward()


def test_assigning_data_between_forward_and_backward_is_refused():
    w, y = _cube_sum()
    w.data = np.full(3, 10.0, dtype=np.float32)
    with pytest.raises(RuntimeError, match=INPLACE):
        y.backward()


def test_item_assignment_under_no_grad_between_forward_and_backward_is_refused():
    w, y = _cube_sum()
    with mg.no_grad():
        w[0] = 10.0
    np.testing.assert_array_equal(w.data, [10.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match=INPLACE):
        y.backward()


def test_optimizer_step_before_backward_is_refused():
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = mg.randn(4, 3)
    model(x).sum().backward()
    loss = model(x).sum()
    opt.step()  # uses the previous gradients and changes the weights the new graph saw
    with pytest.raises(RuntimeError, match=INPLACE):
        loss.backward()


def test_an_unchanged_graph_still_differentiates_after_an_unrelated_change():
    w, y = _cube_sum()
    other = mg.tensor([5.0], requires_grad=True)
    with mg.no_grad():
        other.fill_(1.0)
    y.backward()
    np.testing.assert_allclose(w.grad, [3.0, 12.0, 27.0])


def test_an_inplace_change_of_a_saved_output_is_refused():
    x = mg.tensor([0.5, 1.0], requires_grad=True)
    y = x.exp()  # Exp's backward reuses its output
    with mg.no_grad():
        y.fill_(0.0)
    z = y * 1.0  # made after the change: only Exp can tell
    with pytest.raises(RuntimeError, match=INPLACE + ".*output 0 of Exp"):
        z.sum().backward()


def test_second_backward_through_a_freed_graph_is_refused():
    w, y = _cube_sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time.*retain_graph"):
        y.backward()
    np.testing.assert_allclose(w.grad, [3.0, 12.0, 27.0])  # not doubled


def test_retain_graph_allows_a_second_backward_which_accumulates():
    w, y = _cube_sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(w.grad, [6.0, 24.0, 54.0])


def test_a_shared_trunk_is_freed_by_the_first_of_two_losses():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    h = x * x
    a, b = h.sum(), (h * 3.0).sum()
    a.backward()
    with pytest.raises(RuntimeError, match="second time"):
        b.backward()


def test_grad_frees_only_the_part_it_ran():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    w = mg.tensor([3.0], requires_grad=True)
    h = x * x  # not on the way from the output to w
    out = (h * w).sum()
    (gw,) = mg.grad(out, [w])
    np.testing.assert_allclose(gw.data, [5.0])
    with pytest.raises(RuntimeError, match="second time"):
        mg.grad(out, [w])
    h.sum().backward()  # h's own graph was not run, so it was not freed
    np.testing.assert_allclose(x.grad, [2.0, 4.0])


def test_grad_with_retain_graph_can_run_again():
    w, y = _cube_sum()
    g1 = mg.grad(y, w, retain_graph=True)
    g2 = mg.grad(y, w)
    np.testing.assert_allclose(g1.data, g2.data)


def test_double_backward_keeps_working():
    x = mg.tensor([1.0, 2.0], dtype=np.float64, requires_grad=True)
    y = (x ** 3).sum()
    (g,) = mg.grad(y, [x], create_graph=True)  # 3 x^2, with a graph
    g.sum().backward()  # d/dx sum(3 x^2) = 6 x
    np.testing.assert_allclose(x.grad, [6.0, 12.0])
    y.backward()  # create_graph retained y's graph
    np.testing.assert_allclose(x.grad, [9.0, 24.0])


def test_item_assignment_on_a_leaf_that_requires_grad_is_refused():
    x = mg.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad.*no_grad"):
        x[0] = 1.0


def test_item_assignment_matches_torch():
    torch = pytest.importorskip("torch")
    x0, v0 = np.array([1.0, 2.0, 3.0, 4.0]), np.array([5.0, 6.0])
    x, v = mg.tensor(x0, requires_grad=True), mg.tensor(v0, requires_grad=True)
    a = x * x
    a[1:3] = v * 2.0
    (a * a).sum().backward()
    tx = torch.tensor(x0, requires_grad=True)
    tv = torch.tensor(v0, requires_grad=True)
    ta = tx * tx
    ta[1:3] = tv * 2.0
    (ta * ta).sum().backward()
    np.testing.assert_allclose(a.data, ta.detach().numpy())
    np.testing.assert_allclose(x.grad, tx.grad.numpy())
    np.testing.assert_allclose(v.grad, tv.grad.numpy())


def test_item_assignment_into_a_constant_records_the_value():
    buf = mg.zeros(2, 3, dtype=np.float64)
    v = mg.tensor([1.0, 2.0, 3.0], dtype=np.float64, requires_grad=True)
    buf[1] = v * v
    buf.sum().backward()
    np.testing.assert_allclose(v.grad, [2.0, 4.0, 6.0])
    assert buf.requires_grad


@pytest.mark.parametrize("index", [1, (slice(None), 0), ([0, 2], slice(1, None))])
def test_item_assignment_gradients(index):
    def f(x, v):
        a = x * 1.0
        a[index] = v
        return a * a

    rng = np.random.default_rng(0)
    x = mg.tensor(rng.standard_normal((3, 3)))
    value_shape = np.zeros((3, 3))[index].shape
    v = mg.tensor(rng.standard_normal(value_shape[-1:]))  # broadcast over the rest
    gradcheck(f, [x, v])
    gradgradcheck(f, [x, v])
