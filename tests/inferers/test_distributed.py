# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Angle-sharded reconstruction over two gloo processes equals the single-process one."""

import functools
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from monai_tonno import SliceSum, TomographicInferer
from monai_tonno.inferers import UntilConverged
from monai_tonno.tomography.reconstruction import IterativeReconstruction

SETTINGS = {"num_angles": 37, "num_slices": 12, "slice_size": 16, "sw_batch_size": 50}
RECONSTRUCTIONS = {
    "filtered_backprojection": ({}, 1e-6),
    # every rank gathers the others' profiles and solves for the whole heatmap; the same sums run in another
    # order (directions by rank) through 5 iterations: float32 rounding of a heatmap of size ~1
    "iterative": ({"reconstruction": functools.partial(IterativeReconstruction, iterations=5, tolerance=0.0)}, 2e-5),
    # every rank sees the same all-reduced heatmaps, so all stop at the same level
    "until_converged": ({"num_angles": UntilConverged(start=8, max_angles=128, tolerance=0.3)}, 1e-6),
}


def volume() -> torch.Tensor:
    return torch.rand(1, 1, 10, 11, 12, generator=torch.Generator().manual_seed(0))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, port: int, queue, reconstruction: dict) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        with torch.no_grad():
            heatmap = TomographicInferer(**{**SETTINGS, **reconstruction}, shard_angles=True)(volume(), SliceSum())
        # a numpy copy travels pickled: a tensor would travel as shared memory that dies with this process,
        # which may exit before the parent has read it
        queue.put((rank, heatmap.numpy()))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("name", sorted(RECONSTRUCTIONS))
def test_two_gloo_processes_equal_one(name):
    reconstruction, atol = RECONSTRUCTIONS[name]
    with torch.no_grad():
        single = TomographicInferer(**{**SETTINGS, **reconstruction})(volume(), SliceSum())
    context = mp.get_context("spawn")
    queue = context.Queue()
    port = free_port()
    processes = [context.Process(target=worker, args=(rank, port, queue, reconstruction)) for rank in range(2)]
    for process in processes:
        process.start()
    results = dict(queue.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    for rank in (0, 1):
        torch.testing.assert_close(torch.from_numpy(results[rank]), single, rtol=1e-5, atol=atol)
