"""A 2-D DDPM (Ho et al. 2020) on the two moons, written as a PyTorch user writes one.

Swap ``import minigen as mg`` for ``import torch`` and the script is the usual PyTorch
program line by line (see docs/from-pytorch.md):

    python examples/ddpm_2d.py --steps 3000        # a few minutes on a laptop CPU
"""
import argparse

import numpy as np

import minigen as mg
import minigen.functional as F
from minigen import nn, optim
from minigen.data import DataLoader, TensorDataset


class Denoiser(nn.Module):
    """eps_theta(x_t, t): an MLP on [x_t, sinusoidal embedding of t]."""

    def __init__(self, hidden=128, emb=32):
        super().__init__()
        self.embed = nn.SinusoidalEmbedding(emb)
        self.net = nn.Sequential(nn.Linear(2 + emb, hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden, hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden, 2))

    def forward(self, x, t):
        return self.net(mg.cat([x, self.embed(t)], axis=1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--n", type=int, default=4000, help="training points")
    parser.add_argument("--T", type=int, default=100, help="diffusion steps")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.T < 50:
        parser.error("--T must be >= 50 (the stretched schedule's last beta is 20/T)")
    mg.manual_seed(args.seed)

    data = mg.from_numpy(mg.data.moons(args.n, seed=args.seed))
    loader = DataLoader(TensorDataset(data), batch_size=128, shuffle=True, drop_last=True)

    scale = 1000 / args.T  # the paper's linear schedule (sec. 4), stretched to T steps
    betas = mg.linspace(1e-4 * scale, 0.02 * scale, args.T)
    alphas = 1.0 - betas
    alphas_cumprod = mg.tensor(np.cumprod(alphas.numpy()))
    sqrt_ab, sqrt_1mab = alphas_cumprod.sqrt(), (1.0 - alphas_cumprod).sqrt()

    model = Denoiser()
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    step = 0
    while step < args.steps:
        for (x0,) in loader:  # Algorithm 1
            t = mg.randint(0, args.T, (x0.size(0),))
            noise = mg.randn_like(x0)
            x_t = sqrt_ab[t].view(-1, 1) * x0 + sqrt_1mab[t].view(-1, 1) * noise
            loss = F.mse_loss(model(x_t, t), noise)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            if step % 500 == 0 or step == args.steps:
                print(f"step {step}: loss {loss.item():.4f}")
            if step == args.steps:
                break

    model.eval()
    with mg.no_grad():  # Algorithm 2
        x = mg.randn(args.samples, 2)
        for i in reversed(range(args.T)):
            t = mg.full((args.samples,), i)
            eps = model(x, t)
            x = (x - betas[t].view(-1, 1) / sqrt_1mab[t].view(-1, 1) * eps) / alphas[t].view(-1, 1).sqrt()
            if t[0] > 0:  # a one-element tensor has a truth value, as in PyTorch
                x = x + betas[t].view(-1, 1).sqrt() * mg.randn_like(x)
    score = mg.metrics.energy_distance(x.numpy(), mg.data.moons(args.samples, seed=args.seed + 1))
    print(f"energy distance of {args.samples} samples to fresh data: {score:.4f}")
    return x.numpy(), score


if __name__ == "__main__":
    main()
