"""W7-W9: the shapes of the public PyTorch scripts that users port to minigen.

- W7: one training step of pytorch/examples' MNIST CNN (1x28x28, conv 3x3 1 -> 32 -> 64,
  max-pool 2, dropout 0.25, linear 9216 -> 128, dropout 0.5, linear 128 -> 10, NLL of
  log-softmax), batch 64, Adam.
- W8: one DCGAN step of pytorch/examples' DCGAN at 64x64 (Radford et al. 2016: nz 100,
  ngf = ndf = 64, transposed 4x4 stride-2 convolutions with BatchNorm2d and ReLU in G,
  4x4 stride-2 convolutions with BatchNorm2d and LeakyReLU(0.2) in D, BCE): the
  discriminator's update on a real and a generated batch, then the generator's, Adam
  (lr 2e-4, betas (0.5, 0.999)).
- W9: one DDPM training step of a classifier-free-guidance UNet on 1x28x28 (10 classes,
  labels dropped to the null class with probability 0.1), batch 64, Adam; W9s: its
  sampling pass, DDIM with 50 steps and guidance 2 (a conditional and an unconditional
  evaluation per step, in one batch), 16 images.

Each builder seeds minigen and returns a step of no arguments, as :mod:`bench.workloads`;
:mod:`bench.torch_ref` builds the same networks and steps in PyTorch.
"""
import numpy as np

import minigen as mg
import minigen.functional as F
from minigen import backend, nn, optim
from minigen.diffusion import DDPM

from bench import workloads as wl

CFG_UNET_CONFIG = dict(in_channels=1, base_channels=32, channel_mults=(1, 2), num_res_blocks=1,
                       attention_resolutions=(14,), image_size=28, dropout=0.0, groups=8,
                       time_dim=128, num_classes=10)
DCGAN = dict(nz=100, ngf=64, ndf=64, channels=3, lr=2e-4, betas=(0.5, 0.999))
CFG = dict(label_dropout=0.1, guidance=2.0, lr=2e-4)


def labels(batch, classes=10):
    return wl.host_rng().integers(0, classes, batch)


class MnistNet(nn.Module):
    """pytorch/examples' MNIST ``Net``."""

    def __init__(self):
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = self.dropout1(x).reshape(x.shape[0], -1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), axis=1)


def mnist_cnn_step(sizes, device):
    mg.manual_seed(wl.SEED)
    model = MnistNet().to(device)
    opt = optim.Adam(model, lr=1e-3)
    x = mg.tensor(wl.normal((sizes["batch"], 1, 28, 28)), device=device)
    y = mg.tensor(labels(sizes["batch"]), device=device)

    def step():
        loss = F.nll_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def dcgan_generator(nz, ngf, channels):
    def up(cin, cout, stride, padding):
        return [nn.ConvTranspose2d(cin, cout, 4, stride, padding, bias=False),
                nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*up(nz, ngf * 8, 1, 0), *up(ngf * 8, ngf * 4, 2, 1),
                         *up(ngf * 4, ngf * 2, 2, 1), *up(ngf * 2, ngf, 2, 1),
                         nn.ConvTranspose2d(ngf, channels, 4, 2, 1, bias=False), nn.Tanh())


def dcgan_discriminator(ndf, channels):
    def down(cin, cout):
        return [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout),
                nn.LeakyReLU(0.2)]
    return nn.Sequential(nn.Conv2d(channels, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
                         *down(ndf, ndf * 2), *down(ndf * 2, ndf * 4), *down(ndf * 4, ndf * 8),
                         nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())


def dcgan_step(sizes, device):
    mg.manual_seed(wl.SEED)
    c = DCGAN
    G = dcgan_generator(c["nz"], c["ngf"], c["channels"]).to(device)
    D = dcgan_discriminator(c["ndf"], c["channels"]).to(device)
    opt_g = optim.Adam(G, lr=c["lr"], betas=c["betas"])
    opt_d = optim.Adam(D, lr=c["lr"], betas=c["betas"])
    n = sizes["batch"]
    real = mg.tensor(np.tanh(wl.normal((n, c["channels"], 64, 64))), device=device)
    z = mg.tensor(wl.normal((n, c["nz"], 1, 1), seed=wl.SEED + 1), device=device)
    ones, zeros = mg.ones(n, device=device), mg.zeros(n, device=device)

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
    mg.manual_seed(wl.SEED)
    model = nn.UNet(**CFG_UNET_CONFIG, device=device)
    ddpm = DDPM(model, wl.schedule(sizes["T"]))
    opt = optim.Adam(model, lr=CFG["lr"])
    n = sizes["batch"]
    x0 = backend.to_device(wl.image_batch(n, 28), device)
    y = labels(n)
    y[wl.host_rng().random(n) < CFG["label_dropout"]] = CFG_UNET_CONFIG["num_classes"]

    def step():
        loss = ddpm.loss(x0, y=y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def cfg_unet_sampling(sizes, device):
    mg.manual_seed(wl.SEED)
    ddpm = DDPM(nn.UNet(**CFG_UNET_CONFIG, device=device), wl.schedule(sizes["T"]))
    y = labels(sizes["images"])
    return lambda: ddpm.ddim_sample((sizes["images"], 1, 28, 28), sizes["steps"], eta=0.0,
                                    progress=False, seed=wl.SEED, y=y,
                                    guidance=CFG["guidance"])
