"""GAN losses, all computed from the discriminator's logits (never from D = sigmoid(logit)).

With D(x) = sigmoid(l(x)) the logs of the value function V(D, G) of Goodfellow et al. 2014
(eq. 1) are softplus expressions that stay finite for any logit:

    log D(x)     = log sigmoid(l)  = -softplus(-l)
    log(1 - D(x)) = log sigmoid(-l) = -softplus(l)

The discriminator maximises V, i.e. minimises the binary cross-entropy of real samples
against label 1 and of fake samples against label 0. The generator either minimises
log(1 - D(G(z))) = -softplus(l) ("minimax", the game of eq. 1, whose gradient vanishes when
D confidently rejects the fakes) or maximises log D(G(z)), i.e. minimises softplus(-l)
("nonsaturating", the paper's own fix, sec. 3). "wasserstein" is the critic/generator pair
of WGAN (Arjovsky et al. 2017, eq. 3), meant to be used with the WGAN-GP penalty.
"""
from minigen import backend
from minigen import functional as F
from minigen.errors import InvalidInput
from minigen.tensor import Tensor

LOSSES = ("minimax", "nonsaturating", "wasserstein")


def _full_like(t, value):
    xp = backend.xp_of(t.data)
    return Tensor(xp.full(t.shape, value, dtype=t.dtype))


def _check_loss(fn, loss):
    if loss not in LOSSES:
        raise InvalidInput(f"{fn}: loss must be one of {', '.join(LOSSES)}, got {loss!r}")


def _check_smoothing(fn, label_smoothing):
    if not 0.0 <= label_smoothing < 1.0:
        raise InvalidInput(f"{fn}: label_smoothing must be in [0, 1), got {label_smoothing}")


def discriminator_loss(real_logits, fake_logits, loss="nonsaturating", label_smoothing=0.0):
    """The discriminator's loss on a batch: -V(D, G) estimated on m real and m fake samples.

    For "minimax" and "nonsaturating" (the same discriminator objective):
    mean BCE(l_real, 1 - label_smoothing) + mean BCE(l_fake, 0). One-sided label smoothing
    (Salimans et al. 2016, sec. 3.4) softens only the real targets, to 1 - label_smoothing.
    For "wasserstein": mean l_fake - mean l_real (the critic's output is a score, not a
    logit; label smoothing does not apply).
    """
    fn = "discriminator_loss"
    _check_loss(fn, loss)
    _check_smoothing(fn, label_smoothing)
    if loss == "wasserstein":
        if label_smoothing:
            raise InvalidInput(f"{fn}: label_smoothing does not apply to the wasserstein loss")
        return fake_logits.mean() - real_logits.mean()
    real_target = _full_like(real_logits, 1.0 - label_smoothing)
    fake_target = _full_like(fake_logits, 0.0)
    return (F.binary_cross_entropy_with_logits(real_logits, real_target)
            + F.binary_cross_entropy_with_logits(fake_logits, fake_target))


def generator_loss(fake_logits, loss="nonsaturating"):
    """The generator's loss on D's logits of m fake samples G(z).

    "minimax": mean log(1 - D(G(z))) = -mean softplus(l)      (eq. 1, G's side)
    "nonsaturating": -mean log D(G(z)) = mean softplus(-l)     (sec. 3)
    "wasserstein": -mean l                                      (Arjovsky et al. 2017)
    """
    _check_loss("generator_loss", loss)
    if loss == "minimax":
        return -F.softplus(fake_logits).mean()
    if loss == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    return -fake_logits.mean()
