"""The VAE's equations (minigen.vae.vae) against independent formulas: the closed-form KL
against Monte Carlo, the bounds on probabilistic PCA (whose log p(x) is analytic), gradients
through the reparameterisation against finite differences."""
import numpy as np
import pytest

import minigen.functional as F
from minigen.tensor import Tensor
from minigen.testing import gradcheck
from minigen.vae import (
    VAE, bernoulli_log_likelihood, kl_to_standard_normal, log_mean_exp, reparameterize,
)


def test_closed_form_kl_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mu, logvar = np.array([[1.0, -0.5, 0.3]]), np.array([[-1.0, 0.5, 0.2]])
    closed = kl_to_standard_normal(Tensor(mu), Tensor(logvar)).numpy()[0]
    sigma = np.exp(0.5 * logvar)
    z = mu + sigma * rng.standard_normal((100_000, 3))
    log_q = (-0.5 * (np.log(2 * np.pi) + logvar + ((z - mu) / sigma) ** 2)).sum(1)
    log_p = (-0.5 * (np.log(2 * np.pi) + z ** 2)).sum(1)
    assert closed > 0.5
    assert abs(closed - (log_q - log_p).mean()) < 0.01 * closed


def test_kl_is_zero_only_at_the_prior():
    zero = np.zeros((2, 4))
    assert np.allclose(kl_to_standard_normal(Tensor(zero), Tensor(zero)).numpy(), 0)
    assert (kl_to_standard_normal(Tensor(zero + 0.1), Tensor(zero)).numpy() > 0).all()


def test_log_mean_exp_is_stable():
    a = np.array([[1000.0, -1000.0], [1000.0 + np.log(3), -1000.0]])
    assert np.allclose(log_mean_exp(a, axis=0), [1000.0 + np.log(2), -1000.0])
    assert log_mean_exp(np.array([-np.inf, 0.0])) == pytest.approx(np.log(0.5))


def test_bernoulli_log_likelihood_matches_its_formula():
    rng = np.random.default_rng(1)
    x, logits = rng.random((3, 5)), rng.normal(0, 30, (3, 5))
    y = 1 / (1 + np.exp(-logits))
    with np.errstate(divide="ignore"):
        expected = np.where(x > 0, x * np.log(y), 0) + np.where(x < 1, (1 - x) * np.log1p(-y), 0)
    got = bernoulli_log_likelihood(Tensor(x), Tensor(logits)).numpy()
    finite = np.isfinite(expected.sum(1))
    assert np.isfinite(got).all()
    assert np.allclose(got[finite], expected.sum(1)[finite], rtol=1e-6)


# --- probabilistic PCA: x = W z + b + noise, z ~ N(0, I), noise ~ N(0, s2 I) -----------------

D, LATENT, S2 = 5, 2, 0.3


def _ppca(seed=0):
    """W with orthogonal columns, so that the exact posterior is diagonal (a Gaussian
    encoder can represent it)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((D, LATENT)))
    w = q * np.array([2.0, 0.7])
    b = rng.normal(0, 1, D)
    cov = w @ w.T + S2 * np.eye(D)
    x = rng.multivariate_normal(b, cov, size=200)
    _, logdet = np.linalg.slogdet(cov)
    r = x - b
    log_px = -0.5 * (D * np.log(2 * np.pi) + logdet + np.einsum("ni,ij,nj->n", r, np.linalg.inv(cov), r))
    return w, b, x, log_px


def _ppca_vae(w, b, mean_scale=1.0, logvar_shift=0.0):
    """The pPCA decoder and its exact-posterior encoder (M = W^T W + s2 I: mean M^-1 W^T
    (x - b), variance s2 M^-1), optionally spoiled by scaling the mean and shifting the
    log-variance."""
    m = np.diag(w.T @ w) + S2
    proj = w / m * mean_scale
    logvar = np.log(S2 / m) + logvar_shift

    def encoder(x):
        ones = Tensor(np.ones((x.shape[0], 1)))
        return F.cat([(x - Tensor(b)) @ Tensor(proj), ones @ Tensor(logvar[None])], axis=1)

    def decoder(z):
        ones = Tensor(np.ones((z.shape[0], 1)))
        return F.cat([z @ Tensor(w.T) + Tensor(b), ones @ Tensor(np.full((1, D), np.log(S2)))],
                     axis=1)

    return VAE(encoder, decoder, LATENT, likelihood="gaussian")


def test_exact_posterior_makes_the_elbo_exact():
    """With q = p(z | x), log p(x, z) - log q(z | x) = log p(x) for every z: every bound
    equals log p(x), and eq. 10 (analytic KL, one z) is unbiased for it."""
    w, b, x, log_px = _ppca()
    vae = _ppca_vae(w, b)
    eps = np.random.default_rng(0).standard_normal((7, len(x), LATENT))
    assert np.allclose(vae.log_weights(Tensor(x), eps), log_px, atol=1e-9)
    assert np.allclose(vae.iwae_bound(Tensor(x), 3, np.random.default_rng(1)), log_px, atol=1e-9)
    many = np.random.default_rng(2).standard_normal((2000, LATENT))
    one = Tensor(x[:1].repeat(len(many), axis=0))
    assert vae.elbo(one, Tensor(many)).numpy().mean() == pytest.approx(log_px[0], abs=0.02)


def test_iwae_bounds_order_and_tighten_with_k():
    w, b, x, log_px = _ppca()
    vae = _ppca_vae(w, b, mean_scale=0.6, logvar_shift=1.0)
    rng = np.random.default_rng(0)
    bounds = {k: vae.iwae_bound(Tensor(x), k, rng).mean() for k in (1, 5, 50, 5000)}
    exact = log_px.mean()
    tiled = Tensor(np.tile(x, (20, 1)))  # L_1 is the ELBO: both averaged over 20 draws
    elbo = vae.elbo(tiled, Tensor(rng.standard_normal((tiled.shape[0], LATENT)))).numpy()
    assert abs(elbo.mean() - vae.iwae_bound(tiled, 1, rng).mean()) < 0.2
    assert bounds[1] + 0.1 < bounds[5] < bounds[50] < bounds[5000] <= exact
    assert bounds[1] < exact - 0.5  # the spoiled encoder leaves a gap ...
    assert exact - bounds[5000] < 0.05  # ... that many importance samples close


def test_active_units_count_the_latents_the_encoder_uses():
    w, b, x, _ = _ppca()
    assert _ppca_vae(w, b).active_units(Tensor(x))[0] == LATENT
    assert _ppca_vae(w, b, mean_scale=1e-3).active_units(Tensor(x))[0] == 0


def test_gradients_through_the_reparameterisation():
    rng = np.random.default_rng(0)
    x = rng.random((3, 4))
    eps = Tensor(rng.standard_normal((3, 2)))
    w_dec = Tensor(rng.normal(0, 1, (2, 4)))

    def elbo(w_enc, mu_offset):
        vae = VAE(lambda v: v @ w_enc + mu_offset, lambda z: z @ w_dec, 2)
        return vae.elbo(Tensor(x), eps)

    assert gradcheck(elbo, [rng.normal(0, 0.5, (4, 4)), rng.normal(0, 0.5, (1, 4))])
    assert gradcheck(lambda mu, lv: reparameterize(mu, lv, eps),
                     [rng.normal(0, 1, (3, 2)), rng.normal(0, 1, (3, 2))])


def test_vae_refuses_bad_arguments():
    from minigen.errors import InvalidInput

    with pytest.raises(InvalidInput, match="likelihood"):
        VAE(None, None, 2, likelihood="poisson")
    with pytest.raises(InvalidInput, match="latent_shape"):
        VAE(None, None, 0)
    with pytest.raises(InvalidInput, match="encoder must return"):
        VAE(lambda v: v, None, 3).encode(Tensor(np.zeros((2, 4))))
