"""Classifier guidance (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs on Image
Synthesis", Sec. 4): a classifier p_phi(y | x_t, t) trained on noisy data steers the reverse
process of a trained :class:`~minigen.diffusion.ddpm.DDPM` toward a class y, with a scale s.

Algorithm 1, the guided ancestral step (their eq. 10 and Sec. 4.1): with (mu, Sigma) the
reverse step's mean and variance at x_t,

    x_{t-1} ~ N(mu + s Sigma grad_{x_t} log p_phi(y | x_t), Sigma);

Algorithm 2, guided DDIM (Sec. 4.2, eq. 14): the score of the guided model is the
network's plus s times the classifier's, and eps = -sqrt(1 - abar_t) score, so

    eps_hat(x_t) = eps_theta(x_t) - s sqrt(1 - abar_t) grad_{x_t} log p_phi(y | x_t),

and DDIM (eta = 0) runs on eps_hat. Any sampler that reads the network's noise prediction
does the same with it, so DPM-Solver++ is guided through eps_hat too (:func:`guided_ddpm`).

With s = 1 both sample p(x | y) = p(x) p(y | x) / p(y) when the denoiser and the classifier
are exact; s > 1 samples (approximately) the sharper p(x) p(y | x)^s, their Sec. 4.3.

    >>> import numpy as np
    >>> guided_eps(np.zeros(2), 0.75, np.array([1.0, -2.0]), 2.0)   # eps - s sqrt(1-abar) g
    array([-1.,  2.])
"""
import numpy as np
from tqdm.auto import tqdm

from minigen import backend
from minigen import functional as F
from minigen.diffusion import inputs
from minigen.diffusion.ddpm import DDPM
from minigen.errors import InvalidInput
from minigen.nn.module import Module, eval_mode
from minigen.tensor import Tensor, enable_grad, grad, no_grad

SAMPLERS = ("ddpm", "ddim", "dpm++2m", "dpm++2m-sde")


def log_prob_grad(classifier, x, t, y):
    """grad_{x_t} log p_phi(y | x_t, t): ``classifier(x_t, t)`` returns the logits (batch, K),
    ``y`` the (batch,) classes; the log-softmax of each row's class, differentiated with
    :func:`minigen.grad` with respect to x_t (a raw array; the gradient has its shape). The
    rows are summed before differentiating: each row's term depends on that row alone."""
    x = inputs.raw(x)
    rows = np.arange(len(x))
    with enable_grad(), eval_mode(classifier):
        xt = Tensor(x.copy(), requires_grad=True)
        log_probs = F.log_softmax(classifier(xt, t), axis=1)
        return grad(log_probs[rows, backend.to_numpy(y)].sum(), xt).data


def guided_mean(mean, variance, gradient, scale):
    """Algorithm 1's mean: mu + s Sigma grad log p_phi(y | x_t)."""
    return mean + mean.dtype.type(scale) * variance * gradient


def guided_eps(eps, abar, gradient, scale):
    """Algorithm 2's noise prediction: eps - s sqrt(1 - abar_t) grad log p_phi(y | x_t)."""
    return eps - np.asarray(scale * np.sqrt(1.0 - abar), dtype=eps.dtype) * gradient


class GuidedEps(Module):
    """eps_hat(x_t, t) of Algorithm 2 as a network: ``ddpm``'s noise prediction (from its
    output, any ``prediction``, with labels ``model_y`` and classifier-free ``guidance`` of a
    conditional model) shifted by the classifier's gradient toward ``y`` with scale ``scale``."""

    def __init__(self, ddpm, classifier, y, scale, model_y=None, guidance=0.0):
        self.model, self.classifier = ddpm.model, classifier
        self._ddpm, self._y, self._scale = ddpm, y, scale
        self._model_y, self._guidance = model_y, guidance

    def forward(self, x, t):
        ddpm, raw = self._ddpm, x.data
        with no_grad():
            out = ddpm.model_output(raw, t, self._model_y, self._guidance)
            eps = ddpm.predict_eps(raw, t, ddpm.predict_x0(raw, t, out))
        abar = _column(ddpm.schedule.alphas_cumprod[t], raw)
        y = np.broadcast_to(self._y, (len(raw),))
        return Tensor(guided_eps(eps, abar, log_prob_grad(self.classifier, raw, t, y),
                                 self._scale))


def guided_ddpm(ddpm, classifier, y, scale, model_y=None, guidance=0.0):
    """A DDPM with ``ddpm``'s schedule, variance and clipping whose network is Algorithm 2's
    eps_hat (:class:`GuidedEps`): its ``ddim_sample`` is Algorithm 2, and its
    ``dpm_solver_sample`` DPM-Solver++ on the same guided noise prediction."""
    return DDPM(GuidedEps(ddpm, classifier, y, scale, model_y, guidance), ddpm.schedule,
                ddpm.variance, ddpm.clip_x0, prediction="eps")


def guided_p_sample(ddpm, classifier, x, t, y, scale, noise, model_y=None, guidance=0.0):
    """Algorithm 1, one step x_t -> x_{t-1} (code timesteps ``t``, (batch,)): the reverse
    step's mean and variance (:meth:`DDPM.p_mean_variance`), the mean shifted by
    :func:`guided_mean`, plus sigma_t ``noise`` (0 at the last step, code t == 0)."""
    with no_grad():
        out = ddpm.model_output(x, t, model_y, guidance)
        mean, variance, _ = ddpm.p_mean_variance(x, t, out)
    mean = guided_mean(mean, variance, log_prob_grad(classifier, x, t, y), scale)
    return mean + variance ** 0.5 * noise * _column(t > 0, x)


def classifier_guided_sample(ddpm, classifier, shape, y, scale=1.0, sampler="ddpm", steps=None,
                             eta=0.0, seed=None, progress=False, model_y=None, guidance=0.0,
                             dtype=None, x_T=None):
    """Samples of ``ddpm`` guided toward the class(es) ``y`` (an int or (batch,) ints in
    0..K-1 of ``classifier``, whose logits are (batch, K)) with scale ``scale`` >= 0:
    ``sampler`` "ddpm" runs Algorithm 1 over all T steps; "ddim" (``steps``, default 50,
    ``eta``) runs Algorithm 2; "dpm++2m" and "dpm++2m-sde" (``steps``, default 20) run
    DPM-Solver++ on Algorithm 2's eps_hat. ``model_y`` and ``guidance``: labels and
    classifier-free guidance of a conditional ``ddpm`` (None: the null class, i.e. the
    unconditional model). ``shape``, ``seed``, ``dtype``, ``x_T`` as in :meth:`DDPM.sample`.
    Returns a raw array of ``shape``."""
    inputs.choice(sampler, SAMPLERS, "sampler", "classifier_guided_sample")
    if not (np.isfinite(scale) and scale >= 0):
        raise InvalidInput(f"classifier_guided_sample: scale must be a number >= 0, got {scale!r}")
    y = _classes(y, shape[0])
    if sampler != "ddpm":
        guided = guided_ddpm(ddpm, classifier, y, scale, model_y, guidance)
        if sampler == "ddim":
            return guided.ddim_sample(shape, 50 if steps is None else steps, eta=eta,
                                      seed=seed, progress=progress, dtype=dtype, x_T=x_T)
        return guided.dpm_solver_sample(shape, 20 if steps is None else steps, seed=seed,
                                        progress=progress, dtype=dtype, x_T=x_T,
                                        sde=sampler == "dpm++2m-sde")
    x, rng, _ = inputs.start(ddpm, shape, seed, dtype, False, x_T, model_y, guidance,
                             "classifier_guided_sample")
    with eval_mode(ddpm.model):
        for i in tqdm(range(ddpm.schedule.T - 1, -1, -1), desc="classifier-guided sampling",
                      disable=not progress, leave=False):
            z = rng.standard_normal(x.shape, dtype=x.dtype)
            x = guided_p_sample(ddpm, classifier, x, np.full(len(x), i, dtype=np.int64), y,
                                scale, z, model_y, guidance)
    return x


def _classes(y, batch):
    """``y`` as (batch,) int64 host classes (an int is broadcast)."""
    y = np.asarray(backend.to_numpy(inputs.raw(y)))
    if y.dtype.kind not in "iu" or y.ndim > 1 or (y.ndim == 1 and len(y) != batch):
        raise InvalidInput(f"classifier_guided_sample: y must be an int or {batch} integers, got "
                           f"dtype {y.dtype} and shape {y.shape}")
    if y.size and y.min() < 0:
        raise InvalidInput(f"classifier_guided_sample: classes y must be >= 0, got {y.min()}")
    return np.broadcast_to(y, (batch,)).astype(np.int64)


def _column(values, like):
    """(batch,) host values as like's dtype and device, shaped (batch, 1, ..., 1)."""
    values = backend.to_device(np.asarray(values).astype(like.dtype), backend.device_of(like))
    return values.reshape((-1,) + (1,) * (like.ndim - 1))
