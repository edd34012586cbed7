"""Auto-encoding variational Bayes (Kingma & Welling 2014), with the importance-weighted
bound of Burda, Grosse & Salakhutdinov 2016 as the log-likelihood estimate.

A latent-variable model p_theta(x, z) = p(z) p_theta(x | z) with p(z) = N(0, I), and a
recognition model q_phi(z | x) that approximates its posterior. Log-densities are summed
over an example's dimensions and returned per example (shape (batch,)), in nats.

The paper in its order, each equation in one function:

==================================================  ============================================
Kingma & Welling 2014                               here
==================================================  ============================================
eq. 3, the variational lower bound L(theta, phi; x)  :meth:`VAE.elbo`
Sec. 2.4, the reparameterisation z = mu + sigma eps  :func:`reparameterize`
eq. 9, the Gaussian encoder q_phi(z | x)             :meth:`VAE.encode`, :func:`gaussian_log_density`
Appendix B, -KL(q_phi(z | x) || N(0, I)) in closed   :func:`kl_to_standard_normal`
form: 1/2 sum(1 + log sigma^2 - mu^2 - sigma^2)
Appendix C.1, the Bernoulli decoder                  :func:`bernoulli_log_likelihood`
Appendix C.2, the Gaussian decoder                   :func:`gaussian_log_density`
eq. 10, the SGVB estimator (L = 1 sample)            :meth:`VAE.elbo`, its loss :meth:`VAE.loss`
Burda et al. Sec. 3, the k-sample bound L_k         :meth:`VAE.iwae_bound`, :func:`log_mean_exp`
Burda et al. Sec. 5.2, active units                  :meth:`VAE.active_units`
==================================================  ============================================

``beta`` weights the KL term of the loss (Higgins et al. 2017; beta = 1 is the paper's
bound); the reported ELBO is always the bound itself (beta = 1). L_1 is the ELBO, L_k <=
L_{k+1} <= log p(x) (Burda et al., Theorem 1), so ``iwae_bound`` with a large k is the
log-likelihood estimate that model comparisons use.

    >>> import numpy as np
    >>> from minigen.tensor import Tensor
    >>> mu, logvar = Tensor(np.array([[1.0, 0.0]])), Tensor(np.array([[0.0, np.log(2.0)]]))
    >>> kl_to_standard_normal(mu, logvar).numpy().round(4)   # (1 + 0) / 2 + (1 - log 2) / 2
    array([0.6534])
"""
import math

import numpy as np

from minigen import backend
from minigen import functional as F
from minigen.errors import InvalidInput
from minigen.nn.module import eval_mode
from minigen.tensor import Tensor, no_grad

__all__ = ["VAE", "LIKELIHOODS", "reparameterize", "kl_to_standard_normal",
           "gaussian_log_density", "bernoulli_log_likelihood", "log_mean_exp"]

LIKELIHOODS = ("bernoulli", "gaussian")
"""Decoders p_theta(x | z): Bernoulli (the decoder outputs logits; data in [0, 1]) or
Gaussian (the decoder outputs a mean and a log-variance per dimension)."""

LOG_2PI = math.log(2 * math.pi)

ACTIVE_THRESHOLD = 1e-2
"""Burda et al.'s criterion: unit u is active when Cov_x(E_q[z_u | x]) exceeds this."""


def _flat_sum(t):
    """Sum over every axis but the first: a per-example total."""
    return t.reshape(t.shape[0], -1).sum(axis=1)


def reparameterize(mu, logvar, eps):
    """z = mu + sigma * eps with sigma = exp(logvar / 2) and eps ~ N(0, I) (Sec. 2.4): z is
    a differentiable function of (mu, logvar), so the bound's gradient flows to the encoder."""
    return mu + (0.5 * logvar).exp() * eps


def kl_to_standard_normal(mu, logvar):
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per example, in closed form (Appendix B):
    -1/2 sum(1 + log sigma^2 - mu^2 - sigma^2)."""
    return -0.5 * _flat_sum(1.0 + logvar - mu * mu - logvar.exp())


def gaussian_log_density(x, mean, logvar):
    """log N(x; mean, diag exp(logvar)) per example: -1/2 sum(log 2 pi + logvar +
    (x - mean)^2 / exp(logvar)) (eq. 9; the decoder of Appendix C.2)."""
    d = x - mean
    return -0.5 * _flat_sum(LOG_2PI + logvar + d * d * (-logvar).exp())


def bernoulli_log_likelihood(x, logits):
    """log p(x | z) = sum x log y + (1 - x) log(1 - y), y = sigmoid(logits), per example
    (Appendix C.1), as x logits - softplus(logits): finite for any logits."""
    return _flat_sum(x * logits - F.softplus(logits))


def log_mean_exp(a, axis=0):
    """log(mean(exp(a), axis)) of a NumPy array, shifted by the maximum so that no term
    overflows or underflows to -inf."""
    a = np.asarray(a, dtype=np.float64)
    top = a.max(axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.squeeze(top, axis) + np.log(np.mean(np.exp(a - top), axis=axis))


class VAE:
    """A variational auto-encoder with latents z of ``latent_shape`` (an int d for vectors, or
    (c, h, w) for the latent images of a convolutional autoencoder): ``encoder(x)`` returns
    the mean and the log-variance of q_phi(z | x) stacked on axis 1, shape (batch, 2 d) or
    (batch, 2 c, h, w); ``decoder(z)`` returns the parameters of p_theta(x | z) for x of
    shape (batch, ...): the logits (``likelihood="bernoulli"``, shape of x) or a mean and a
    log-variance stacked on axis 1 (``"gaussian"``, twice x's axis 1). ``beta`` weights the
    KL term of :meth:`loss`."""

    def __init__(self, encoder, decoder, latent_shape, likelihood="bernoulli", beta=1.0):
        if likelihood not in LIKELIHOODS:
            raise InvalidInput(f"VAE: likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        shape = (latent_shape,) if np.ndim(latent_shape) == 0 else tuple(latent_shape)
        if not shape or any(int(n) != n or n < 1 for n in shape):
            raise InvalidInput(f"VAE: latent_shape must be integers >= 1, got {latent_shape!r}")
        if not beta >= 0:
            raise InvalidInput(f"VAE: beta must be >= 0, got {beta!r}")
        self.encoder, self.decoder = encoder, decoder
        self.latent_shape = tuple(int(n) for n in shape)
        self.likelihood, self.beta = likelihood, float(beta)

    def encode(self, x):
        """(mu, logvar) of the Gaussian q_phi(z | x) = N(mu, diag sigma^2) (eq. 9)."""
        h = self.encoder(x)
        c = self.latent_shape[0]
        if h.shape[1:] != (2 * c, *self.latent_shape[1:]):
            raise InvalidInput(f"VAE: the encoder must return (batch, {2 * c}"
                               f"{''.join(f', {n}' for n in self.latent_shape[1:])}), got "
                               f"{h.shape}")
        return h[:, :c], h[:, c:]

    def log_likelihood(self, x, z):
        """log p_theta(x | z) per example, under the decoder (Appendix C)."""
        out = self.decoder(z)
        if self.likelihood == "bernoulli":
            return bernoulli_log_likelihood(x, out)
        mean, logvar = F.chunk(out, 2, dim=1)
        return gaussian_log_density(x, mean, logvar)

    def _terms(self, x, eps):
        """(E_q log p(x | z) estimated with one z, KL) per example: the two terms of eq. 10."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, eps)
        return self.log_likelihood(x, z), kl_to_standard_normal(mu, logvar)

    def elbo(self, x, eps):
        """The SGVB estimate of the bound L(theta, phi; x) (eq. 10 with L = 1): -KL(q || p(z))
        + log p_theta(x | z), z = mu + sigma eps, per example; ``eps`` (batch, *latent_shape)."""
        log_px, kl = self._terms(x, eps)
        return log_px - kl

    def loss(self, x, eps):
        """The training loss: the negative bound with its KL weighted by ``beta``, averaged
        over the minibatch (nats per example). Returns (loss, reconstruction, kl), the last
        two as the minibatch means of -log p(x | z) and KL."""
        log_px, kl = self._terms(x, eps)
        rec, kl = -log_px.mean(), kl.mean()
        return rec + self.beta * kl, rec, kl

    def log_weights(self, x, eps):
        """log p(x, z_i) - log q(z_i | x) for z_i = mu + sigma eps_i: ``eps`` (k, batch,
        *latent_shape), the result a NumPy array (k, batch); one network pass over k batch rows,
        no gradient."""
        k, batch = np.shape(eps)[:2]
        with no_grad():
            mu, logvar = self.encode(x)
            xp = backend.xp_of(mu.data)
            tiled = [Tensor(xp.concatenate([t.data] * k)) for t in (mu, logvar, x)]
            mu, logvar, x = tiled
            e = np.asarray(eps, dtype=mu.dtype).reshape(k * batch, *self.latent_shape)
            z = reparameterize(mu, logvar, Tensor(backend.to_device(e, mu.device)))
            prior = Tensor(xp.zeros_like(z.data))
            w = (gaussian_log_density(z, prior, prior) + self.log_likelihood(x, z)
                 - gaussian_log_density(z, mu, logvar))
        return backend.to_numpy(w.data).astype(np.float64).reshape(k, batch)

    def iwae_bound(self, x, k, rng):
        """The k-sample importance-weighted bound L_k = E[log 1/k sum_i p(x, z_i) / q(z_i | x)]
        (Burda et al. 2016, Sec. 3), estimated per example with k draws from ``rng`` (a NumPy
        Generator); k = 1 is the ELBO, and L_k rises to log p(x) as k grows."""
        if int(k) != k or k < 1:
            raise InvalidInput(f"iwae_bound: k must be an integer >= 1, got {k!r}")
        eps = rng.standard_normal((int(k), x.shape[0], *self.latent_shape))
        return log_mean_exp(self.log_weights(x, eps), axis=0)

    def active_units(self, x, threshold=ACTIVE_THRESHOLD):
        """(count, per-unit activity): activity A_u = Cov_x(E_q[z_u | x]), the variance over
        the examples ``x`` of the posterior mean; unit u is active when A_u > ``threshold``
        (Burda et al. 2016, Sec. 5.2)."""
        with no_grad():
            mu = backend.to_numpy(self.encode(x)[0].data).astype(np.float64)
        activity = mu.reshape(len(mu), -1).var(axis=0)
        return int((activity > threshold).sum()), activity

    def decode_mean(self, z):
        """The mean of p_theta(x | z): sigmoid(logits), or the Gaussian's mean; no gradient."""
        with no_grad(), eval_mode(self.decoder):
            out = self.decoder(z)
            mean = F.sigmoid(out) if self.likelihood == "bernoulli" else F.chunk(out, 2, dim=1)[0]
        return backend.to_numpy(mean.data)

    def reconstruct(self, x):
        """The decoder's mean at the encoder's mean: x -> mu(x) -> E[x | z = mu]."""
        with no_grad(), eval_mode(self.encoder):
            mu = self.encode(x)[0]
        return self.decode_mean(mu)
