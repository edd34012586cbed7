"""Edge cases and borrowed names against PyTorch, generated from one table.

Each row gives inputs (NumPy arrays become Tensors, float ones with requires_grad; Python
numbers stay numbers), the minigen expression and the PyTorch expression. The test checks
that both raise, or that values, shapes and dtypes agree (NaN with NaN) and, when the output
is floating point, the gradients of its sum with respect to every float input. The next edge
is one more row. Skipped without PyTorch (an optional test oracle, never a dependency).

Where minigen follows NumPy on purpose (docs/semantics.md), the PyTorch expression spells
the same meaning (e.g. ``correction=0`` for ``var``).
"""
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import minigen as mg
import minigen.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


@dataclass
class Edge:
    inputs: tuple
    mg: Callable
    torch: Callable
    raises: bool = False
    rtol: float = None  # default: 1e-7 for float64 results, 1e-6 for float32


def a(*values, dtype=np.float64):
    return np.array(values, dtype=dtype)


INF, NAN = math.inf, math.nan
F32 = np.float32
TAILS = (-100.0, -30.0, -20.0, -10.0, 0.0, 10.0, 20.0, 30.0, 100.0)
LOGITS = np.array([[1.0, -2.0, 0.5], [300.0, -300.0, 0.0], [-1e3, 2.0, 1e3]])
IMAGE = np.linspace(-1, 1, 2 * 4 * 5 * 5).reshape(2, 4, 5, 5)
KERNEL = np.linspace(-1, 1, 6 * 2 * 3 * 3).reshape(6, 2, 3, 3)
BIAS = np.array([0.1, -0.2, 0.3, 0.0, 0.5, -0.5])

EDGES = {
    # powers at zero and negative bases (PyTorch's values and gradients)
    "pow/zero_base_scalar": Edge((a(0.0, 1.0, 2.0, -1.0, 0.5),), lambda x: 0.0**x, lambda x: 0.0**x),
    "pow/tensor_0_0": Edge((a(0.0), a(0.0)), lambda x, y: x**y, lambda x, y: x**y),
    "pow/tensor_0_0.3": Edge((a(0.0), a(0.3)), lambda x, y: x**y, lambda x, y: x**y),
    "pow/negative_base_scalar": Edge((a(-2.0, -1.0, 0.0, 1.0, 2.0, 3.0),), lambda x: (-2.0) ** x, lambda x: (-2.0) ** x),
    "pow/negative_base_tensor": Edge((a(-2.0, -3.0), a(2.0, 3.0)), lambda x, y: x**y, lambda x, y: x**y),
    "pow/x_pow_0_at_0": Edge((a(0.0, 1.0, -2.0),), lambda x: x**0, lambda x: x**0),
    "pow/x_pow_0.5_at_0": Edge((a(0.0, 4.0, -1.0),), lambda x: x**0.5, lambda x: x**0.5),
    "pow/x_pow_-1_at_0": Edge((a(0.0, 2.0),), lambda x: x**-1, lambda x: x**-1),
    "pow/float_base_int_tensor": Edge((a(0, 1, 2, dtype=np.int32),), lambda x: 0.7**x, lambda x: 0.7**x),
    "pow/int_tensor_int_exponent": Edge((a(-2, 3, dtype=np.int64),), lambda x: x**3, lambda x: x**3),
    "pow/int_tensor_float_exponent": Edge((a(1, 4, dtype=np.int64),), lambda x: x**0.5, lambda x: x**0.5),
    # dtype promotion (PyTorch's rule)
    "dtype/int_times_float_scalar": Edge((np.arange(4),), lambda x: x * 0.5, lambda x: x * 0.5),
    "dtype/int_plus_int_scalar": Edge((np.arange(4, dtype=np.int32),), lambda x: x + 2, lambda x: x + 2),
    "dtype/int_div_int": Edge((a(1, 2, 3, dtype=np.int64), a(2, 2, 2, dtype=np.int64)), lambda x, y: x / y, lambda x, y: x / y),
    "dtype/int_mean": Edge((a(1, 2, 4, dtype=np.int64),), lambda x: x.mean(), lambda x: x.float().mean()),
    "dtype/int32_plus_float32": Edge((a(1, 2, dtype=np.int32), a(0.5, 0.25, dtype=F32)), lambda x, y: x + y, lambda x, y: x + y),
    "dtype/float32_plus_float64": Edge((a(1, 2, dtype=F32), a(0.5, 0.25)), lambda x, y: x + y, lambda x, y: x + y),
    "dtype/float32_plus_0d_float64": Edge((a(1, 2, dtype=F32), np.array(0.5)), lambda x, y: x * y, lambda x, y: x * y),
    "dtype/int_plus_0d_float64": Edge((a(1, 2, dtype=np.int64), np.array(0.5)), lambda x, y: x + y, lambda x, y: x + y),
    "dtype/float16_times_float_scalar": Edge((a(1, 2, dtype=np.float16),), lambda x: x * 0.5, lambda x: x * 0.5),
    "dtype/int_sigmoid": Edge((a(-1, 0, 3, dtype=np.int64),), F.sigmoid, torch.sigmoid),
    "dtype/bool_plus_int_scalar": Edge((a(True, False, dtype=bool),), lambda x: x + 1, lambda x: x + 1),
    # comparisons: bool tensors without gradient
    "compare/eq": Edge((a(1.0, 2.0, NAN), a(1.0, 3.0, NAN)), lambda x, y: x == y, lambda x, y: x == y),
    "compare/ne_scalar": Edge((a(0.0, 2.0),), lambda x: x != 0, lambda x: x != 0),
    "compare/lt_le_gt_ge": Edge((a(1.0, 2.0, 3.0),), lambda x: mg.stack([x < 2, x <= 2, x > 2, x >= 2]),
                                lambda x: torch.stack([x < 2, x <= 2, x > 2, x >= 2])),
    "compare/mask_times": Edge((a(0.0, -1.0, 2.0),), lambda x: x * (x != 0), lambda x: x * (x != 0)),
    # where with scalar branches
    "where/int_scalars": Edge((a(True, False, dtype=bool),), lambda c: mg.where(c, 4, 2), lambda c: torch.where(c, 4, 2)),
    "where/float_scalar_branch": Edge((a(True, False, dtype=bool), a(1.0, 2.0)), lambda c, x: mg.where(c, x, 0.0),
                                      lambda c, x: torch.where(c, x, 0.0)),
    # 0-d tensors: axis 0 and -1 are the tensor itself
    "0d/sum_0": Edge((np.array(1.0),), lambda x: x.sum(0), lambda x: x.sum(0)),
    "0d/sum_-1": Edge((np.array(1.0),), lambda x: x.sum(-1), lambda x: x.sum(-1)),
    "0d/mean_0": Edge((np.array(3.0),), lambda x: x.mean(0), lambda x: x.mean(0)),
    "0d/max_-1": Edge((np.array(3.0),), lambda x: x.max(-1), lambda x: x.amax(-1)),
    "0d/softmax_0": Edge((np.array(3.0),), lambda x: F.softmax(x, axis=0), lambda x: TF.softmax(x, 0)),
    "0d/softmax_-1": Edge((np.array(3.0),), lambda x: F.softmax(x, axis=-1), lambda x: TF.softmax(x, -1)),
    "0d/log_softmax_-1": Edge((np.array(3.0),), lambda x: F.log_softmax(x, axis=-1), lambda x: TF.log_softmax(x, -1)),
    "0d/logsumexp_0": Edge((np.array(3.0),), lambda x: F.logsumexp(x, axis=0), lambda x: torch.logsumexp(x, 0)),
    "0d/gelu": Edge((np.array(1.5),), F.gelu, TF.gelu),
    "0d/sigmoid_logsigmoid_silu": Edge((np.array(-1.5),), lambda x: mg.stack([F.sigmoid(x), F.logsigmoid(x), F.silu(x)]),
                                       lambda x: torch.stack([torch.sigmoid(x), TF.logsigmoid(x), TF.silu(x)])),
    "empty/gelu": Edge((np.zeros((0, 2)),), F.gelu, TF.gelu),
    "0d/cumsum_0": Edge((np.array(3.0),), lambda x: x.cumsum(0), lambda x: x.cumsum(0)),
    "0d/sum_1_raises": Edge((np.array(1.0),), lambda x: x.sum(1), lambda x: x.sum(1), raises=True),
    # empty axes: NaN as NumPy and PyTorch
    "empty/mean_axis0": Edge((np.zeros((0, 3)),), lambda x: x.mean(axis=0), lambda x: x.mean(0)),
    "empty/mean_all": Edge((np.zeros((0,)),), lambda x: x.mean(), lambda x: x.mean()),
    "empty/var_axis0": Edge((np.zeros((0, 3)),), lambda x: x.var(axis=0), lambda x: x.var(0, correction=0)),
    "empty/sum_axis0": Edge((np.zeros((0, 3)),), lambda x: x.sum(axis=0), lambda x: x.sum(0)),
    "empty/logsumexp": Edge((np.zeros((2, 0)),), lambda x: F.logsumexp(x, axis=1), lambda x: torch.logsumexp(x, 1)),
    "empty/softmax_over_empty_axis": Edge((np.zeros((2, 0)),), lambda x: F.softmax(x, axis=1), lambda x: TF.softmax(x, 1)),
    "empty/log_softmax_batch": Edge((np.zeros((0, 3)),), lambda x: F.log_softmax(x, axis=1), lambda x: TF.log_softmax(x, 1)),
    "empty/mse_loss": Edge((np.zeros(0), np.zeros(0)), F.mse_loss, TF.mse_loss),
    "ddof/var_single_element": Edge((a(2.0),), lambda x: x.var(ddof=1), lambda x: x.var()),
    "ddof/std_correction": Edge((a(1.0, 2.0, 4.0),), lambda x: x.std(correction=1), lambda x: x.std()),
    # out-of-range axes raise
    "axis/stack_77": Edge((np.ones((2, 2, 2)),), lambda x: mg.stack([x, x], axis=77), lambda x: torch.stack([x, x], 77), raises=True),
    "axis/cat_5": Edge((np.ones(2),), lambda x: mg.cat([x, x], axis=5), lambda x: torch.cat([x, x], 5), raises=True),
    "axis/sum_2_of_2d": Edge((np.ones((2, 2)),), lambda x: x.sum(2), lambda x: x.sum(2), raises=True),
    "axis/softmax_2_of_2d": Edge((np.ones((2, 2)),), lambda x: F.softmax(x, axis=2), lambda x: TF.softmax(x, 2), raises=True),
    "axis/swapaxes_3": Edge((np.ones((2, 2)),), lambda x: x.swapaxes(0, 3), lambda x: x.transpose(0, 3), raises=True),
    "axis/permute_repeat": Edge((np.ones((2, 2)),), lambda x: x.permute(0, 0), lambda x: x.permute(0, 0), raises=True),
    "axis/unsqueeze_4_of_2d": Edge((np.ones((2, 2)),), lambda x: x.unsqueeze(4), lambda x: x.unsqueeze(4), raises=True),
    "axis/unsqueeze_-3_of_2d": Edge((np.ones((2, 2)),), lambda x: x.unsqueeze(-3), lambda x: x.unsqueeze(-3)),
    "clip/none_none_raises": Edge((a(1.0),), lambda x: x.clip(None, None), lambda x: x.clamp(None, None), raises=True),
    # infinities and NaN
    "inf/exp_log": Edge((a(-INF, 0.0, INF),), lambda x: mg.stack([x.exp(), (x.exp()).log()]),
                        lambda x: torch.stack([x.exp(), x.exp().log()])),
    "inf/sigmoid_tanh_relu": Edge((a(-INF, INF, NAN),), lambda x: mg.stack([x.sigmoid(), x.tanh(), x.relu()]),
                                  lambda x: torch.stack([x.sigmoid(), x.tanh(), x.relu()])),
    "inf/softplus": Edge((a(-INF, -800.0, 800.0),), F.softplus, TF.softplus),
    "inf/softmax_masked": Edge((a(1.0, -INF, 2.0),), lambda x: F.softmax(x), lambda x: TF.softmax(x, -1)),
    "inf/logsumexp_all_minus_inf": Edge((a(-INF, -INF),), lambda x: F.logsumexp(x, axis=0), lambda x: torch.logsumexp(x, 0)),
    "inf/logsumexp_plus_inf": Edge((a(INF, 1.0),), lambda x: F.logsumexp(x, axis=0), lambda x: torch.logsumexp(x, 0)),
    "inf/max_min": Edge((a(-INF, 1.0, INF),), lambda x: mg.stack([x.max(), x.min()]), lambda x: torch.stack([x.max(), x.min()])),
    "nan/max": Edge((a(NAN, 1.0),), lambda x: x.max(), lambda x: x.max()),
    "nan/maximum": Edge((a(NAN, 1.0), a(0.0, NAN)), F.maximum, torch.maximum),
    "nan/clip": Edge((a(NAN, 3.0),), lambda x: x.clip(-1.0, 1.0), lambda x: x.clamp(-1.0, 1.0)),
    "zero/sqrt_grad": Edge((a(0.0, 4.0),), lambda x: x.sqrt(), lambda x: x.sqrt()),
    "zero/abs_grad": Edge((a(0.0, -2.0),), lambda x: x.abs(), lambda x: x.abs()),
    "zero/prod_one_zero": Edge((a(2.0, 0.0, 3.0),), lambda x: x.prod(), lambda x: x.prod()),
    "zero/prod_two_zeros": Edge((a(0.0, 0.0, 3.0),), lambda x: x.prod(), lambda x: x.prod()),
    "ties/maximum_half_gradient": Edge((a(1.0, 2.0), a(1.0, 0.0)), F.maximum, torch.maximum),
    # sigmoid and logsigmoid tails, float32 and float64
    "tails/sigmoid_f64": Edge((np.array(TAILS),), F.sigmoid, torch.sigmoid),
    "tails/sigmoid_f32": Edge((np.array(TAILS, F32),), F.sigmoid, torch.sigmoid),
    "tails/logsigmoid_f64": Edge((np.array(TAILS),), F.logsigmoid, TF.logsigmoid),
    "tails/logsigmoid_f32": Edge((np.array(TAILS, F32),), F.logsigmoid, TF.logsigmoid),
    "tails/silu_f32": Edge((np.array(TAILS, F32),), F.silu, TF.silu),
    # matmul-like ops refuse mixed float dtypes
    "dtype/matmul_f32_f64": Edge((np.ones((2, 2), F32), np.ones((2, 2))), lambda x, y: x @ y, lambda x, y: x @ y, raises=True),
    "dtype/linear_f32_f64": Edge((np.ones((2, 2)), np.ones((3, 2), F32)), F.linear, TF.linear, raises=True),
    "dtype/conv_f32_f64": Edge((np.ones((1, 1, 3, 3), F32), np.ones((1, 1, 2, 2))), F.conv2d, TF.conv2d, raises=True),
}

# Borrowed names: each F.* op against PyTorch's own function (its documented formula).
X = np.linspace(-4, 4, 17)
BORROWED = {
    "F.gelu": Edge((X,), F.gelu, TF.gelu),
    "F.gelu_tanh": Edge((X,), lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh")),
    "F.silu": Edge((X,), F.silu, TF.silu),
    "F.softplus": Edge((X * 10,), F.softplus, TF.softplus),
    "F.softplus_beta": Edge((X * 10,), lambda x: F.softplus(x, beta=0.5, threshold=15.0),
                            lambda x: TF.softplus(x, beta=0.5, threshold=15.0)),
    "F.relu": Edge((X,), F.relu, TF.relu),
    "F.leaky_relu": Edge((X,), lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    "F.elu": Edge((X,), lambda x: F.elu(x, 0.7), lambda x: TF.elu(x, 0.7)),
    "F.hardtanh": Edge((X,), lambda x: F.hardtanh(x, -2.0, 1.0), lambda x: TF.hardtanh(x, -2.0, 1.0)),
    "F.logsigmoid": Edge((X,), F.logsigmoid, TF.logsigmoid),
    "F.sigmoid": Edge((X,), F.sigmoid, torch.sigmoid),
    "F.tanh": Edge((X,), F.tanh, torch.tanh),
    "F.softmax": Edge((LOGITS,), lambda x: F.softmax(x, axis=1), lambda x: TF.softmax(x, 1)),
    "F.log_softmax": Edge((LOGITS,), lambda x: F.log_softmax(x, axis=0), lambda x: TF.log_softmax(x, 0)),
    "F.logsumexp": Edge((LOGITS,), lambda x: F.logsumexp(x, axis=1), lambda x: torch.logsumexp(x, 1)),
    "F.cross_entropy": Edge((LOGITS, a(0, 2, 1, dtype=np.int64)), F.cross_entropy, TF.cross_entropy),
    "F.cross_entropy_sum": Edge((LOGITS, a(2, 0, 0, dtype=np.int64)), lambda x, t: F.cross_entropy(x, t, reduction="sum"),
                                lambda x, t: TF.cross_entropy(x, t, reduction="sum")),
    "F.cross_entropy_4d_none": Edge((IMAGE[:, :3, :2, :2], (np.arange(16).reshape(2, 2, 2, 2)[:, 0] % 3)),
                                    lambda x, t: F.cross_entropy(x, t, reduction="none"),
                                    lambda x, t: TF.cross_entropy(x, t, reduction="none")),
    "F.cross_entropy_probs": Edge((LOGITS, np.full((3, 3), 1 / 3)), F.cross_entropy, TF.cross_entropy),
    "F.cross_entropy_1d": Edge((LOGITS[0], np.array(2)), F.cross_entropy, TF.cross_entropy),
    "F.cross_entropy_weight_ignore": Edge((LOGITS, a(0, 2, -100, dtype=np.int64), a(0.5, 2.0, 1.0)),
                                          lambda x, t, w: F.cross_entropy(x, t, w, ignore_index=-100),
                                          lambda x, t, w: TF.cross_entropy(x, t, w.detach(), ignore_index=-100)),
    "F.cross_entropy_weight_none_4d": Edge((IMAGE[:, :3, :2, :2], (np.arange(16).reshape(2, 2, 2, 2)[:, 0] % 3), a(0.5, 2.0, 1.0)),
                                           lambda x, t, w: F.cross_entropy(x, t, w, ignore_index=1, reduction="none"),
                                           lambda x, t, w: TF.cross_entropy(x, t, w.detach(), ignore_index=1, reduction="none")),
    "F.cross_entropy_probs_weight": Edge((LOGITS, np.full((3, 3), 1 / 3), a(0.5, 2.0, 1.0)),
                                         lambda x, p, w: F.cross_entropy(x, p, w),
                                         lambda x, p, w: TF.cross_entropy(x, p, w.detach())),
    "F.nll_loss_all_ignored": Edge((LOGITS, a(5, 5, 5, dtype=np.int64)), lambda x, t: F.nll_loss(x, t, ignore_index=5),
                                   lambda x, t: TF.nll_loss(x, t, ignore_index=5)),
    "F.nll_loss": Edge((LOGITS, a(1, 1, 0, dtype=np.int64)), F.nll_loss, TF.nll_loss),
    "F.mse_loss_sum": Edge((X, X[::-1].copy()), lambda x, y: F.mse_loss(x, y, reduction="sum"),
                           lambda x, y: TF.mse_loss(x, y, reduction="sum")),
    "F.binary_cross_entropy_with_logits": Edge((X * 5, (X > 0).astype(np.float64)), F.binary_cross_entropy_with_logits,
                                               TF.binary_cross_entropy_with_logits),
    "F.pad": Edge((IMAGE[:1, :1],), lambda x: F.pad(x, (1, 2, 0, 3), value=-1.0), lambda x: TF.pad(x, (1, 2, 0, 3), value=-1.0)),
    "F.one_hot": Edge((a(0, 2, 1, dtype=np.int64),), lambda t: F.one_hot(t, 4), lambda t: TF.one_hot(t, 4)),
    "F.gather": Edge((LOGITS, a([2, 0], [1, 1], [0, 2], dtype=np.int64)), lambda x, i: F.gather(x, 1, i),
                     lambda x, i: torch.gather(x, 1, i)),
    "F.conv2d_groups_dilation": Edge((IMAGE, KERNEL, BIAS), lambda x, w, b: F.conv2d(x, w, b, 1, 2, 2, 2),
                                     lambda x, w, b: TF.conv2d(x, w, b, 1, 2, 2, 2)),
    "F.conv2d_depthwise_strided": Edge((IMAGE, KERNEL[:4, :1]), lambda x, w: F.conv2d(x, w, stride=2, padding=1, groups=4),
                                       lambda x, w: TF.conv2d(x, w, stride=2, padding=1, groups=4)),
    "F.linear": Edge((LOGITS, KERNEL[:4, 0, 0], BIAS[:4]), F.linear, TF.linear),
    "F.conv_transpose2d": Edge((IMAGE[:, :2], KERNEL[:2], BIAS[:2]),
                               lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
                               lambda x, w, b: TF.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)),
    "F.upsample_nearest2d": Edge((IMAGE,), lambda x: F.upsample_nearest2d(x, 2),
                                 lambda x: TF.interpolate(x, scale_factor=2, mode="nearest")),
    "F.mse_loss": Edge((X, np.cos(X)), F.mse_loss, TF.mse_loss),
    "F.avg_pool2d": Edge((IMAGE,), lambda x: F.avg_pool2d(x, 3, 2, 1), lambda x: TF.avg_pool2d(x, 3, 2, 1)),
    "F.max_pool2d": Edge((IMAGE,), lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1)),
    "F.max_pool2d_floor": Edge((IMAGE,), lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2)),
    "F.layer_norm": Edge((LOGITS, a(1.0, 2.0, 0.5), a(0.0, 0.1, -0.1)), lambda x, w, b: F.layer_norm(x, 3, w, b),
                         lambda x, w, b: TF.layer_norm(x, (3,), w, b)),
    "F.group_norm": Edge((IMAGE, a(1.0, 2.0, 0.5, 1.0), a(0.0, 0.1, -0.1, 0.2)), lambda x, w, b: F.group_norm(x, 2, w, b),
                         lambda x, w, b: TF.group_norm(x, 2, w, b)),
    "F.scaled_dot_product_attention": Edge((IMAGE[0, :2], IMAGE[1, :2], IMAGE[0, 2:]), F.scaled_dot_product_attention,
                                           TF.scaled_dot_product_attention),
    "Tensor.flatten": Edge((IMAGE,), lambda x: x.flatten(1, 2), lambda x: x.flatten(1, 2)),
    "Tensor.squeeze": Edge((IMAGE[:, :1],), lambda x: x.squeeze(1), lambda x: x.squeeze(1)),
    "Tensor.flip": Edge((LOGITS,), lambda x: x.flip((0, 1)), lambda x: x.flip((0, 1))),
    "Tensor.cumsum": Edge((LOGITS,), lambda x: x.cumsum(1), lambda x: x.cumsum(1)),
    "Tensor.prod": Edge((LOGITS[:1] / 100,), lambda x: x.prod(1), lambda x: x.prod(1)),
    "Tensor.argmax": Edge((LOGITS,), lambda x: x.argmax(1), lambda x: x.argmax(1)),
    "Tensor.argmin_flat": Edge((LOGITS,), lambda x: x.argmin(), lambda x: x.argmin()),
    "Tensor.min_max": Edge((LOGITS,), lambda x: x.min(0) + x.max(1), lambda x: x.amin(0) + x.amax(1)),
    "Tensor.sin_cos": Edge((X,), lambda x: x.sin() * x.cos(), lambda x: x.sin() * x.cos()),
}


def _inputs(arrays, make):
    return [make(v) if isinstance(v, np.ndarray) else v for v in arrays]


def _mg(v):
    return mg.tensor(v, requires_grad=v.dtype.kind == "f")


def _torch(v):
    return torch.tensor(v, requires_grad=v.dtype.kind == "f")


def _grads(inputs):
    return [t.grad for t in inputs if hasattr(t, "requires_grad") and t.requires_grad]


def _check(edge):
    mine, theirs = _inputs(edge.inputs, _mg), _inputs(edge.inputs, _torch)
    if edge.raises:
        with pytest.raises((ValueError, TypeError, IndexError)):
            edge.mg(*mine)
        with pytest.raises(Exception):
            edge.torch(*theirs)
        return
    out, ref = edge.mg(*mine), edge.torch(*theirs)
    assert out.shape == tuple(ref.shape)
    assert str(out.dtype) == str(ref.dtype).replace("torch.", "")
    kind = out.dtype if out.dtype.kind == "f" else np.dtype(np.float64)
    rtol = edge.rtol or (1e-7 if kind == np.float64 else 1e-6 if kind == np.float32 else 1e-3)
    atol = np.finfo(kind).tiny  # PyTorch flushes results below it to zero
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=rtol, atol=atol, equal_nan=True)
    if ref.requires_grad:
        out.sum().backward()
        ref.sum().backward()
        for t, g, r in zip([t for t in mine if getattr(t, "requires_grad", False)], _grads(mine), _grads(theirs)):
            g = np.zeros(t.shape) if g is None else g  # constants (a loss's class weights)
            r = np.zeros(t.shape) if r is None else r.numpy()
            np.testing.assert_allclose(g, r, rtol=rtol, atol=atol, equal_nan=True)
    else:
        assert not out.requires_grad


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")
@pytest.mark.parametrize("name", sorted(EDGES))
def test_edge(name):
    _check(EDGES[name])


@pytest.mark.parametrize("name", sorted(BORROWED))
def test_borrowed_name_matches_pytorch(name):
    _check(BORROWED[name])
