"""RMSprop, Adagrad, Adadelta, ``param_groups`` and the ``lr_scheduler`` family against PyTorch
(skipped without it), plus the rules that hold without an oracle."""
import math

import numpy as np
import pytest

import minigen as mg
from minigen import optim
from minigen.optim import lr_scheduler

OPTIMIZERS = [
    ("RMSprop", {}),
    ("RMSprop", {"momentum": 0.9, "centered": True, "weight_decay": 0.1}),
    ("Adagrad", {}),
    ("Adagrad", {"lr_decay": 0.1, "initial_accumulator_value": 0.5, "weight_decay": 0.1}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "weight_decay": 0.1}),
]


def _quadratic_steps(make_opt, params, steps, backend):
    """Minimise sum((p - 1)^2 * scale) for ``steps`` steps; returns the parameter values."""
    opt = make_opt(params)
    scale = np.linspace(0.5, 2.0, params[0].shape[0])
    for _ in range(steps):
        opt.zero_grad()
        loss = ((params[0] - 1.0) ** 2 * backend.tensor(scale)).sum()
        loss.backward()
        opt.step()
    return np.array(params[0].detach().numpy())


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS)
def test_optimizer_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    start = np.array([0.3, -1.2, 2.5, 0.0])
    ours = _quadratic_steps(lambda ps: getattr(optim, name)(ps, **kwargs),
                            [mg.tensor(start, requires_grad=True)], 5, mg)
    theirs = _quadratic_steps(lambda ps: getattr(torch.optim, name)(ps, **kwargs),
                              [torch.tensor(start, requires_grad=True)], 5, torch)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS)
def test_optimizer_descends_and_keeps_float32(name, kwargs):
    p = mg.tensor([0.3, -1.2, 2.5, 0.0], requires_grad=True)
    before = float(((p.data - 1) ** 2).sum())
    _quadratic_steps(lambda ps: getattr(optim, name)(ps, **kwargs), [p], 20, mg)
    assert p.dtype == np.float32
    assert float(((p.data - 1) ** 2).sum()) < before


def test_param_groups_lr_change_takes_effect():
    p = mg.tensor([1.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    assert opt.param_groups[0]["params"] == [p]
    opt.param_groups[0]["lr"] = 0.5
    assert opt.lr == 0.5
    p.grad = np.array([1.0], dtype=np.float32)
    opt.step()
    np.testing.assert_allclose(p.data, [0.5])
    opt.param_groups[0]["momentum"] = 0.0  # hyper-parameters live in the group too
    assert opt.hyper["momentum"] == 0.0


SCHEDULERS = [
    ("StepLR", {"step_size": 3, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [2, 5, 6], "gamma": 0.3}),
    ("ExponentialLR", {"gamma": 0.9}),
    ("CosineAnnealingLR", {"T_max": 7, "eta_min": 0.01}),
    ("LambdaLR", {"lr_lambda": lambda step: 1.0 / (1 + step)}),
    ("OneCycleLR", {"max_lr": 1.0, "total_steps": 12}),
    ("OneCycleLR", {"max_lr": 0.5, "epochs": 3, "steps_per_epoch": 4, "anneal_strategy": "linear",
                    "three_phase": True, "pct_start": 0.25}),
]


def _schedule(backend_optim, name, kwargs, params, steps):
    opt = backend_optim.SGD(params, lr=0.1, momentum=0.9)
    sched = getattr(backend_optim.lr_scheduler, name)(opt, **kwargs)
    lrs, momenta = [], []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        momenta.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    return lrs, momenta, sched.get_last_lr()


@pytest.mark.parametrize("name,kwargs", SCHEDULERS)
def test_scheduler_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    ours = _schedule(optim, name, kwargs, [mg.tensor([1.0], requires_grad=True)], 12)
    theirs = _schedule(torch.optim, name, kwargs, [torch.tensor([1.0], requires_grad=True)], 12)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-12)
    np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-12)


def test_scheduler_closed_forms_and_resume():
    opt = optim.Adam([mg.tensor([1.0], requires_grad=True)], lr=0.2)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        sched.step()
    assert opt.lr == pytest.approx(0.1 * (1 + math.cos(math.pi * 0.4)))
    state = sched.state_dict()
    opt2 = optim.Adam([mg.tensor([1.0], requires_grad=True)], lr=0.2)
    lr_scheduler.CosineAnnealingLR(opt2, T_max=10).load_state_dict(state)
    assert opt2.lr == opt.lr
    step = optim.Adam([mg.tensor([1.0], requires_grad=True)], lr=1.0)
    s = lr_scheduler.StepLR(step, step_size=2, gamma=0.1)
    seen = [step.lr] + [s.step() or step.lr for _ in range(4)]
    np.testing.assert_allclose(seen, [1.0, 1.0, 0.1, 0.1, 0.01])


def test_one_cycle_refuses_too_many_steps_and_missing_momentum():
    opt = optim.SGD([mg.tensor([1.0], requires_grad=True)], lr=0.1, momentum=0.9)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=2)
    sched.step()
    sched.step()
    with pytest.raises(ValueError, match="more than total_steps"):
        sched.step()
    with pytest.raises(ValueError, match="total_steps, or epochs and steps_per_epoch"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0)
