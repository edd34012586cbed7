"""minigen on a real CUDA GPU (CuPy arrays) against the same computation on the CPU (NumPy).

Every op of the per-op harness (forward in float64 and float32, gradients), the UNet and MLP
forward and backward, optimisers, the DDPM trainer with checkpoint and resume, sampling, GAN
training steps and the command line with ``--device cuda``. Skipped without CuPy and a GPU; run on a GPU
machine with ``python -m pytest -m gpu``. The fused Numba-CUDA kernels themselves are tested
by tests/test_kernels_cuda.py (``-m cudasim``), which also runs on a real GPU.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigen as mg
from minigen import backend, cli, nn, optim
from minigen.data import ring8, s_curve
from minigen.diffusion import trainer as T
from minigen.evaluate import evaluate_samples
from minigen.gan import GANTrainer
from minigen.gan import sample_run as gan_sample_run
from tests.crash import crash_at
from tests.test_ops import OPS, _draw

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not backend.cuda_available(), reason="needs CuPy and a CUDA GPU")]


def close(gpu_array, reference, tol):
    """GPU result within ``tol`` of the float64 CPU reference, relative to its scale."""
    got = backend.to_numpy(gpu_array)
    scale = 1.0 + float(np.max(np.abs(reference), initial=0.0))
    np.testing.assert_allclose(got, reference, rtol=tol, atol=tol * scale)


def _on(device, arrays, dtype):
    return [mg.tensor(a, dtype=dtype, device=device, requires_grad=True) for a in arrays]


@pytest.mark.parametrize("name", sorted(OPS))
@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_op_on_gpu_matches_cpu(name, data):
    """Forward and input gradients of each op on CuPy (float64, float32) against NumPy
    float64: the same arrays, the same upstream gradient."""
    op = OPS[name]
    arrays_, kw = _draw(op, data)
    cpu = _on("cpu", arrays_, np.float64)
    out = op.fn(*cpu, **kw)
    upstream = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(upstream)
    for dtype, tol in ((np.float64, 1e-9), (np.float32, max(op.tol32, 1e-4))):
        gpu = _on("cuda", arrays_, dtype)
        out_gpu = op.fn(*gpu, **kw)
        assert out_gpu.device == "cuda" and out_gpu.dtype == dtype
        close(out_gpu.data, out.numpy(), tol)
        out_gpu.backward(backend.to_device(upstream.astype(dtype), "cuda"))
        for t_cpu, t_gpu in zip(cpu, gpu):
            assert backend.device_of(t_gpu.grad) == "cuda"
            close(t_gpu.grad, t_cpu.grad, tol)


def _forward_backward(model, x, t):
    out = model(x, t)
    (out * out).sum().backward()
    grads = {n: backend.to_numpy(p.grad) for n, p in model.named_parameters()}
    return backend.to_numpy(out.data), grads


@pytest.mark.parametrize("make,shape", [
    (lambda: nn.UNet(1, 8, (1, 2), 1, (4,), image_size=8, groups=4, time_dim=16,
                     dtype=np.float64), (4, 1, 8, 8)),
    (lambda: nn.MLP(2, 2, (32, 32), activation="silu", time_dim=8, dtype=np.float64), (16, 2)),
])
def test_denoisers_on_gpu_match_cpu(make, shape):
    """Same weights on both devices: outputs and every parameter gradient agree."""
    mg.manual_seed(0)
    cpu_model = make()
    gpu_model = make()
    gpu_model.load_state_dict(cpu_model.state_dict())
    gpu_model.to("cuda")
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    t = rng.integers(0, 1000, shape[0])
    y_cpu, g_cpu = _forward_backward(cpu_model, mg.tensor(x), t)
    y_gpu, g_gpu = _forward_backward(gpu_model, mg.tensor(x, device="cuda"), t)
    assert all(p.device == "cuda" for p in gpu_model.parameters())
    np.testing.assert_allclose(y_gpu, y_cpu, rtol=1e-9, atol=1e-9)
    for name in g_cpu:
        np.testing.assert_allclose(g_gpu[name], g_cpu[name], rtol=1e-8, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("cls,kw", [(optim.Adam, {"lr": 1e-2}), (optim.SGD, {"lr": 1e-2,
                                                                           "momentum": 0.9})])
def test_optimizer_steps_on_gpu_match_cpu(cls, kw):
    mg.manual_seed(0)
    models = [nn.MLP(3, 2, (8,), dtype=np.float64) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    models[1].to("cuda")
    x = np.random.default_rng(0).standard_normal((5, 3))
    opts = [cls(m, **kw) for m in models]
    for _ in range(3):
        for model, opt, device in zip(models, opts, ("cpu", "cuda")):
            opt.zero_grad()
            (model(mg.tensor(x, device=device)) ** 2).mean().backward()
            opt.step()
    for (name, a), (_, b) in zip(models[0].named_parameters(), models[1].named_parameters()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def test_ddpm_trains_on_gpu_and_resumes(tmp_path):
    """The 2-D recipe on CuPy: the run draws the S-curve (same bar as the CPU test), its
    checkpoint resumes on the GPU with the same trajectory as an uninterrupted run, and the
    saved run samples on either device."""
    x = s_curve(10_000, seed=0)
    trainer = T.train_ddpm(x, 2500, tmp_path / "whole", progress=False, figures=True,
                           checkpoint_every=1250, device="cuda")
    assert all(p.device == "cuda" for p in trainer.model.parameters())
    q = evaluate_samples(trainer.sample(1000, seed=1), "s_curve")
    assert q["precision"] >= 0.85 and q["coverage"] >= 0.96, q
    assert (tmp_path / "whole" / "samples.png").exists()

    crash_at(T.DDPMTrainer(x, tmp_path / "split", 2500, progress=False, figures=False,
                           checkpoint_every=1250, device="cuda"), 1250)
    resumed = T.train_ddpm(x, 2500, tmp_path / "split", resume=True, progress=False,
                           figures=False, checkpoint_every=1250, device="cuda")
    np.testing.assert_allclose(resumed.history["loss"], trainer.history["loss"], rtol=1e-6)
    for (name, a), (_, b) in zip(trainer.model.named_parameters(),
                                 resumed.model.named_parameters()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7, err_msg=name)
    on_cpu = T.sample_run(tmp_path / "whole", 500, sampler="ddim", steps=50, seed=2)
    on_gpu = T.sample_run(tmp_path / "whole", 500, sampler="ddim", steps=50, seed=2,
                          device="cuda")
    for samples in (on_cpu, on_gpu):
        assert isinstance(samples, np.ndarray) and samples.shape == (500, 2)
        assert evaluate_samples(samples, "s_curve")["precision"] >= 0.85


def test_images_train_on_gpu(tmp_path):
    """A few UNet steps on the digits with figures: runs, stays finite, lands on the GPU."""
    trainer = T.train_ddpm("digits", 20, tmp_path, progress=False, figures=True,
                           checkpoint_every=20, device="cuda", batch_size=32)
    assert np.all(np.isfinite(trainer.history["loss"]))
    assert all(p.device == "cuda" for p in trainer.model.parameters())
    assert trainer.sample(4, sampler="ddim", steps=5).shape == (4, 1, 8, 8)


@pytest.mark.parametrize("options", [{}, {"penalty": "wgan-gp", "pack": 2}])
def test_gan_steps_on_gpu_match_cpu(tmp_path, options):
    """A few Algorithm 1 iterations (top-k on, float32) on both devices from the same seed:
    the CPU generator draws every batch, so the two runs follow one trajectory."""
    data = ring8(512, seed=0)
    kw = dict(batch_size=64, hidden=32, depth=2, checkpoint_every=10**6, ema_decay=0.9,
              **options)
    runs = {}
    for device in ("cpu", "cuda"):  # each built (and seeded) right before its run
        runs[device] = GANTrainer(data, tmp_path / device, 5, progress=False, figures=False,
                                  device=device, **kw)
        runs[device].fit()
    assert all(p.device == "cuda" for p in runs["cuda"].generator.parameters())
    np.testing.assert_allclose(runs["cuda"].history["d_loss"], runs["cpu"].history["d_loss"],
                               rtol=1e-4)
    np.testing.assert_allclose(runs["cuda"].samples(200), runs["cpu"].samples(200), rtol=1e-3,
                               atol=1e-4)
    assert gan_sample_run(tmp_path / "cpu", 50, seed=0, device="cuda").shape == (50, 2)


def test_cli_trains_and_samples_on_gpu(tmp_path, capsys):
    run, target = str(tmp_path / "run"), str(tmp_path / "x.npy")
    assert cli.main(["train", "ddpm", "--data", "moons", "--steps", "30", "--out", run,
                     "--quiet", "--no-figures", "--device", "cuda"]) == 0
    assert cli.main(["sample", run, "--n", "64", "--out", target, "--sampler", "ddim",
                     "--steps", "10", "--device", "cuda"]) == 0
    assert np.load(target).shape == (64, 2)
    gan_run = str(tmp_path / "gan")
    assert cli.main(["train", "gan", "--data", "ring8", "--steps", "20", "--out", gan_run,
                     "--quiet", "--device", "cuda"]) == 0
    assert cli.main(["sample", gan_run, "--n", "64", "--out", target, "--device", "cuda",
                     "--overwrite"]) == 0
    assert np.load(target).shape == (64, 2)


# --- the fused sampling kernels on CuPy streams and in CUDA graphs (issue 15) -------------
SAMPLING_SHAPE = (16, 3, 8, 8)


def _sampling_step():
    """Fixed CuPy buffers, a function that writes new inputs into them, a step that runs
    kernels.cuda's q_sample then p_sample_step on them (the noise standing in for the
    network's eps), and the same step through the reference formulas on the host."""
    import cupy

    from kernels import cuda as gpu_kernels
    from minigen.diffusion import DDPM, NoiseSchedule

    ddpm = DDPM(lambda x, t: x, NoiseSchedule.linear(1000), clip_x0=1.0)
    s = ddpm.schedule
    tables = (ddpm.coef_x0_xt, ddpm.coef_x0_out, s.posterior_mean_coef1, s.posterior_mean_coef2,
              ddpm.sigmas)
    x0, noise, xt, x_prev = (cupy.empty(SAMPLING_SHAPE, dtype=np.float32) for _ in range(4))
    t = cupy.empty(SAMPLING_SHAPE[0], dtype=np.int64)

    def fill(seed):
        rng = np.random.default_rng(seed)
        for a in (x0, noise):
            a[...] = cupy.asarray(rng.standard_normal(SAMPLING_SHAPE, dtype=np.float32))
        t[...] = cupy.asarray(rng.integers(0, 1000, SAMPLING_SHAPE[0]))

    def step():
        gpu_kernels.q_sample(x0, noise, t, s.sqrt_alphas_cumprod, s.sqrt_one_minus_alphas_cumprod,
                             out=xt)
        gpu_kernels.p_sample_step(xt, noise, t, noise, *tables, clip=1.0, out=x_prev)

    def reference():
        from kernels import reference as ref

        x0_, noise_, t_ = x0.get(), noise.get(), t.get()
        xt_ = ref.q_sample(x0_, noise_, t_, s.sqrt_alphas_cumprod,
                           s.sqrt_one_minus_alphas_cumprod)
        return xt_, ref.p_sample_step(xt_, noise_, t_, noise_, *tables, clip=1.0)

    return fill, step, reference, (xt, x_prev)


def test_fused_sampling_step_replays_from_a_cuda_graph():
    """q_sample and p_sample_step captured in one CUDA graph (kernels.cuda.capture): each
    replay reads the inputs the buffers hold then and gives the eager launches' bits. (The
    kernels' agreement with the reference formulas is tested to float32 round-off in
    tests/test_kernels_cuda.py; here a looser bound only guards against wrong inputs.)"""
    from kernels import cuda as gpu_kernels

    fill, step, reference, outputs = _sampling_step()
    fill(0)
    graph, stream = gpu_kernels.capture(step)
    for seed in (1, 2):
        fill(seed)
        graph.launch(stream)
        stream.synchronize()
        replayed = [a.get() for a in outputs]
        step()
        for got, eager, want in zip(replayed, outputs, reference()):
            np.testing.assert_array_equal(got, eager.get())
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_fused_kernels_launch_on_cupys_current_stream():
    """Inside ``with stream:`` the Numba kernels go to CuPy's stream, in order with the CuPy
    work before and after them on that (non-blocking) stream; outside, to the default one."""
    import cupy

    from kernels import cuda as gpu_kernels

    fill, step, reference, outputs = _sampling_step()
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        assert int(gpu_kernels._stream(outputs[0])) == stream.ptr
        fill(3)
        step()
        after = outputs[1] * 2  # CuPy, on the stream, after the kernels
    stream.synchronize()
    assert gpu_kernels._stream(outputs[0]) == 0
    np.testing.assert_allclose(after.get(), 2 * reference()[1], rtol=1e-4, atol=1e-4)
