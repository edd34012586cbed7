"""Data-parallel runs for the MPI tests: ``mpiexec -n P python tests/mpi_ranks.py MODE OUT``.

MODE ``compare``: rank 0 saves to OUT (.npz) the allreduced gradients of an MLP's mean loss
on a sharded global batch (float32 and float64, an even and an uneven batch) and the
parameters after 50 SGD and Adam steps (and the spread of the parameters across ranks after a
broadcast); the tests compute the same with ``SingleProcess`` in their own process by calling
these functions. MODE ``fail``: rank 1 raises after a few steps while rank 0 waits in an
allreduce; the job must end with an error, not hang. MODE ``train``: ``mpiexec -n P python
tests/mpi_ranks.py train OUT JSON`` trains a run into the directory OUT with
``train_ddpm``/``train_gan`` (JSON: ``{"kind", "data", "steps", **options}``), on all ranks.
"""
import json
import sys

import numpy as np

import minigen as mg
import minigen.functional as F
from minigen import backend, distributed, nn, optim

SIGMA = 0.5


def points(n=512, seed=0):
    """2-D data: a ring of 8 Gaussians (the GAN/DDPM toy set, drawn here to stay standalone)."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * rng.integers(0, 8, size=n) / 8
    centres = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return centres + 0.05 * rng.standard_normal((n, 2))


def denoiser(dtype, seed=0):
    mg.manual_seed(seed)
    return nn.MLP(2, 2, hidden=(32, 32), dtype=dtype)


def shard_loss(model, comm, data, rng, batch):
    """Every rank draws the same global indices and noise from ``rng``, keeps its shard and
    returns its shard-mean denoising loss || eps - model(x + sigma eps) ||^2."""
    index = rng.integers(0, len(data), size=batch)
    noise = rng.standard_normal((batch, 2))
    keep = distributed.shard(batch, comm.rank, comm.size)
    x0, eps = data[index][keep], noise[keep]
    dtype = model.layers[0].weight.dtype
    noisy = mg.tensor((x0 + SIGMA * eps).astype(dtype))
    return F.mse_loss(model(noisy), mg.tensor(eps.astype(dtype)))


def gradient(comm, dtype, batch, seed=0):
    """{name: full-batch mean gradient} of the denoising loss at initialisation."""
    model = denoiser(dtype, seed)
    distributed.broadcast_parameters(model, comm)
    shard_loss(model, comm, points(), np.random.default_rng(seed), batch).backward()
    distributed.allreduce_gradients(model, comm,
                                    weight=distributed.share(batch, comm.rank, comm.size))
    return {name: p.grad.copy() for name, p in model.named_parameters()}


def train(comm, optimizer, steps=50, batch=64, seed=0):
    """{name: parameter} after ``steps`` clipped SGD-momentum or Adam steps."""
    model = denoiser(np.float32, seed)
    distributed.broadcast_parameters(model, comm)
    opt = (optim.SGD(model, lr=0.05, momentum=0.9) if optimizer == "sgd"
           else optim.Adam(model, lr=1e-2))
    data, rng = points(), np.random.default_rng(seed)
    weight = distributed.share(batch, comm.rank, comm.size)
    for _ in range(steps):
        loss = shard_loss(model, comm, data, rng, batch)
        opt.zero_grad()
        loss.backward()
        distributed.allreduce_gradients(model, comm, weight=weight)
        optim.clip_grad_norm_(model, 1.0)
        opt.step()
    return {name: p.data.copy() for name, p in model.named_parameters()}


CASES = {
    "grad_f32_even": lambda comm: gradient(comm, np.float32, 64),
    "grad_f32_uneven": lambda comm: gradient(comm, np.float32, 63),
    "grad_f64_uneven": lambda comm: gradient(comm, np.float64, 63),
    "train_sgd": lambda comm: train(comm, "sgd"),
    "train_adam": lambda comm: train(comm, "adam"),
}


def flatten(results):
    """{case/name: array}, the form np.savez keeps."""
    return {f"{case}/{name}": a for case, arrays in results.items() for name, a in arrays.items()}


def broadcast_spread(comm):
    """max |rank 0's parameters - rank 1's| after ``broadcast_parameters`` of models that
    were initialised differently on each rank (seed = rank)."""
    model = denoiser(np.float32, seed=comm.rank)
    distributed.broadcast_parameters(model, comm)
    signed = distributed.pack([p.data for p in model.parameters()], scale=(-1) ** comm.rank)
    return np.abs(comm.allreduce_(signed)).max()


def compare(comm, out):
    results = flatten({case: run(comm) for case, run in CASES.items()})
    spread = broadcast_spread(comm)
    distributed.on_main(np.savez, out, comm=comm, broadcast_spread=spread, **results)


def fail(comm, out):
    model = denoiser(np.float32)
    for step in range(5):
        if comm.rank == 1 and step == 2:
            raise RuntimeError("rank 1 failed on purpose")
        model.zero_grad()
        shard_loss(model, comm, points(), np.random.default_rng(step), 8).backward()
        distributed.allreduce_gradients(model, comm)


def train_run(comm, out, spec):
    """Train the run that ``spec`` (JSON) describes into ``out``; returns the trainer."""
    from minigen.diffusion.trainer import train_ddpm
    from minigen.gan import train_gan

    options = json.loads(spec)
    train = {"ddpm": train_ddpm, "gan": train_gan}[options.pop("kind")]
    if "activation" in options:  # 2-D GAN networks with this activation instead of ReLUs
        activation, hidden = options.pop("activation"), options.pop("hidden")
        mg.manual_seed(0)
        options["generator"] = nn.MLP(2, 2, hidden, activation=activation)
        options["discriminator"] = nn.MLP(2 * options.get("pack", 1), 1, hidden,
                                          activation=activation)
    backend.limit_threads(1)
    return train(options.pop("data"), options.pop("steps"), out, progress=False, figures=False,
                 comm=comm, **options)


if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    with distributed.abort_on_error() as comm:
        {"compare": compare, "fail": fail,
         "train": lambda comm, out: train_run(comm, out, sys.argv[3])}[mode](comm, out)
