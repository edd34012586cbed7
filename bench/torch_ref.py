"""PyTorch reference implementations of the benchmark workloads (imported only with torch).

The two networks mirror :class:`minigen.nn.MLP` and :class:`minigen.nn.UNet` layer for
layer, built from the same configurations (:data:`bench.workloads.MLP_CONFIG`,
``UNET_CONFIG``), with the same parameter names, so a minigen state dict loads into them
(``load_minigen_state``) and the outputs agree (``tests/test_bench.py`` checks this). The
workload builders mirror those of :mod:`bench.workloads`: same shapes, same schedule, the
same DDPM arithmetic (Ho et al. 2020, eq. 4 and Algorithm 2; DDIM, Song et al. 2021,
eq. 12), PyTorch's default Adam.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench import workloads as wl
from minigen.diffusion import DDPM


def sinusoidal_embedding(t, dim):
    """[sin(t f_i), cos(t f_i)], f_i = exp(-log(10000) i / (dim/2 - 1)), computed in float64
    as :class:`minigen.nn.SinusoidalEmbedding` does."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float64, device=t.device)
                      * (-math.log(10000.0) / (half - 1)))
    args = t.to(torch.float64)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1).to(torch.float32)


class MLP(nn.Module):
    """[x, embedding(t)] -> Linear/SiLU ... -> Linear, as :class:`minigen.nn.MLP`."""

    def __init__(self, in_features, out_features, hidden, activation, time_dim):
        super().__init__()
        if activation != "silu":
            raise ValueError(f"torch_ref.MLP: only 'silu' is mirrored, got {activation!r}")
        self.time_dim = time_dim
        sizes = (in_features + time_dim,) + tuple(hidden) + (out_features,)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x, t):
        x = torch.cat([x, sinusoidal_embedding(t, self.time_dim)], dim=1)
        for layer in self.layers[:-1]:
            x = F.silu(layer(x))
        return self.layers[-1](x)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, time_dim, dropout, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_proj = nn.Linear(time_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (x if self.skip is None else self.skip(x)) + h


class SelfAttention2d(nn.Module):
    def __init__(self, channels, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(n, 3, c, h * w)
        q, k, v = (qkv[:, i].transpose(1, 2) for i in range(3))
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(1, 2).reshape(n, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def _run(stage, x, temb):
    for m in stage:
        x = m(x, temb) if isinstance(m, ResBlock) else m(x)
    return x


class UNet(nn.Module):
    """The layout of :class:`minigen.nn.UNet` (unconditional): stem, down stages with skips,
    middle, up stages fed the concatenated skips, GroupNorm, SiLU, conv."""

    def __init__(self, in_channels, base_channels, channel_mults, num_res_blocks,
                 attention_resolutions, image_size, dropout, groups, time_dim, num_classes=None):
        super().__init__()
        self.base_channels, self.num_classes = base_channels, num_classes

        def res(cin, cout):
            return ResBlock(cin, cout, time_dim, dropout, groups)

        def attention(ch, size):
            return [SelfAttention2d(ch, groups)] if size in attention_resolutions else []

        self.time_mlp = nn.ModuleList([nn.Linear(base_channels, time_dim),
                                       nn.Linear(time_dim, time_dim)])
        if num_classes is not None:  # labels 0..K-1 and K, the null class
            self.class_embed = nn.Embedding(num_classes + 1, time_dim)
        self.stem = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        ch, size, skips = base_channels, image_size, [base_channels]
        down = []
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                down.append([res(ch, base_channels * mult)] + attention(base_channels * mult, size))
                ch = base_channels * mult
                skips.append(ch)
            if level < len(channel_mults) - 1:
                down.append([Downsample(ch)])
                size //= 2
                skips.append(ch)
        self.down = nn.ModuleList(nn.ModuleList(stage) for stage in down)
        self.middle = nn.ModuleList([res(ch, ch)] + attention(ch, size) + [res(ch, ch)])
        up = []
        for level, mult in reversed(list(enumerate(channel_mults))):
            for i in range(num_res_blocks + 1):
                stage = [res(ch + skips.pop(), base_channels * mult)]
                ch = base_channels * mult
                stage += attention(ch, size)
                if level > 0 and i == num_res_blocks:
                    stage.append(Upsample(ch))
                    size *= 2
                up.append(stage)
        self.up = nn.ModuleList(nn.ModuleList(stage) for stage in up)
        self.out_norm = nn.GroupNorm(groups, ch)
        self.out_conv = nn.Conv2d(ch, in_channels, 3, padding=1)

    def forward(self, x, t, y=None):
        temb = sinusoidal_embedding(t, self.base_channels)
        temb = self.time_mlp[1](F.silu(self.time_mlp[0](temb)))
        if self.num_classes is not None:
            y = torch.full_like(t, self.num_classes) if y is None else y
            temb = temb + self.class_embed(y)
        h = self.stem(x)
        skips = [h]
        for stage in self.down:
            h = _run(stage, h, temb)
            skips.append(h)
        h = _run(self.middle, h, temb)
        for stage in self.up:
            h = _run(stage, torch.cat([h, skips.pop()], dim=1), temb)
        return self.out_conv(F.silu(self.out_norm(h)))


def load_minigen_state(module, state):
    """Copy a minigen ``state_dict()`` (same names, NumPy arrays) into ``module``."""
    module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    return module


# --- workload builders -------------------------------------------------------------------
class Tables:
    """The schedule's per-timestep tables as float32 tensors on ``device``."""

    def __init__(self, T, device):
        s = wl.schedule(T)
        self.schedule = s

        def table(a):
            return torch.tensor(np.asarray(a), dtype=torch.float32, device=device)

        self.sqrt_abar = table(s.sqrt_alphas_cumprod)
        self.sqrt_one_minus_abar = table(s.sqrt_one_minus_alphas_cumprod)
        self.coef_x0_xt = table(s.sqrt_recip_alphas_cumprod)
        self.coef_x0_eps = table(-s.sqrt_recipm1_alphas_cumprod)
        self.coef1 = table(s.posterior_mean_coef1)
        self.coef2 = table(s.posterior_mean_coef2)
        self.sigma = table(np.exp(0.5 * s.posterior_log_variance_clipped))


def _at(table, t, like):
    """table[t] shaped (batch, 1, ..., 1) to broadcast against ``like``."""
    return table[t].reshape((-1,) + (1,) * (like.ndim - 1))


def q_sample(tab, x0, t, noise):
    """Ho et al. 2020, eq. 4."""
    return _at(tab.sqrt_abar, t, x0) * x0 + _at(tab.sqrt_one_minus_abar, t, x0) * noise


def p_sample_step(tab, xt, eps, t, noise):
    """x0_hat from eps (eq. 4 solved for x0), posterior mean (eq. 7), + sigma_t z where t > 0."""
    x0_hat = _at(tab.coef_x0_xt, t, xt) * xt + _at(tab.coef_x0_eps, t, xt) * eps
    mean = _at(tab.coef1, t, xt) * x0_hat + _at(tab.coef2, t, xt) * xt
    nonzero = (t > 0).to(xt.dtype).reshape((-1,) + (1,) * (xt.ndim - 1))
    return mean + nonzero * _at(tab.sigma, t, xt) * noise


def _generator(device):
    return torch.Generator(device=device).manual_seed(wl.SEED)


def _train_step(model, lr, x0, T, device, labels=None):
    """One DDPM step (Algorithm 1) of ``model``, class-conditional when ``labels`` are given."""
    tab = Tables(T, device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = _generator(device)
    conditioning = () if labels is None else (labels,)

    def step():
        t = torch.randint(0, T, (x0.shape[0],), device=device, generator=gen)
        noise = torch.randn(x0.shape, device=device, generator=gen)
        loss = F.mse_loss(model(q_sample(tab, x0, t, noise), t, *conditioning), noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def _tensor(array, device):
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


def mlp_train_step(sizes, device):
    torch.manual_seed(wl.SEED)
    from minigen import data as datasets

    x0 = _tensor(datasets.s_curve(sizes["batch"], seed=wl.SEED), device)
    return _train_step(MLP(**wl.MLP_CONFIG).to(device), wl.LR["W1"], x0, sizes["T"], device)


def unet_train_step(sizes, device):
    torch.manual_seed(wl.SEED)
    x0 = _tensor(wl.image_batch(sizes["batch"], wl.UNET_CONFIG["image_size"]), device)
    return _train_step(UNet(**wl.UNET_CONFIG).to(device), wl.LR["W2"], x0, sizes["T"], device)


def conv_forward_backward(sizes, device):
    torch.manual_seed(wl.SEED)
    c, s = sizes["channels"], sizes["size"]
    layer = nn.Conv2d(c, c, 3, padding=1).to(device)
    x = _tensor(wl.normal((sizes["batch"], c, s, s)), device).requires_grad_(True)
    gy = _tensor(wl.normal((sizes["batch"], c, s, s), seed=wl.SEED + 1), device)

    def step():
        x.grad = None
        layer.zero_grad()
        layer(x).backward(gy)
    return step


def _arrays(sizes, device):
    shape = (sizes["batch"],) + sizes["image"]
    a = _tensor(wl.normal(shape), device)
    noise = _tensor(wl.normal(shape, seed=wl.SEED + 1), device)
    t = _tensor(wl.timesteps(sizes["batch"], sizes["T"]), device)
    return a, noise, t


def q_sample_workload(sizes, device):
    tab = Tables(sizes["T"], device)
    x0, noise, t = _arrays(sizes, device)
    return lambda: q_sample(tab, x0, t, noise)


def p_sample_workload(sizes, device):
    """One step with the identity network (eps = x_t), as minigen's W5."""
    tab = Tables(sizes["T"], device)
    xt, noise, t = _arrays(sizes, device)
    return lambda: p_sample_step(tab, xt, xt, t, noise)


def mlp_sampling(sizes, device):
    torch.manual_seed(wl.SEED)
    model = MLP(**wl.MLP_CONFIG).to(device).eval()
    tab = Tables(sizes["T"], device)
    gen = _generator(device)

    @torch.no_grad()
    def run():
        x = torch.randn((sizes["points"], 2), device=device, generator=gen)
        for i in range(sizes["T"] - 1, -1, -1):
            t = torch.full((len(x),), i, dtype=torch.int64, device=device)
            noise = (torch.randn(x.shape, device=device, generator=gen) if i > 0
                     else torch.zeros_like(x))
            x = p_sample_step(tab, x, model(x, t), t, noise)
        return x
    return run


def unet_ddim(sizes, device):
    torch.manual_seed(wl.SEED)
    model = UNet(**wl.UNET_CONFIG).to(device).eval()
    s = wl.UNET_CONFIG["image_size"]
    return _ddim(model, sizes["T"], sizes["steps"], (sizes["images"], 1, s, s), device)


def _ddim(model, T, steps, shape, device, labels=None, guidance=0.0):
    """DDIM (Song et al. 2021, eq. 12, eta = 0) over ``steps`` timesteps; with ``labels``,
    classifier-free guidance (Ho & Salimans 2022, eq. 6) from one batched call per step."""
    tab = Tables(T, device)
    ts = [int(i) for i in DDPM(wl.identity_network, tab.schedule).ddim_timesteps(steps)]
    acp = tab.schedule.alphas_cumprod
    gen = _generator(device)

    def eps(x, t):
        if labels is None:
            return model(x, t)
        null = torch.full_like(labels, model.num_classes)
        both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]))
        return (1 + guidance) * both[:len(x)] - guidance * both[len(x):]

    @torch.no_grad()
    def run():
        x = torch.randn(shape, device=device, generator=gen)
        for k in range(len(ts) - 1, -1, -1):
            i = ts[k]
            abar, abar_prev = acp[i], (acp[ts[k - 1]] if k > 0 else 1.0)
            t = torch.full((len(x),), i, dtype=torch.int64, device=device)
            x0_hat = _at(tab.coef_x0_xt, t, x) * x + _at(tab.coef_x0_eps, t, x) * eps(x, t)
            eps_hat = (x - math.sqrt(abar) * x0_hat) / math.sqrt(1 - abar)
            x = math.sqrt(abar_prev) * x0_hat + math.sqrt(1 - abar_prev) * eps_hat
        return x
    return run


# --- the ported scripts' shapes (bench.ported) ---------------------------------------------
class MnistNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
        self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = self.dropout2(F.relu(self.fc1(torch.flatten(self.dropout1(x), 1))))
        return F.log_softmax(self.fc2(x), dim=1)


def mnist_cnn_step(sizes, device):
    torch.manual_seed(wl.SEED)
    from bench import ported

    model = MnistNet().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = _tensor(wl.normal((sizes["batch"], 1, 28, 28)), device)
    y = _tensor(ported.labels(sizes["batch"]), device)

    def step():
        loss = F.nll_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def dcgan_step(sizes, device):
    torch.manual_seed(wl.SEED)
    from bench import ported

    c = ported.DCGAN
    nz, ngf, ndf, nc = c["nz"], c["ngf"], c["ndf"], c["channels"]

    def up(cin, cout, stride, padding):
        return [nn.ConvTranspose2d(cin, cout, 4, stride, padding, bias=False),
                nn.BatchNorm2d(cout), nn.ReLU()]

    def down(cin, cout):
        return [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout),
                nn.LeakyReLU(0.2)]

    G = nn.Sequential(*up(nz, ngf * 8, 1, 0), *up(ngf * 8, ngf * 4, 2, 1),
                      *up(ngf * 4, ngf * 2, 2, 1), *up(ngf * 2, ngf, 2, 1),
                      nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()).to(device)
    D = nn.Sequential(nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
                      *down(ndf, ndf * 2), *down(ndf * 2, ndf * 4), *down(ndf * 4, ndf * 8),
                      nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid()).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=c["lr"], betas=c["betas"])
    opt_d = torch.optim.Adam(D.parameters(), lr=c["lr"], betas=c["betas"])
    n = sizes["batch"]
    real = _tensor(np.tanh(wl.normal((n, nc, 64, 64))), device)
    z = _tensor(wl.normal((n, nz, 1, 1), seed=wl.SEED + 1), device)
    ones, zeros = torch.ones(n, device=device), torch.zeros(n, device=device)

    def step():
        fake = G(z)
        opt_d.zero_grad()
        loss_d = (F.binary_cross_entropy(D(real).reshape(-1), ones)
                  + F.binary_cross_entropy(D(fake.detach()).reshape(-1), zeros))
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        F.binary_cross_entropy(D(fake).reshape(-1), ones).backward()
        opt_g.step()
    return step


def cfg_unet_step(sizes, device):
    torch.manual_seed(wl.SEED)
    from bench import ported

    n = sizes["batch"]
    y = ported.labels(n)
    y[wl.host_rng().random(n) < ported.CFG["label_dropout"]] = ported.CFG_UNET_CONFIG["num_classes"]
    return _train_step(UNet(**ported.CFG_UNET_CONFIG).to(device), ported.CFG["lr"],
                       _tensor(wl.image_batch(n, 28), device), sizes["T"], device,
                       _tensor(y, device))


def cfg_unet_sampling(sizes, device):
    torch.manual_seed(wl.SEED)
    from bench import ported

    model = UNet(**ported.CFG_UNET_CONFIG).to(device).eval()
    n = sizes["images"]
    return _ddim(model, sizes["T"], sizes["steps"], (n, 1, 28, 28), device,
                 _tensor(ported.labels(n), device), ported.CFG["guidance"])


BUILDERS = {
    "W1": mlp_train_step, "W2": unet_train_step, "W3": conv_forward_backward,
    "W4": q_sample_workload, "W5": p_sample_workload, "W6a": mlp_sampling, "W6b": unet_ddim,
    "W7": mnist_cnn_step, "W8": dcgan_step, "W9": cfg_unet_step, "W9s": cfg_unet_sampling,
}


def build(key, sizes, device):
    """The PyTorch step function of workload ``key`` at ``sizes`` on ``device``."""
    return BUILDERS[key](sizes, device)
