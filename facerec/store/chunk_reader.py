"""Reading rows of a feature array chunk by chunk: the hot loop of every reader.

A batch of rows is served one run of consecutive chunks at a time, each decoded chunk copied row by
row into the batch positions that want it (one copy per row, no fancy-index temporary).

Arrays written by ``create_feature_group`` on a local disk have one of a few codec chains (``bytes``,
then nothing, ``zstd`` or ``blosc``) and a regular chunk grid. For those, ``ChunkReader`` reads the
chunk file and decodes it with numcodecs in the calling thread. Zarr's own read path does the same
work through its asyncio loop and thread pool, which measured about 3x the CPU time per batch here
(2.6k vs 7-8.6k samples per CPU-second for [256, 10, 112, 112] batches), the difference between a
reader that keeps up with a GPU and one that does not. Any other array (remote store, sharding,
other codecs) goes through Zarr after its stored chunks are checked.

With ``expected`` (``ChunkExpectations`` from the stage's commit records) every chunk's stored bytes
are checked before they are decoded: missing, resized or corrupt chunks of committed shards raise
``DamagedStoreError`` instead of reading as zeros. Without records (a store built before them) a
missing chunk is the fill value, as in Zarr; a chunk that does not decode is always an error that
names the array, chunk and rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facerec.errors import StoreError
from facerec.store.integrity import chunk_key, read_chunk_bytes

if TYPE_CHECKING:
    from facerec.store.chunk_check import ChunkExpectations
    from facerec.store.fs import Location

log = logging.getLogger(__name__)


def _as_is(data: bytes) -> bytes:
    return data


def _direct_decoder(array: Any) -> Callable[[bytes], np.ndarray] | None:
    """bytes of one chunk -> [chunk shape] array, or None when the chunk chain is not one we know."""
    import numcodecs
    from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec

    from facerec.store.image_codec import CropImageCodec

    codecs = list(getattr(array.metadata, "codecs", ()))
    if len(codecs) == 1 and isinstance(codecs[0], CropImageCodec):
        crop, shape = codecs[0], tuple(array.chunks)
        return lambda data: crop.decode_bytes(data, shape)
    if not codecs or not isinstance(codecs[0], BytesCodec) or len(codecs) > 2:
        return None
    dtype = np.dtype(array.dtype)
    if dtype.itemsize > 1 and codecs[0].endian is not None:
        dtype = dtype.newbyteorder("<" if codecs[0].endian.value == "little" else ">")
    shape = tuple(array.chunks)
    if len(codecs) == 1:
        decompress = _as_is
    elif isinstance(codecs[1], ZstdCodec):
        decompress = numcodecs.Zstd().decode
    elif isinstance(codecs[1], BloscCodec):
        decompress = numcodecs.Blosc().decode
    else:
        return None

    def decode(data: bytes) -> np.ndarray:
        return np.frombuffer(decompress(data), dtype=dtype).reshape(shape)

    return decode


class ChunkReader:
    """Rows of one Zarr array (sample-major, chunked along rows only), read chunk by chunk."""

    def __init__(self, array: Any, expected: "ChunkExpectations | None" = None, location: "Location | None" = None) -> None:
        self.array = array
        self.expected = expected if expected is not None and expected.recorded else None
        self.location = location          # the array's folder, to read stored chunk bytes on the Zarr path
        self.chunk_rows = int(array.chunks[0])
        if tuple(array.chunks[1:]) != tuple(array.shape[1:]):
            raise ValueError(f"array {array.path!r} must be chunked along rows only, has chunks {array.chunks}")
        root = getattr(array.store, "root", None)
        encoding = getattr(array.metadata, "chunk_key_encoding", None)
        self._decode = _direct_decoder(array) if root is not None and encoding is not None else None
        self._folder = Path(root) / array.path if self._decode is not None else None

    @property
    def direct(self) -> bool:
        """True when chunks are read from files and decoded here rather than through Zarr."""
        return self._decode is not None

    def chunk(self, index: int) -> np.ndarray:
        """Chunk ``index`` decoded: [chunk_rows, ...] (the edge chunk is stored full size, as in Zarr)."""
        key = chunk_key(self.array, index)
        try:
            data = (self._folder / key).read_bytes()
        except FileNotFoundError:
            data = None
        if self.expected is not None:
            self.expected.check(index, key, data)
        if data is None:
            return np.full(self.array.chunks, self.array.fill_value, dtype=self.array.dtype)
        try:
            return self._decode(data)
        except Exception as exc:  # noqa: BLE001 - any codec failure means damaged bytes: name them
            raise self._undecodable(index, key, exc) from exc

    def _undecodable(self, index: int, key: str, exc: BaseException) -> StoreError:
        what = f"cannot be decoded ({type(exc).__name__}: {exc})"
        if self.expected is not None:
            return self.expected.error(index, key, what)
        lo = index * self.chunk_rows
        return StoreError(f"array {self.array.path!r} chunk {key} (rows {lo}-{lo + self.chunk_rows - 1}) {what}; "
                          "run `facerec verify --store STORE` to find the damage")

    def _check_run(self, first: int, last: int) -> None:
        """Check the stored bytes of chunks ``first..last`` before Zarr decodes them (Zarr path)."""
        if self.expected is None or self.location is None:
            return
        for index in range(first, last + 1):
            key = chunk_key(self.array, index)
            self.expected.check(index, key, read_chunk_bytes(self.location, key))

    def read_rows(self, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``array[rows]`` for ``rows`` in any order (repeats allowed) into ``out`` (allocated when None).

        ``out`` may be a strided view such as ``batch[:, :3]``. Each chunk is read once per call.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if out is None:
            out = np.empty((len(rows), *self.array.shape[1:]), dtype=self.array.dtype)
        if len(rows) == 0:
            return out
        if rows.min() < 0 or rows.max() >= self.array.shape[0]:
            raise IndexError(f"rows must lie in 0..{self.array.shape[0] - 1}, got {rows.min()}..{rows.max()}")
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        chunk = ordered // self.chunk_rows
        if self.direct:
            bounds = np.r_[0, np.flatnonzero(np.diff(chunk)) + 1, len(ordered)]
            for a, b in zip(bounds[:-1], bounds[1:]):
                self._scatter(self.chunk(int(chunk[a])), int(chunk[a]) * self.chunk_rows, ordered[a:b], order[a:b], out)
            return out
        bounds = np.r_[0, np.flatnonzero(np.diff(chunk) > 1) + 1, len(ordered)]   # runs of consecutive chunks
        for a, b in zip(bounds[:-1], bounds[1:]):
            lo, hi = int(ordered[a]), int(ordered[b - 1]) + 1
            self._check_run(lo // self.chunk_rows, (hi - 1) // self.chunk_rows)
            try:
                block = self.array[lo:hi]
            except Exception as exc:  # noqa: BLE001 - a codec failure inside Zarr: name the rows
                raise self._undecodable(lo // self.chunk_rows, chunk_key(self.array, lo // self.chunk_rows), exc) from exc
            self._scatter(block, lo, ordered[a:b], order[a:b], out)
        return out

    @staticmethod
    def _scatter(block: np.ndarray, first_row: int, rows: np.ndarray, dest: np.ndarray, out: np.ndarray) -> None:
        """out[dest[i]] = block[rows[i] - first_row]; one slice copy when both sides are contiguous runs."""
        n = len(rows)
        lo, start = int(rows[0]) - first_row, int(dest[0])
        if np.all(np.diff(rows) == 1) and np.all(np.diff(dest) == 1):
            out[start : start + n] = block[lo : lo + n]
            return
        for d, r in zip(dest.tolist(), (rows - first_row).tolist()):
            out[d] = block[r]
