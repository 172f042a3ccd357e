"""The batch stream: epoch after epoch from one loader, resumable at any position."""

from __future__ import annotations

from typing import Any

import pytest
from torch.utils.data import Dataset

from stseg_train.batches import BatchStream, Position, epoch_batches


class _Echo(Dataset):
    """Returns the (index, seed) key it is asked for."""

    def __len__(self) -> int:
        return 7

    def __getitem__(self, key: Any) -> Any:
        return key


def _collate(items: list[Any]) -> list[Any]:
    return list(items)


def _expected(start: Position, count: int) -> list[list[tuple[int, int]]]:
    out, epoch, skip = [], start.epoch, start.batch
    while len(out) < count:
        out += epoch_batches(7, 2, epoch, seed=5)[skip:]
        epoch, skip = epoch + 1, 0
    return out[:count]


@pytest.mark.parametrize("workers", [0, 1])
def test_stream_walks_epochs_and_resumes(workers: int) -> None:
    stream = BatchStream(_Echo(), _collate, batch_size=2, seed=5, num_workers=workers)
    assert stream.batches_per_epoch() == 3  # 7 samples: the partial batch is dropped
    got, positions = [], []
    for _ in range(8):
        got.append([tuple(k) for k in stream.next()])
        positions.append((stream.position.epoch, stream.position.batch))
    assert got == _expected(Position(), 8)
    # the position after an epoch's last batch is the next epoch's start
    assert positions == [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
    assert len({tuple(b) for b in got[:3]}) == 3 and got[:3] != got[3:6]  # reshuffled per epoch
    resumed = BatchStream(
        _Echo(), _collate, batch_size=2, seed=5, num_workers=workers, position=Position(1, 1)
    )
    assert [[tuple(k) for k in resumed.next()] for _ in range(4)] == got[4:8]
    # an old-style position past an epoch's last batch resumes at the next epoch
    old = BatchStream(_Echo(), _collate, batch_size=2, seed=5, position=Position(0, 3))
    assert [tuple(k) for k in old.next()] == [tuple(k) for k in got[3]]
    assert (old.position.epoch, old.position.batch) == (1, 1)
