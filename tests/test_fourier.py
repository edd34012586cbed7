"""Fourier features of the input (Tancik et al. 2020) and the MLP option that uses them."""
import numpy as np
import pytest

import minigen as mg
from minigen import nn

F64 = np.float64


def test_features_follow_the_formula():
    x = np.array([[0.3, -1.2], [2.0, 0.5]])
    out = nn.FourierFeatures(3, dtype=F64)(mg.tensor(x, dtype=F64)).data
    args = [x[:, i] * 2.0**k for i in range(2) for k in range(3)]  # coordinate-major
    expected = np.column_stack([x] + [np.sin(a) for a in args] + [np.cos(a) for a in args])
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert nn.FourierFeatures(3).out_features(2) == 14


def test_mlp_with_fourier_features_trains_and_round_trips_its_config():
    mlp = nn.MLP(2, 2, hidden=(8, 8), time_dim=4, fourier_features=3, dtype=F64)
    assert mlp.layers[0].weight.shape == (8, 2 * 7 + 4)  # x, 12 features, time embedding
    x, t = np.random.default_rng(0).standard_normal((5, 2)), np.arange(5)
    clone = nn.build_model("MLP", mlp.config)
    clone.load_state_dict(mlp.state_dict())
    np.testing.assert_array_equal(clone(mg.tensor(x, dtype=F64), t).data,
                                  mlp(mg.tensor(x, dtype=F64), t).data)
    mlp(mg.tensor(x, dtype=F64), t).sum().backward()  # the features' weights learn
    assert np.abs(mlp.layers[0].weight.grad[:, 2:14]).max() > 0


def test_fourier_features_reject_bad_input():
    with pytest.raises(ValueError, match="num_frequencies"):
        nn.FourierFeatures(0)
    with pytest.raises(ValueError, match="requires a gradient"):
        nn.FourierFeatures(2)(mg.tensor(np.zeros((2, 2)), requires_grad=True))
