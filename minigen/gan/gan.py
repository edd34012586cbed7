"""The GAN game of Goodfellow et al. 2014, one method per step of their Algorithm 1.

    for number of training iterations do                      GAN.iteration
        for k steps do                                            (k = options["k"])
            sample m noise samples z ~ p_g(z)                     GAN.noise
            sample m examples x ~ p_data(x)                       GAN.real_batch
            ascend  1/m sum [log D(x) + log(1 - D(G(z)))]         GAN.d_step
        sample m noise samples z ~ p_g(z)
        descend 1/m sum log(1 - D(G(z)))                          GAN.g_step

Losses are computed from D's logits (:mod:`minigen.gan.losses`): "minimax" is the update
as printed, "nonsaturating" the ascent of log D(G(z)) the paper recommends for early
training, "wasserstein" the critic of Arjovsky et al. 2017. What later work added is off
unless asked for: a gradient ``penalty`` (R1, WGAN-GP), PacGAN ``pack``ing, one-sided
``label_smoothing``, ``input_scale`` (D's first layer sees standardised data times this
factor), and top-k generator updates (``keep`` < 1: G's loss uses only the fakes D rates
most real; Sinha et al. 2020). ``simultaneous_step`` is the other common scheme: both
gradients taken at the same (G, D), then both networks step.

All draws (real indices, noise, WGAN-GP mixing weights) go through a
:class:`minigen.minibatch.Minibatch`, which draws from minigen's CPU generator, and each
network's optimizer steps through it; with several processes training together it keeps
this process's rows of each minibatch of m and sums the gradients over the processes, so the
code below is Algorithm 1 for any number of them (top-k chooses over the whole minibatch:
``Minibatch.best``). A generator with BatchNorm (DCGAN) normalises each process's rows by
their own statistics, so image GANs on several processes match one process only
approximately.
"""
import contextlib

import numpy as np

from minigen import backend
from minigen.errors import InvalidInput
from minigen.gan.losses import discriminator_loss, generator_loss
from minigen.gan.models import pack, with_labels
from minigen.gan.penalties import r1_penalty, wgan_gp_penalty
from minigen.minibatch import Minibatch
from minigen.tensor import Tensor, grad, no_grad

NOISES = ("uniform", "normal")


def noise_prior(n, latent_dim, noise, rng):
    """n draws of z (n, latent_dim) float32: U[-1, 1] ("uniform", Goodfellow et al. 2014)
    or N(0, I) ("normal"). ``rng`` is a ``numpy.random.Generator``."""
    if noise == "uniform":
        z = rng.uniform(-1.0, 1.0, size=(n, latent_dim))
    elif noise == "normal":
        z = rng.standard_normal((n, latent_dim))
    else:
        raise InvalidInput(f"noise_prior: noise must be one of {NOISES}, got {noise!r}")
    return z.astype(np.float32)


def truncate(z, psi, noise, rng):
    """The truncation trick (Brock et al. 2019, BigGAN, Sec. 3.1): every coordinate of ``z``
    with |z_i| > ``psi`` is redrawn from the ``noise`` prior (``rng`` a
    ``numpy.random.Generator``) until none is, so z follows the prior truncated to
    [-psi, psi]^d (a truncated normal for the normal prior). Small psi draws G's inputs near
    the prior's centre: higher fidelity, less variety, the GAN's fidelity-diversity knob."""
    if not (np.isfinite(psi) and psi > 0):
        raise InvalidInput(f"truncate: psi must be a number > 0, got {psi!r}")
    z = np.array(z, copy=True)
    outside = np.abs(z) > psi
    while outside.any():
        z[outside] = noise_prior(int(outside.sum()), 1, noise, rng)[:, 0]
        outside = np.abs(z) > psi
    return z


class GAN:
    """Generator G, discriminator D, their optimizers and the (standardised, float32) ``data``
    on the host; ``options`` holds k, loss, simultaneous, batch_size (m), latent_dim, noise,
    label_smoothing, penalty, penalty_weight, pack and input_scale (see the module
    docstring). ``keep`` is the fraction of fakes in G's loss (1: all, Algorithm 1).
    ``minibatch``: how minibatches of m are drawn and the optimizers stepped (default
    ``Minibatch(m, pack)``: this process's rows, see :mod:`minigen.minibatch`).

    ``labels`` ((n,) ints 0..K-1, one per row of ``data``): the class-conditional GAN of
    Mirza & Osindero 2014. G maps [z, y] to x, D rates [x, y] (:func:`with_labels`); real
    pairs come from the data, fake ones take labels drawn from the data's labels."""

    def __init__(self, generator, discriminator, g_optimizer, d_optimizer, data, options,
                 device="cpu", minibatch=None, labels=None):
        self.generator, self.discriminator = generator, discriminator
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.data, self.options, self.device = data, options, device
        self.minibatch = minibatch or Minibatch(options["batch_size"], options["pack"])
        self.keep = 1.0
        self.labels = labels
        self.num_classes = None if labels is None else int(labels.max()) + 1

    # --- the two distributions Algorithm 1 samples ----------------------------------------
    def noise(self, m):
        """m noise samples z ~ p_g(z)."""
        o = self.options
        z = noise_prior(m, o["latent_dim"], o["noise"], self.minibatch)
        return Tensor(backend.to_device(z, self.device))

    def real_batch(self, m):
        """m examples x ~ p_data(x), drawn with replacement (any data set size works); with
        labels, the pairs [x, y] ~ p_data(x, y)."""
        index = self.minibatch.integers(len(self.data), size=m)
        x = Tensor(backend.to_device(self.data[index], self.device))
        return x if self.labels is None else with_labels(x, self.labels[index], self.num_classes)

    def generate(self, z, y=None):
        """G(z), or with labels the pairs [G([z, y]), y]: what D rates as fake."""
        if self.labels is None:
            return self.generator(z)
        return with_labels(self.generator(with_labels(z, y, self.num_classes)), y,
                           self.num_classes)

    def fake_batch(self, m):
        """m fakes from fresh noise (with labels: labels drawn from the data's, then noise)."""
        y = None if self.labels is None else self.labels[
            self.minibatch.integers(len(self.labels), size=m)]
        return self.generate(self.noise(m), y)

    def critic(self, packed):
        """D's logits on packed, standardised inputs, magnified by ``input_scale``."""
        scale = self.options["input_scale"]
        return self.discriminator(packed if scale == 1 else packed * scale)

    def D(self, x):
        """D's logits of a batch, packed PacGAN-style (pack = 1: one logit per sample)."""
        return self.critic(pack(x, self.options["pack"]))

    # --- Algorithm 1 ---------------------------------------------------------------------
    def iteration(self):
        """One training iteration: k updates of D, then one of G (or one simultaneous
        update). Returns the metrics of the last D update and of G's."""
        if self.options["simultaneous"]:
            return self.simultaneous_step()
        for _ in range(self.options["k"]):
            metrics = self.d_step()
        return {**metrics, **self.g_step()}

    def d_step(self):
        """Ascend V(D, G) on m real examples and m samples G(z) (D's loss is -V)."""
        m = self.options["batch_size"]
        real = self.real_batch(m)
        with no_grad():
            fake = self.fake_batch(m)
        objective, metrics = self._d_objective(real, fake)
        self.d_optimizer.zero_grad()
        objective.backward()
        self.minibatch.step(self.d_optimizer, self.discriminator)
        return self.minibatch.mean(metrics)

    def g_step(self):
        """Descend G's loss on m fresh noise samples, D held fixed."""
        fake = self.fake_batch(self.options["batch_size"])
        with _frozen(self.discriminator):
            loss = self._generator_loss(fake)
        self.g_optimizer.zero_grad()
        loss.backward()
        self.minibatch.step(self.g_optimizer, self.generator)
        return self.minibatch.mean({"g_loss": loss.item()})

    def simultaneous_step(self):
        """Both gradients at the current (G, D), then both updates."""
        m = self.options["batch_size"]
        real = self.real_batch(m)
        fake = self.fake_batch(m)
        d_objective, metrics = self._d_objective(real, fake)
        _set_gradients(d_objective, self.discriminator)
        self.minibatch.reduce(self.discriminator)
        metrics = self.minibatch.mean(metrics)
        g_loss = self._generator_loss(fake)
        _set_gradients(g_loss, self.generator)
        self.minibatch.reduce(self.generator)
        self.d_optimizer.step()
        self.g_optimizer.step()
        return {**metrics, **self.minibatch.mean({"g_loss": g_loss.item()})}

    # --- the two objectives --------------------------------------------------------------
    def _d_objective(self, real, fake):
        """D's loss on m real + m fake samples, plus its penalty (on packed inputs)."""
        o = self.options
        real_logits, fake_logits = self.D(real), self.D(fake)
        loss = discriminator_loss(real_logits, fake_logits, o["loss"], o["label_smoothing"])
        metrics = {"d_loss": loss.item(), **self._d_outputs(real_logits, fake_logits)}
        if o["penalty"] == "r1":
            penalty = r1_penalty(self.critic, pack(real, o["pack"]), o["penalty_weight"])
        elif o["penalty"] == "wgan-gp":  # one mixing weight per pack
            eps = self.minibatch.random((o["batch_size"],) + (1,) * (real.ndim - 1))
            penalty = wgan_gp_penalty(self.critic, pack(real, o["pack"]),
                                      pack(fake.detach(), o["pack"]), o["penalty_weight"],
                                      eps=eps[::o["pack"]])
        else:
            return loss, metrics
        metrics["penalty"] = penalty.item()
        return loss + penalty, metrics

    def _d_outputs(self, real_logits, fake_logits):
        """Mean D(x) on real and fake samples (the mean critic score for "wasserstein")."""
        if self.options["loss"] == "wasserstein":
            return {"d_real": float(real_logits.numpy().mean()),
                    "d_fake": float(fake_logits.numpy().mean())}
        return {"d_real": float(sigmoid(real_logits.numpy()).mean()),
                "d_fake": float(sigmoid(fake_logits.numpy()).mean())}

    def _generator_loss(self, fake):
        """G's loss on the ``keep`` fraction of the fakes (in packs) that D rates most real."""
        logits = self.D(fake)
        packs = self.options["batch_size"] // self.options["pack"]
        k = max(1, int(self.keep * packs))
        if k < packs:
            logits = logits[self.minibatch.best(logits.data[:, 0], k)]
        return generator_loss(logits, self.options["loss"])


def sigmoid(logits):
    """D(x) from D's logits, in float64 (exact to the last bit near 0 and 1)."""
    return 0.5 * np.tanh(0.5 * logits.astype(np.float64)) + 0.5


@contextlib.contextmanager
def _frozen(module):
    """D's parameters stop requiring grad during G's update: no wasted weight gradients."""
    params = module.parameters()
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad = False
    try:
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad = f


def _set_gradients(loss, model):
    """``model``'s parameter gradients of ``loss`` (and of nothing else in its graph)."""
    params = model.parameters()
    for p, g in zip(params, grad(loss, params, allow_unused=True)):
        p.grad = None if g is None else g.data
