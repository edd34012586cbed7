"""bench/guided2d.py's exact model of the guided 6-mode mixture: its denoiser against
Tweedie's formula on the mixture's density, and the exact network through the EDM and DDPM
samplers against the guided probability-flow ODE and eps written out here."""
import numpy as np
import pytest

from bench.guided2d import MIXTURE6, ExactNetwork, mixture_denoiser, table
from minigen.diffusion import edm
from minigen.diffusion.trainer import VECTOR_DEFAULTS, diffusion_model
from minigen.trainer import fit_normalization

K = len(MIXTURE6.modes)
NORMALIZATION = fit_normalization(MIXTURE6.sample(2000, seed=0))


def log_density(x, sigma, k=None):
    """ln p_sigma(x) in model units (up to a constant): the mixture (mode ``k`` alone when
    given) convolved with N(0, sigma^2 I)."""
    scale = np.asarray(NORMALIZATION["scale"])
    means = (MIXTURE6.modes - np.asarray(NORMALIZATION["shift"])) / scale
    var = (MIXTURE6.std / scale) ** 2 + sigma**2
    means = means if k is None else means[k:k + 1]
    terms = -0.5 * (((x[:, None] - means[None]) ** 2 / var).sum(-1) + np.log(var).sum())
    top = terms.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(terms - top).sum(axis=1, keepdims=True)))[:, 0]


@pytest.mark.parametrize("sigma", [0.05, 0.4, 3.0])
def test_mixture_denoiser_is_tweedies_formula(sigma):
    """E[x0 | x] = x + sigma^2 grad ln p_sigma(x) (Tweedie), the gradient by central
    differences, for the mixture (the null class) and each mode alone."""
    x = np.random.default_rng(1).standard_normal((50, 2)) * 1.5
    denoise, h = mixture_denoiser(MIXTURE6, NORMALIZATION), 1e-5
    for k in (K, 0, 3):
        of = None if k == K else k
        grad = np.stack([(log_density(x + h * e, sigma, of) - log_density(x - h * e, sigma, of))
                         / (2 * h) for e in np.eye(2)], axis=1)
        np.testing.assert_allclose(denoise(x, sigma, k), x + sigma**2 * grad, atol=1e-6)


def guided(denoise, label, w):
    """The guided denoiser (1 + w) D(x; sigma, y) - w D(x; sigma, null) in float32."""
    return lambda x, sigma: ((1 + w) * denoise(x, sigma, label)
                             - w * denoise(x, sigma, K)).astype(np.float32)


@pytest.mark.parametrize("sampler", ["heun", "stochastic"])
def test_guided_edm_sampling_is_the_guided_ode_at_every_stage(sampler):
    """EDM.sample with guidance on the exact network follows Algorithm 1 or 2 on the guided
    exact denoiser: guidance at both of Heun's evaluations, each at its own sigma."""
    denoise = mixture_denoiser(MIXTURE6, NORMALIZATION)
    model = diffusion_model(ExactNetwork(denoise, K), {**VECTOR_DEFAULTS, "formulation": "edm"})
    got = model.sample((64, 2), 12, sampler, seed=np.random.default_rng(3), y=2, guidance=3.0,
                       progress=False)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 2), dtype=np.float32) * np.float32(edm.SIGMA_MAX)
    sigmas, step = edm.sigma_steps(12), guided(denoise, 2, 3.0)
    want = (edm.heun_sampler(step, x, sigmas) if sampler == "heun"
            else edm.stochastic_sampler(step, x, sigmas, rng))
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())


def test_exact_eps_network_predicts_the_exact_denoisers_x0():
    """Through the DDPM's eps-prediction (eq. 15), the exact network's x0_hat at x_t is
    D(x_t / sqrt(abar_t); sqrt(1 - abar_t) / sqrt(abar_t))."""
    denoise = mixture_denoiser(MIXTURE6, NORMALIZATION)
    ddpm = diffusion_model(None, VECTOR_DEFAULTS)
    ddpm.model = ExactNetwork(denoise, K, ddpm.schedule)
    x_t = np.random.default_rng(4).standard_normal((20, 2)).astype(np.float32)
    for t in (0, 300, 999):
        ts = np.full(20, t)
        abar = ddpm.schedule.alphas_cumprod[t]
        want = denoise(x_t / np.sqrt(abar), np.sqrt((1 - abar) / abar), 4)
        np.testing.assert_allclose(ddpm.predict_x0(x_t, ts, ddpm.model_output(x_t, ts, 4)),
                                   want, rtol=1e-4, atol=1e-4)


def test_table_gives_mean_and_standard_error_over_seeds_with_network_evaluations():
    records = [{"model": "EDM", "sampler": "heun:18", "seed": s, "worst": w, "mean": m}
               for s, w, m in ((0, 0.7, 0.9), (1, 0.8, 0.95))]
    records.append({"model": "DDPM", "sampler": "ddpm", "seed": 0, "worst": 0.99, "mean": 1.0})
    rows = table(records).splitlines()[2:]
    assert rows == ["| DDPM | ddpm | 1000 | 99.0 | 100.0 | 1 |",
                    "| EDM | heun:18 | 35 | 75.0 ± 5.0 | 92.5 ± 2.5 | 2 |"]
