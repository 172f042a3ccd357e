"""The deterministic stream of training batches, resumable at any (epoch, batch) position.

Each epoch, a `DistributedSampler` reseeded with (seed, epoch) deals this rank its share of a
shuffled permutation; consecutive chunks of `batch_size` indices are the batches (a trailing
partial batch is dropped). Every sample carries its own augmentation seed derived from
(seed, epoch, index), so the samples do not depend on worker processes or on where a run resumed.

One `DataLoader` serves the whole run (its batch sampler walks epoch after epoch), so loader
workers start once and prefetch across epoch boundaries: a loader per epoch cost ~2.5 s of worker
start-up and an empty worker-side scene cache at every epoch of the synthetic recipe.
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
        self._per_epoch = len(epoch_batches(n, batch_size, 0, seed, rank, world_size))
        if self._per_epoch == 0:
            raise TrainInputError(
                f"training set has {n} scene(s): too few for batch size {batch_size} on "
                f"{world_size} process(es); lower --batch-size"
            )
        self._iterator: Iterator[Any] | None = None

    def batches_per_epoch(self) -> int:
        return self._per_epoch

    def _plans(self, start: Position) -> Iterator[list[tuple[int, int]]]:
        """Batches from `start` on: the rest of its epoch, then every following epoch."""
        n = len(self.dataset)  # type: ignore[arg-type]
        epoch, skip = start.epoch, start.batch
        while True:
            yield from epoch_batches(
                n, self.batch_size, epoch, self.seed, self.rank, self.world_size
            )[skip:]
            epoch, skip = epoch + 1, 0

    def _open(self) -> Iterator[Any]:
        start = self.position
        # A loader draws its workers' base seed when an iterator starts. From the process's global
        # generator that draw would happen once in an uninterrupted run but once more at every
        # resume, so the global RNG state (saved in checkpoints, used by any random op in a model)
        # would differ after a resume. A private generator keyed by the start position keeps the
        # global state untouched.
        generator = torch.Generator().manual_seed(
            sample_seed(self.seed, start.epoch, start.batch) + self.rank
        )
        loader = DataLoader(
            self.dataset,
            batch_sampler=_Endless(lambda: self._plans(start)),
            collate_fn=self.collate,
            num_workers=self.num_workers,
            generator=generator,
        )
        return iter(loader)

    def next(self) -> Any:
        """The next batch; advances `position` past it (to the next epoch after its last batch)."""
        if self._iterator is None:
            self._iterator = self._open()
        batch = next(self._iterator)
        epoch, read = self.position.epoch, self.position.batch
        if read >= self._per_epoch:  # a position saved past an epoch's last batch
            epoch, read = epoch + 1, 0
        following = Position(epoch, read + 1)
        if following.batch >= self._per_epoch:
            following = Position(epoch + 1, 0)
        self.position = following
        return batch


class _Endless:
    """An iterable over a generator function (a DataLoader batch sampler without a length)."""

    def __init__(self, make: Callable[[], Iterator[list[tuple[int, int]]]]) -> None:
        self.make = make

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return self.make()


def torch_generator(seed: int) -> torch.Generator:
    """A CPU torch generator seeded with `seed` (for per-sample torch randomness)."""
    return torch.Generator().manual_seed(seed)
