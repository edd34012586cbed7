"""Variational auto-encoders (Kingma & Welling 2014): the paper in :mod:`minigen.vae.vae`,
its trainer and run files in :mod:`minigen.vae.trainer`, figures in
:mod:`minigen.vae.figures`."""
from minigen.vae.vae import (
    LIKELIHOODS, VAE, bernoulli_log_likelihood, gaussian_log_density, kl_to_standard_normal,
    log_mean_exp, reparameterize,
)

__all__ = ["VAE", "LIKELIHOODS", "reparameterize", "kl_to_standard_normal",
           "gaussian_log_density", "bernoulli_log_likelihood", "log_mean_exp"]
