"""Per-op harness (after Chainer's gradient_check and tinygrad's test_ops): every
differentiable op gets a forward test against an independent NumPy formula (float64 and
float32), a gradient check against central differences and a double-backward check, all
driven by hypothesis over shapes, broadcasting, non-contiguous views and values."""
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minigen as mg
import minigen.functional as F
from minigen.testing import gradcheck, gradgradcheck
from tests.references import conv2d_loop, conv_transpose2d_loop, pool2d_loop
from tests.strategies import arrays, away_from, broadcastable_pair, distinct_arrays, shapes


@dataclass
class Op:
    inputs: Callable  # -> strategy of (tuple of float64 arrays, kwargs)
    fn: Callable  # minigen: (*tensors, **kw) -> Tensor
    ref: Callable  # numpy: (*arrays, **kw) -> array
    ok: Callable = lambda *a, **kw: True  # assume() filter: away from kinks/ties
    double: bool = True  # run the double-backward check
    tol32: float = 1e-5
    extra: dict = field(default_factory=dict)


def unary(lo=-2.0, hi=2.0, **kw):
    return shapes(**kw).flatmap(lambda s: arrays(s, lo, hi)).map(lambda a: ((a,), {}))


def binary(lo=-2.0, hi=2.0):
    return broadcastable_pair().flatmap(
        lambda ss: st.tuples(arrays(ss[0], lo, hi), arrays(ss[1], lo, hi))
    ).map(lambda ab: (ab, {}))


def with_axis(strategy):
    """Add an ``axis`` kwarg (None, or a valid axis) to a unary input strategy."""
    return strategy.flatmap(
        lambda inp: st.one_of(st.none(), st.integers(-inp[0][0].ndim, inp[0][0].ndim - 1)).map(
            lambda ax: (inp[0], {"axis": ax})
        )
    )


def positive_binary():
    return broadcastable_pair().flatmap(
        lambda ss: st.tuples(arrays(ss[0]), arrays(ss[1], 0.5, 2.0))
    ).map(lambda ab: (ab, {}))


def matmul_inputs():
    dims = st.integers(1, 4)
    return st.tuples(dims, dims, dims, st.sampled_from([(), (2,), (3, 1)])).flatmap(
        lambda d: st.tuples(arrays(d[3] + (d[0], d[1])), arrays((d[1], d[2])))
    ).map(lambda ab: (ab, {}))


def linear_inputs():
    return st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)).flatmap(
        lambda d: st.tuples(arrays((d[0], d[1])), arrays((d[2], d[1])), arrays((d[2],)))
    ).map(lambda t: (t, {}))


def conv_inputs(transpose=False):
    @st.composite
    def draw(d):
        n, cin, cout = d(st.integers(1, 2)), d(st.integers(1, 3)), d(st.integers(1, 3))
        k = d(st.integers(1, 3))
        stride, padding = d(st.integers(1, 2)), d(st.integers(0, 1))
        h, w = d(st.integers(k, 5)), d(st.integers(k, 5))
        x = d(arrays((n, cin, h, w), noncontiguous=False))
        wshape = (cin, cout, k, k) if transpose else (cout, cin, k, k)
        kw = {"stride": stride, "padding": padding}
        if transpose:
            kw["output_padding"] = d(st.integers(0, stride - 1))
            out = [(s - 1) * stride - 2 * padding + k + kw["output_padding"] for s in (h, w)]
            assume(min(out) >= 1)
        return (x, d(arrays(wshape, noncontiguous=False)), d(arrays((cout,)))), kw

    return draw()


def grouped_conv_inputs():
    @st.composite
    def draw(d):
        groups, n = d(st.integers(1, 3)), d(st.integers(1, 2))
        cin, cout = groups * d(st.integers(1, 2)), groups * d(st.integers(1, 2))
        k, dilation = d(st.integers(1, 3)), d(st.integers(1, 3))
        stride, padding = d(st.integers(1, 2)), d(st.integers(0, 2))
        span = (k - 1) * dilation + 1
        h, w = (d(st.integers(max(1, span - 2 * padding), 7)) for _ in range(2))
        x = d(arrays((n, cin, h, w), noncontiguous=False))
        kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        return (x, d(arrays((cout, cin // groups, k, k), noncontiguous=False)), d(arrays((cout,)))), kw

    return draw()


def pool_inputs(make=lambda s: arrays(s, noncontiguous=False)):
    @st.composite
    def draw(d):
        k, stride = d(st.integers(1, 3)), d(st.integers(1, 3))
        padding = d(st.integers(0, k // 2))
        h, w = (d(st.integers(max(1, k - 2 * padding), 5)) for _ in range(2))
        x = d(make((d(st.integers(1, 2)), d(st.integers(1, 2)), h, w)))
        return (x,), {"k": k, "stride": stride, "padding": padding}

    return draw()


def images(max_side=4, even=False, make=lambda s: arrays(s, noncontiguous=False)):
    mult = 2 if even else 1
    return st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, max_side // mult),
                     st.integers(1, max_side // mult)).flatmap(
        lambda s: make((s[0], s[1], s[2] * mult, s[3] * mult))
    ).map(lambda a: ((a,), {}))


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_norm(x, axes, eps):
    mu = x.mean(axis=axes, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)


def group_norm_inputs():
    """Widths 2 and 8: channels of 2-6 positions (the reference formulas) and of 16-24 (the
    Numba kernels, kernels.cpu.GROUP_NORM_MIN_POSITIONS)."""
    return st.tuples(st.integers(1, 2), st.sampled_from([(2, 1), (2, 2), (4, 2), (3, 3)]),
                     st.integers(1, 3), st.sampled_from([2, 8])).flatmap(
        lambda s: st.tuples(arrays((s[0], s[1][0], s[2], s[3])), arrays((s[1][0],)),
                            arrays((s[1][0],)))
        .map(lambda t: (t, {"groups": s[1][1]}))
    )


def attention_inputs():
    return st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)).flatmap(
        lambda d: st.tuples(arrays((2, d[0], d[2])), arrays((2, d[1], d[2])), arrays((2, d[1], d[2])))
    ).map(lambda t: (t, {}))


def getitem_inputs():
    @st.composite
    def draw(d):
        a = d(arrays(d(shapes(min_dims=2, min_side=2))))
        kind = d(st.sampled_from(["slice", "int_array", "mixed"]))
        if kind == "slice":
            idx = (slice(None, None, 2), slice(1, None))
        elif kind == "int_array":
            idx = np.array(d(st.lists(st.integers(0, a.shape[0] - 1), min_size=1, max_size=4)))
        else:
            idx = (slice(None), np.array(d(st.lists(st.integers(0, a.shape[1] - 1), min_size=1, max_size=3))))
        return (a,), {"index": idx}

    return draw()


def cat_inputs(stack=False):
    @st.composite
    def draw(d):
        shape = list(d(shapes(max_dims=3)))
        axis = d(st.integers(0, len(shape) - 1 + stack))
        parts = []
        for _ in range(d(st.integers(1, 3))):
            s = list(shape)
            if not stack:
                s[axis] = d(st.integers(1, 3))
            parts.append(d(arrays(tuple(s))))
        return tuple(parts), {"axis": axis}

    return draw()


def np_weighted_nll(logp, target, weight, ignore):
    """PyTorch's documented nll_loss with weight and ignore_index, reduction='mean'."""
    w = np.where(target == ignore, 0.0, weight[target])
    return -(w * logp[np.arange(len(target)), target]).sum() / w.sum()


def np_erf(a):
    return np.vectorize(math.erf)(a)


def gather_inputs():
    @st.composite
    def draw(d):
        a = d(arrays(d(shapes(min_side=2))))
        axis = d(st.integers(0, a.ndim - 1))
        ishape = tuple(d(st.integers(1, n)) for n in a.shape)
        flat = d(st.lists(st.integers(0, a.shape[axis] - 1), min_size=int(np.prod(ishape)), max_size=int(np.prod(ishape))))
        return (a,), {"axis": axis, "index": np.array(flat, dtype=np.int64).reshape(ishape)}

    return draw()


def classification_inputs(spatial=False, probs=False):
    """Logits (N, C[, H, W]) with class-index targets (an int array, passed as a constant
    keyword) or, with ``probs``, a second array of class probabilities."""
    @st.composite
    def draw(d):
        shape = (d(st.integers(1, 4)), d(st.integers(1, 4))) + ((2, 3) if spatial else ())
        x = d(arrays(shape, -5.0, 5.0))
        if probs:
            p = d(arrays(shape, 0.0, 1.0)) + 1e-3
            return (x, p / p.sum(1, keepdims=True)), {}
        flat = d(st.lists(st.integers(0, shape[1] - 1), min_size=int(np.prod(shape)) // shape[1],
                          max_size=int(np.prod(shape)) // shape[1]))
        return (x,), {"target": np.array(flat, dtype=np.int64).reshape((shape[0],) + shape[2:])}

    return draw()


def where_inputs():
    @st.composite
    def draw(d):
        a, b = d(binary())[0]
        shape = np.broadcast_shapes(a.shape, b.shape)
        cond = np.array(d(st.lists(st.booleans(), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))).reshape(shape)
        return (a, b), {"cond": cond}

    return draw()


OPS = {
    "add": Op(binary, lambda a, b: a + b, np.add),
    "sub": Op(binary, lambda a, b: a - b, np.subtract),
    "mul": Op(binary, lambda a, b: a * b, np.multiply),
    "div": Op(positive_binary, lambda a, b: a / b, np.divide),
    "rsub_scalar": Op(unary, lambda a: 3.0 - a, lambda a: 3.0 - a),
    "rdiv_scalar": Op(lambda: unary(0.5, 2.0), lambda a: 2.0 / a, lambda a: 2.0 / a),
    "neg": Op(unary, lambda a: -a, np.negative),
    "pow": Op(lambda: unary(0.5, 2.0).flatmap(lambda i: st.sampled_from([2, 3, 0.5, -1.5]).map(lambda c: (i[0], {"c": c}))),
              lambda a, c: a**c, lambda a, c: a**c),
    "rpow": Op(unary, lambda a: 2.0**a, lambda a: 2.0**a),
    "exp": Op(unary, F.exp, np.exp),
    "log": Op(lambda: unary(0.2, 3.0), F.log, np.log),
    "sqrt": Op(lambda: unary(0.2, 3.0), F.sqrt, np.sqrt),
    "tanh": Op(unary, F.tanh, np.tanh),
    "sigmoid": Op(unary, F.sigmoid, lambda a: 1 / (1 + np.exp(-a))),
    "relu": Op(unary, F.relu, lambda a: np.maximum(a, 0), ok=lambda a: away_from(a, [0], 1e-3)),
    "leaky_relu": Op(unary, lambda a: F.leaky_relu(a, 0.2), lambda a: np.where(a > 0, a, 0.2 * a),
                     ok=lambda a: away_from(a, [0], 1e-3)),
    "abs": Op(unary, F.abs, np.abs, ok=lambda a: away_from(a, [0], 1e-3)),
    "clip": Op(unary, lambda a: F.clip(a, -1.0, 0.5), lambda a: np.clip(a, -1.0, 0.5),
               ok=lambda a: away_from(a, [-1.0, 0.5], 1e-3)),
    "softplus": Op(lambda: unary(-30, 30), F.softplus, lambda a: np.logaddexp(0, a)),
    "softplus_beta": Op(lambda: unary(-30, 30), lambda a: F.softplus(a, beta=2.5), lambda a: np.logaddexp(0, 2.5 * a) / 2.5),
    "silu": Op(unary, F.silu, lambda a: a / (1 + np.exp(-a))),
    "gelu": Op(unary, F.gelu, lambda a: 0.5 * a * (1 + np_erf(a / math.sqrt(2)))),
    "gelu_tanh": Op(unary, lambda a: F.gelu(a, approximate="tanh"),
                    lambda a: 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a**3)))),
    "logsigmoid": Op(lambda: unary(-30, 30), F.logsigmoid, lambda a: -np.logaddexp(0, -a)),
    "elu": Op(unary, lambda a: F.elu(a, alpha=0.7), lambda a: np.where(a > 0, a, 0.7 * np.expm1(np.minimum(a, 0))),
              ok=lambda a: away_from(a, [0], 1e-3)),
    "hardtanh": Op(unary, lambda a: F.hardtanh(a, -1.5, 0.5), lambda a: np.clip(a, -1.5, 0.5),
                   ok=lambda a: away_from(a, [-1.5, 0.5], 1e-3)),
    "sin": Op(lambda: unary(-4, 4), F.sin, np.sin),
    "cos": Op(lambda: unary(-4, 4), F.cos, np.cos),
    # PyTorch's ops beyond the core set (also checked against PyTorch in test_ops_pytorch.py)
    "tan": Op(lambda: unary(-1.2, 1.2), F.tan, np.tan),
    "asin": Op(lambda: unary(-0.9, 0.9), F.asin, np.arcsin),
    "acos": Op(lambda: unary(-0.9, 0.9), F.acos, np.arccos),
    "atan": Op(unary, F.atan, np.arctan),
    "atan2": Op(binary, F.atan2, np.arctan2,  # away from the origin and the cut at y = 0, x < 0
                ok=lambda a, b: np.all(np.add(a * a, b * b) > 0.1) and away_from(a, [0], 1e-2)),
    "sinh": Op(unary, F.sinh, np.sinh),
    "cosh": Op(unary, F.cosh, np.cosh),
    "asinh": Op(unary, F.asinh, np.arcsinh),
    "acosh": Op(lambda: unary(1.2, 3.0), F.acosh, np.arccosh),
    "atanh": Op(lambda: unary(-0.9, 0.9), F.atanh, np.arctanh),
    "exp2": Op(unary, F.exp2, np.exp2),
    "log2": Op(lambda: unary(0.2, 3.0), F.log2, np.log2),
    "rsqrt": Op(lambda: unary(0.2, 3.0), F.rsqrt, lambda a: 1 / np.sqrt(a)),
    "logaddexp": Op(lambda: binary(-30, 30), F.logaddexp, np.logaddexp),
    "remainder": Op(positive_binary, lambda a, b: a % b, np.remainder,
                    ok=lambda a, b: away_from(np.mod(np.divide(a, b), 1.0), [0, 1], 1e-3)),
    "floor": Op(unary, F.floor, np.floor, ok=lambda a: away_from(np.mod(a, 1.0), [0, 1], 1e-3)),
    "cumprod": Op(lambda: with_axis(unary()), lambda a, axis: a.cumprod(axis=axis),
                  lambda a, axis: np.cumprod(a, axis=axis), ok=lambda a, axis: away_from(a, [0], 1e-2)),
    "roll": Op(unary, lambda a: a.roll(1, 0), lambda a: np.roll(a, 1, 0)),
    "repeat": Op(unary, lambda a: a.repeat(2, *[1] * a.ndim), lambda a: np.tile(a, (2,) + (1,) * a.ndim)),
    "tril": Op(lambda: unary(min_dims=2), lambda a: a.tril(), np.tril),
    "sort": Op(lambda: shapes().flatmap(distinct_arrays).map(lambda a: ((a,), {})),
               lambda a: a.sort().values, lambda a: np.sort(a, -1)),
    "einsum": Op(matmul_inputs, lambda a, b: F.einsum("...ij,jk->...ik", a, b), np.matmul),
    **{f"pad_{mode}": Op(lambda: unary(min_dims=2, min_side=3).flatmap(
        lambda i: st.lists(st.integers(0, 2), min_size=4, max_size=4).map(lambda p: (i[0], {"widths": tuple(p)}))),
        lambda a, widths, mode=mode: F.pad(a, widths, mode=mode),
        lambda a, widths, np_mode=np_mode: np.pad(a, [(0, 0)] * (a.ndim - 2) + [widths[2:], widths[:2]], np_mode))
       for mode, np_mode in (("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap"))},
    "relu6": Op(lambda: unary(-8, 8), F.relu6, lambda a: np.clip(a, 0, 6), ok=lambda a: away_from(a, [0, 6], 1e-3)),
    "selu": Op(unary, F.selu, lambda a: 1.0507009873554805 * np.where(a > 0, a, 1.6732632423543772 * np.expm1(a)),
               ok=lambda a: away_from(a, [0], 1e-3)),
    "celu": Op(unary, lambda a: F.celu(a, 0.5), lambda a: np.where(a > 0, a, 0.5 * np.expm1(a / 0.5)),
               ok=lambda a: away_from(a, [0], 1e-3)),
    "softsign": Op(unary, F.softsign, lambda a: a / (1 + np.abs(a)), ok=lambda a: away_from(a, [0], 1e-3)),
    "hardsigmoid": Op(lambda: unary(-5, 5), F.hardsigmoid, lambda a: np.clip(a / 6 + 0.5, 0, 1),
                      ok=lambda a: away_from(a, [-3, 3], 1e-3)),
    "hardswish": Op(lambda: unary(-5, 5), F.hardswish, lambda a: a * np.clip(a / 6 + 0.5, 0, 1),
                    ok=lambda a: away_from(a, [-3, 3], 1e-3)),
    "mish": Op(unary, F.mish, lambda a: a * np.tanh(np.logaddexp(0, a))),
    "maximum": Op(binary, F.maximum, np.maximum, ok=lambda a, b: away_from(np.subtract(a, b), [0], 1e-3)),
    "minimum": Op(binary, F.minimum, np.minimum, ok=lambda a, b: away_from(np.subtract(a, b), [0], 1e-3)),
    "pow_tensor": Op(lambda: positive_binary().map(lambda t: (t[0][::-1], {})), lambda a, b: a**b, np.power),
    "sum": Op(lambda: with_axis(unary()), lambda a, axis: a.sum(axis=axis), lambda a, axis: a.sum(axis=axis)),
    "sum_keepdims": Op(lambda: with_axis(unary()), lambda a, axis: a.sum(axis=axis, keepdims=True),
                       lambda a, axis: a.sum(axis=axis, keepdims=True)),
    "mean": Op(lambda: with_axis(unary()), lambda a, axis: a.mean(axis=axis), lambda a, axis: a.mean(axis=axis)),
    "var": Op(lambda: with_axis(unary()), lambda a, axis: a.var(axis=axis), lambda a, axis: a.var(axis=axis)),
    "var_ddof1": Op(lambda: with_axis(unary(min_side=2)), lambda a, axis: a.var(axis=axis, ddof=1),
                    lambda a, axis: a.var(axis=axis, ddof=1)),
    "std": Op(lambda: with_axis(unary(min_side=2)), lambda a, axis: a.std(axis=axis, correction=1),
              lambda a, axis: a.std(axis=axis, ddof=1), ok=lambda a, axis: np.all(a.std(axis=axis) > 1e-2)),
    "prod": Op(lambda: with_axis(unary()), lambda a, axis: a.prod(axis=axis), lambda a, axis: a.prod(axis=axis),
               ok=lambda a, axis: away_from(a, [0], 1e-2)),
    "cumsum": Op(lambda: with_axis(unary()), lambda a, axis: a.cumsum(axis=axis), lambda a, axis: a.cumsum(axis=axis)),
    "min": Op(lambda: with_axis(shapes().flatmap(distinct_arrays).map(lambda a: ((a,), {}))),
              lambda a, axis: a.min(axis=axis), lambda a, axis: a.min(axis=axis)),
    "max": Op(lambda: with_axis(shapes().flatmap(distinct_arrays).map(lambda a: ((a,), {}))),
              lambda a, axis: a.max(axis=axis), lambda a, axis: a.max(axis=axis)),
    "reshape": Op(unary, lambda a: a.reshape(-1), lambda a: a.reshape(-1)),
    "transpose": Op(unary, lambda a: a.T, lambda a: a.T),
    "permute": Op(lambda: unary(min_dims=3, max_dims=3), lambda a: a.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
    "getitem": Op(getitem_inputs, lambda a, index: a[index], lambda a, index: a[index]),
    "swapaxes": Op(lambda: unary(min_dims=2), lambda a: a.swapaxes(0, -1), lambda a: a.swapaxes(0, -1)),
    "flip": Op(lambda: with_axis(unary()), lambda a, axis: a.flip(axis), lambda a, axis: np.flip(a, axis)),
    "squeeze": Op(lambda: unary(min_side=1, max_side=1).flatmap(lambda i: arrays(i[0][0].shape + (2,)).map(lambda a: ((a,), {}))),
                  lambda a: a.squeeze(), np.squeeze),
    "unsqueeze": Op(unary, lambda a: a.unsqueeze(-2), lambda a: np.expand_dims(a, -2)),
    "flatten": Op(lambda: unary(min_dims=3), lambda a: a.flatten(1), lambda a: a.reshape(a.shape[0], -1)),
    "pad": Op(lambda: unary(min_dims=2).flatmap(lambda i: st.lists(st.integers(0, 2), min_size=4, max_size=4)
                                                .map(lambda p: (i[0], {"widths": tuple(p)}))),
              lambda a, widths: F.pad(a, widths, value=0.5),
              lambda a, widths: np.pad(a, [(0, 0)] * (a.ndim - 2) + [widths[2:], widths[:2]], constant_values=0.5)),
    "gather": Op(gather_inputs, lambda a, axis, index: F.gather(a, axis, index),
                 lambda a, axis, index: np.take_along_axis(
                     a[tuple(slice(None) if d == axis else slice(0, n) for d, n in enumerate(index.shape))], index, axis)),
    "matmul": Op(matmul_inputs, lambda a, b: a @ b, np.matmul),
    "linear": Op(linear_inputs, F.linear, lambda x, w, b: x @ w.T + b),
    "cat": Op(cat_inputs, lambda *ts, axis: mg.cat(ts, axis), lambda *a, axis: np.concatenate(a, axis)),
    "stack": Op(lambda: cat_inputs(stack=True), lambda *ts, axis: mg.stack(ts, axis), lambda *a, axis: np.stack(a, axis)),
    "where": Op(where_inputs, lambda a, b, cond: mg.where(cond, a, b), lambda a, b, cond: np.where(cond, a, b)),
    "softmax": Op(lambda: unary(-5, 5), lambda a: F.softmax(a, axis=-1), lambda a: np_softmax(a, -1)),
    "log_softmax": Op(lambda: unary(-5, 5), lambda a: F.log_softmax(a, axis=0),
                      lambda a: a - np.log(np.exp(a).sum(axis=0, keepdims=True))),
    "logsumexp": Op(lambda: unary(-5, 5), lambda a: F.logsumexp(a, axis=-1), lambda a: np.log(np.exp(a).sum(axis=-1))),
    "cross_entropy": Op(lambda: classification_inputs(), lambda x, target: F.cross_entropy(x, target),
                        lambda x, target: -np.take_along_axis(x - np.log(np.exp(x).sum(1, keepdims=True)),
                                                              target[:, None], 1).mean()),
    "cross_entropy_sum_4d": Op(lambda: classification_inputs(spatial=True),
                               lambda x, target: F.cross_entropy(x, target, reduction="sum"),
                               lambda x, target: -np.take_along_axis(x - np.log(np.exp(x).sum(1, keepdims=True)),
                                                                     target[:, None], 1).sum()),
    "cross_entropy_probs": Op(lambda: classification_inputs(probs=True), lambda x, p: F.cross_entropy(x, p),
                              lambda x, p: -(p * (x - np.log(np.exp(x).sum(1, keepdims=True)))).sum(1).mean()),
    "nll_loss": Op(lambda: classification_inputs(), lambda x, target: F.nll_loss(x, target, reduction="none"),
                   lambda x, target: -x[np.arange(len(target)), target]),
    "cross_entropy_weight_ignore": Op(
        lambda: classification_inputs(), lambda x, target: F.cross_entropy(
            x, target, weight=np.linspace(0.5, 2.0, x.shape[1]), ignore_index=0),
        lambda x, target: np_weighted_nll(x - np.log(np.exp(x).sum(1, keepdims=True)), target,
                                          np.linspace(0.5, 2.0, x.shape[1]), 0),
        ok=lambda x, target: np.any(target != 0)),
    "mse_loss": Op(lambda: unary().flatmap(lambda i: arrays(i[0][0].shape).map(lambda b: ((i[0][0], b), {}))),
                   F.mse_loss, lambda a, b: ((a - b) ** 2).mean()),
    "bce_with_logits": Op(lambda: unary(-20, 20).flatmap(lambda i: arrays(i[0][0].shape, 0, 1).map(lambda t: ((i[0][0], t), {}))),
                          F.binary_cross_entropy_with_logits,
                          lambda x, t: (-(t * np.log(1 / (1 + np.exp(-x))) + (1 - t) * np.log(1 - 1 / (1 + np.exp(-x))))).mean(),
                          ok=lambda x, t: np.all(np.abs(x) < 15)),
    "conv2d": Op(conv_inputs, lambda x, w, b, **kw: F.conv2d(x, w, b, **kw), conv2d_loop, tol32=1e-4),
    "conv_transpose2d": Op(lambda: conv_inputs(True), lambda x, w, b, **kw: F.conv_transpose2d(x, w, b, **kw),
                           conv_transpose2d_loop, tol32=1e-4),
    "conv2d_groups_dilation": Op(grouped_conv_inputs, lambda x, w, b, **kw: F.conv2d(x, w, b, **kw),
                                 conv2d_loop, tol32=1e-4),
    "avg_pool2d_strided": Op(pool_inputs, lambda x, k, stride, padding: F.avg_pool2d(x, k, stride, padding),
                             lambda x, k, stride, padding: pool2d_loop(x, np.mean, k, stride, padding, 0.0)),
    "max_pool2d_strided": Op(lambda: pool_inputs(distinct_arrays),
                             lambda x, k, stride, padding: F.max_pool2d(x, k, stride, padding),
                             lambda x, k, stride, padding: pool2d_loop(x, np.max, k, stride, padding, -np.inf)),
    "avg_pool2d": Op(lambda: images(even=True), lambda x: F.avg_pool2d(x, 2),
                     lambda x: x.reshape(x.shape[0], x.shape[1], x.shape[2] // 2, 2, x.shape[3] // 2, 2).mean(axis=(3, 5))),
    "max_pool2d": Op(lambda: images(even=True, make=distinct_arrays), lambda x: F.max_pool2d(x, 2),
                     lambda x: x.reshape(x.shape[0], x.shape[1], x.shape[2] // 2, 2, x.shape[3] // 2, 2).max(axis=(3, 5))),
    "upsample_nearest2d": Op(images, lambda x: F.upsample_nearest2d(x, 2), lambda x: x.repeat(2, axis=2).repeat(2, axis=3)),
    "group_norm": Op(group_norm_inputs, lambda x, w, b, groups: F.group_norm(x, groups, w, b),
                     lambda x, w, b, groups: np_norm(x.reshape(x.shape[0], groups, -1), 2, 1e-5).reshape(x.shape)
                     * w.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1), tol32=1e-4),
    "layer_norm": Op(lambda: st.tuples(st.integers(1, 3), st.integers(2, 4)).flatmap(
                         lambda s: st.tuples(arrays(s), arrays(s[1:]), arrays(s[1:]))).map(lambda t: (t, {})),
                     lambda x, w, b: F.layer_norm(x, x.shape[-1], w, b),
                     lambda x, w, b: np_norm(x, -1, 1e-5) * w + b, tol32=1e-4),
    "attention": Op(attention_inputs, F.scaled_dot_product_attention,
                    lambda q, k, v: np_softmax(q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1]), -1) @ v),
}


def _draw(op, data):
    arrays_, kw = data.draw(op.inputs())
    assume(op.ok(*arrays_, **kw))
    return arrays_, kw


@pytest.mark.parametrize("name", sorted(OPS))
@given(data=st.data())
def test_forward(name, data):
    op = OPS[name]
    arrays_, kw = _draw(op, data)
    expected = op.ref(*arrays_, **kw)
    out = op.fn(*[mg.tensor(a) for a in arrays_], **kw)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-10)
    out32 = op.fn(*[mg.tensor(a, dtype=np.float32) for a in arrays_], **kw)
    assert out32.dtype == np.float32, "float32 inputs must give float32 outputs (no up-cast)"
    np.testing.assert_allclose(out32.data, expected, rtol=op.tol32, atol=op.tol32)


@pytest.mark.parametrize("name", sorted(OPS))
@given(data=st.data())
def test_backward(name, data):
    op = OPS[name]
    arrays_, kw = _draw(op, data)
    gradcheck(lambda *ts: op.fn(*ts, **kw), [mg.tensor(a) for a in arrays_])


@pytest.mark.parametrize("name", sorted(n for n in OPS if OPS[n].double))
@settings(max_examples=8)
@given(data=st.data())
def test_double_backward(name, data):
    op = OPS[name]
    arrays_, kw = _draw(op, data)
    gradgradcheck(lambda *ts: op.fn(*ts, **kw), [mg.tensor(a) for a in arrays_], directions=2)


@given(data=st.data())
def test_argmax_argmin_one_hot_match_numpy(data):
    a = data.draw(shapes().flatmap(distinct_arrays))
    axis = data.draw(st.one_of(st.none(), st.integers(-a.ndim, a.ndim - 1)))
    keepdims = data.draw(st.booleans())
    x = mg.tensor(a, requires_grad=True)
    for name in ("argmax", "argmin"):
        out = getattr(x, name)(axis=axis, keepdims=keepdims)
        assert out.dtype == np.int64 and not out.requires_grad
        np.testing.assert_array_equal(out.numpy(), getattr(np, name)(a, axis=axis, keepdims=keepdims))
    index = np.argsort(a.reshape(-1))[: data.draw(st.integers(1, a.size))]
    hot = F.one_hot(index, a.size)
    assert hot.dtype == np.int64
    np.testing.assert_array_equal(hot.numpy(), np.eye(a.size, dtype=np.int64)[index])


@pytest.mark.parametrize("name", ["max", "min"])
def test_short_reductions_fold_to_exactly_numpys_reduce(name):
    """Max/min over short axes (pooling windows) folded slice by slice: the same values and
    tie shares as NumPy's reduce, NaN included, on both sides of the length threshold."""
    from minigen.functional import ops

    rng = np.random.default_rng(5)
    for shape, axes in [((2, 3, 4, 2, 4, 2), (3, 5)), ((2, 3, 4, 5), (1, 3)), ((3, 17), (1,))]:
        x = rng.integers(0, 3, shape).astype(np.float32)
        x.flat[1] = np.nan
        t = mg.tensor(x, requires_grad=True)
        getattr(ops, name)(t, axis=axes).sum().backward()
        y = getattr(np, name)(x, axis=axes, keepdims=True)
        hits = ((x == y) | np.isnan(x) & np.isnan(y)).astype(np.float32)
        np.testing.assert_array_equal(t.grad, hits / hits.sum(axis=axes, keepdims=True))
        np.testing.assert_array_equal(getattr(ops, name)(mg.tensor(x), axis=axes).data,
                                      y.squeeze(axes))
