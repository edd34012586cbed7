# Made these files with minigen at commit 44678be (before containers took PyTorch's key names):
#   PYTHONPATH=<checkout of 44678be> python make_legacy.py   (run in this folder)
import numpy as np
import minigen as mg
from minigen import nn, data
from minigen.gan.trainer import train_gan, sample_run


def main():
    images, _ = data.digits(seed=0)
    train_gan(images[:64], 2, "gan_run", seed=0, latent_dim=4, base_channels=4, batch_size=8,
              ema_decay=0.5, figures=False, progress=False)
    samples = sample_run("gan_run", 4, seed=0)
    mg.manual_seed(0)
    mlp = nn.MLP(2, 2, hidden=(8, 8), time_dim=8)
    unet = nn.UNet(base_channels=4, channel_mults=(1, 2), attention_resolutions=(4,), image_size=8,
                   groups=2, time_dim=8, num_classes=3)
    rng = np.random.default_rng(0)
    x2, x8 = rng.standard_normal((3, 2)).astype(np.float32), rng.standard_normal((3, 1, 8, 8)).astype(np.float32)
    t = np.array([0, 5, 9])
    with mg.no_grad():
        out = {"mlp": mlp(mg.tensor(x2), t).numpy(), "unet": unet(mg.tensor(x8), t, np.array([0, 1, 2])).numpy()}
    mg.save({"mlp": mlp.state_dict(), "unet": unet.state_dict(), "x2": x2, "x8": x8, "t": t,
             "out": out, "gan_samples": samples, "unet_config": {k: list(v) if isinstance(v, tuple) else v for k, v in unet.config.items()},
             "mlp_config": {k: list(v) if isinstance(v, tuple) else v for k, v in mlp.config.items()}}, "models.npz")


if __name__ == "__main__":
    main()
