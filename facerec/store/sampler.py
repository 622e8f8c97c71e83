"""Chunk-aware shuffling: batches that touch few Zarr chunks yet mix identities, split across ranks.

Reading one row of a compressed chunk costs decoding the whole chunk, so a uniformly shuffled sampler
decodes about one chunk per sample. ``ChunkShuffleSampler`` shuffles the order of chunks, then shuffles
rows inside a buffer of ``shuffle_buffer_chunks`` consecutive chunks and cuts batches from that stream.
A batch then touches about ``shuffle_buffer_chunks`` chunks, and each chunk is decoded about
``max(1, shuffle_buffer_chunks * chunk_rows / batch_size)`` times per epoch. Ingest shuffled the
source globally, so a chunk already holds mixed identities; what stays together within an epoch is a
buffer, and buffers are redrawn every epoch.

It yields dataset positions (indices into ``row_ids``), grouped in ``BatchRows`` lists that carry a
per-batch augmentation seed, and works as a DataLoader ``batch_sampler`` (``make_loader``). Which rows
form a batch is random; inside a batch they come in row order, so each chunk's rows land in the batch
tensor as one slice copy. Partly filled chunks (the last one, or chunks thinned by a split) go last in the
chunk order, so that with ``shuffle_buffer_chunks * chunk_rows == batch_size`` a batch of a full
store touches exactly ``shuffle_buffer_chunks`` chunks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from facerec.errors import ConfigError, choice_error
from facerec.store.dataset import collate_batch

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

WORKER_CONTEXTS = ("forkserver", "spawn")
FORKSERVER_PRELOAD = ["torch", "facerec.store.dataset"]


class BatchRows(list):
    """Dataset positions of one batch, plus ``aug_seed``: the seed of that batch's augmentation."""

    def __init__(self, positions: Sequence[int], aug_seed: int) -> None:
        super().__init__(positions)
        self.aug_seed = aug_seed

    def __reduce__(self):
        return (BatchRows, (list(self), self.aug_seed))


class ChunkShuffleSampler:
    """Batches of dataset positions, chunk-local and shuffled; disjoint and equally long per rank.

    row_ids: store row of each dataset position (``dataset.rows``); a position's chunk is
    ``row_ids[i] // chunk_rows``. Each epoch the chunk order is a permutation drawn from (seed, epoch),
    the same on every rank; the resulting row stream is cut into ``world_size`` contiguous equal parts
    and rank ``rank`` takes its part, so ranks are disjoint. Like ``DistributedSampler``, when rows do
    not divide evenly the parts are padded by repeating the first rows of the stream
    (``drop_last=False``) or truncated (``drop_last=True``, which also drops the last partial batch).
    With ``shuffle=False`` chunks and rows keep their order (evaluation).
    """

    def __init__(
        self,
        row_ids: Sequence[int] | np.ndarray,
        chunk_rows: int,
        *,
        batch_size: int,
        shuffle_buffer_chunks: int = 8,
        seed: int = 0,
        epoch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        shuffle: bool = True,
    ) -> None:
        if chunk_rows < 1 or batch_size < 1 or shuffle_buffer_chunks < 1:
            raise ConfigError(
                f"chunk_rows, batch_size and shuffle_buffer_chunks must be >= 1, got {chunk_rows}, {batch_size}, {shuffle_buffer_chunks}"
            )
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank must be in 0..world_size-1, got rank={rank}, world_size={world_size}")
        self.row_ids = np.asarray(row_ids, dtype=np.int64).reshape(-1)
        if len(self.row_ids) == 0:
            raise ConfigError("ChunkShuffleSampler needs at least one row")
        self.chunk_rows = chunk_rows
        self.batch_size = batch_size
        self.shuffle_buffer_chunks = shuffle_buffer_chunks
        self.seed = seed
        self.epoch = epoch
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.shuffle = shuffle
        # Positions grouped by chunk (stable, so rows keep their order inside a chunk).
        chunk = self.row_ids // chunk_rows
        self._by_chunk = np.argsort(chunk, kind="stable")
        self._chunk_ids, self._chunk_start = np.unique(chunk[self._by_chunk], return_index=True)
        self._chunk_len = np.diff(np.r_[self._chunk_start, len(self.row_ids)])

    @classmethod
    def for_dataset(cls, dataset: Any, *, batch_size: int, **kwargs: Any) -> "ChunkShuffleSampler":
        """A sampler over ``dataset.rows`` with the dataset's chunk size."""
        return cls(dataset.rows, dataset.chunk_rows, batch_size=batch_size, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Draw another permutation next time (call before each epoch, as with DistributedSampler)."""
        self.epoch = epoch

    @property
    def rows_per_rank(self) -> int:
        n = len(self.row_ids)
        return n // self.world_size if self.drop_last else math.ceil(n / self.world_size)

    def __len__(self) -> int:
        per = self.rows_per_rank
        return per // self.batch_size if self.drop_last else math.ceil(per / self.batch_size)

    def _stream(self) -> np.ndarray:
        """This rank's positions in reading order for the current epoch."""
        rng = np.random.default_rng([self.seed, self.epoch])
        n_chunks = len(self._chunk_ids)
        order = rng.permutation(n_chunks) if self.shuffle else np.arange(n_chunks)
        if self.shuffle:   # partly filled chunks last, so full buffers stay aligned with batches
            order = order[np.argsort(self._chunk_len[order] < self.chunk_rows, kind="stable")]
        lens = self._chunk_len[order]
        idx = np.repeat(self._chunk_start[order] - np.r_[0, np.cumsum(lens)[:-1]], lens) + np.arange(lens.sum())
        stream = self._by_chunk[idx]
        buffer_of = np.repeat(np.arange(n_chunks) // self.shuffle_buffer_chunks, lens)
        per = self.rows_per_rank
        total = per * self.world_size
        if total > len(stream):   # pad by wrapping, as DistributedSampler does
            reps = math.ceil(total / len(stream))
            stream = np.tile(stream, reps)[:total]
            buffer_of = np.concatenate([buffer_of + k * (buffer_of[-1] + 1) for k in range(reps)])[:total]
        lo, hi = self.rank * per, (self.rank + 1) * per
        mine, mine_buffer = stream[lo:hi], buffer_of[lo:hi]
        if self.shuffle:
            row_rng = np.random.default_rng([self.seed, self.epoch, self.rank, 1])
            keys = row_rng.random(len(mine))
            mine = mine[np.lexsort((keys, mine_buffer))]   # shuffle within each buffer, buffers in order
        return mine

    def __iter__(self) -> Iterator[BatchRows]:
        stream = self._stream()
        for b in range(len(self)):
            batch = stream[b * self.batch_size : (b + 1) * self.batch_size]
            batch = batch[np.argsort(self.row_ids[batch], kind="stable")]   # row order: one copy per chunk run
            seed_seq = np.random.SeedSequence([self.seed, self.epoch, self.rank, b])
            yield BatchRows(batch.tolist(), int(seed_seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)))


def make_loader(
    dataset: Any,
    sampler: ChunkShuffleSampler,
    num_workers: int,
    *,
    multiprocessing_context: str = "forkserver",
    pin_memory: bool | None = None,
    prefetch_factor: int = 4,
    persistent_workers: bool = True,
) -> "torch.utils.data.DataLoader":
    """A DataLoader whose workers each read whole batches through ``dataset.__getitems__``.

    Workers start with ``forkserver`` (default) or ``spawn``, never ``fork``: Zarr's I/O loop runs on a
    thread, which a fork does not carry over. The forkserver preloads torch and this reader once, so
    workers fork from it already imported (measured here: first batch after 14 s instead of 22 s with
    spawn on a loaded 2-core machine). Workers stay alive across epochs (``persistent_workers``) so
    their arrays stay open; ``pin_memory`` defaults to True only when CUDA is available.
    """
    import multiprocessing
    import torch
    from torch.utils.data import DataLoader

    if num_workers < 0:
        raise ConfigError(f"num_workers must be >= 0, got {num_workers}")
    kwargs: dict[str, Any] = {
        "batch_sampler": sampler,
        "collate_fn": collate_batch,
        "num_workers": num_workers,
        "pin_memory": torch.cuda.is_available() if pin_memory is None else pin_memory,
    }
    if num_workers > 0:
        if multiprocessing_context not in WORKER_CONTEXTS:
            raise choice_error("DataLoader worker start method", multiprocessing_context, WORKER_CONTEXTS)
        context = multiprocessing.get_context(multiprocessing_context)
        if multiprocessing_context == "forkserver":
            context.set_forkserver_preload(FORKSERVER_PRELOAD)
        kwargs.update(
            multiprocessing_context=context,
            persistent_workers=persistent_workers,
            prefetch_factor=prefetch_factor,
        )
    return DataLoader(dataset, **kwargs)
