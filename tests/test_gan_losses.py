"""GAN losses and gradient penalties against independent formulas and finite differences."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigen as mg
import minigen.functional as F
from minigen.gan.losses import discriminator_loss, generator_loss
from minigen.gan.penalties import r1_penalty, wgan_gp_penalty
from minigen.testing import gradcheck

logits = hnp.arrays(np.float64, st.integers(1, 6), elements=st.floats(-30, 30))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))  # for |x| <= 30 both D and 1 - D = _sigmoid(-x) are exact


@given(real=logits, fake=logits, smoothing=st.sampled_from([0.0, 0.1, 0.3]))
def test_discriminator_loss_is_minus_the_value_function(real, fake, smoothing):
    # -[t log D(x) + (1 - t) log(1 - D(x))] on real, -log(1 - D(G(z))) on fake (eq. 1)
    t = 1.0 - smoothing
    expected = (-(t * np.log(_sigmoid(real)) + (1 - t) * np.log(_sigmoid(-real)))).mean() \
        - np.log(_sigmoid(-fake)).mean()
    got = discriminator_loss(mg.tensor(real), mg.tensor(fake), label_smoothing=smoothing).item()
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


@given(fake=logits)
def test_generator_losses_match_their_definitions(fake):
    minimax = np.log(_sigmoid(-fake)).mean()   # G minimises log(1 - D(G(z)))
    nonsat = -np.log(_sigmoid(fake)).mean()    # G minimises -log D(G(z))
    x = mg.tensor(fake)
    assert generator_loss(x, "minimax").item() == pytest.approx(minimax, rel=1e-9, abs=1e-12)
    assert generator_loss(x, "nonsaturating").item() == pytest.approx(nonsat, rel=1e-9, abs=1e-12)
    assert generator_loss(x, "wasserstein").item() == pytest.approx(-fake.mean())


def test_minimax_gradient_saturates_where_nonsaturating_does_not():
    # D confidently rejects the fakes (logit -10): d/dl log(1 - sigmoid(l)) = -sigmoid(l) ~ 0,
    # while d/dl -log sigmoid(l) = -(1 - sigmoid(l)) ~ -1 (the paper's motivation, sec. 3)
    for loss, expected in (("minimax", -_sigmoid(-10.0)),
                           ("nonsaturating", -(1 - _sigmoid(-10.0)))):
        x = mg.tensor([-10.0], requires_grad=True, dtype="float64")
        generator_loss(x, loss).backward()
        assert x.grad[0] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("loss", ["minimax", "nonsaturating", "wasserstein"])
def test_loss_gradients_match_finite_differences(loss):
    rng = np.random.default_rng(0)
    real, fake = rng.normal(0, 3, 5), rng.normal(0, 3, 5)
    smoothing = 0.0 if loss == "wasserstein" else 0.2
    gradcheck(lambda r, f: discriminator_loss(r, f, loss, smoothing), [real, fake])
    gradcheck(lambda f: generator_loss(f, loss), [fake])


def test_losses_reject_bad_arguments():
    x = mg.tensor([0.5])
    with pytest.raises(ValueError, match="generator_loss.*'hinge'"):
        generator_loss(x, "hinge")
    with pytest.raises(ValueError, match="label_smoothing"):
        discriminator_loss(x, x, label_smoothing=1.0)
    with pytest.raises(ValueError, match="wasserstein"):
        discriminator_loss(x, x, "wasserstein", label_smoothing=0.1)


# --- gradient penalties -------------------------------------------------------------------
def _tiny_d(w1, b1, w2, b2):
    """D(x) = w2 tanh(W1 x + b1) + b2 as a function of its parameters (smooth, so its
    second derivatives exist everywhere)."""
    return lambda x: F.linear(F.tanh(F.linear(x, w1, b1)), w2, b2)


def _tiny_params(rng, d_in=2, hidden=3):
    return [rng.normal(size=(hidden, d_in)), rng.normal(size=hidden),
            rng.normal(size=(1, hidden)), rng.normal(size=1)]


def _numpy_input_grads(params, x):
    w1, b1, w2, _ = params
    h = np.tanh(x @ w1.T + b1)
    return ((1 - h**2) * w2[0]) @ w1  # d D / d x for each row of x


def test_r1_penalty_value_matches_closed_form():
    rng = np.random.default_rng(1)
    params, x = _tiny_params(rng), rng.normal(size=(7, 2))
    d = _tiny_d(*[mg.tensor(p) for p in params])
    g = _numpy_input_grads(params, x)
    expected = 10.0 / 2 * (g**2).sum(1).mean()
    assert r1_penalty(d, mg.tensor(x), gamma=10.0).item() == pytest.approx(expected, rel=1e-10)


def test_wgan_gp_value_matches_closed_form():
    rng = np.random.default_rng(2)
    params = _tiny_params(rng)
    real, fake = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    d = _tiny_d(*[mg.tensor(p) for p in params])
    eps = np.random.default_rng(5).random((6, 1))
    x_hat = eps * real + (1 - eps) * fake
    norm = np.sqrt((_numpy_input_grads(params, x_hat) ** 2).sum(1))
    expected = 0.1 * ((norm - 1) ** 2).mean()
    got = wgan_gp_penalty(d, mg.tensor(real), mg.tensor(fake), 0.1, rng=np.random.default_rng(5))
    assert got.item() == pytest.approx(expected, rel=1e-8)


def test_r1_penalty_gradient_wrt_parameters_matches_finite_differences():
    rng = np.random.default_rng(3)
    x = mg.tensor(rng.normal(size=(5, 2)))
    gradcheck(lambda *p: r1_penalty(_tiny_d(*p), x, gamma=3.0), _tiny_params(rng))


def test_wgan_gp_gradient_wrt_parameters_matches_finite_differences():
    rng = np.random.default_rng(4)
    real, fake = mg.tensor(rng.normal(size=(5, 2))), mg.tensor(rng.normal(size=(5, 2)))
    gradcheck(lambda *p: wgan_gp_penalty(_tiny_d(*p), real, fake, 10.0,
                                         rng=np.random.default_rng(0)), _tiny_params(rng))


def test_penalty_leaves_parameter_grads_untouched_until_backward():
    rng = np.random.default_rng(6)
    params = [mg.tensor(p, requires_grad=True) for p in _tiny_params(rng)]
    pen = r1_penalty(_tiny_d(*params), mg.tensor(rng.normal(size=(4, 2))))
    assert all(p.grad is None for p in params)
    pen.backward()
    w1, b1, w2, b2 = params  # b2 shifts D but not its input gradient
    assert all(np.abs(p.grad).sum() > 0 for p in (w1, b1, w2))
    assert b2.grad is None or not np.any(b2.grad)


def test_penalties_reject_bad_arguments():
    d = _tiny_d(*[mg.tensor(p) for p in _tiny_params(np.random.default_rng(0))])
    with pytest.raises(ValueError, match="wgan_gp_penalty.*\\(3, 2\\).*\\(4, 2\\)"):
        wgan_gp_penalty(d, mg.zeros(3, 2), mg.zeros(4, 2))
    with pytest.raises(ValueError, match="r1_penalty: gamma"):
        r1_penalty(d, mg.zeros(3, 2), gamma=-1)
