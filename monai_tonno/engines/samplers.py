# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Sampling volumes with replacement across the ranks of a distributed run."""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = ["DistributedReplacementSampler"]


class DistributedReplacementSampler(Sampler[int]):
    """Draw ``num_samples`` dataset indices with replacement per epoch, split evenly over the ranks.

    Each rank draws its own share from a generator seeded by ``(seed, epoch, rank)``, so ranks see different
    volumes and a rerun sees the same ones. Call :meth:`set_epoch` at each epoch (MONAI's trainers do so for
    samplers that have it).

    Args:
        dataset: the dataset (only its length is used).
        num_samples: indices drawn per epoch over all ranks.
        num_replicas: number of ranks (default: the process group's size, 1 without one).
        rank: this rank (default: the process group's rank, 0 without one).
        seed: base seed.
    """

    def __init__(
        self,
        dataset: Sized,
        num_samples: int,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
    ) -> None:
        initialised = dist.is_available() and dist.is_initialized()
        self.num_replicas = num_replicas if num_replicas is not None else dist.get_world_size() if initialised else 1
        self.rank = rank if rank is not None else dist.get_rank() if initialised else 0
        if len(dataset) == 0:
            raise ValueError("cannot sample from an empty dataset.")
        self.dataset_size = len(dataset)
        self.per_rank = -(-int(num_samples) // self.num_replicas)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + 1_000_003 * self.epoch + 7919 * self.rank)
        return iter(torch.randint(self.dataset_size, (self.per_rank,), generator=generator).tolist())
