"""The workloads W1..W6 (issue 7) and how minigen runs each of them.

Each workload has full sizes and ``--quick`` sizes (smaller where a full run would not fit a
CI smoke run; the output says which sizes were used), a number of timed repetitions and of
untimed warm-up runs, and a builder: ``build(sizes, device) -> step``, a function of no
arguments that runs the workload once. Builders set up everything that is not timed (model,
optimizer, data, noise) and seed minigen so every run does the same work.
:mod:`bench.torch_ref` builds the same workloads in PyTorch from the same configurations.

- W1: one 2-D DDPM training step of the MLP 2+32 -> 128 -> 128 -> 128 -> 2 (SiLU,
  sinusoidal time embedding of 32), batch 256, Adam: loss (Algorithm 1), backward, step.
- W2: one DDPM training step of the compact UNet (1x16x16, 32 base channels, mults (1, 2),
  GroupNorm(8), attention at 8x8, time embedding 128), batch 64, Adam.
- W3: conv 3x3, 32 -> 32 channels, padding 1, 16x16, batch 64, forward + backward.
- W4: ``DDPM.q_sample`` (eq. 4) on 128x3x32x32 with given noise.
- W5: one ``DDPM.p_sample`` step (Algorithm 2) on 128x3x32x32 with an identity network,
  so only the sampling arithmetic is timed.
- W6a: a full 1000-step ancestral sampling run of W1's model, 2000 points.
- W6b: DDIM with 50 steps (Song et al. 2021, eta = 0) of W2's model, 64 images.
- W7, W8, W9, W9s: the shapes of ported PyTorch scripts (MNIST CNN, DCGAN 64x64, a
  classifier-free-guidance UNet on 28x28 and its DDIM sampling): :mod:`bench.ported`.
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import minigen as mg
from minigen import backend
from minigen import data as datasets
from minigen import nn, optim
from minigen.diffusion import DDPM, NoiseSchedule

# The two denoisers, shared with bench.torch_ref so both frameworks build the same networks.
MLP_CONFIG = dict(in_features=2, out_features=2, hidden=(128, 128, 128), activation="silu",
                  time_dim=32)
UNET_CONFIG = dict(in_channels=1, base_channels=32, channel_mults=(1, 2), num_res_blocks=1,
                   attention_resolutions=(8,), image_size=16, dropout=0.0, groups=8,
                   time_dim=128)
LR = {"W1": 1e-3, "W2": 2e-4}
DTYPE = np.float32
SEED = 0


def schedule(T):
    """The linear schedule of Ho et al. 2020 with betas scaled by 1000/T, so that a short
    chain (the quick W6a) still ends near pure noise."""
    return NoiseSchedule.linear(T, beta_start=1e-4 * 1000 / T, beta_end=0.02 * 1000 / T)


def host_rng():
    return np.random.default_rng(SEED)


def image_batch(n, size):
    """A fixed batch of images in [-1, 1] (timing does not depend on their content)."""
    return host_rng().uniform(-1, 1, (n, 1, size, size)).astype(DTYPE)


def normal(shape, seed=SEED):
    return np.random.default_rng(seed).standard_normal(shape, dtype=DTYPE)


def timesteps(batch, T):
    return host_rng().integers(0, T, batch)


def identity_network(x, t):
    """Stands in for the denoiser in W5, so only the sampling step itself is timed."""
    return x


# --- minigen builders --------------------------------------------------------------------
def _train_step(model, lr, x0, T):
    ddpm = DDPM(model, schedule(T))
    opt = optim.Adam(model, lr=lr)

    def step():
        loss = ddpm.loss(x0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def mlp_train_step(sizes, device):
    mg.manual_seed(SEED)
    model = nn.MLP(**MLP_CONFIG, device=device)
    x0 = backend.to_device(datasets.s_curve(sizes["batch"], seed=SEED), device)
    return _train_step(model, LR["W1"], x0, sizes["T"])


def unet_train_step(sizes, device):
    mg.manual_seed(SEED)
    model = nn.UNet(**UNET_CONFIG, device=device)
    x0 = backend.to_device(image_batch(sizes["batch"], UNET_CONFIG["image_size"]), device)
    return _train_step(model, LR["W2"], x0, sizes["T"])


def conv_forward_backward(sizes, device):
    mg.manual_seed(SEED)
    c, s = sizes["channels"], sizes["size"]
    layer = nn.Conv2d(c, c, 3, padding=1, device=device)
    x = mg.tensor(normal((sizes["batch"], c, s, s)), requires_grad=True, device=device)
    gy = backend.to_device(normal((sizes["batch"], c, s, s), seed=SEED + 1), device)

    def step():
        x.grad = None
        layer.zero_grad()
        layer(x).backward(gy)
    return step


def _image_batch(sizes, device):
    """A DDPM around the identity network, an image batch, its noise and timesteps."""
    ddpm = DDPM(identity_network, schedule(sizes["T"]))
    shape = (sizes["batch"],) + sizes["image"]
    x = backend.to_device(normal(shape), device)
    noise = backend.to_device(normal(shape, seed=SEED + 1), device)
    return ddpm, x, noise, timesteps(sizes["batch"], sizes["T"])


def q_sample(sizes, device):
    ddpm, x0, noise, t = _image_batch(sizes, device)
    return lambda: ddpm.q_sample(x0, t, noise)


def p_sample_step(sizes, device):
    ddpm, xt, noise, t = _image_batch(sizes, device)
    return lambda: ddpm.p_sample(xt, t, noise)


def mlp_sampling(sizes, device):
    mg.manual_seed(SEED)
    ddpm = DDPM(nn.MLP(**MLP_CONFIG, device=device), schedule(sizes["T"]))
    return lambda: ddpm.sample((sizes["points"], 2), progress=False, seed=SEED)


def unet_ddim(sizes, device):
    mg.manual_seed(SEED)
    ddpm = DDPM(nn.UNet(**UNET_CONFIG, device=device), schedule(sizes["T"]))
    s = UNET_CONFIG["image_size"]
    return lambda: ddpm.ddim_sample((sizes["images"], 1, s, s), sizes["steps"], eta=0.0,
                                    progress=False, seed=SEED)


def _ported(name):
    """The builder ``name`` of :mod:`bench.ported` (imported on use: it imports this module)."""
    def build(sizes, device):
        from bench import ported

        return getattr(ported, name)(sizes, device)
    return build


# --- the table of workloads --------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    build: Callable  # (sizes, device) -> step
    sizes: dict
    quick_sizes: dict = field(default_factory=dict)  # overrides of ``sizes`` under --quick
    reps: int = 10
    quick_reps: int = 3
    warmup: int = 2
    batch_key: str = "batch"  # the size that scales the work (the profile's overhead probe)
    arrays_moved: int = 0  # full arrays read + written by a memory-bound op (bandwidth)

    def sizes_for(self, quick):
        return {**self.sizes, **self.quick_sizes} if quick else dict(self.sizes)

    def bytes_moved(self, sizes):
        """Bytes the op must read and write at least, for the effective bandwidth."""
        if not self.arrays_moved:
            return None
        n = sizes["batch"] * int(np.prod(sizes["image"]))
        return self.arrays_moved * n * np.dtype(DTYPE).itemsize


IMAGE = (3, 32, 32)
WORKLOADS = (
    Workload("W1", "2D-DDPM MLP train step", mlp_train_step, {"batch": 256, "T": 1000},
             reps=30, quick_reps=5),
    Workload("W2", "UNet DDPM train step", unet_train_step, {"batch": 64, "T": 1000},
             {"batch": 8}, reps=10, quick_reps=3, warmup=1),
    Workload("W3", "conv3x3 32->32 fwd+bwd", conv_forward_backward,
             {"batch": 64, "channels": 32, "size": 16}, reps=20, quick_reps=5),
    Workload("W4", "q_sample", q_sample, {"batch": 128, "image": IMAGE, "T": 1000},
             reps=50, quick_reps=10, arrays_moved=3),
    Workload("W5", "p_sample step", p_sample_step, {"batch": 128, "image": IMAGE, "T": 1000},
             reps=50, quick_reps=10, arrays_moved=4),
    Workload("W6a", "MLP ancestral sampling", mlp_sampling, {"points": 2000, "T": 1000},
             {"T": 50}, reps=3, quick_reps=2, warmup=1, batch_key="points"),
    Workload("W6b", "UNet DDIM sampling", unet_ddim, {"images": 64, "steps": 50, "T": 1000},
             {"images": 8, "steps": 5}, reps=3, quick_reps=1, warmup=1, batch_key="images"),
    Workload("W7", "MNIST CNN train step", _ported("mnist_cnn_step"), {"batch": 64},
             {"batch": 4}, reps=10, quick_reps=2, warmup=1),
    Workload("W8", "DCGAN 64x64 G+D step", _ported("dcgan_step"), {"batch": 64},
             {"batch": 2}, reps=5, quick_reps=1, warmup=1),
    Workload("W9", "CFG UNet 28x28 train step", _ported("cfg_unet_step"),
             {"batch": 64, "T": 1000}, {"batch": 4}, reps=5, quick_reps=1, warmup=1),
    Workload("W9s", "CFG UNet 28x28 DDIM-50 sampling", _ported("cfg_unet_sampling"),
             {"images": 16, "steps": 50, "T": 1000}, {"images": 2, "steps": 2}, reps=2,
             quick_reps=1, warmup=1, batch_key="images"),
)
BY_KEY = {w.key: w for w in WORKLOADS}


def select(spec):
    """Workloads named in ``spec`` ("W1,W3"; "W6" means W6a and W6b), in table order."""
    if not spec:
        return list(WORKLOADS)
    wanted = [s.strip().upper() for s in spec.split(",") if s.strip()]
    chosen = set()
    for name in wanted:
        matches = [w.key for w in WORKLOADS if w.key.upper() == name
                   or (w.key.upper().startswith(name) and w.key[len(name):].isalpha())]
        if not matches:
            raise ValueError(f"bench: unknown workload {name!r}; choose from "
                             f"{', '.join(w.key for w in WORKLOADS)} (W6 = W6a + W6b, W9 = W9 + W9s)")
        chosen.update(matches)
    return [w for w in WORKLOADS if w.key in chosen]


def describe_sizes(sizes):
    """Human-readable sizes, e.g. "batch 256, T 1000"."""
    return ", ".join(f"{k} {'x'.join(map(str, v)) if isinstance(v, tuple) else v}"
                     for k, v in sizes.items())
