"""UNet and its blocks: gradient checks in float64, every parameter reached by the gradient,
time and class conditioning, configuration checks, state-dict and config round trips."""
import json

import numpy as np
import pytest

import minigen as mg
import minigen.nn as nn
from minigen.nn.unet import Downsample, ResBlock, Upsample
from tests.references import conv2d_loop
from tests.test_nn_layers import check_module_gradients, norm_ref, randomize_affine

F64 = np.float64
TINY = dict(in_channels=2, base_channels=4, channel_mults=(1, 2), num_res_blocks=1,
            attention_resolutions=(4, 8), image_size=8, groups=2, time_dim=8)


def silu(v):
    return v / (1 + np.exp(-v))


def group_norm_ref(x, norm):
    n, c = x.shape[:2]
    y = norm_ref(x.reshape(n, norm.groups, -1), 2, norm.eps).reshape(x.shape)
    return y * norm.weight.data.reshape(1, c, 1, 1) + norm.bias.data.reshape(1, c, 1, 1)


def test_resblock_matches_numpy_formula():
    mg.manual_seed(0)
    block = randomize_affine(ResBlock(4, 6, time_dim=5, groups=2, dtype=F64), seed=2)
    rng = np.random.default_rng(1)
    x, temb = rng.standard_normal((2, 4, 4, 4)), rng.standard_normal((2, 5))

    def conv(z, layer, padding):
        return conv2d_loop(z, layer.weight.data, layer.bias.data, 1, padding)

    h = conv(silu(group_norm_ref(x, block.norm1)), block.conv1, 1)
    proj = block.time_proj
    h = h + (silu(temb) @ proj.weight.data.T + proj.bias.data)[:, :, None, None]
    h = conv(silu(group_norm_ref(h, block.norm2)), block.conv2, 1)
    ref = conv(x, block.skip, 0) + h
    np.testing.assert_allclose(block(mg.tensor(x), mg.tensor(temb)).numpy(), ref, atol=1e-10)


def test_unet_conditioning_vector_formula():
    mg.manual_seed(1)
    unet = nn.UNet(**TINY, num_classes=3, dtype=F64)
    t, y = np.array([0, 10, 999]), np.array([2, 0, 3])
    lin0, lin1 = unet.time_mlp
    half = 2  # base_channels 4: DDPM's sinusoid of size base_channels
    freqs = np.exp(-np.log(10000) * np.arange(half) / (half - 1))
    emb = np.concatenate([np.sin(t[:, None] * freqs), np.cos(t[:, None] * freqs)], axis=1)
    ref = silu(emb @ lin0.weight.data.T + lin0.bias.data) @ lin1.weight.data.T + lin1.bias.data
    ref = ref + unet.class_embed.weight.data[y]
    np.testing.assert_allclose(unet.embed(t, y, 3, "cpu").numpy(), ref, atol=1e-12)


def test_resblock_gradients_with_skip_conv():
    mg.manual_seed(0)
    block = randomize_affine(ResBlock(4, 6, time_dim=5, groups=2, dtype=F64), seed=1)
    assert block.skip is not None
    rng = np.random.default_rng(0)
    check_module_gradients(block, [rng.standard_normal((2, 4, 4, 4)), rng.standard_normal((2, 5))])


def test_resblock_identity_skip_and_time_injection():
    mg.manual_seed(0)
    block = ResBlock(4, 4, time_dim=3, groups=2, dtype=F64)
    assert block.skip is None
    x = mg.tensor(np.random.default_rng(1).standard_normal((2, 4, 4, 4)))
    temb = np.random.default_rng(2).standard_normal((2, 3))
    y0 = block(x, mg.tensor(temb)).numpy()
    # with conv2's weights zero the block is x + conv2 bias: the residual path is the identity
    block.conv2.weight.data[...] = 0
    np.testing.assert_allclose(block(x, mg.tensor(temb)).numpy(),
                               x.numpy() + block.conv2.bias.data.reshape(1, 4, 1, 1), atol=1e-12)
    block.conv2.weight.data[...] = 1
    assert not np.allclose(block(x, mg.tensor(temb)).numpy(), block(x, mg.tensor(temb + 1)).numpy())
    assert y0.shape == (2, 4, 4, 4)


def test_down_and_up_sampling_formulas_and_gradients():
    mg.manual_seed(0)
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 4))
    down, up = Downsample(3, dtype=F64), Upsample(3, dtype=F64)
    ref = conv2d_loop(x, down.conv.weight.data, down.conv.bias.data, 2, 1)
    np.testing.assert_allclose(down(mg.tensor(x)).numpy(), ref, atol=1e-12)
    assert ref.shape == (2, 3, 2, 2)
    nearest = x.repeat(2, axis=2).repeat(2, axis=3)
    ref = conv2d_loop(nearest, up.conv.weight.data, up.conv.bias.data, 1, 1)
    np.testing.assert_allclose(up(mg.tensor(x)).numpy(), ref, atol=1e-12)
    assert ref.shape == (2, 3, 8, 8)
    check_module_gradients(down, [x])
    check_module_gradients(up, [x])


def test_unet_wiring_follows_ddpm():
    """The forward pass restated from the DDPM reference code: keep every down-path output,
    pop them last-in first-out into the up path as [h, skip], head GroupNorm-SiLU-conv."""
    mg.manual_seed(6)
    unet = nn.UNet(**{**TINY, "num_res_blocks": 2}, dtype=F64)
    x = mg.tensor(np.random.default_rng(7).standard_normal((2, 2, 8, 8)))
    t = np.array([4, 40])
    temb = unet.embed(t, None, 2, "cpu")
    hs = [unet.stem(x)]
    for stage in unet.down:
        h = hs[-1]
        for m in stage:
            h = m(h, temb) if isinstance(m, ResBlock) else m(h)
        hs.append(h)
    h = unet.middle[2](unet.middle[1](unet.middle[0](hs[-1], temb)), temb)
    for stage in unet.up:
        h = mg.cat([h, hs.pop()], axis=1)
        for m in stage:
            h = m(h, temb) if isinstance(m, ResBlock) else m(h)
    assert hs == []
    ref = unet.out_conv(mg.tensor(silu(unet.out_norm(h).numpy()))).numpy()
    np.testing.assert_allclose(unet(x, t).numpy(), ref, atol=1e-12)


def test_tiny_unet_gradients_float64():
    mg.manual_seed(0)
    unet = nn.UNet(**TINY, num_classes=3, dtype=F64)
    for name, p in unet.named_parameters():  # non-trivial GroupNorm affine maps
        if "norm" in name:
            p.data = p.data + np.random.default_rng(len(name)).standard_normal(p.shape) * 0.3
    x = np.random.default_rng(4).standard_normal((2, 2, 8, 8))
    t, y = np.array([3, 170]), np.array([1, 3])
    check_module_gradients(unet, [x], forward=lambda m, xs: m(xs, t, y), directions=4)


def test_every_unet_parameter_gets_a_gradient():
    mg.manual_seed(1)
    unet = nn.UNet(**{**TINY, "num_res_blocks": 2}, num_classes=2, dropout=0.1)
    x = mg.randn(4, 2, 8, 8)
    out = unet(x, np.array([0, 10, 500, 999]), np.array([0, 1, 2, 1]))
    assert out.shape == x.shape and out.dtype == np.float32
    ((out - x) ** 2).mean().backward()
    names = [name for name, _ in unet.named_parameters()]
    # attention: 2 + 2 down stages, middle, 3 + 3 up stages; each with qkv weight and bias
    assert len(names) == len(set(names)) and sum(".qkv." in n for n in names) == 2 * 11
    silent = [name for name, p in unet.named_parameters() if p.grad is None or not np.any(p.grad)]
    assert silent == []


def test_unet_architecture_of_the_default_config():
    unet = nn.UNet()
    assert unet.config == dict(
        in_channels=1, base_channels=32, channel_mults=(1, 2), num_res_blocks=1,
        attention_resolutions=(8,), image_size=16, dropout=0.0, groups=8, time_dim=128,
        num_classes=None, dtype="float32",
    )
    kinds = lambda stages: [[type(m).__name__ for m in s] for s in stages]  # noqa: E731
    assert kinds(unet.down) == [["ResBlock"], ["Downsample"], ["ResBlock", "SelfAttention2d"]]
    assert kinds([unet.middle]) == [["ResBlock", "SelfAttention2d", "ResBlock"]]
    assert kinds(unet.up) == [
        ["ResBlock", "SelfAttention2d"], ["ResBlock", "SelfAttention2d", "Upsample"],
        ["ResBlock"], ["ResBlock"],
    ]
    # skip connections: each up-path res block sees [h, skip] concatenated (skips: stem 32,
    # res 32, down 32, res 64, taken last-in first-out)
    shapes = [s[0].conv1.weight.shape[:2] for s in unet.up]
    assert shapes == [(64, 128), (64, 96), (32, 96), (32, 64)]
    assert unet.out_conv.weight.shape == (1, 32, 3, 3)


def test_unet_time_and_class_conditioning():
    mg.manual_seed(2)
    unet = nn.UNet(**TINY, num_classes=3)
    x = mg.randn(2, 2, 8, 8)
    t = np.array([5, 5])
    base = unet(x, t, np.array([0, 0])).numpy()
    assert not np.allclose(base, unet(x, t, np.array([1, 2])).numpy(), atol=1e-4)
    assert not np.allclose(base, unet(x, np.array([6, 900]), np.array([0, 0])).numpy(), atol=1e-4)
    null = np.array([3, 3])  # index num_classes is the "null" class of classifier-free guidance
    np.testing.assert_array_equal(unet(x, t).numpy(), unet(x, t, null).numpy())
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        unet(x, t, np.array([0, 4]))
    with pytest.raises(ValueError, match="unconditional"):
        nn.UNet(**TINY)(x, t, np.array([0, 1]))


def test_unet_dropout_only_in_training():
    mg.manual_seed(3)
    unet = nn.UNet(**TINY, dropout=0.5)
    x, t = mg.randn(2, 2, 8, 8), np.array([1, 2])
    assert not np.allclose(unet(x, t).numpy(), unet(x, t).numpy())
    unet.eval()
    np.testing.assert_array_equal(unet(x, t).numpy(), unet(x, t).numpy())


@pytest.mark.parametrize("change, message", [
    (dict(image_size=12, channel_mults=(1, 2, 2, 2)), r"2\*\*\(len\(channel_mults\)-1\) = 8"),
    (dict(groups=3), "groups=3 must divide every channel count \\[4, 8\\]"),
    (dict(attention_resolutions=(16,)), r"\[16\] are not among the resolutions \[8, 4\]"),
    (dict(base_channels=5, groups=1), "base_channels must be even"),
    (dict(dropout=1.0), "dropout"),
    (dict(channel_mults=()), "channel_mults"),
])
def test_unet_config_errors(change, message):
    with pytest.raises(ValueError, match="UNet: .*" + message):
        nn.UNet(**{**TINY, **change})


def test_unet_input_errors():
    unet = nn.UNet(**TINY)
    with pytest.raises(ValueError, match=r"\(N, 2, 8, 8\)"):
        unet(mg.zeros(2, 2, 16, 16), np.array([1, 2]))
    with pytest.raises(ValueError, match="t has 3 entries"):
        unet(mg.zeros(2, 2, 8, 8), np.array([1, 2, 3]))


@pytest.mark.parametrize("cls, config", [
    ("UNet", dict(TINY, num_classes=2)),
    ("MLP", dict(in_features=2, out_features=2, hidden=(8, 8), time_dim=4)),
])
def test_state_dict_and_config_round_trip(cls, config):
    mg.manual_seed(4)
    model = nn.build_model(cls, config)
    assert type(model).__name__ == cls
    restored_config = json.loads(json.dumps(model.config))  # tuples come back as lists
    mg.manual_seed(5)
    clone = nn.build_model(cls, restored_config).load_state_dict(model.state_dict())
    assert clone.config == model.config
    if cls == "UNet":
        x, args = mg.randn(3, 2, 8, 8), (np.array([0, 7, 30]), np.array([0, 1, 2]))
    else:
        x, args = mg.randn(3, 2), (np.array([0, 7, 30]),)
    np.testing.assert_array_equal(clone(x, *args).numpy(), model(x, *args).numpy())
    with pytest.raises(ValueError, match="known classes are \\[.*'MLP', 'UNet'"):  # + GAN nets
        nn.build_model("Transformer", {})
