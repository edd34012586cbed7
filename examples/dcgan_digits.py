"""DCGAN (Radford et al. 2015) on the 8x8 digits, in the shape of PyTorch's DCGAN example:
Sequential generator and discriminator, ``weights_init`` through ``apply``, ``BCELoss``
with ``mg.full`` label tensors, Adam(2e-4, betas=(0.5, 0.999)).

    python examples/dcgan_digits.py --steps 2000       # a few minutes on a laptop CPU
"""
import argparse

import numpy as np

import minigen as mg
from minigen import nn, optim
from minigen.data import DataLoader, TensorDataset

nz, ngf, ndf = 16, 32, 32  # latent size, generator and discriminator widths


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0, bias=False),  # 1x1 -> 4x4
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),  # 4x4 -> 8x8
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.Conv2d(ngf, 1, 3, 1, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, z):
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1, bias=False),  # 8x8 -> 4x4
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 3, 1, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False),  # 4x4 -> 1x1
            nn.Sigmoid(),
        )

    def forward(self, x):
        return self.main(x)


def weights_init(m):
    classname = type(m).__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score", action="store_true",
                        help="score 500 samples with minigen's reference digits classifier")
    args = parser.parse_args(argv)
    mg.manual_seed(args.seed)

    images, labels = mg.data.digits()  # (1797, 1, 8, 8) in [-1, 1]
    loader = DataLoader(TensorDataset(mg.from_numpy(images)), batch_size=args.batch_size,
                        shuffle=True, drop_last=True)
    netG, netD = Generator(), Discriminator()
    netG.apply(weights_init)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    fixed_noise = mg.randn(64, nz, 1, 1)
    real_label, fake_label = 1.0, 0.0
    optimizerD = optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))

    step = 0
    while step < args.steps:
        for (real,) in loader:
            # (1) update D: maximize log(D(x)) + log(1 - D(G(z)))
            netD.zero_grad()
            b_size = real.size(0)
            label = mg.full((b_size,), real_label)
            output = netD(real).view(-1)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()
            noise = mg.randn(b_size, nz, 1, 1)
            fake = netG(noise)
            label.fill_(fake_label)
            output = netD(fake.detach()).view(-1)
            errD_fake = criterion(output, label)
            errD_fake.backward()
            errD = errD_real + errD_fake
            optimizerD.step()
            # (2) update G: maximize log(D(G(z)))
            netG.zero_grad()
            label.fill_(real_label)
            output = netD(fake).view(-1)
            errG = criterion(output, label)
            errG.backward()
            optimizerG.step()
            step += 1
            if step % 200 == 0 or step == args.steps:
                print(f"step {step}: Loss_D {errD.item():.4f} Loss_G {errG.item():.4f} "
                      f"D(x) {D_x:.3f} D(G(z)) {output.mean().item():.3f}")
            if step == args.steps:
                break

    netG.eval()
    with mg.no_grad():
        samples = netG(fixed_noise).numpy()
    print(f"samples {samples.shape}, range [{samples.min():.2f}, {samples.max():.2f}], "
          f"pixel mean {samples.mean():.3f} (data {np.mean(images):.3f})")
    if args.score:
        from minigen.evaluate import digits_classifier

        with mg.no_grad():
            many = netG(mg.randn(500, nz, 1, 1)).numpy()
        scores = digits_classifier().score(many)
        print(f"class coverage {scores['class_coverage']}/10, mean confidence "
              f"{scores['mean_confidence']:.3f}, Frechet distance {scores['frechet_distance']:.2f}")
    return samples


if __name__ == "__main__":
    main()
