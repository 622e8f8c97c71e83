"""What each Zarr chunk of a feature array must be, from the commit records, checked as it is read.

A reader never returns a chunk the features stage did not write as it is: a chunk recorded as stored
but absent (Zarr would read it as zeros), of another size, or whose CRC32C differs raises
``DamagedStoreError`` naming the array, the chunk key, its rows, its shard and the repair command.
A chunk recorded as all fill value (Zarr wrote no file) must stay absent. The expectations are three
small NumPy arrays per array (state, size, checksum per row-chunk), so they pickle cheaply to
DataLoader workers; the check costs one CRC32C of the stored bytes per chunk read (about 0.2 ms per
MB here, see ``benchmarks/bench_integrity.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facerec.errors import DamagedStoreError
from facerec.store.integrity import crc32c

UNRECORDED, STORED, FILL = 0, 1, 2


def repair_command(store_root: str) -> str:
    return f"facerec repair --store {store_root}"


class ChunkExpectations:
    """Per row-chunk of one array: recorded state, size and CRC32C, plus what to say when it fails."""

    def __init__(self, array: str, num_chunks: int, chunk_rows: int, shard_size: int, num_rows: int,
                 where: str, store_root: str) -> None:
        self.array, self.chunk_rows, self.shard_size, self.num_rows = array, chunk_rows, shard_size, num_rows
        self.where, self.store_root = where, store_root
        self.state = np.zeros(num_chunks, np.int8)
        self.nbytes = np.zeros(num_chunks, np.int64)
        self.crc = np.zeros(num_chunks, np.uint32)

    @classmethod
    def from_integrity(cls, section: dict[str, Any], array: str, *, num_chunks: int, chunk_rows: int,
                       shard_size: int, num_rows: int, where: str, store_root: str) -> "ChunkExpectations":
        """Expectations of ``array`` from a features index manifest's ``integrity`` section."""
        out = cls(array, num_chunks, chunk_rows, shard_size, num_rows, where, store_root)
        for record in section.get("files", {}).values():
            for entry in record.get("arrays", {}).get(array, ()):
                i = int(entry["chunk"])
                if entry["crc32c"] is None:
                    out.state[i] = FILL
                else:
                    out.state[i], out.nbytes[i], out.crc[i] = STORED, int(entry["bytes"]), int(entry["crc32c"], 16)
        return out

    @property
    def recorded(self) -> bool:
        return bool((self.state != UNRECORDED).any())

    def rows(self, chunk: int) -> tuple[int, int]:
        """First and last row (inclusive) of a chunk."""
        lo = chunk * self.chunk_rows
        return lo, min(lo + self.chunk_rows, self.num_rows) - 1

    def error(self, chunk: int, key: str, what: str) -> DamagedStoreError:
        lo, hi = self.rows(chunk)
        shard = lo // self.shard_size
        repair = repair_command(self.store_root)
        return DamagedStoreError(
            f"{self.where}: array {self.array!r} chunk {key} (rows {lo}-{hi}, shard {shard}) {what}; "
            f"the store is damaged, repair it with `{repair}`",
            where={"array": self.array, "chunk": key, "rows": [lo, hi], "shard": shard}, repair=repair,
        )

    def check(self, chunk: int, key: str, data: bytes | None) -> None:
        """Raise when ``data`` (the stored bytes, None when absent) is not what was recorded."""
        state = self.state[chunk]
        if state == UNRECORDED:
            return
        if state == FILL:
            if data is not None:
                raise self.error(chunk, key, f"exists ({len(data)} bytes) but was recorded as never written (all fill)")
            return
        if data is None:
            raise self.error(chunk, key, f"is missing (recorded {int(self.nbytes[chunk])} bytes); Zarr would read it as zeros")
        if len(data) != self.nbytes[chunk]:
            raise self.error(chunk, key, f"has {len(data)} bytes, recorded {int(self.nbytes[chunk])} (truncated or overwritten)")
        if crc32c(data) != int(self.crc[chunk]):
            raise self.error(chunk, key, f"fails its checksum (crc32c {crc32c(data):08x}, recorded {int(self.crc[chunk]):08x})")
