"""A vanilla GAN (Goodfellow et al. 2014) with MLPs on the 8-Gaussian ring, in the shape of
the usual single-file PyTorch GAN: ``nn.Sequential`` networks, ``BCEWithLogitsLoss``,
``ones``/``zeros`` targets, a ``DataLoader`` over a ``TensorDataset``.

    python examples/mlp_gan.py --steps 5000            # a few minutes on a laptop CPU
"""
import argparse

import minigen as mg
from minigen import nn, optim
from minigen.data import DataLoader, TensorDataset

latent_dim, hidden = 2, 128


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--n", type=int, default=10000, help="training points")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    mg.manual_seed(args.seed)

    data = mg.from_numpy(mg.data.ring8(args.n, seed=args.seed)).float()
    loader = DataLoader(TensorDataset(data), batch_size=args.batch_size, shuffle=True,
                        drop_last=True)
    G = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                      nn.ReLU(), nn.Linear(hidden, 2))
    D = nn.Sequential(nn.Linear(2, hidden), nn.LeakyReLU(0.2, inplace=True),
                      nn.Linear(hidden, hidden), nn.LeakyReLU(0.2, inplace=True),
                      nn.Linear(hidden, 1))
    criterion = nn.BCEWithLogitsLoss()
    opt_G = optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_D = optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))

    step = 0
    while step < args.steps:
        for (real,) in loader:
            ones, zeros = mg.ones(real.size(0), 1), mg.zeros(real.size(0), 1)
            # discriminator: real -> 1, fake -> 0
            z = mg.randn(real.size(0), latent_dim)
            fake = G(z)
            d_loss = criterion(D(real), ones) + criterion(D(fake.detach()), zeros)
            opt_D.zero_grad()
            d_loss.backward()
            opt_D.step()
            # generator: the non-saturating loss -log D(G(z))
            g_loss = criterion(D(fake), ones)
            opt_G.zero_grad()
            g_loss.backward()
            opt_G.step()
            step += 1
            if step % 500 == 0 or step == args.steps:
                print(f"step {step}: d_loss {d_loss.item():.4f} g_loss {g_loss.item():.4f}")
            if step == args.steps:
                break

    with mg.no_grad():
        samples = G(mg.randn(2000, latent_dim)).numpy()
    ring = mg.data.RING8
    coverage = mg.metrics.mode_coverage(samples, ring.modes, ring.std)
    print(f"modes covered {coverage['modes_covered']}/8, high-quality samples "
          f"{coverage['high_quality']:.2f}")
    return samples, coverage


if __name__ == "__main__":
    main()
