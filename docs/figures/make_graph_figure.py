"""Regenerate docs/figures/ddpm_step_graph.svg: the autograd graph of one DDPM training-step
loss (Algorithm 1) on a small time-conditioned MLP, drawn with ``mg.plot_graph``.

Run from the repository root (needs Graphviz's ``dot``):
    python docs/figures/make_graph_figure.py [output path, default docs/figures/ddpm_step_graph.svg]
"""
import pathlib
import sys

import numpy as np

import minigen as mg

FIGURE = pathlib.Path(__file__).with_name("ddpm_step_graph.svg")


def ddpm_step_graph():
    """The loss of one DDPM training step on 8 two-dimensional points and the model's named
    parameters, ready for ``mg.to_dot(loss, params=params)``."""
    mg.manual_seed(0)
    model = mg.nn.MLP(2, 2, hidden=(32, 32), time_dim=16)
    ddpm = mg.diffusion.DDPM(model, mg.diffusion.NoiseSchedule.linear(T=1000))
    x0 = np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32)
    return ddpm.loss(x0), dict(model.named_parameters())


def main(path=FIGURE):
    loss, params = ddpm_step_graph()
    print(mg.plot_graph(loss, path, verbose=True, params=params, rankdir="TB"))


if __name__ == "__main__":
    main(*sys.argv[1:])
