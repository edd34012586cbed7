"""State dicts interchangeable with PyTorch (same keys, same values, same outputs) and older
minigen checkpoints still loading (issue 18)."""
import pathlib
import shutil

import numpy as np
import pytest

import minigen as mg
from minigen import nn, optim
from minigen.nn.module import migrate_keys

LEGACY = pathlib.Path(__file__).parent / "data" / "legacy_44678be"


# --- keys -------------------------------------------------------------------------------------
def test_sequential_children_are_named_by_index_as_in_pytorch():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True), nn.Linear(4, 2))
    assert set(model.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert "(0): Linear(3, 4" in repr(model) and "layers" not in repr(model)
    assert len(model) == 3 and model[0] is model.children()[0] and model[-1] is model[2]
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear"]
    assert isinstance(model[1:], nn.Sequential) and len(model[1:]) == 2
    with pytest.raises(IndexError, match="index 3 out of range for 3"):
        model[3]


def test_containers_name_their_items():
    class Net(nn.Module):
        def __init__(self):
            self.blocks = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
            self.heads = nn.ModuleDict({"mu": nn.Linear(2, 1), "sigma": nn.Linear(2, 1)})
            self.seq = nn.Sequential(dict(fc=nn.Linear(2, 3), act=nn.Tanh()))

    net = Net()
    assert set(net.state_dict()) == {
        "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",
        "heads.mu.weight", "heads.mu.bias", "heads.sigma.weight", "heads.sigma.bias",
        "seq.fc.weight", "seq.fc.bias"}
    assert net.seq.fc is net.seq[0] and "mu" in net.heads and list(net.heads) == ["mu", "sigma"]
    net.blocks.append(nn.Linear(2, 2))
    assert "blocks.2.weight" in net.state_dict() and len(net.blocks) == 3
    with pytest.raises(TypeError, match="is not a Module"):
        net.blocks.append(3)


def test_migrate_keys_drops_the_old_layers_segment_only_where_needed():
    wanted = {"net.0.weight": 0, "net.2.layers.1.weight": 0, "layers.0.weight": 0}
    old = {"net.layers.0.weight": 1, "net.layers.2.layers.1.weight": 2, "layers.0.weight": 3}
    assert migrate_keys(old, wanted) == {"net.0.weight": 1, "net.2.layers.1.weight": 2,
                                         "layers.0.weight": 3}
    assert migrate_keys({"other": 1}, wanted) == {"other": 1}  # unknown keys stay unknown


# --- older checkpoints ------------------------------------------------------------------------
def test_old_gan_run_samples_and_resumes(tmp_path):
    """A DCGAN run saved before the rename (Sequential keys ``net.layers.N``): generator,
    discriminator, both Adam states and the EMA load; samples equal the old code's."""
    from minigen.gan.trainer import sample_run, train_gan

    saved = mg.load(LEGACY / "models.npz")
    run = tmp_path / "run"
    shutil.copytree(LEGACY / "gan_run", run)
    # equal up to float32 rounding (ops may be re-implemented; a wrong load is far off)
    np.testing.assert_allclose(sample_run(run, 4, seed=0), saved["gan_samples"], rtol=1e-5, atol=1e-6)
    images, _ = mg.data.digits(seed=0)
    trainer = train_gan(images[:64], 3, run, resume=True, figures=False, progress=False)
    assert trainer.step == 3 and "generator" in trainer.state()
    assert any(k.startswith("net.0.") for k in trainer.g_optimizer.state_dict()["state"])


def test_old_mlp_and_unet_checkpoints_load_and_give_the_same_outputs():
    saved = mg.load(LEGACY / "models.npz")
    for name, x, extra in (("mlp", "x2", ()), ("unet", "x8", (np.array([0, 1, 2]),))):
        model = nn.build_model(name.upper() if name == "mlp" else "UNet", saved[f"{name}_config"])
        model.load_state_dict(saved[name])
        with mg.no_grad():
            out = model(mg.tensor(saved[x]), saved["t"], *extra).numpy()
        np.testing.assert_allclose(out, saved["out"][name], rtol=1e-5, atol=1e-6)


def test_old_optimizer_and_ema_states_migrate():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    opt, ema = optim.Adam(model, lr=0.1), optim.EMA(model, 0.9)
    model(mg.randn(4, 2)).sum().backward()
    opt.step()
    ema.update()
    rename = {k: f"layers.{k}" for k in model.state_dict()}
    old_opt = opt.state_dict()
    old_opt["state"] = {rename[k]: v for k, v in old_opt["state"].items()}
    old_ema = ema.state_dict()
    old_ema["shadow"] = {rename[k]: v for k, v in old_ema["shadow"].items()}
    fresh = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    fresh.load_state_dict({rename[k]: v for k, v in model.state_dict().items()})
    opt2 = optim.Adam(fresh, lr=0.1).load_state_dict(old_opt)
    ema2 = optim.EMA(fresh, 0.9).load_state_dict(old_ema)
    np.testing.assert_array_equal(opt2.state["0.weight"]["exp_avg"], opt.state["0.weight"]["exp_avg"])
    np.testing.assert_array_equal(ema2.shadow["1.bias"], ema.shadow["1.bias"])


def test_batchnorm_checkpoint_without_batch_counter_loads():
    bn = nn.BatchNorm2d(3)
    bn(mg.randn(4, 3, 2, 2))
    state = {k: v for k, v in bn.state_dict().items() if k != "num_batches_tracked"}
    fresh = nn.BatchNorm2d(3).load_state_dict(state)
    np.testing.assert_array_equal(fresh.running_mean, bn.running_mean)
    assert int(fresh.num_batches_tracked) == 0


# --- PyTorch interchange ------------------------------------------------------------------------
def _torch_pairs():
    """(minigen model, the same architecture in PyTorch, input shape)."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    return [
        (nn.Sequential(nn.Linear(4, 16), nn.ReLU(inplace=True), nn.Linear(16, 16), nn.Tanh(),
                       nn.Linear(16, 3)),
         tnn.Sequential(tnn.Linear(4, 16), tnn.ReLU(inplace=True), tnn.Linear(16, 16), tnn.Tanh(),
                        tnn.Linear(16, 3)), (5, 4)),
        (nn.Sequential(nn.Conv2d(1, 4, 3, 1, 1, bias=False), nn.BatchNorm2d(4, 0.8),
                       nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(4, 8, 4, 2, 1),
                       nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(8 * 4 * 4, 1)),
         tnn.Sequential(tnn.Conv2d(1, 4, 3, 1, 1, bias=False), tnn.BatchNorm2d(4, 0.8),
                        tnn.LeakyReLU(0.2, inplace=True), tnn.Conv2d(4, 8, 4, 2, 1),
                        tnn.LeakyReLU(0.2), tnn.Flatten(), tnn.Linear(8 * 4 * 4, 1)), (6, 1, 8, 8)),
        (nn.Sequential(nn.ConvTranspose2d(4, 8, 4, 1, 0, bias=False), nn.BatchNorm2d(8),
                       nn.ReLU(True), nn.ConvTranspose2d(8, 2, 4, 2, 1), nn.Tanh()),
         tnn.Sequential(tnn.ConvTranspose2d(4, 8, 4, 1, 0, bias=False), tnn.BatchNorm2d(8),
                        tnn.ReLU(True), tnn.ConvTranspose2d(8, 2, 4, 2, 1), tnn.Tanh()),
         (3, 4, 1, 1)),
        (nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8, momentum=None), nn.SiLU(),
                       nn.LayerNorm(8), nn.Dropout(0.0), nn.Linear(8, 2)),
         tnn.Sequential(tnn.Linear(3, 8), tnn.BatchNorm1d(8, momentum=None), tnn.SiLU(),
                        tnn.LayerNorm(8), tnn.Dropout(0.0), tnn.Linear(8, 2)), (7, 3)),
    ]


def _compare(model, ref, shape, torch):
    rng = np.random.default_rng(0)
    for _ in range(2):  # train mode twice (BatchNorm statistics move), then eval
        x = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(model(mg.tensor(x)).numpy(), ref(torch.from_numpy(x)).detach().numpy(),
                                   rtol=1e-4, atol=1e-5)
    model.eval(), ref.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(model(mg.tensor(x)).numpy(), ref(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)
    mine, theirs = model.state_dict(), ref.state_dict()
    assert set(mine) == set(theirs)
    for k in theirs:
        np.testing.assert_allclose(mine[k], theirs[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("index", range(4))
def test_pytorch_state_dict_loads_into_minigen_and_gives_the_same_outputs(index):
    torch = pytest.importorskip("torch")
    torch.manual_seed(index)
    model, ref, shape = _torch_pairs()[index]
    for p in ref.parameters():  # non-trivial norm affines too
        torch.nn.init.normal_(p, 0.0, 0.5) if p.ndim == 1 else None
    assert set(model.state_dict()) == set(ref.state_dict())
    model.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    _compare(model, ref, shape, torch)


@pytest.mark.parametrize("index", range(4))
def test_minigen_state_dict_loads_into_pytorch_and_gives_the_same_outputs(index):
    torch = pytest.importorskip("torch")
    mg.manual_seed(index)
    model, ref, shape = _torch_pairs()[index]
    model.train()(mg.tensor(np.random.default_rng(1).standard_normal(shape).astype(np.float32)))
    ref.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()})
    _compare(model, ref, shape, torch)


def test_batchnorm2d_second_argument_is_eps_as_in_pytorch():
    bn = nn.BatchNorm2d(8, 0.8)
    assert bn.eps == 0.8 and bn.momentum == 0.1
    assert nn.BatchNorm1d(4, 1e-3, 0.5).momentum == 0.5
    assert nn.BatchNorm2d(3, affine=False).state_dict().keys() == {
        "running_mean", "running_var", "num_batches_tracked"}
    assert nn.BatchNorm2d(3, track_running_stats=False).state_dict().keys() == {"weight", "bias"}
