"""The from-scratch peers in the bench: DeZero, tinygrad (CPU) and JAX (CPU, jit).

Each is optional: a column says "n/a: <why>" when its package is missing, and on the
workloads it does not express. The builders mirror :mod:`bench.workloads` (same sizes,
networks, schedule and Adam settings as :mod:`bench.torch_ref`); only W1 (MLP DDPM step),
W3 (conv 3x3 forward + backward), W4 (q_sample) and W5 (p_sample step) are ported -- the
UNet (W2, W6b) needs GroupNorm and attention, which DeZero lacks and which are not ported
to the other two; W6a (1000 sampling steps) is not ported.

- DeZero 0.0.13 (Saito's "Deep Learning from Scratch 3") uses ``np.int``, removed in NumPy
  2: this module sets ``numpy.int = int`` before importing it. It has no concatenation, so
  the MLP's first layer adds x W_x + emb(t) W_t (the same products as on the concatenation).
- tinygrad 0.14 runs with ``DEV=CPU`` (kernels compiled by clang), without TinyJit; its
  thread use is its own (``--threads`` does not reach it).
- JAX runs each step as one ``jax.jit`` function (forward, gradient, Adam); with
  ``--threads 1`` XLA's CPU client is asked for one thread (``XLA_FLAGS``) before JAX is
  imported.
"""
import functools
import importlib.util
import math
import os

import numpy as np

from bench import workloads as wl

FRAMEWORKS = ("dezero", "tinygrad", "jax")
PORTED = ("W1", "W3", "W4", "W5")
_WHY_NOT = {"W2": "UNet not ported (GroupNorm, attention)", "W6b": "UNet not ported",
            "W6a": "not ported (1000-step sampling loop)"}


def set_threads(n):
    """Ask the peers for ``n`` threads where they take it before import (XLA)."""
    if n == 1 and "jax" not in _imported():
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                           "intra_op_parallelism_threads=1")


def _imported():
    import sys

    return {name for name in FRAMEWORKS if name in sys.modules}


def unavailable(framework, key=None):
    """Why ``framework`` cannot run (workload ``key``) here, or None."""
    if importlib.util.find_spec(framework) is None:
        return f"n/a: {framework} not installed"
    if framework == "tinygrad" and not any(
            os.access(os.path.join(p, "clang"), os.X_OK) for p in os.environ["PATH"].split(":")):
        return "n/a: tinygrad's CPU device needs clang"
    if key is not None and key not in PORTED:
        return f"n/a: {_WHY_NOT.get(key, 'not ported')}"
    return None


def build(framework, key, sizes):
    """The step function of workload ``key`` in ``framework`` at ``sizes`` (CPU)."""
    return globals()[f"_{framework}"]()[key](sizes)


def _embedding(xp, t, dim):
    """The sinusoidal time embedding of bench.torch_ref (float64, cast to float32)."""
    half = dim // 2
    freqs = np.exp(np.arange(half) * (-math.log(10000.0) / (half - 1)))
    args = xp.asarray(t, dtype=xp.float64 if xp is np else None)[:, None] * freqs[None, :]
    return xp.concatenate([xp.sin(args), xp.cos(args)], axis=1).astype(np.float32)


def _tables(T):
    s = wl.schedule(T)
    abar = np.asarray(s.alphas_cumprod, dtype=np.float64)
    betas = 1.0 - np.asarray(s.alphas, dtype=np.float64)
    abar_prev = np.append(1.0, abar[:-1])
    return {k: v.astype(np.float32) for k, v in dict(
        sqrt_abar=np.sqrt(abar), sqrt_1m=np.sqrt(1 - abar), x0_xt=np.sqrt(1 / abar),
        x0_eps=-np.sqrt(1 / abar - 1), c1=betas * np.sqrt(abar_prev) / (1 - abar),
        c2=(1 - abar_prev) * np.sqrt(1 - betas) / (1 - abar), sigma=np.sqrt(betas)).items()}


def _arrays(sizes):
    shape = (sizes["batch"],) + sizes["image"]
    return wl.normal(shape), wl.normal(shape, seed=wl.SEED + 1), wl.timesteps(sizes["batch"], sizes["T"])


def _per_sample(table, t, ndim):
    return table[t].reshape((-1,) + (1,) * (ndim - 1))


def _noisy_batch(rng, tab, x0, T):
    """Timesteps, noise and x_t (eq. 4) for one training step of the 2-D DDPM (NumPy)."""
    t = rng.integers(0, T, len(x0))
    noise = rng.standard_normal(x0.shape, dtype=np.float32)
    return t, noise, _per_sample(tab["sqrt_abar"], t, 2) * x0 + _per_sample(tab["sqrt_1m"], t, 2) * noise


def _mlp_sizes():
    c = wl.MLP_CONFIG
    return (c["in_features"] + c["time_dim"],) + tuple(c["hidden"]) + (c["out_features"],)


# --- DeZero ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _dezero():
    np.int = int  # DeZero 0.0.13 uses np.int, removed in NumPy 2
    import dezero
    import dezero.functions as F
    import dezero.layers as L
    from dezero.optimizers import Adam

    class MLP(dezero.Model):
        def __init__(self):
            super().__init__()
            sizes, c = _mlp_sizes(), wl.MLP_CONFIG
            self.first_x = L.Linear(sizes[1], in_size=c["in_features"])
            self.first_t = L.Linear(sizes[1], nobias=True, in_size=c["time_dim"])
            self.rest = [L.Linear(b, in_size=a) for a, b in zip(sizes[1:-1], sizes[2:])]
            for i, layer in enumerate(self.rest):
                setattr(self, f"l{i}", layer)

        def forward(self, x, t):
            h = self.first_x(x) + self.first_t(_embedding(np, t, wl.MLP_CONFIG["time_dim"]))
            for layer in self.rest:
                h = h * F.sigmoid(h)
                h = layer(h)
            return h

    def mlp_step(sizes):
        T, tab, rng = sizes["T"], _tables(sizes["T"]), wl.host_rng()
        model = MLP()
        opt = Adam(alpha=wl.LR["W1"]).setup(model)
        x0 = wl.datasets.s_curve(sizes["batch"], seed=wl.SEED).astype(np.float32)

        def step():
            t, noise, xt = _noisy_batch(rng, tab, x0, T)
            loss = F.mean_squared_error(model(xt, t), noise)
            model.cleargrads()
            loss.backward()
            opt.update()
        return step

    def conv_step(sizes):
        c, s = sizes["channels"], sizes["size"]
        w = dezero.Parameter(wl.normal((c, c, 3, 3)) * np.float32(1 / math.sqrt(9 * c)))
        b = dezero.Parameter(np.zeros(c, dtype=np.float32))
        x = dezero.Variable(wl.normal((sizes["batch"], c, s, s)))
        gy = wl.normal((sizes["batch"], c, s, s), seed=wl.SEED + 1)

        def step():
            for v in (w, b, x):
                v.cleargrad()
            y = F.conv2d(x, w, b, stride=1, pad=1)
            y.grad = dezero.Variable(gy)
            y.backward()
        return step

    return {"W1": mlp_step, "W3": conv_step, "W4": _elementwise(dezero.Variable, q=True),
            "W5": _elementwise(dezero.Variable, q=False)}


def _elementwise(wrap, q, finish=lambda y: y):
    """W4 / W5 on the framework's tensors: ``wrap`` makes one from a NumPy array; the
    per-sample coefficients are gathered inside the step, as in bench.torch_ref."""
    def build(sizes):
        tab = _tables(sizes["T"])
        x, noise, t = _arrays(sizes)
        x_, noise_ = wrap(x), wrap(noise)

        def coef(name):
            return wrap(_per_sample(tab[name], t, x.ndim))

        if q:
            return lambda: finish(coef("sqrt_abar") * x_ + coef("sqrt_1m") * noise_)
        nonzero = (t > 0).astype(np.float32).reshape((-1,) + (1,) * (x.ndim - 1))

        def p_step():  # identity network: eps = x_t, as W5
            x0_hat = coef("x0_xt") * x_ + coef("x0_eps") * x_
            mean = coef("c1") * x0_hat + coef("c2") * x_
            return finish(mean + wrap(nonzero * tab["sigma"][t].reshape(nonzero.shape)) * noise_)
        return p_step
    return build


# --- tinygrad ----------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _tinygrad():
    os.environ.setdefault("DEV", "CPU")
    from tinygrad import Context, Tensor, nn

    class MLP:
        def __init__(self):
            sizes = _mlp_sizes()
            self.layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]

        def __call__(self, x, t):
            h = x.cat(Tensor(_embedding(np, t, wl.MLP_CONFIG["time_dim"])), dim=1)
            for layer in self.layers[:-1]:
                h = layer(h).silu()
            return self.layers[-1](h)

    def mlp_step(sizes):
        T, tab, rng = sizes["T"], _tables(sizes["T"]), wl.host_rng()
        model = MLP()
        opt = nn.optim.Adam(nn.state.get_parameters(model), lr=wl.LR["W1"])
        x0 = wl.datasets.s_curve(sizes["batch"], seed=wl.SEED).astype(np.float32)

        def step():
            t, noise, xt = _noisy_batch(rng, tab, x0, T)
            with Context(TRAINING=1):
                loss = ((model(Tensor(xt), t) - Tensor(noise)) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        return step

    def conv_step(sizes):
        c, s = sizes["channels"], sizes["size"]
        layer = nn.Conv2d(c, c, 3, padding=1)
        x = Tensor(wl.normal((sizes["batch"], c, s, s)))
        gy = Tensor(wl.normal((sizes["batch"], c, s, s), seed=wl.SEED + 1))

        def step():
            Tensor.realize(*layer(x).gradient(x, layer.weight, layer.bias, gradient=gy))
        return step

    return {"W1": mlp_step, "W3": conv_step,
            "W4": _elementwise(Tensor, q=True, finish=Tensor.realize),
            "W5": _elementwise(Tensor, q=False, finish=Tensor.realize)}


# --- JAX ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _jax():
    import jax
    import jax.numpy as jnp

    def init_mlp(key):
        params = []
        for a, b in zip(_mlp_sizes()[:-1], _mlp_sizes()[1:]):
            key, sub = jax.random.split(key)
            bound = 1 / math.sqrt(a)
            params.append((jax.random.uniform(sub, (a, b), jnp.float32, -bound, bound),
                           jnp.zeros(b, jnp.float32)))
        return params

    def mlp(params, x, t):
        h = jnp.concatenate([x, _embedding(jnp, t, wl.MLP_CONFIG["time_dim"])], axis=1)
        for w, b in params[:-1]:
            h = jax.nn.silu(h @ w + b)
        w, b = params[-1]
        return h @ w + b

    def adam(params, grads, m, v, step, lr, b1=0.9, b2=0.999, eps=1e-8):
        """PyTorch's Adam (Kingma & Ba 2015, Algorithm 1) over a pytree."""
        m = jax.tree.map(lambda m_, g: b1 * m_ + (1 - b1) * g, m, grads)
        v = jax.tree.map(lambda v_, g: b2 * v_ + (1 - b2) * g * g, v, grads)
        scale = lr / (1 - b1 ** step)
        params = jax.tree.map(lambda p, m_, v_: p - scale * m_ / (jnp.sqrt(v_ / (1 - b2 ** step)) + eps),
                              params, m, v)
        return params, m, v

    def mlp_step(sizes):
        T, tab = sizes["T"], _tables(sizes["T"])
        sqrt_abar, sqrt_1m = jnp.asarray(tab["sqrt_abar"]), jnp.asarray(tab["sqrt_1m"])
        x0 = jnp.asarray(wl.datasets.s_curve(sizes["batch"], seed=wl.SEED).astype(np.float32))

        def loss_fn(params, t, noise):
            xt = sqrt_abar[t][:, None] * x0 + sqrt_1m[t][:, None] * noise
            return jnp.mean((mlp(params, xt, t) - noise) ** 2)

        @jax.jit
        def train(state, key):
            params, m, v, step = state
            key, k1, k2 = jax.random.split(key, 3)
            t = jax.random.randint(k1, (x0.shape[0],), 0, T)
            noise = jax.random.normal(k2, x0.shape, jnp.float32)
            grads = jax.grad(loss_fn)(params, t, noise)
            params, m, v = adam(params, grads, m, v, step + 1, wl.LR["W1"])
            return (params, m, v, step + 1), key

        params = init_mlp(jax.random.PRNGKey(wl.SEED))
        zeros = jax.tree.map(jnp.zeros_like, params)
        box = [((params, zeros, zeros, 0), jax.random.PRNGKey(wl.SEED))]

        def step():
            box[0] = train(*box[0])
            jax.block_until_ready(box[0])
        return step

    def conv_step(sizes):
        c, s = sizes["channels"], sizes["size"]
        w = jnp.asarray(wl.normal((c, c, 3, 3)) * np.float32(1 / math.sqrt(9 * c)))
        b = jnp.zeros(c, jnp.float32)
        x = jnp.asarray(wl.normal((sizes["batch"], c, s, s)))
        gy = jnp.asarray(wl.normal((sizes["batch"], c, s, s), seed=wl.SEED + 1))

        def forward(x, w, b):
            y = jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                             dimension_numbers=("NCHW", "OIHW", "NCHW"))
            return y + b[None, :, None, None]

        @jax.jit
        def grads(x, w, b):
            _, pullback = jax.vjp(forward, x, w, b)
            return pullback(gy)

        return lambda: jax.block_until_ready(grads(x, w, b))

    def elementwise(q):
        def build(sizes):
            tab = {k: jnp.asarray(v) for k, v in _tables(sizes["T"]).items()}
            x, noise, t = (jnp.asarray(a) for a in _arrays(sizes))

            def at(name):
                return tab[name][t].reshape((-1, 1, 1, 1))

            @jax.jit
            def q_sample(x, noise, t):
                return at("sqrt_abar") * x + at("sqrt_1m") * noise

            @jax.jit
            def p_sample(x, noise, t):
                x0_hat = at("x0_xt") * x + at("x0_eps") * x
                mean = at("c1") * x0_hat + at("c2") * x
                return mean + jnp.where(t > 0, 1.0, 0.0).reshape((-1, 1, 1, 1)) * at("sigma") * noise

            fn = q_sample if q else p_sample
            return lambda: jax.block_until_ready(fn(x, noise, t))
        return build

    return {"W1": mlp_step, "W3": conv_step, "W4": elementwise(True), "W5": elementwise(False)}
