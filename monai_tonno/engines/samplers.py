# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Sampling training volumes: with replacement across the ranks of a distributed run, and balanced by label."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence, Sized

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = ["DistributedReplacementSampler", "class_balanced_weights"]


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
        weights: optional sampling weight per dataset index (e.g. :func:`class_balanced_weights`); uniform if None.
    """

    def __init__(
        self,
        dataset: Sized,
        num_samples: int,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
        weights: Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        initialised = dist.is_available() and dist.is_initialized()
        self.num_replicas = num_replicas if num_replicas is not None else dist.get_world_size() if initialised else 1
        self.rank = rank if rank is not None else dist.get_rank() if initialised else 0
        if len(dataset) == 0:
            raise ValueError("cannot sample from an empty dataset.")
        self.dataset_size = len(dataset)
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        if self.weights is not None and (
            self.weights.shape != (self.dataset_size,) or not torch.all(self.weights >= 0) or self.weights.sum() <= 0
        ):
            raise ValueError(
                f"weights must be {self.dataset_size} non-negative numbers (one per dataset item) with a positive "
                f"sum, got shape {tuple(self.weights.shape)}."
            )
        self.per_rank = -(-int(num_samples) // self.num_replicas)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + 1_000_003 * self.epoch + 7919 * self.rank)
        if self.weights is None:
            return iter(torch.randint(self.dataset_size, (self.per_rank,), generator=generator).tolist())
        return iter(torch.multinomial(self.weights, self.per_rank, replacement=True, generator=generator).tolist())


def class_balanced_weights(items: Sequence[Mapping], key: str = "label") -> torch.Tensor:
    """Sampling weights that draw every label value equally often, for ``WeightedRandomSampler``.

    Each item weighs one over the number of items that share its label, so that, drawn with replacement,
    positive and negative volumes come equally often whatever their proportion in the dataset.

    Args:
        items: datalist items, each with ``key``.
        key: the item key that holds the (integer) volume label.
    """
    if len(items) == 0:
        raise ValueError("cannot weight an empty datalist.")
    missing = [i for i, item in enumerate(items) if key not in item]
    if missing:
        raise ValueError(f"datalist items {missing[:5]} have no {key!r}; balanced sampling needs every item's label.")
    labels = [int(item[key]) for item in items]
    counts = Counter(labels)
    if len(counts) < 2:
        raise ValueError(f"balanced sampling needs at least two label values; every item has {key}={labels[0]}.")
    return torch.tensor([1.0 / counts[label] for label in labels], dtype=torch.double)
