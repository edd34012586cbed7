"""The ops PyTorch users expect beyond the core set (rounding, trig, sorting, shaping,
indexing, einsum, padding modes, interpolation, activations, convolution and pooling
options): each matches PyTorch on random input (when torch is installed) and, where it is
differentiable, passes gradcheck and gradgradcheck in float64."""
import pathlib
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import minigen as mg
import minigen.functional as F
from minigen.testing import gradcheck, gradgradcheck

rng = np.random.default_rng(0)


def normal(*shape, lo=None, hi=None):
    """Random float64 inputs: standard normal, or uniform on [lo, hi]."""
    if lo is None:
        return rng.standard_normal(shape)
    return rng.uniform(lo, hi, shape)


def distinct(*shape):
    """A permutation of evenly spaced values (no ties: sort and max pooling are smooth)."""
    return rng.permutation(np.linspace(-2, 2, int(np.prod(shape)))).reshape(shape)


@dataclass
class Case:
    inputs: Callable  # () -> list of float64 arrays (the differentiable operands)
    fn: Callable  # (module, *tensors) -> tensor or tuple: the same call for minigen and torch
    grad: bool = True  # run gradcheck and gradgradcheck
    torch_fn: Callable = None  # when torch spells the call differently


def _m(name):
    return lambda lib, *a, **kw: getattr(lib, name)(*a, **kw)


def method(name, *args, **kw):
    return lambda lib, x: getattr(x, name)(*args, **kw)


def functional(name, *args, **kw):
    return lambda lib, *xs: getattr(_functional(lib), name)(*xs, *args, **kw)


def _functional(lib):
    return F if lib is mg else lib.nn.functional


def first(result):
    return result[0]


CASES = {
    # rounding (zero gradient) and integer division
    "floor": Case(lambda: [normal(3, 4) * 3], method("floor")),
    "ceil": Case(lambda: [normal(3, 4) * 3], method("ceil")),
    "round": Case(lambda: [normal(3, 4) * 3], method("round")),
    "round_decimals": Case(lambda: [normal(3, 4) * 3], method("round", decimals=2)),
    "trunc": Case(lambda: [normal(3, 4) * 3], method("trunc")),
    "sign": Case(lambda: [normal(3, 4)], method("sign")),
    "floordiv": Case(lambda: [normal(3, 4) * 3, normal(4, lo=0.5, hi=2) * np.array([1, -1, 1, -1])],
                     lambda lib, a, b: a // b),
    "rfloordiv": Case(lambda: [normal(3, 4, lo=0.5, hi=2)], lambda lib, a: 5.0 // a),
    "mod": Case(lambda: [normal(3, 4) * 3, normal(4, lo=0.5, hi=2) * np.array([1, -1, 1, -1])],
                lambda lib, a, b: a % b),
    "rmod": Case(lambda: [normal(3, 4, lo=0.5, hi=2)], lambda lib, a: 5.0 % a),
    "remainder": Case(lambda: [normal(3, 4) * 3], lambda lib, a: lib.remainder(a, 1.5) if lib is not mg
                      else F.remainder(a, 1.5)),
    # classification and truth (no gradient)
    "isnan": Case(lambda: [np.array([1.0, np.nan, np.inf, -np.inf])], method("isnan"), grad=False),
    "isinf": Case(lambda: [np.array([1.0, np.nan, np.inf, -np.inf])], method("isinf"), grad=False),
    "isfinite": Case(lambda: [np.array([1.0, np.nan, np.inf, -np.inf])], method("isfinite"), grad=False),
    "any": Case(lambda: [(normal(3, 4) > 1.0) * 1.0], method("any", dim=1), grad=False),
    "all": Case(lambda: [(normal(3, 4) > -1.0) * 1.0], method("all", dim=0, keepdim=True), grad=False),
    # trig, hyperbolic, exponentials
    "tan": Case(lambda: [normal(3, 4, lo=-1.2, hi=1.2)], method("tan")),
    "asin": Case(lambda: [normal(3, 4, lo=-0.9, hi=0.9)], method("asin")),
    "acos": Case(lambda: [normal(3, 4, lo=-0.9, hi=0.9)], method("acos")),
    "atan": Case(lambda: [normal(3, 4)], method("atan")),
    "atan2": Case(lambda: [normal(3, 4), normal(4)], lambda lib, y, x: y.atan2(x)),
    "sinh": Case(lambda: [normal(3, 4)], method("sinh")),
    "cosh": Case(lambda: [normal(3, 4)], method("cosh")),
    "asinh": Case(lambda: [normal(3, 4)], method("asinh")),
    "acosh": Case(lambda: [normal(3, 4, lo=1.2, hi=3)], method("acosh")),
    "atanh": Case(lambda: [normal(3, 4, lo=-0.9, hi=0.9)], method("atanh")),
    "exp2": Case(lambda: [normal(3, 4)], method("exp2")),
    "log2": Case(lambda: [normal(3, 4, lo=0.2, hi=3)], method("log2")),
    "rsqrt": Case(lambda: [normal(3, 4, lo=0.2, hi=3)], method("rsqrt")),
    "logaddexp": Case(lambda: [normal(3, 4) * 5, normal(1, 4) * 5], lambda lib, a, b: a.logaddexp(b)),
    "lerp_scalar": Case(lambda: [normal(3, 4), normal(3, 4)], lambda lib, a, b: a.lerp(b, 0.3)),
    "lerp_tensor": Case(lambda: [normal(3, 4), normal(3, 4), normal(3, 4, lo=0, hi=1)],
                        lambda lib, a, b, w: a.lerp(b, w)),
    # reductions and sorting
    "cumprod": Case(lambda: [normal(3, 4)], method("cumprod", 1)),
    "cumprod_zero": Case(lambda: [normal(2, 5) * np.array([1, 1, 0, 1, 1])], method("cumprod", 1)),
    "sort": Case(lambda: [distinct(3, 5)], lambda lib, x: tuple(x.sort(dim=1))),
    "sort_descending": Case(lambda: [distinct(4, 3)], lambda lib, x: tuple(x.sort(0, descending=True))),
    "argsort": Case(lambda: [distinct(3, 5)], method("argsort", dim=-1), grad=False),
    "topk": Case(lambda: [distinct(3, 6)], lambda lib, x: tuple(x.topk(3))),
    "topk_smallest": Case(lambda: [distinct(5, 3)], lambda lib, x: tuple(x.topk(2, dim=0, largest=False))),
    # shape ops
    "repeat": Case(lambda: [normal(2, 3)], method("repeat", 2, 1, 3)),
    "repeat_interleave": Case(lambda: [normal(2, 3)], method("repeat_interleave", 2, dim=1)),
    "repeat_interleave_counts": Case(lambda: [normal(3, 2)],
                                     lambda lib, x: x.repeat_interleave(lib.tensor([1, 0, 3]), dim=0)),
    "repeat_interleave_flat": Case(lambda: [normal(2, 3)], method("repeat_interleave", 2)),
    "split": Case(lambda: [normal(5, 3)], lambda lib, x: tuple(x.split(2))),
    "split_sections": Case(lambda: [normal(3, 6)], lambda lib, x: tuple(x.split([1, 3, 2], dim=1))),
    "chunk": Case(lambda: [normal(3, 7)], lambda lib, x: tuple(x.chunk(3, dim=1))),
    "roll": Case(lambda: [normal(3, 4)], method("roll", 1, 1)),
    "roll_dims": Case(lambda: [normal(3, 4)], method("roll", (-1, 6), (0, 1))),
    "roll_flat": Case(lambda: [normal(3, 4)], method("roll", 5)),
    "unflatten": Case(lambda: [normal(2, 12)], method("unflatten", 1, (3, -1))),
    "meshgrid": Case(lambda: [normal(3), normal(4)], lambda lib, a, b: lib.meshgrid(a, b, indexing="ij")
                     if lib is not mg else F.meshgrid(a, b)),
    "meshgrid_xy": Case(lambda: [normal(3), normal(4), normal(2)],
                        lambda lib, a, b, c: (lib if lib is not mg else F).meshgrid(a, b, c, indexing="xy")),
    # indexing
    "tril": Case(lambda: [normal(2, 3, 4)], method("tril")),
    "triu": Case(lambda: [normal(4, 3)], method("triu", -1)),
    "diag_vector": Case(lambda: [normal(3)], method("diag", 1)),
    "diag_matrix": Case(lambda: [normal(3, 4)], method("diag", -1)),
    "masked_fill": Case(lambda: [normal(3, 4)],
                        lambda lib, x: x.masked_fill(lib.tensor(np.array([True, False, True, False])), -2.5)),
    "masked_fill_tensor": Case(lambda: [normal(3, 4), normal()],
                               lambda lib, x, v: x.masked_fill(lib.tensor(np.eye(3, 4) > 0), v)),
    "scatter": Case(lambda: [normal(3, 5), normal(2, 5)],
                    lambda lib, x, s: x.scatter(0, lib.tensor(np.array([[0, 1, 2, 0, 1], [2, 0, 1, 1, 0]])), s)),
    "scatter_value": Case(lambda: [normal(3, 5)],
                          lambda lib, x: x.scatter(1, lib.tensor(np.array([[4], [0], [2]])), value=7.0)
                          if lib is not mg else x.scatter(1, np.array([[4], [0], [2]]), value=7.0)),
    "scatter_add": Case(lambda: [normal(3, 4), normal(3, 4)],
                        lambda lib, x, s: x.scatter_add(1, lib.tensor(np.array([[0, 0, 3, 1]] * 3)), s)),
    # einsum
    "einsum_matmul": Case(lambda: [normal(3, 4), normal(4, 2)], lambda lib, a, b: _einsum(lib)("ij,jk->ik", a, b)),
    "einsum_batch": Case(lambda: [normal(2, 3, 4), normal(2, 4, 5)], lambda lib, a, b: _einsum(lib)("bij,bjk->bik", a, b)),
    "einsum_trace": Case(lambda: [normal(4, 4)], lambda lib, a: _einsum(lib)("ii", a)),
    "einsum_diag": Case(lambda: [normal(3, 3)], lambda lib, a: _einsum(lib)("ii->i", a)),
    "einsum_outer_sum": Case(lambda: [normal(3, 2), normal(4)], lambda lib, a, b: _einsum(lib)("ij,k->ik", a, b)),
    "einsum_ellipsis": Case(lambda: [normal(2, 3, 4), normal(4)], lambda lib, a, b: _einsum(lib)("...j,j->...", a, b)),
    "einsum_implicit": Case(lambda: [normal(3, 4), normal(4, 5), normal(5)],
                            lambda lib, a, b, c: _einsum(lib)("ij,jk,k", a, b, c)),
    "einsum_transpose": Case(lambda: [normal(2, 3, 4)], lambda lib, a: _einsum(lib)("abc->cab", a)),
    # creation (no gradient)
    "eye": Case(lambda: [], lambda lib: lib.eye(3, 4, dtype=lib.float64), grad=False),
    "full_like": Case(lambda: [normal(2, 3)], lambda lib, x: lib.full_like(x, 2.5), grad=False),
    "empty_like_shape": Case(lambda: [normal(2, 3)], lambda lib, x: lib.zeros_like(x) * 0 + lib.empty_like(x).shape[1],
                             grad=False),
    # activations
    **{name: Case(lambda: [normal(3, 4) * 4], functional(name))
       for name in ("relu6", "selu", "softsign", "hardsigmoid", "hardswish", "mish")},
    "celu": Case(lambda: [normal(3, 4) * 4], functional("celu", alpha=0.7)),
    # padding modes
    **{f"pad_{mode}": Case(lambda: [normal(2, 3, 4, 5)], functional("pad", (1, 2, 2, 0), mode=mode))
       for mode in ("reflect", "replicate", "circular")},
    "pad_reflect_1d": Case(lambda: [normal(2, 3, 4)], functional("pad", (3, 1), mode="reflect")),
    "pad_constant_value": Case(lambda: [normal(2, 3)], functional("pad", (1, 1), value=0.5)),
    # interpolation
    "interpolate_nearest_scale": Case(lambda: [normal(1, 2, 3, 4)], functional("interpolate", scale_factor=1.7)),
    "interpolate_nearest_size": Case(lambda: [normal(1, 2, 5, 4)], functional("interpolate", size=(3, 7))),
    "interpolate_bilinear": Case(lambda: [normal(2, 2, 3, 4)],
                                 functional("interpolate", scale_factor=2, mode="bilinear")),
    "interpolate_bilinear_scale": Case(lambda: [normal(1, 2, 4, 5)],
                                       functional("interpolate", scale_factor=(1.5, 0.6), mode="bilinear")),
    "interpolate_bilinear_aligned": Case(lambda: [normal(1, 2, 3, 4)],
                                         functional("interpolate", size=(5, 7), mode="bilinear", align_corners=True)),
    "interpolate_bilinear_size": Case(lambda: [normal(1, 1, 4, 4)],
                                      functional("interpolate", size=(3, 6), mode="bilinear", align_corners=False)),
    "interpolate_linear": Case(lambda: [normal(2, 2, 5)], functional("interpolate", scale_factor=1.4, mode="linear")),
    # convolution geometries
    "conv2d_stride_pair": Case(lambda: [normal(2, 2, 7, 8), normal(3, 2, 3, 2), normal(3)],
                               functional("conv2d", stride=(2, 3), padding=(1, 0))),
    "conv2d_padding_pair": Case(lambda: [normal(1, 2, 5, 6), normal(2, 2, 3, 3)],
                                functional("conv2d", padding=(0, 2), dilation=(2, 1))),
    "conv2d_same": Case(lambda: [normal(1, 2, 5, 6), normal(2, 2, 4, 3), normal(2)],
                        functional("conv2d", padding="same")),
    "conv2d_groups_stride_pair": Case(lambda: [normal(1, 4, 6, 6), normal(4, 2, 3, 3)],
                                      functional("conv2d", stride=(1, 2), groups=2)),
    "conv1d": Case(lambda: [normal(2, 3, 9), normal(4, 3, 3), normal(4)],
                   functional("conv1d", stride=2, padding=1)),
    "conv1d_dilation_groups": Case(lambda: [normal(1, 4, 9), normal(2, 2, 2)],
                                   functional("conv1d", dilation=3, groups=2, padding="same")),
    "conv_transpose2d_groups": Case(lambda: [normal(2, 4, 3, 3), normal(4, 3, 2, 3), normal(6)],
                                    functional("conv_transpose2d", stride=2, groups=2)),
    "conv_transpose2d_dilation": Case(lambda: [normal(1, 2, 3, 4), normal(2, 3, 3, 2)],
                                      functional("conv_transpose2d", stride=2, padding=1, dilation=2,
                                                 output_padding=1)),
    "conv_transpose2d_pairs": Case(lambda: [normal(1, 2, 3, 4), normal(2, 3, 3, 2), normal(3)],
                                   functional("conv_transpose2d", stride=(3, 2), padding=(1, 0),
                                              output_padding=(2, 1))),
    "conv_transpose2d_padding_pair": Case(lambda: [normal(1, 2, 3, 3), normal(2, 2, 3, 3)],
                                          functional("conv_transpose2d", stride=2, padding=(0, 1))),
    "conv_transpose2d_output_padding_dilation": Case(
        lambda: [normal(1, 2, 3, 4), normal(2, 2, 2, 3)],
        functional("conv_transpose2d", stride=1, dilation=2, output_padding=1)),
    # pooling options
    "max_pool2d_ceil": Case(lambda: [distinct(1, 2, 5, 6)], functional("max_pool2d", 2, ceil_mode=True)),
    "max_pool2d_dilation": Case(lambda: [distinct(1, 2, 7, 6)],
                                functional("max_pool2d", 2, stride=1, padding=1, dilation=2)),
    "max_pool2d_ceil_stride": Case(lambda: [distinct(2, 1, 6, 7)],
                                   functional("max_pool2d", 3, stride=2, padding=1, ceil_mode=True)),
    "avg_pool2d_exclude_pad": Case(lambda: [normal(1, 2, 5, 5)],
                                   functional("avg_pool2d", 3, stride=2, padding=1, count_include_pad=False)),
    "avg_pool2d_ceil": Case(lambda: [normal(1, 2, 5, 6)], functional("avg_pool2d", 2, ceil_mode=True)),
    "avg_pool2d_ceil_pad": Case(lambda: [normal(1, 1, 6, 7)],
                                functional("avg_pool2d", 3, stride=2, padding=1, ceil_mode=True)),
    "avg_pool2d_ceil_exclude": Case(lambda: [normal(1, 1, 6, 7)],
                                    functional("avg_pool2d", 3, stride=2, padding=1, ceil_mode=True,
                                               count_include_pad=False)),
    "avg_pool2d_divisor": Case(lambda: [normal(1, 2, 4, 4)], functional("avg_pool2d", 2, divisor_override=3)),
}


def _einsum(lib):
    return F.einsum if lib is mg else lib.einsum


def _to_numpy(out):
    if isinstance(out, (tuple, list)):
        return [_to_numpy(o) for o in out]
    return out.numpy() if hasattr(out, "numpy") else np.asarray(out)


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch notes its own padded copy
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    case = CASES[name]
    arrays = case.inputs()
    ours = case.fn(mg, *[mg.tensor(a) for a in arrays])
    theirs = (case.torch_fn or case.fn)(torch, *[torch.tensor(a) for a in arrays])
    for o, t in _pairs(_to_numpy(ours), _to_numpy(theirs)):
        assert o.shape == t.shape, name
        assert o.dtype == t.dtype or (o.dtype.kind == t.dtype.kind == "f"), (name, o.dtype, t.dtype)
        np.testing.assert_allclose(o, t, rtol=1e-10, atol=1e-12, err_msg=name)


def _pairs(ours, theirs):
    if isinstance(ours, list):
        assert isinstance(theirs, list) and len(ours) == len(theirs)
        return [p for o, t in zip(ours, theirs) for p in _pairs(o, t)]
    return [(np.asarray(ours), np.asarray(theirs))]


def _differentiable(fn):
    """``fn`` with its float outputs only (gradcheck takes tensors of one kind)."""
    def run(*ts):
        out = fn(mg, *ts)
        outs = out if isinstance(out, tuple) else (out,)
        kept = tuple(o for o in outs if o.dtype.kind == "f")
        return kept if len(kept) > 1 else kept[0]
    return run


GRAD_CASES = sorted(n for n, c in CASES.items() if c.grad)


@pytest.mark.parametrize("name", GRAD_CASES)
def test_gradcheck(name):
    case = CASES[name]
    gradcheck(_differentiable(case.fn), [mg.tensor(a) for a in case.inputs()])


@pytest.mark.parametrize("name", GRAD_CASES)
def test_gradgradcheck(name):
    case = CASES[name]
    gradgradcheck(_differentiable(case.fn), [mg.tensor(a) for a in case.inputs()], directions=2)


MODULES = {
    "Conv2d_reflect": (lambda nn: nn.Conv2d(2, 3, 3, stride=(1, 2), padding=(1, 2), padding_mode="reflect"), (2, 2, 5, 6)),
    "Conv2d_circular": (lambda nn: nn.Conv2d(2, 3, (2, 3), padding=1, padding_mode="circular"), (1, 2, 4, 5)),
    "Conv2d_replicate": (lambda nn: nn.Conv2d(2, 2, 3, padding=2, dilation=2, padding_mode="replicate"), (1, 2, 4, 4)),
    "Conv1d": (lambda nn: nn.Conv1d(3, 4, 3, stride=2, padding=1), (2, 3, 8)),
    "Conv1d_groups_reflect": (lambda nn: nn.Conv1d(4, 2, 3, padding=1, groups=2, padding_mode="reflect"), (2, 4, 6)),
    "ConvTranspose2d_groups": (lambda nn: nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2, dilation=2), (1, 4, 3, 3)),
    "Upsample_bilinear": (lambda nn: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), (1, 2, 3, 3)),
    "Upsample_nearest": (lambda nn: nn.Upsample(size=(5, 2)), (1, 2, 3, 3)),
    **{name: ((lambda nn, name=name: getattr(nn, name)()), (3, 5))
       for name in ("ReLU6", "SELU", "CELU", "Softsign", "Hardsigmoid", "Hardswish", "Mish")},
}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_match_pytorch(name):
    """The layer, given PyTorch's weights, computes PyTorch's output."""
    torch = pytest.importorskip("torch")
    make, shape = MODULES[name]
    theirs = make(torch.nn).double()
    ours = make(mg.nn).to(mg.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = normal(*shape) * 3
    np.testing.assert_allclose(ours(mg.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.pad(mg.zeros(1, 2, 3), (3, 0), mode="reflect"), ValueError, r"reflect padding needs widths < the size \(3\)"),
    (lambda: F.pad(mg.zeros(1, 2, 3), (4, 0), mode="circular"), ValueError, "circular padding needs widths <="),
    (lambda: F.pad(mg.zeros(2, 3), (1, 1), mode="reflect", value=1.0), ValueError, "only applies to mode='constant'"),
    (lambda: mg.zeros(2, 3).topk(4), ValueError, "topk: k=4 is out of range"),
    (lambda: mg.zeros(2, 6).split([2, 3], dim=1), ValueError, "do not add up to the dim's length 6"),
    (lambda: mg.zeros(2, 6).unflatten(1, (4, -1)), ValueError, "unflatten: sizes"),
    (lambda: mg.zeros(2, 3).repeat(2), ValueError, "repeat: needs at least 2"),
    (lambda: mg.zeros(4).repeat_interleave(np.array([1.5])), ValueError, "non-negative integers"),
    (lambda: mg.zeros(3).tril(), ValueError, "tril: expects a tensor with at least 2 dims"),
    (lambda: mg.zeros(2, 2, 2).diag(), ValueError, "diag: expects a 1-D or 2-D"),
    (lambda: mg.zeros(2, 3).masked_fill(np.ones(2, dtype=bool), 1.0), ValueError, "does not broadcast"),
    (lambda: mg.zeros(2, 3).scatter(0, np.array([[2, 0, 0]]), mg.ones(1, 3)), IndexError, "scatter: index values"),
    (lambda: mg.zeros(2, 3).scatter(1, np.array([[0, 1]]), mg.ones(1, 1)), ValueError, "smaller than index"),
    (lambda: mg.zeros(2, 3).scatter(1, np.array([[0, 1]])), TypeError, "exactly one of src and value"),
    (lambda: F.einsum("ij,jk->ik", mg.zeros(2, 3), mg.zeros(4, 2)), ValueError, "subscript 'j' has sizes"),
    (lambda: F.einsum("ij->i", mg.zeros(2, 3, 4)), ValueError, "do not match an operand of shape"),
    (lambda: F.einsum("ij->iz", mg.zeros(2, 3)), ValueError, "must be distinct input letters"),
    (lambda: F.interpolate(mg.zeros(1, 1, 4, 4), size=3, scale_factor=2), ValueError, "exactly one of"),
    (lambda: F.interpolate(mg.zeros(1, 1, 4), scale_factor=2, mode="bilinear"), ValueError, "does not take"),
    (lambda: F.interpolate(mg.zeros(1, 1, 4, 4), scale_factor=2, align_corners=True), ValueError, "linear modes"),
    (lambda: F.conv2d(mg.zeros(1, 1, 5, 5), mg.zeros(1, 1, 3, 3), stride=2, padding="same"), ValueError, "needs stride 1"),
    (lambda: F.conv2d(mg.zeros(1, 1, 5, 5), mg.zeros(1, 1, 3, 3), stride=(1, 0)), ValueError, "stride must be >= 1"),
    (lambda: F.conv1d(mg.zeros(1, 1, 5, 5), mg.zeros(1, 1, 3)), ValueError, "conv1d: expected 3-D input"),
    (lambda: F.conv_transpose2d(mg.zeros(1, 3, 4, 4), mg.zeros(3, 2, 3, 3), groups=2), ValueError, "groups=2 must divide"),
    (lambda: F.max_pool2d(mg.zeros(1, 1, 4, 4), 2, dilation=0), ValueError, "dilation >= 1"),
    (lambda: F.max_pool2d(mg.zeros(1, 1, 3, 3), 3, dilation=2), ValueError, "does not fit"),
    (lambda: mg.zeros(2, 3).any(dim=0, axis=1), ValueError, "dim=0 and axis=1 disagree"),
    (lambda: F.celu(mg.zeros(2), alpha=0.0), ValueError, "celu: alpha"),
])
def test_bad_input_is_one_error_naming_the_problem(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_integer_tensors():
    """Rounding leaves integers alone, ``//`` and ``%`` stay integer, trig gives floats."""
    n = mg.tensor(np.array([-7, 5, 9]))
    assert n.floor() is n and n.round() is n
    assert (n // 2).dtype == np.int64 and (n // 2).tolist() == [-4, 2, 4]
    assert (n % 4).tolist() == [1, 1, 1] and (n % -4).tolist() == [-3, -3, -3]
    assert n.tan().dtype == np.float32 and n.sign().tolist() == [-1, 1, 1]
    assert mg.eye(2).dtype == np.float32 and mg.empty(2, 3).shape == (2, 3)
    assert mg.full_like(n, 3).dtype == np.int64


def test_sort_is_stable_and_topk_orders_its_values():
    x = mg.tensor([3.0, 1.0, 3.0, 2.0, 1.0])
    assert x.sort().indices.tolist() == [1, 4, 3, 0, 2]
    assert x.sort(descending=True).indices.tolist() == [0, 2, 3, 1, 4]
    values, indices = x.topk(2)
    assert values.tolist() == [3.0, 3.0] and indices.tolist() == [0, 2]


def test_sort_gradient_reaches_where_each_value_came_from():
    x = mg.tensor([0.3, -1.0, 2.0], dtype=np.float64, requires_grad=True)
    (x.sort(descending=True).values * mg.tensor([1.0, 10.0, 100.0], dtype=np.float64)).sum().backward()
    assert x.grad.tolist() == [10.0, 100.0, 1.0]


NAMES = {
    F: "floor ceil round trunc sign floor_divide remainder isnan isinf isfinite any all tan asin "
       "acos atan atan2 sinh cosh asinh acosh atanh exp2 log2 rsqrt logaddexp lerp cumprod sort "
       "argsort topk repeat repeat_interleave split chunk roll unflatten meshgrid tril triu diag "
       "masked_fill scatter scatter_add einsum relu6 selu celu softsign hardsigmoid hardswish mish "
       "pad interpolate conv1d",
    mg: "floor ceil round trunc sign floor_divide remainder isnan isinf isfinite any all tan asin "
        "acos atan atan2 sinh cosh asinh acosh atanh exp2 log2 rsqrt logaddexp lerp cumprod sort "
        "argsort topk repeat_interleave split chunk roll unflatten meshgrid tril triu diag "
        "masked_fill scatter scatter_add einsum eye full_like empty empty_like",
    mg.Tensor: "floor ceil round trunc sign floor_divide remainder isnan isinf isfinite any all tan "
               "asin acos atan atan2 sinh cosh asinh acosh atanh exp2 log2 rsqrt logaddexp lerp "
               "cumprod sort argsort topk repeat repeat_interleave split chunk roll unflatten tril "
               "triu diag masked_fill scatter scatter_add __floordiv__ __rfloordiv__ __mod__ __rmod__",
    mg.nn: "ReLU6 SELU CELU Softsign Hardsigmoid Hardswish Mish Conv1d Upsample",
}


@pytest.mark.parametrize("where", list(NAMES), ids=["F", "mg", "Tensor", "nn"])
def test_every_added_name_exists_and_is_documented(where):
    doc = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "ops.md").read_text()
    for name in NAMES[where].split():
        assert callable(getattr(where, name)), name
        assert name.startswith("__") or re.search(rf"[`.]{name}\b", doc), f"{name} is not in docs/ops.md"
