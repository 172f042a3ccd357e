"""The deterministic stream of training batches, resumable at any (epoch, batch) position.

Each epoch, a `DistributedSampler` reseeded with (seed, epoch) deals this rank its share of a
shuffled permutation; consecutive chunks of `batch_size` indices are the batches (a trailing
partial batch is dropped). Every sample carries its own augmentation seed derived from
(seed, epoch, index), so the samples do not depend on worker processes or on where a run resumed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from stseg_train.errors import TrainInputError


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one sample's augmentation, a pure function of its arguments."""
    mixed = (seed * 1_000_003 + epoch) * 2_000_003 + index
    return (mixed * 0x9E3779B97F4A7C15) % (2**63 - 1)


class _LenOnly(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        return index


def epoch_batches(
    n_samples: int, batch_size: int, epoch: int, seed: int, rank: int = 0, world_size: int = 1
) -> list[list[tuple[int, int]]]:
    """This rank's batches of epoch `epoch`: lists of (sample index, augmentation seed)."""
    sampler: DistributedSampler[int] = DistributedSampler(
        _LenOnly(n_samples), num_replicas=world_size, rank=rank, shuffle=True, seed=seed
    )
    sampler.set_epoch(epoch)
    order = list(sampler)
    n_batches = len(order) // batch_size
    return [
        [(i, sample_seed(seed, epoch, i)) for i in order[b * batch_size : (b + 1) * batch_size]]
        for b in range(n_batches)
    ]


@dataclass
class Position:
    """Where the stream stands: the next batch to read is batch `batch` of epoch `epoch`."""

    epoch: int = 0
    batch: int = 0


class BatchStream:
    """Endless batches from `dataset` (indexed by (index, seed) tuples), resumable at `position`."""

    def __init__(
        self,
        dataset: Dataset,
        collate: Callable[[list[Any]], Any],
        *,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        position: Position | None = None,
    ) -> None:
        self.dataset = dataset
        self.collate = collate
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.num_workers = num_workers
        self.position = position or Position()
        n = len(dataset)  # type: ignore[arg-type]
        if len(epoch_batches(n, batch_size, 0, seed, rank, world_size)) == 0:
            raise TrainInputError(
                f"training set has {n} scene(s): too few for batch size {batch_size} on "
                f"{world_size} process(es); lower --batch-size"
            )
        self._iterator: Iterator[Any] | None = None

    def batches_per_epoch(self) -> int:
        n = len(self.dataset)  # type: ignore[arg-type]
        return len(epoch_batches(n, self.batch_size, 0, self.seed, self.rank, self.world_size))

    def _open(self) -> Iterator[Any]:
        n = len(self.dataset)  # type: ignore[arg-type]
        plan = epoch_batches(
            n, self.batch_size, self.position.epoch, self.seed, self.rank, self.world_size
        )[self.position.batch :]
        loader = DataLoader(
            self.dataset,
            batch_sampler=plan,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            persistent_workers=False,
        )
        return iter(loader)

    def next(self) -> Any:
        """The next batch; advances `position` past it (rolling over to the next epoch)."""
        if self._iterator is None:
            self._iterator = self._open()
        try:
            batch = next(self._iterator)
        except StopIteration:
            self.position = Position(self.position.epoch + 1, 0)
            self._iterator = self._open()
            batch = next(self._iterator)
        self.position = Position(self.position.epoch, self.position.batch + 1)
        return batch


def torch_generator(seed: int) -> torch.Generator:
    """A CPU torch generator seeded with `seed` (for per-sample torch randomness)."""
    return torch.Generator().manual_seed(seed)
