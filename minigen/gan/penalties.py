"""Gradient penalties on the discriminator, computed by double backward.

Both penalise the norm of the input gradient of D's output (its logit, or the critic's
score). ``mg.grad(..., create_graph=True)`` returns that gradient as a Tensor with a graph of
its own, so the penalty can itself be differentiated with respect to D's parameters and
added to the discriminator's loss.
"""
from minigen import backend
from minigen.errors import InvalidInput
from minigen.tensor import Tensor, grad

PENALTIES = ("none", "r1", "wgan-gp")


def _per_sample_sq_norm(g):
    """||g_i||^2 for each sample i of a batch (sum over every non-batch axis)."""
    sq = g * g
    return sq.reshape(g.shape[0], -1).sum(axis=1)


def input_gradient(discriminator, x):
    """d(sum_i D(x_i))/dx (the per-sample input gradients, since D acts sample by sample),
    with ``create_graph=True`` so it stays differentiable in D's parameters."""
    x = Tensor(x.data, requires_grad=True)
    out = discriminator(x)
    return grad(out.sum(), x, create_graph=True)


def r1_penalty(discriminator, x_real, gamma=10.0):
    """R1 (Mescheder et al. 2018, eq. 9): gamma/2 * E_{x ~ p_data} ||grad_x D(x)||^2.

    Pushes D to be flat on the data, which removes the oscillation of the unregularised
    game around its equilibrium. ``x_real`` is a Tensor or array batch (m, ...).
    """
    if gamma < 0:
        raise InvalidInput(f"r1_penalty: gamma must be >= 0, got {gamma}")
    g = input_gradient(discriminator, _as_tensor(x_real))
    return _per_sample_sq_norm(g).mean() * (gamma / 2.0)


def wgan_gp_penalty(discriminator, x_real, x_fake, weight=10.0, rng=None, eps=None):
    """WGAN-GP (Gulrajani et al. 2017, eq. 3): weight * E_{x_hat} (||grad D(x_hat)||_2 - 1)^2,
    x_hat = eps x_real + (1 - eps) x_fake with one eps ~ U[0, 1] per sample.

    ``rng`` is a ``numpy.random.Generator`` (default: minigen's generator of the device) that
    draws the eps; or ``eps`` gives them, shaped (batch, 1, ...).
    The norm is sqrt(||g||^2 + 1e-12), so its derivative stays finite where g = 0.
    """
    x_real, x_fake = _as_tensor(x_real), _as_tensor(x_fake)
    if x_real.shape != x_fake.shape:
        raise InvalidInput(f"wgan_gp_penalty: real batch {x_real.shape} != fake batch {x_fake.shape}")
    if weight < 0:
        raise InvalidInput(f"wgan_gp_penalty: weight must be >= 0, got {weight}")
    xp = backend.xp_of(x_real.data)
    if eps is None:
        rng = backend.rng(x_real.device) if rng is None else rng
        eps = rng.random((x_real.shape[0],) + (1,) * (x_real.ndim - 1))
    eps = xp.asarray(eps, dtype=x_real.dtype)
    x_hat = eps * x_real.data + (1 - eps) * x_fake.data
    g = input_gradient(discriminator, Tensor(x_hat))
    norm = (_per_sample_sq_norm(g) + 1e-12).sqrt()
    return ((norm - 1.0) ** 2).mean() * weight


def _as_tensor(x):
    return x.detach() if isinstance(x, Tensor) else Tensor(x)
