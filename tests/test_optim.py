"""Optimizers, clipping, the warm-up/cosine schedule and EMA against hand-written NumPy
formulas (and PyTorch when it is installed)."""
import math
import tracemalloc

import numpy as np
import pytest

import minigen as mg
import minigen.functional as F
import minigen.nn as nn
from minigen import backend, checkpoint, optim
from minigen.nn import Parameter

STEPS = 5


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [("w", Parameter(rng.standard_normal((3, 4)).astype(dtype))),
            ("b", Parameter(rng.standard_normal(4).astype(dtype)))]


def grad_sequence(steps=STEPS, seed=1):
    """A fixed gradient per step and parameter (independent of the parameters)."""
    rng = np.random.default_rng(seed)
    return [{"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)} for _ in range(steps)]


def run(opt, params, grads):
    for g in grads:
        for name, p in params:
            p.grad = g[name].astype(p.dtype)
        opt.step()
    return {name: p.data.copy() for name, p in params}


# --- independent reference formulas ------------------------------------------------------
def ref_sgd(p, grads, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    buf = np.zeros_like(p)
    for g in grads:
        g = g + weight_decay * p
        buf = momentum * buf + g
        direction = g + momentum * buf if nesterov else (buf if momentum else g)
        p = p - lr * direction
    return p


def ref_adam(p, grads, lr, b1, b2, eps, weight_decay=0.0, decoupled=False):
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p - lr * weight_decay * p
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.5, weight_decay=0.1),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    dict(lr=0.1, weight_decay=0.2),
]


@pytest.mark.parametrize("kw", SGD_CASES)
def test_sgd_matches_formula(kw):
    params, grads = make_params(), grad_sequence()
    start = {n: p.data.copy() for n, p in params}
    got = run(optim.SGD(params, **kw), params, grads)
    for name in start:
        want = ref_sgd(start[name], [g[name] for g in grads], **kw)
        np.testing.assert_allclose(got[name], want, rtol=1e-12, atol=1e-12)
        assert not np.allclose(got[name], start[name])


ADAM_CASES = [
    (optim.Adam, dict(lr=0.01)),
    (optim.Adam, dict(lr=0.01, betas=(0.5, 0.9), eps=1e-3)),
    (optim.Adam, dict(lr=0.01, weight_decay=0.1)),
    (optim.AdamW, dict(lr=0.01)),
    (optim.AdamW, dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.3)),
]


@pytest.mark.parametrize("cls, kw", ADAM_CASES)
def test_adam_matches_formula(cls, kw):
    params, grads = make_params(), grad_sequence()
    start = {n: p.data.copy() for n, p in params}
    got = run(cls(params, **kw), params, grads)
    full = dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01 if cls is optim.AdamW else 0.0)
    full.update(kw)
    for name in start:
        want = ref_adam(start[name], [g[name] for g in grads], full["lr"], *full["betas"],
                        full["eps"], full["weight_decay"], decoupled=cls is optim.AdamW)
        np.testing.assert_allclose(got[name], want, rtol=1e-12, atol=1e-12)


def test_adamw_decay_differs_from_adam_l2():
    """Decoupled decay is not the same as L2 in the gradient (Loshchilov & Hutter 2019)."""
    grads = grad_sequence()
    pa, pb = make_params(), make_params()
    a = run(optim.Adam(pa, lr=0.01, weight_decay=0.5), pa, grads)
    b = run(optim.AdamW(pb, lr=0.01, weight_decay=0.5), pb, grads)
    assert np.abs(a["w"] - b["w"]).max() > 1e-4


ALL_KINDS = [
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
    (optim.Adam, dict(lr=0.01, weight_decay=0.1)),
    (optim.AdamW, dict(lr=0.01)),
]


@pytest.mark.parametrize("cls, kw", ALL_KINDS)
def test_float32_stays_float32_in_place(cls, kw):
    params32, params64, grads = make_params(np.float32), make_params(np.float64), grad_sequence()
    arrays = [p.data for _, p in params32]
    opt = cls(params32, **kw)
    got = run(opt, params32, grads)
    want = run(cls(params64, **kw), params64, grads)
    for (name, p), a in zip(params32, arrays):
        assert p.data is a and p.dtype == np.float32  # updated in place, no up-cast
        for buf in opt.state[name].values():
            assert not hasattr(buf, "dtype") or buf.dtype == np.float32
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls, kw", ALL_KINDS)
def test_step_allocates_no_arrays(cls, kw):
    """After the first step (which allocates the moments), a step on 4 MB of parameters
    allocates no array-sized temporaries; neither does the EMA update."""
    rng = np.random.default_rng(0)
    model = nn.Linear(1000, 1000)
    for p in model.parameters():
        p.grad = rng.standard_normal(p.shape).astype(np.float32)
    opt, ema = cls(model, **kw), optim.EMA(model)
    opt.step()
    ema.update()
    tracemalloc.start()
    opt.step()
    ema.update()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50_000


def test_params_without_grad_are_skipped():
    params = make_params()
    w0, b0 = params[0][1].data.copy(), params[1][1].data.copy()
    opt = optim.Adam(params, lr=0.1)
    params[0][1].grad = np.ones((3, 4))
    opt.step()
    assert np.array_equal(params[1][1].data, b0) and "b" not in opt.state
    assert not np.allclose(params[0][1].data, w0)
    opt.zero_grad()
    assert all(p.grad is None for _, p in params)


def test_param_forms_module_pairs_and_bare():
    model = nn.Linear(3, 2)
    assert [n for n, _ in optim.SGD(model, lr=0.1).params] == ["bias", "weight"]
    assert [n for n, _ in optim.SGD(model.named_parameters(), lr=0.1).params] == ["bias", "weight"]
    assert [n for n, _ in optim.SGD(model.parameters(), lr=0.1).params] == ["0", "1"]


@pytest.mark.parametrize("make, message", [
    (lambda ps: optim.SGD(ps, lr=-1), "lr"),
    (lambda ps: optim.SGD(ps, lr=0.1, nesterov=True), "nesterov"),
    (lambda ps: optim.Adam(ps, betas=(1.0, 0.9)), "betas"),
    (lambda ps: optim.Adam([], lr=0.1), "empty"),
    (lambda ps: optim.Adam([np.zeros(3)], lr=0.1), "not a Parameter"),
])
def test_bad_arguments(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make(make_params())


@pytest.mark.parametrize("cls, kw", [(optim.SGD, dict(lr=0.1, momentum=0.9)),
                                     (optim.Adam, dict(lr=0.01)), (optim.AdamW, dict(lr=0.01))])
def test_state_dict_resume_is_exact(cls, kw, tmp_path):
    """3 steps, save (through a checkpoint file), rebuild everything, 3 more steps ==
    6 uninterrupted steps, bit for bit."""
    grads = grad_sequence(6)
    full_params = make_params(np.float32)
    want = run(cls(full_params, **kw), full_params, grads)

    params = make_params(np.float32)
    opt = cls(params, **kw)
    run(opt, params, grads[:3])
    opt.lr = 0.5 * kw["lr"] * 2  # a scheduled lr is part of the state too
    state = {"opt": opt.state_dict(), "params": {n: p.data for n, p in params}}
    checkpoint.save(state, tmp_path / "c.npz")
    saved = checkpoint.load(tmp_path / "c.npz")
    params2 = [(n, Parameter(saved["params"][n].copy())) for n, _ in make_params(np.float32)]
    opt2 = cls(params2, lr=123.0).load_state_dict(saved["opt"])
    assert opt2.lr == kw["lr"] and opt2.hyper == opt.hyper
    got = run(opt2, params2, grads[3:])
    for name in want:
        assert np.array_equal(got[name], want[name])


def test_load_state_dict_errors():
    params = make_params()
    opt = optim.Adam(params, lr=0.1)
    run(opt, params, grad_sequence(1))
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="from 'Adam', not 'SGD'"):
        optim.SGD(make_params(), lr=0.1).load_state_dict(sd)
    other = [("w", Parameter(np.zeros((2, 2)))), ("c", Parameter(np.zeros(4)))]
    with pytest.raises(ValueError) as info:
        optim.Adam(other, lr=0.1).load_state_dict(sd)
    assert "unknown parameter 'b'" in str(info.value)
    assert "w/exp_avg: shape (3, 4) != parameter shape (2, 2)" in str(info.value)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_load_state_dict_refuses_the_state_of_a_subset_of_the_parameters(name):
    full, part = make_params(), make_params()[:1]
    small = getattr(optim, name)(part, lr=0.1)
    run(small, part, grad_sequence(1))
    with pytest.raises(ValueError, match=r"without parameters \['b'\]"):
        getattr(optim, name)(full, lr=0.1).load_state_dict(small.state_dict())
    same = getattr(optim, name)(make_params()[:1], lr=0.1).load_state_dict(small.state_dict())
    assert same.state.keys() == small.state.keys()


# --- torch cross-check -------------------------------------------------------------------
@pytest.mark.parametrize("name, kw", [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("Adam", dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
])
def test_matches_torch(name, kw):
    torch = pytest.importorskip("torch")
    params, grads = make_params(), grad_sequence()
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for _, p in params]
    topt = getattr(torch.optim, name)(tparams, **kw)
    for g in grads:
        for t, (n, _) in zip(tparams, params):
            t.grad = torch.tensor(g[n])
        topt.step()
    got = run(getattr(optim, name)(params, **kw), params, grads)
    for t, (n, _) in zip(tparams, params):
        np.testing.assert_allclose(got[n], t.detach().numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.gpu
@pytest.mark.skipif(not backend.cuda_available(), reason="needs CuPy and a CUDA GPU")
@pytest.mark.parametrize("cls, kw", ALL_KINDS)
def test_cuda_matches_cpu(cls, kw):
    cpu, grads = make_params(np.float32), grad_sequence()
    gpu = [(n, Parameter(backend.to_device(p.data, "cuda"))) for n, p in make_params(np.float32)]
    want = run(cls(cpu, **kw), cpu, grads)
    opt = cls(gpu, **kw)
    for g in grads:
        for n, p in gpu:
            p.grad = backend.to_device(g[n].astype(np.float32), "cuda")
        opt.step()
    assert all(p.device == "cuda" and p.dtype == np.float32 for _, p in gpu)
    for n, p in gpu:
        np.testing.assert_allclose(backend.to_numpy(p.data), want[n], rtol=1e-5, atol=1e-6)
    restored = cls(gpu, **kw).load_state_dict(opt.state_dict())
    assert all(backend.device_of(v) == "cuda" for s in restored.state.values()
               for k, v in s.items() if k != "step")
    assert optim.clip_grad_norm_(gpu, 0.1) > 0.1
    norm = math.sqrt(sum(float((backend.to_numpy(p.grad) ** 2).sum()) for _, p in gpu))
    assert norm == pytest.approx(0.1, rel=1e-4)


# --- clipping, schedule, EMA ---------------------------------------------------------------
def test_clip_grad_norm():
    params = make_params()
    g = {"w": np.full((3, 4), 1.0), "b": np.full(4, 2.0)}
    for n, p in params:
        p.grad = g[n].copy()
    norm = optim.clip_grad_norm_(params, max_norm=1.0)
    assert norm == pytest.approx(math.sqrt(12 * 1 + 4 * 4))
    clipped = np.concatenate([p.grad.ravel() for _, p in params])
    assert np.linalg.norm(clipped) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(params[1][1].grad / params[0][1].grad[0], 2.0)  # direction kept
    # below the threshold nothing changes
    before = [p.grad.copy() for _, p in params]
    assert optim.clip_grad_norm_(params, 10.0) == pytest.approx(1.0, rel=1e-5)
    assert all(np.array_equal(b, p.grad) for b, (_, p) in zip(before, params))


def test_clip_grad_norm_with_shared_gradient_arrays():
    """a + b gives both leaves the same gradient array: each must be scaled once."""
    a, b = Parameter(np.ones(4)), Parameter(np.ones(4))
    (a + b).sum().backward()
    optim.clip_grad_norm_([a, b], max_norm=1.0)
    np.testing.assert_allclose(a.grad, np.full(4, 1 / math.sqrt(8)), rtol=1e-5)
    np.testing.assert_allclose(b.grad, np.full(4, 1 / math.sqrt(8)), rtol=1e-5)


def test_warmup_cosine_key_points():
    lr = lambda s, **kw: optim.warmup_cosine(s, 1.0, 10, 110, **kw)  # noqa: E731
    assert lr(0) == 0.0 and lr(5) == pytest.approx(0.5) and lr(10) == pytest.approx(1.0)
    assert lr(60) == pytest.approx(0.5)  # half way through the cosine
    assert lr(35) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr(110) == pytest.approx(0.0, abs=1e-12) and lr(500) == pytest.approx(0.0, abs=1e-12)
    assert lr(60, min_lr=0.2) == pytest.approx(0.6) and lr(110, min_lr=0.2) == pytest.approx(0.2)
    assert optim.warmup_cosine(10**6, 2e-4, 100, None) == 2e-4
    values = [lr(s) for s in range(120)]
    assert all(a <= b for a, b in zip(values[:10], values[1:11]))
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    assert optim.warmup_cosine(3, 1.0, 10, 5) == pytest.approx(0.3)  # run shorter than the warm-up
    with pytest.raises(ValueError, match="warmup_cosine"):
        optim.warmup_cosine(0, 1.0, -1, 5)


def test_ema_warmup_values_and_swap():
    model = nn.Linear(2, 3)
    ema = optim.EMA(model, decay=0.7)
    w0 = model.weight.data.copy()
    model.weight.data += 1.0  # a stand-in for an optimizer step
    ema.update()
    np.testing.assert_allclose(ema.shadow["weight"], 0.1 * w0 + 0.9 * (w0 + 1), rtol=1e-6)
    shadow, decays = ema.shadow["weight"].astype(np.float64), []
    for n in range(1, 30):
        model.weight.data += 1.0
        ema.update()
        d = min(0.7, (1 + n) / (10 + n))
        decays.append(d)
        shadow = d * shadow + (1 - d) * model.weight.data
    assert decays[0] == pytest.approx(2 / 11) and decays[-1] == 0.7 and decays[18] < 0.7
    np.testing.assert_allclose(ema.shadow["weight"], shadow, rtol=1e-6)
    live = model.weight.data.copy()
    with ema.swap(model):
        np.testing.assert_allclose(model.weight.data, shadow, rtol=1e-6)
    assert np.array_equal(model.weight.data, live)
    with pytest.raises(RuntimeError):
        with ema.swap(model):
            raise RuntimeError("sampling failed")
    assert np.array_equal(model.weight.data, live)  # restored after an exception too
    other = nn.Linear(2, 3)
    ema.copy_to(other)
    np.testing.assert_allclose(other.weight.data, shadow, rtol=1e-6)
    with pytest.raises(ValueError, match="EMA"):
        ema.copy_to(nn.Linear(2, 3, bias=False))


def test_ema_state_dict_round_trip():
    model = nn.Linear(2, 3)
    ema = optim.EMA(model, decay=0.99)
    for _ in range(5):
        model.weight.data *= 1.1
        ema.update()
    clone = optim.EMA(nn.Linear(2, 3), decay=0.5).load_state_dict(ema.state_dict())
    assert clone.num_updates == 5 and clone.decay == 0.99
    for name in ema.shadow:
        assert np.array_equal(clone.shadow[name], ema.shadow[name])


def test_mlp_fits_sine():
    """A broken optimizer would not get an MLP from MSE > 0.3 to < 1e-3 in 600 Adam steps
    (a correct one reaches ~2e-5)."""
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 32), nn.SiLU(), nn.Linear(32, 32), nn.SiLU(),
                          nn.Linear(32, 1))
    x = np.linspace(-3, 3, 128, dtype=np.float32)[:, None]
    y = mg.tensor(np.sin(x))
    x = mg.tensor(x)
    opt = optim.Adam(model, lr=1e-2)
    losses = []
    for _ in range(600):
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 0.3
    assert losses[-1] < 1e-3
