"""The architecture changes Dhariwal & Nichol (2021, Sec. 3) measured, as UNet options: AdaGN,
BigGAN's residual up/downsampling, attention at more resolutions and residual rescaling by
1/sqrt(2). Each res block against a NumPy formula, gradient checks in float64, and the default
network unchanged (keys, shapes and config of the network before the options existed)."""
import hashlib

import numpy as np
import pytest

import minigen as mg
import minigen.nn as nn
from minigen.nn.unet import ResBlock
from tests.references import conv2d_loop
from tests.test_nn_layers import check_module_gradients, randomize_affine
from tests.test_nn_unet import group_norm_ref, silu

F64 = np.float64
TINY = dict(in_channels=2, base_channels=4, channel_mults=(1, 2), num_res_blocks=1,
            attention_resolutions=(4, 8), image_size=8, groups=2, time_dim=8)


def _conv(z, layer, padding=1):
    return conv2d_loop(z, layer.weight.data, layer.bias.data, 1, padding)


def _pool(z):
    n, c, h, w = z.shape
    return z.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def _block_ref(block, x, temb, adagn=False, resample=None, rescale=False):
    """The res block written out in NumPy."""
    h = silu(group_norm_ref(x, block.norm1))
    if resample == "down":
        h, x = _pool(h), _pool(x)
    elif resample == "up":
        h, x = (z.repeat(2, axis=2).repeat(2, axis=3) for z in (h, x))
    h = _conv(h, block.conv1)
    proj = silu(temb) @ block.time_proj.weight.data.T + block.time_proj.bias.data
    c = h.shape[1]
    if adagn:
        h = group_norm_ref(h, block.norm2) * (1 + proj[:, :c, None, None]) + proj[:, c:, None,
                                                                                   None]
    else:
        h = group_norm_ref(h + proj[:, :, None, None], block.norm2)
    h = _conv(silu(h), block.conv2)
    out = (x if block.skip is None else _conv(x, block.skip, 0)) + h
    return out / np.sqrt(2) if rescale else out


@pytest.mark.parametrize("options", [dict(adagn=True), dict(resample="down"),
                                     dict(resample="up"), dict(rescale_residual=True),
                                     dict(adagn=True, resample="down", rescale_residual=True)])
def test_resblock_options_match_their_formulas(options):
    mg.manual_seed(0)
    cout = 4 if "resample" in options else 6
    block = randomize_affine(ResBlock(4, cout, time_dim=5, groups=2, dtype=F64, **options),
                             seed=2)
    rng = np.random.default_rng(1)
    x, temb = rng.standard_normal((2, 4, 4, 4)), rng.standard_normal((2, 5))
    ref = _block_ref(block, x, temb, options.get("adagn", False), options.get("resample"),
                     options.get("rescale_residual", False))
    out = block(mg.tensor(x), mg.tensor(temb)).numpy()
    side = {"down": 2, "up": 8}.get(options.get("resample"), 4)
    assert out.shape == (2, cout, side, side)
    np.testing.assert_allclose(out, ref, atol=1e-10)
    assert block.time_proj.weight.shape[0] == cout * (2 if options.get("adagn") else 1)


@pytest.mark.parametrize("options", [dict(adagn=True), dict(resample="down"),
                                     dict(resample="up", rescale_residual=True)])
def test_resblock_option_gradients(options):
    mg.manual_seed(0)
    block = randomize_affine(ResBlock(4, 4, time_dim=5, groups=2, dtype=F64, **options), seed=1)
    rng = np.random.default_rng(0)
    check_module_gradients(block, [rng.standard_normal((2, 4, 4, 4)), rng.standard_normal((2, 5))])


def test_unet_with_every_option_has_gradients_and_round_trips():
    mg.manual_seed(3)
    config = dict(TINY, adagn=True, resblock_updown=True, rescale_residual=True,
                  attention_resolutions=(8, 4), num_classes=3)
    unet = randomize_affine(nn.UNet(**config, dtype=F64), seed=4)
    x = np.random.default_rng(5).standard_normal((2, 2, 8, 8))
    t, y = np.array([1, 7]), np.array([0, 2])
    assert unet(mg.tensor(x), t, y).shape == (2, 2, 8, 8)
    check_module_gradients(unet, [x], forward=lambda m, xs: m(xs, t, y), directions=4)
    assert {k: unet.config[k] for k in ("adagn", "resblock_updown", "rescale_residual")} == {
        "adagn": True, "resblock_updown": True, "rescale_residual": True}
    rebuilt = nn.build_model("UNet", unet.config)
    rebuilt.load_state_dict(unet.state_dict())
    np.testing.assert_array_equal(rebuilt(mg.tensor(x), t, y).numpy(),
                                  unet(mg.tensor(x), t, y).numpy())
    downs = [s[0] for s in unet.down if isinstance(s[0], ResBlock) and s[0].resample]
    ups = [m for s in unet.up for m in s if isinstance(m, ResBlock) and m.resample == "up"]
    assert len(downs) == 1 and len(ups) == 1


def test_the_default_unet_is_the_network_before_the_options():
    """Keys, shapes and config of ``UNet()`` as measured on the code before the options."""
    unet = nn.UNet()
    state = unet.state_dict()
    signature = ",".join(f"{k}:{v.shape}" for k, v in sorted(state.items()))
    assert len(state) == 128 and sum(v.size for v in state.values()) == 701345
    assert hashlib.sha256(signature.encode()).hexdigest()[:16] == "570eee88c384efbd"
    assert set(unet.config) == {"in_channels", "base_channels", "channel_mults",
                                "num_res_blocks", "attention_resolutions", "image_size",
                                "dropout", "groups", "time_dim", "num_classes", "dtype"}
    plain = nn.UNet(adagn=False, resblock_updown=False, rescale_residual=False)
    assert plain.config == unet.config
