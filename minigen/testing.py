"""Gradient checking for users' own ops and models (after Chainer's ``gradient_check``).

``gradcheck(fn, inputs)`` compares the autograd gradient of ``fn`` with central finite
differences in float64. Small inputs are checked element by element (the full Jacobian-vector
products against every unit vector); large ones directionally: for random directions v and u,
the autograd value <u, J v> = <J^T u, v> must equal the finite difference of <u, fn(x + h v)>.
``gradgradcheck`` applies the same check to the gradient function itself (double backward).

    >>> import minigen as mg, minigen.functional as F
    >>> from minigen.testing import gradcheck, gradgradcheck
    >>> x = mg.randn(3, 4, dtype="float64")
    >>> gradcheck(F.softplus, [x])
    True
"""
import numpy as np

from minigen import backend
from minigen.tensor import Tensor, grad


class GradcheckError(AssertionError):
    """Autograd and finite differences disagree."""


def _as_inputs(inputs):
    tensors = []
    for x in inputs:
        t = x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=np.float64))
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: inputs must be float64 for reliable differences, got {t.dtype}")
        tensors.append(Tensor(t.data.copy(), requires_grad=True))
    return tensors


def _outputs(fn, xs):
    out = fn(*xs)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _vdot(us, ys):
    return sum(float((backend.to_numpy(u) * backend.to_numpy(y.data)).sum()) for u, y in zip(us, ys))


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, directions=None, seed=0):
    """Check the first derivatives of ``fn`` (Tensors -> Tensor or tuple of Tensors).

    ``directions=None`` checks every input element when there are at most 64 of them and
    3 random directions otherwise; pass an int to choose. Raises ``GradcheckError`` on
    mismatch, returns True otherwise.
    """
    xs = _as_inputs(inputs)
    rng = np.random.default_rng(seed)
    ys = _outputs(fn, xs)
    us = [rng.standard_normal(y.shape) for y in ys]
    xp = backend.xp_of(xs[0].data)
    live = [(y, Tensor(xp.asarray(u))) for y, u in zip(ys, us) if y.requires_grad]
    grads = [None] * len(xs)
    if live:  # outputs that do not depend on the inputs have zero derivative
        grads = grad([y for y, _ in live], xs, grad_outputs=[u for _, u in live], allow_unused=True)
    grads = [np.zeros(x.shape) if g is None else backend.to_numpy(g.data) for x, g in zip(xs, grads)]

    total = sum(x.data.size for x in xs)
    if directions is None and total <= 64:
        vs = []
        for i, x in enumerate(xs):
            for j in range(x.data.size):
                v = [np.zeros(z.shape) for z in xs]
                v[i].reshape(-1)[j] = 1.0
                vs.append(v)
    else:
        vs = [[rng.standard_normal(x.shape) for x in xs] for _ in range(directions or 3)]

    for v in vs:
        analytic = sum(float((g * d).sum()) for g, d in zip(grads, v))

        def f(step):
            shifted = [Tensor(x.data + step * xp.asarray(d), requires_grad=True) for x, d in zip(xs, v)]
            return _vdot(us, _outputs(fn, shifted))

        numeric = (f(eps) - f(-eps)) / (2 * eps)
        if not abs(analytic - numeric) <= atol + rtol * abs(numeric):
            raise GradcheckError(
                f"gradcheck: autograd gives {analytic!r}, finite differences {numeric!r} "
                f"(difference {abs(analytic - numeric):.3g}) for a direction over input shapes "
                f"{[x.shape for x in xs]}"
            )
    return True


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, directions=None, seed=0):
    """Check second derivatives: ``gradcheck`` of x -> <u, J_fn(x)>^T computed with
    ``create_graph=True`` (the backward pass must itself be differentiable)."""
    xs = _as_inputs(inputs)
    rng = np.random.default_rng(seed + 1)
    us = [rng.standard_normal(y.shape) for y in _outputs(fn, xs)]

    def first_derivative(*zs):
        ys = _outputs(fn, zs)
        xp = backend.xp_of(zs[0].data)
        live = [(y, Tensor(xp.asarray(u))) for y, u in zip(ys, us) if y.requires_grad]
        gs = [None] * len(zs)
        if live:
            gs = grad([y for y, _ in live], list(zs), grad_outputs=[u for _, u in live],
                      create_graph=True, allow_unused=True)
        return tuple(g if g is not None else Tensor(xp.zeros(z.shape)) for g, z in zip(gs, zs))

    return gradcheck(first_derivative, xs, eps, atol, rtol, directions, seed)
