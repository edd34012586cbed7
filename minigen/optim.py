"""Optimizers (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta), gradient clipping
(``nn.utils.clip_grad_norm_``), a warm-up + cosine learning-rate schedule and an exponential
moving average of the weights; PyTorch's schedulers are ``optim.lr_scheduler``.

Optimizers work on raw arrays: each ``step()`` updates ``p.data`` in place from ``p.grad``.
Moment buffers are allocated once (on the parameter's device, in its dtype) and temporaries
come from a per-optimizer scratch buffer, so after the first step a step allocates no arrays
and float32 stays float32. NumPy and CuPy arrays both work (``backend.xp_of``). Parameters
whose ``.grad`` is None are skipped; each update bumps the parameter's version, so a graph
that saw the old value refuses to backward. ``param_groups`` is PyTorch's list of groups (one
group: all parameters), and its ``"lr"`` and hyper-parameters are the ones ``step`` uses. State dicts are keyed by parameter name, so they load
into a freshly built model and optimizer (exact resume); names of older checkpoints are
migrated as for modules (``nn.module.migrate_keys``). Build optimizers and EMAs after
moving the model to its device: their buffers live where the parameters were.
"""
import contextlib
import math
import sys

import kernels

from minigen import backend, lr_scheduler  # noqa: F401  (optim.lr_scheduler, as in PyTorch)
from minigen.nn.module import migrate_keys
from minigen.nn.utils import clip_grad_norm_ as clip_grad_norm_  # optim.clip_grad_norm_ too
from minigen.nn.utils import named_parameter_list

sys.modules[f"{__name__}.lr_scheduler"] = lr_scheduler  # from minigen.optim.lr_scheduler import ...


class _Scratch:
    """Temporaries for in-place updates: one flat buffer per (device, dtype), sized for the
    largest parameter, handed out as views shaped like the parameter."""

    def __init__(self, count):
        self.count = count
        self.buffers = {}

    def views(self, array):
        key = (backend.device_of(array), array.dtype.str)
        buf = self.buffers.get(key)
        if buf is None or buf.shape[1] < array.size:
            xp = backend.xp_of(array)
            buf = self.buffers[key] = xp.empty((self.count, array.size), dtype=array.dtype)
        return [buf[i, : array.size].reshape(array.shape) for i in range(self.count)]


def _check(who, name, value, low, high=math.inf, high_open=False):
    if not (low <= value < high if high_open else low <= value <= high):
        interval = f"[{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{who}: {name} must be in {interval}, got {value}")


class Optimizer:
    """Base class: named parameters, per-parameter state (``self.state[name]``: a step count
    and the arrays named by ``buffer_names``), ``zero_grad``, state dicts. Subclasses
    implement ``_update(p, g, state, lr, tmp)`` on raw arrays, or ``step`` over all of them.
    ``lr`` and ``hyper`` read and write ``param_groups[0]`` (what schedulers change)."""

    def __init__(self, params, lr, **hyper):
        self.params = named_parameter_list(params, type(self).__name__)
        _check(type(self).__name__, "lr", lr, 0.0)
        self.param_groups = [{"params": [p for _, p in self.params], "lr": lr}]
        self.hyper = hyper
        self.state = {}
        self._scratch = _Scratch(2)

    @property
    def lr(self):
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        self.param_groups[0]["lr"] = value

    @property
    def hyper(self):
        return {k: self.param_groups[0][k] for k in self._hyper_names}

    @hyper.setter
    def hyper(self, values):
        self._hyper_names = tuple(values)
        self.param_groups[0].update(values)

    @staticmethod
    def buffer_names(hyper):
        """Names of the per-parameter arrays that the update with ``hyper`` keeps."""
        return ()

    def zero_grad(self):
        for _, p in self.params:
            p.grad = None

    def step(self):
        """One update of every parameter that has a gradient."""
        lr = float(self.lr)
        for p, state in self._advance():
            self._update(p.data, p.grad, state, lr, self._scratch.views(p.data))

    def _advance(self):
        """[(parameter, its state)] of the parameters with a gradient, each state's step count
        advanced (the state and its buffers made on the first step)."""
        live = []
        for name, p in self.params:
            if p.grad is None:
                continue
            state = self.state.get(name)
            if state is None:
                xp = backend.xp_of(p.data)
                state = self.state[name] = {"step": 0}
                for b in self.buffer_names(self.hyper):
                    state[b] = xp.zeros(p.shape, dtype=p.dtype)
            state["step"] += 1
            p._version += 1  # the update is in place: graphs that saw the old value are stale
            live.append((p, state))
        return live

    def _update(self, p, g, state, lr, tmp):
        raise NotImplementedError

    # --- state dicts ---------------------------------------------------------------------
    def state_dict(self):
        """``{"type", "lr", "hyper", "params": the parameter names, "state": {name: {"step",
        buffers as NumPy copies}}}``."""
        return {
            "type": type(self).__name__,
            "lr": float(self.lr),
            "params": [name for name, _ in self.params],
            "hyper": {k: list(v) if isinstance(v, tuple) else v for k, v in self.hyper.items()},
            "state": {
                name: {k: v if k == "step" else backend.to_numpy(v).copy() for k, v in s.items()}
                for name, s in self.state.items()
            },
        }

    def load_state_dict(self, state_dict):
        """Restore lr, hyper-parameters and per-parameter state, as PyTorch does. Everything
        is checked before anything changes; buffers go to each parameter's device/dtype."""
        who = f"{type(self).__name__}.load_state_dict"
        if state_dict.get("type") != type(self).__name__:
            raise ValueError(
                f"{who}: state dict is from {state_dict.get('type')!r}, not {type(self).__name__!r}"
            )
        hyper = {k: tuple(v) if isinstance(v, list) else v for k, v in state_dict["hyper"].items()}
        if set(hyper) != set(self.hyper):
            raise ValueError(f"{who}: hyper-parameters {sorted(hyper)} != {sorted(self.hyper)}")
        params = dict(self.params)
        buffers = self.buffer_names(hyper)
        state_dict = dict(state_dict, state=migrate_keys(state_dict["state"], params))
        problems = []
        saved = state_dict.get("params")  # the optimizer's parameters (older versions: absent)
        if saved is not None:
            missing = sorted(set(params) - set(saved))
            if missing:
                problems.append(f"the state is of an optimizer without parameters {missing}")
            problems += [f"unknown parameter {name!r}"
                         for name in sorted(set(saved) - set(params) - set(state_dict["state"]))]
        for name, s in state_dict["state"].items():
            if name not in params:
                problems.append(f"unknown parameter {name!r}")
                continue
            missing = sorted(set(buffers) - set(s))
            if missing:
                problems.append(f"{name!r} lacks {missing}")
            for b in sorted(set(buffers) & set(s)):
                if tuple(s[b].shape) != params[name].shape:
                    have, want = tuple(s[b].shape), params[name].shape
                    problems.append(f"{name}/{b}: shape {have} != parameter shape {want}")
        if problems:
            raise ValueError(f"{who}: " + "; ".join(problems))
        self.lr = state_dict["lr"]
        self.hyper = hyper
        self.state = {}
        for name, s in state_dict["state"].items():
            p = params[name].data
            xp = backend.xp_of(p)
            self.state[name] = {"step": int(s["step"])}
            for b in buffers:
                value = backend.to_device(s[b], backend.device_of(p))
                self.state[name][b] = xp.array(value, dtype=p.dtype)
        return self

    def __repr__(self):
        hyper = ", ".join(f"{k}={v}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({len(self.params)} parameters, lr={self.lr}, {hyper})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay, in
    PyTorch's form (Sutskever et al. 2013, eqs. 1-4, with the lr moved out of the buffer):
    d = g + wd p;  buf = momentum buf + d;  d = d + momentum buf (Nesterov) or buf;  p -= lr d."""

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        _check("SGD", "momentum", momentum, 0.0)
        _check("SGD", "weight_decay", weight_decay, 0.0)
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        super().__init__(params, lr, momentum=float(momentum), nesterov=bool(nesterov),
                         weight_decay=float(weight_decay))

    @staticmethod
    def buffer_names(hyper):
        return ("momentum_buffer",) if hyper["momentum"] else ()

    def _update(self, p, g, state, lr, tmp):
        xp = backend.xp_of(p)
        mu, wd = self.hyper["momentum"], self.hyper["weight_decay"]
        d = g
        if wd:
            xp.multiply(p, wd, out=tmp[0])
            d = xp.add(tmp[0], g, out=tmp[0])
        if mu:
            buf = state["momentum_buffer"]
            buf *= mu
            buf += d
            if self.hyper["nesterov"]:
                xp.multiply(buf, mu, out=tmp[1])
                d = xp.add(tmp[1], d, out=tmp[1])
            else:
                d = buf
        p -= xp.multiply(d, lr, out=tmp[1])


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1), with optional L2 weight decay added to the
    gradient (g += wd p); one fused pass per parameter, all in one call
    (``kernels.adam_update_many``):
    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
    p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)   (= lr m_hat / (sqrt(v_hat) + eps))."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        who = type(self).__name__
        _check(who, "betas[0]", betas[0], 0.0, 1.0, high_open=True)
        _check(who, "betas[1]", betas[1], 0.0, 1.0, high_open=True)
        _check(who, "eps", eps, 0.0)
        _check(who, "weight_decay", weight_decay, 0.0)
        super().__init__(params, lr, betas=(float(betas[0]), float(betas[1])), eps=float(eps),
                         weight_decay=float(weight_decay))

    @staticmethod
    def buffer_names(hyper):
        return ("exp_avg", "exp_avg_sq")

    def step(self):
        """One update of every parameter that has a gradient."""
        live = self._advance()
        (b1, b2), eps, wd = self.hyper["betas"], self.hyper["eps"], self.hyper["weight_decay"]
        kernels.adam_update_many(
            [p.data for p, _ in live], [p.grad for p, _ in live],
            [s["exp_avg"] for _, s in live], [s["exp_avg_sq"] for _, s in live], float(self.lr),
            b1, b2, eps, [s["step"] for _, s in live], wd, self.decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019, Algorithm 2, line 12), in
    PyTorch's form with the decay scaled by lr: p *= 1 - lr wd, then the Adam step."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, betas, eps, weight_decay)


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012, lecture 6.5) in PyTorch's form: g += wd p;
    v = alpha v + (1-alpha) g^2; with ``centered``, m = alpha m + (1-alpha) g and v - m^2 in
    place of v; d = g / (sqrt(v) + eps); with momentum, buf = momentum buf + d, p -= lr buf,
    else p -= lr d."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        for name, value in (("alpha", alpha), ("eps", eps), ("weight_decay", weight_decay),
                            ("momentum", momentum)):
            _check("RMSprop", name, value, 0.0)
        super().__init__(params, lr, alpha=float(alpha), eps=float(eps),
                         weight_decay=float(weight_decay), momentum=float(momentum),
                         centered=bool(centered))

    @staticmethod
    def buffer_names(hyper):
        return (("square_avg",) + (("momentum_buffer",) if hyper["momentum"] else ())
                + (("grad_avg",) if hyper["centered"] else ()))

    def _update(self, p, g, state, lr, tmp):
        xp = backend.xp_of(p)
        h = self.hyper
        if h["weight_decay"]:
            g = xp.add(g, xp.multiply(p, h["weight_decay"], out=tmp[0]), out=tmp[0])
        v = state["square_avg"]
        v *= h["alpha"]
        v += xp.multiply(xp.multiply(g, g, out=tmp[1]), 1 - h["alpha"], out=tmp[1])
        if h["centered"]:
            m = state["grad_avg"]
            m *= h["alpha"]
            m += xp.multiply(g, 1 - h["alpha"], out=tmp[1])
            denom = xp.sqrt(xp.subtract(v, xp.multiply(m, m, out=tmp[1]), out=tmp[1]), out=tmp[1])
        else:
            denom = xp.sqrt(v, out=tmp[1])
        d = xp.divide(g, xp.add(denom, h["eps"], out=tmp[1]), out=tmp[1])
        if h["momentum"]:
            buf = state["momentum_buffer"]
            buf *= h["momentum"]
            buf += d
            d = buf
        p -= xp.multiply(d, lr, out=tmp[1])


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011, eq. 1 with a diagonal matrix) in PyTorch's form: g += wd p;
    s += g^2; p -= lr / (1 + (t-1) lr_decay) * g / (sqrt(s) + eps), s starting at
    ``initial_accumulator_value``."""

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):
        for name, value in (("lr_decay", lr_decay), ("weight_decay", weight_decay),
                            ("initial_accumulator_value", initial_accumulator_value),
                            ("eps", eps)):
            _check("Adagrad", name, value, 0.0)
        super().__init__(params, lr, lr_decay=float(lr_decay), weight_decay=float(weight_decay),
                         initial_accumulator_value=float(initial_accumulator_value),
                         eps=float(eps))

    @staticmethod
    def buffer_names(hyper):
        return ("sum",)

    def _update(self, p, g, state, lr, tmp):
        xp = backend.xp_of(p)
        h = self.hyper
        if state["step"] == 1:
            state["sum"] += h["initial_accumulator_value"]
        if h["weight_decay"]:
            g = xp.add(g, xp.multiply(p, h["weight_decay"], out=tmp[0]), out=tmp[0])
        s = state["sum"]
        s += xp.multiply(g, g, out=tmp[1])
        clr = lr / (1 + (state["step"] - 1) * h["lr_decay"])
        denom = xp.add(xp.sqrt(s, out=tmp[1]), h["eps"], out=tmp[1])
        p -= xp.multiply(xp.divide(g, denom, out=tmp[1]), clr, out=tmp[1])


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012, Algorithm 1) in PyTorch's form, with ``lr`` scaling the step:
    g += wd p; v = rho v + (1-rho) g^2; d = sqrt(u + eps) / sqrt(v + eps) g;
    u = rho u + (1-rho) d^2; p -= lr d."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
        _check("Adadelta", "rho", rho, 0.0, 1.0)
        _check("Adadelta", "eps", eps, 0.0)
        _check("Adadelta", "weight_decay", weight_decay, 0.0)
        super().__init__(params, lr, rho=float(rho), eps=float(eps),
                         weight_decay=float(weight_decay))
        self._scratch = _Scratch(3)

    @staticmethod
    def buffer_names(hyper):
        return ("square_avg", "acc_delta")

    def _update(self, p, g, state, lr, tmp):
        xp = backend.xp_of(p)
        rho, eps, wd = self.hyper["rho"], self.hyper["eps"], self.hyper["weight_decay"]
        if wd:
            g = xp.add(g, xp.multiply(p, wd, out=tmp[0]), out=tmp[0])
        v, u = state["square_avg"], state["acc_delta"]
        v *= rho
        v += xp.multiply(xp.multiply(g, g, out=tmp[1]), 1 - rho, out=tmp[1])
        d = xp.sqrt(xp.add(u, eps, out=tmp[1]), out=tmp[1])
        d /= xp.sqrt(xp.add(v, eps, out=tmp[2]), out=tmp[2])
        d *= g
        u *= rho
        u += xp.multiply(xp.multiply(d, d, out=tmp[2]), 1 - rho, out=tmp[2])
        p -= xp.multiply(d, lr, out=tmp[1])


def warmup_cosine(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    """Learning rate at ``step`` (0-based): linear warm-up from 0 to ``base_lr`` over
    ``warmup_steps`` (base_lr * step / warmup_steps, as in the DDPM reference code), then
    cosine decay to ``min_lr`` at ``total_steps`` (Loshchilov & Hutter 2017, eq. 5) and
    ``min_lr`` after it; ``total_steps=None`` keeps ``base_lr`` after the warm-up."""
    if warmup_steps < 0 or step < 0:
        raise ValueError(
            f"warmup_cosine: step and warmup_steps must be >= 0, got {step}, {warmup_steps}"
        )
    if step < warmup_steps:
        return float(base_lr * step / warmup_steps)
    if total_steps is None:
        return float(base_lr)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return float(min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress)))


class EMA:
    """Exponential moving average of a model's parameters (not its buffers), with the usual
    warm-up so early averages are not dominated by the random initialization:
    shadow = d_n shadow + (1 - d_n) p,  d_n = min(decay, (1 + n) / (10 + n)),
    n = number of updates so far."""

    def __init__(self, model, decay=0.999):
        _check("EMA", "decay", decay, 0.0, 1.0)
        self.model = model
        self.decay = decay
        self.num_updates = 0
        self.shadow = {name: p.data.copy() for name, p in model.named_parameters()}
        self._scratch = _Scratch(1)

    def current_decay(self):
        """d_n of the next update."""
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n))

    def update(self):
        """Fold the model's current parameters into the average (after each optimizer step)."""
        d = self.current_decay()
        for name, p in self.model.named_parameters():
            s = self.shadow[name]
            (tmp,) = self._scratch.views(s)
            s *= d
            s += backend.xp_of(s).multiply(p.data, 1 - d, out=tmp)
        self.num_updates += 1

    def _check_model(self, model):
        names, averaged = {name for name, _ in model.named_parameters()}, set(self.shadow)
        if names != averaged:
            raise ValueError(
                f"EMA: model parameters differ from the averaged ones (missing "
                f"{sorted(averaged - names)}, unexpected {sorted(names - averaged)})"
            )

    def copy_to(self, model):
        """Write the averaged weights into ``model``'s parameters (in place)."""
        self._check_model(model)
        for name, p in model.named_parameters():
            p.data[...] = backend.to_device(self.shadow[name], backend.device_of(p.data))
            p._version += 1

    @contextlib.contextmanager
    def swap(self, model):
        """``with ema.swap(model):`` the model holds the averaged weights; its own weights
        come back on exit (also after an exception)."""
        self._check_model(model)
        saved = {name: p.data.copy() for name, p in model.named_parameters()}
        self.copy_to(model)
        try:
            yield model
        finally:
            for name, p in model.named_parameters():
                p.data[...] = saved[name]
                p._version += 1

    def state_dict(self):
        return {
            "decay": self.decay,
            "num_updates": self.num_updates,
            "shadow": {name: backend.to_numpy(s).copy() for name, s in self.shadow.items()},
        }

    def load_state_dict(self, state_dict):
        """Restore decay, update count and averages (checked before anything changes)."""
        shadow = migrate_keys(state_dict["shadow"], self.shadow)
        problems = []
        if set(shadow) != set(self.shadow):
            problems.append(f"names differ (missing {sorted(set(self.shadow) - set(shadow))}, "
                            f"unexpected {sorted(set(shadow) - set(self.shadow))})")
        for name in sorted(set(shadow) & set(self.shadow)):
            if tuple(shadow[name].shape) != self.shadow[name].shape:
                have, want = tuple(shadow[name].shape), self.shadow[name].shape
                problems.append(f"{name}: shape {have} != {want}")
        if problems:
            raise ValueError("EMA.load_state_dict: " + "; ".join(problems))
        self.decay = state_dict["decay"]
        self.num_updates = int(state_dict["num_updates"])
        for name, s in self.shadow.items():
            s[...] = backend.to_device(shadow[name], backend.device_of(s))
        return self
