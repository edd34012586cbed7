"""Cost of one data-parallel gradient reduction for the digits UNet:
``mpiexec -n P python -m bench.allreduce [--reps N] [--bucket-mb M] [--steps S]``.

Builds the UNet that ``minigen train ddpm --data digits`` trains (the image defaults on 8x8
single-channel images), gives every parameter a float32 gradient and times
``minigen.distributed.allreduce_gradients`` over it (all buckets, the has-gradient flags and
the packing included) and a single raw ``Allreduce`` of the same bytes. Rank 0 prints the
median times, the bus bandwidth 2 (P-1)/P * bytes / time (what a ring allreduce moves per
rank), and the ring cost of these bytes on a 100 Gb/s network at P = 8 and 64. With
``--steps S`` (also without MPI, P = 1) it times S data-parallel DDPM training steps of the
UNet (global batch 64 of random 8x8 images, each rank its shard, one thread per rank).
"""
import argparse
import statistics
import time

import numpy as np

import minigen as mg
from bench import machine
from minigen import distributed, optim
from minigen.diffusion import DDPM, NoiseSchedule
from minigen.diffusion.trainer import build_model, defaults_for

NETWORK_BYTES_PER_S = 100e9 / 8


def digits_unet():
    options = defaults_for(np.zeros((1, 1, 8, 8), np.float32))
    return build_model(options["model"], options["model_config"], (1, 1, 8, 8))


def ring_seconds(nbytes, ranks, bytes_per_s=NETWORK_BYTES_PER_S):
    """Bandwidth term of a ring allreduce: each rank sends and receives 2 (P-1)/P * bytes."""
    return 2 * (ranks - 1) / ranks * nbytes / bytes_per_s


def median_seconds(fn, comm, reps, warmup=2):
    times = []
    for _ in range(reps + warmup):
        comm.allreduce_(np.zeros(1))  # start together
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times[warmup:])


def training_step(comm, batch=64):
    """One data-parallel DDPM step of the digits UNet: draw the global batch, keep the shard,
    loss, backward, allreduce, clip, Adam."""
    mg.manual_seed(0)
    model = digits_unet()
    ddpm, opt = DDPM(model, NoiseSchedule.linear(T=1000)), optim.Adam(model, lr=1e-3)
    rng = np.random.default_rng(0)
    data = rng.uniform(-1, 1, (512, 1, 8, 8)).astype(np.float32)
    keep, weight = distributed.shard(batch, comm.rank, comm.size), distributed.share(
        batch, comm.rank, comm.size)

    def step():
        index, t = rng.integers(0, len(data), batch), rng.integers(0, 1000, batch)
        noise = rng.standard_normal((batch, 1, 8, 8), dtype=np.float32)
        opt.zero_grad()
        ddpm.loss(data[index[keep]], t=t[keep], noise=noise[keep]).backward()
        distributed.allreduce_gradients(model, comm, weight=weight)
        optim.clip_grad_norm_(model, 1.0)
        opt.step()

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--bucket-mb", type=float, default=distributed.DEFAULT_BUCKET_BYTES / 2**20)
    parser.add_argument("--steps", type=int, default=0)
    args = parser.parse_args(argv)
    comm = distributed.world()
    machine.set_threads(1)
    if comm.rank == 0:
        print(machine.summary_line(machine.describe(1)))
    if args.steps:
        seconds = median_seconds(training_step(comm), comm, args.steps)
        if comm.rank == 0:
            print(f"DDPM step of the digits UNet, global batch 64, P = {comm.size}: "
                  f"{seconds:.3f} s median of {args.steps} ({1 / seconds:.2f} steps/s)")
    if comm.size == 1:
        return
    model = digits_unet()
    params = model.parameters()
    for p in params:
        p.grad = np.ones(p.shape, np.float32)
    nbytes = sum(p.grad.nbytes for p in params)
    bucket_bytes = int(args.bucket_mb * 2**20)
    n_buckets = len(distributed.buckets([p.grad for p in params], bucket_bytes))
    flat = np.ones(nbytes // 4, np.float32)
    bucketed = median_seconds(
        lambda: distributed.allreduce_gradients(params, comm, bucket_bytes=bucket_bytes),
        comm, args.reps)
    raw = median_seconds(lambda: comm.allreduce_(flat), comm, args.reps)
    if comm.rank == 0:
        ring = 2 * (comm.size - 1) / comm.size * nbytes
        print(f"digits UNet: {sum(p.size for p in params)} parameters, {len(params)} tensors, "
              f"{nbytes / 2**20:.2f} MiB of float32 gradients, {n_buckets} buckets of "
              f"<= {args.bucket_mb:g} MiB; P = {comm.size}, median of {args.reps}")
        for name, seconds in (("allreduce_gradients", bucketed), ("one raw Allreduce", raw)):
            print(f"  {name:20s} {seconds * 1e3:8.3f} ms   bus bandwidth "
                  f"{ring / seconds / 1e9:6.2f} GB/s")
        for ranks in (8, 64):
            print(f"  ring allreduce at P = {ranks} on 100 Gb/s: "
                  f"{ring_seconds(nbytes, ranks) * 1e3:.3f} ms (bandwidth term only)")


if __name__ == "__main__":
    main()
