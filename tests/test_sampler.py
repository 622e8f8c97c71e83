"""ChunkShuffleSampler: coverage, rank sharding, determinism and chunk locality (pure index logic).

The DataLoader round trip through spawn workers is in test_dataset.py, where a real store exists.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from facerec.errors import ConfigError
from facerec.store.sampler import BatchRows, ChunkShuffleSampler

# Rows of a split: every store row except a hash-like 20% (so chunks hold different row counts).
ALL_ROWS = np.arange(2000)
ROWS = ALL_ROWS[(ALL_ROWS * 2654435761 % 97) >= 19]
CHUNK = 32


def epoch_batches(sampler: ChunkShuffleSampler, epoch: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return [list(b) for b in sampler]


def test_every_position_exactly_once_per_epoch():
    sampler = ChunkShuffleSampler(ROWS, CHUNK, batch_size=64, seed=1)
    batches = epoch_batches(sampler, 0)
    flat = np.concatenate(batches)
    assert len(batches) == len(sampler) == int(np.ceil(len(ROWS) / 64))
    assert sorted(flat.tolist()) == list(range(len(ROWS)))
    assert all(len(b) == 64 for b in batches[:-1]) and 0 < len(batches[-1]) <= 64


def test_batches_touch_few_chunks_yet_are_shuffled():
    sampler = ChunkShuffleSampler(ROWS, CHUNK, batch_size=128, shuffle_buffer_chunks=4, seed=0)
    batches = epoch_batches(sampler, 0)
    chunks_per_batch = [len(np.unique(ROWS[b] // CHUNK)) for b in batches]
    # a batch spans its buffers: at most the chunks of the buffers it overlaps (4 per buffer)
    assert max(chunks_per_batch) <= 4 * (1 + int(np.ceil(128 / (4 * 0.8 * CHUNK))))
    flat = np.concatenate(batches)
    assert not np.array_equal(flat, np.sort(flat))
    # chunk order is permuted, not ascending
    first_chunks = [int(ROWS[b[0]] // CHUNK) for b in batches]
    assert first_chunks != sorted(first_chunks)


def test_same_seed_same_batches_other_epoch_other_batches():
    a = ChunkShuffleSampler(ROWS, CHUNK, batch_size=50, seed=5)
    b = ChunkShuffleSampler(ROWS, CHUNK, batch_size=50, seed=5)
    assert epoch_batches(a, 2) == epoch_batches(b, 2)
    assert [x.aug_seed for x in a] == [x.aug_seed for x in b]
    assert epoch_batches(a, 3) != epoch_batches(b, 2)
    c = ChunkShuffleSampler(ROWS, CHUNK, batch_size=50, seed=6)
    assert epoch_batches(c, 2) != epoch_batches(a, 2)


@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_disjoint_and_equal_length(drop_last):
    world = 3
    n = len(ROWS)
    samplers = [ChunkShuffleSampler(ROWS, CHUNK, batch_size=40, seed=2, rank=r, world_size=world, drop_last=drop_last) for r in range(world)]
    per_rank = [epoch_batches(s, 1) for s in samplers]
    lengths = {len(b) for b in per_rank}
    assert len(lengths) == 1 and lengths.pop() == len(samplers[0])
    flats = [np.concatenate(b) for b in per_rank]
    if drop_last:
        assert all(len(b) == 40 for batches in per_rank for b in batches)
        for i in range(world):
            for j in range(i + 1, world):
                assert not set(flats[i]) & set(flats[j])
    else:
        assert len({len(f) for f in flats}) == 1 and len(flats[0]) == int(np.ceil(n / world))
        union = np.concatenate(flats)
        assert set(union.tolist()) == set(range(n))
        assert len(union) - n == len(flats[0]) * world - n          # only the padding repeats
    # sharding leaves chunks whole except at the rank boundaries
    chunk_sets = [set((ROWS[f] // CHUNK).tolist()) for f in flats]
    shared = set.union(*[chunk_sets[i] & chunk_sets[j] for i in range(world) for j in range(i + 1, world)])
    assert len(shared) <= world + (0 if drop_last else 2)


def test_unshuffled_sampler_reads_in_row_order():
    sampler = ChunkShuffleSampler(ROWS, CHUNK, batch_size=64, shuffle=False)
    flat = np.concatenate(epoch_batches(sampler, 0))
    assert np.array_equal(flat, np.arange(len(ROWS)))


def test_batch_rows_carry_their_seed_through_pickle():
    batch = next(iter(ChunkShuffleSampler(ROWS, CHUNK, batch_size=8, seed=0)))
    again = pickle.loads(pickle.dumps(batch))
    assert isinstance(again, BatchRows) and list(again) == list(batch) and again.aug_seed == batch.aug_seed


def test_bad_arguments_are_refused():
    with pytest.raises(ConfigError, match="rank"):
        ChunkShuffleSampler(ROWS, CHUNK, batch_size=8, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="batch_size"):
        ChunkShuffleSampler(ROWS, CHUNK, batch_size=0)
    with pytest.raises(ConfigError, match="at least one row"):
        ChunkShuffleSampler([], CHUNK, batch_size=8)
