"""Classifier-free guidance on an array condition (a caption's token ids): the same
``classifier_free_guidance`` as for class labels, one batched network call of the
conditional and the null rows, checked against two separate calls."""
import numpy as np
import pytest

from minigen.diffusion import DDPM, NoiseSchedule
from minigen.errors import InvalidInput


class TokenModel:
    """eps(x_t, t, y) = x_t * (1 + sum of the token ids) / 10 + t / 1000; counts its calls."""

    null_condition = np.array([0, 0, 0])

    def __init__(self):
        self.calls = []

    def parameters(self):
        return []

    def eval(self):
        return self

    train = eval
    training = False

    def __call__(self, x, t, y=None):
        y = np.broadcast_to(self.null_condition, (len(x.data), 3)) if y is None else y
        self.calls.append(np.array(y))
        scale = (1 + y.sum(axis=1)).reshape(-1, 1) / 10
        return x.data * scale + np.asarray(t).reshape(-1, 1) / 1000


def test_guidance_on_token_ids_is_one_batched_call_of_eq_6():
    model = TokenModel()
    ddpm = DDPM(model, NoiseSchedule.cosine(10))
    x, t = np.random.default_rng(0).standard_normal((2, 4)), np.array([3, 7])
    y = np.array([[1, 2, 0], [4, 0, 0]])
    guided = ddpm.model_output(x, t, y, guidance=2.0)
    assert len(model.calls) == 1
    np.testing.assert_array_equal(model.calls[0], [[1, 2, 0], [4, 0, 0], [0, 0, 0], [0, 0, 0]])
    conditional, null = ddpm.model_output(x, t, y), ddpm.model_output(x, t)
    np.testing.assert_allclose(guided, 3 * conditional - 2 * null, atol=1e-12)


def test_one_caption_is_broadcast_and_bad_conditions_are_refused():
    model = TokenModel()
    ddpm = DDPM(model, NoiseSchedule.cosine(10))
    x = np.ones((2, 4))
    np.testing.assert_allclose(ddpm.model_output(x, 0, np.array([1, 1, 0])),
                               ddpm.model_output(x, 0, np.array([[1, 1, 0], [1, 1, 0]])))
    with pytest.raises(InvalidInput, match=r"conditions y must have shape \(2, 3\)"):
        ddpm.model_output(x, 0, np.zeros((2, 4), dtype=int))
    with pytest.raises(TypeError, match="conditions y must be integers"):
        ddpm.model_output(x, 0, np.zeros((2, 3)))
