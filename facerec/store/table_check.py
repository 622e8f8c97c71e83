"""Reading a committed Parquet file against its commit record: present, same size, same CRC32C, same rows.

Used by readers of small tables that are read whole anyway (the feature index), so checking them
costs one CRC32C pass over bytes already in memory. ``file_problem`` is the same comparison without
raising, for ``facerec verify``.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from facerec.errors import DamagedStoreError
from facerec.store.fs import Location
from facerec.store.integrity import crc32c

_SHARD = re.compile(r"shard-(\d+)\.parquet$")


def shard_of(name: str) -> int | None:
    found = _SHARD.search(name)
    return int(found.group(1)) if found else None


def file_problem(data: bytes | None, record: dict[str, Any] | None, *, deep: bool = True) -> str | None:
    """What is wrong with a file's stored bytes against its record (``data`` None: absent); None if fine.

    Without ``deep`` only presence and size are compared (``data`` may then be a size-only stand-in).
    """
    if data is None:
        return "is missing" + (f" (recorded {record['bytes']} bytes, {record['rows']} rows)" if record else "")
    if record is None:
        return None
    if len(data) != record["bytes"]:
        return f"has {len(data)} bytes, recorded {record['bytes']} (truncated or overwritten)"
    if deep and f"{crc32c(data):08x}" != record["crc32c"]:
        return f"fails its checksum (crc32c {crc32c(data):08x}, recorded {record['crc32c']})"
    return None


def read_recorded_table(folder: Location, name: str, record: dict[str, Any] | None, store_root: str) -> pa.Table:
    """One Parquet file of ``folder`` checked against its record; ``DamagedStoreError`` when it differs."""
    loc = folder.child(name)
    try:
        data = loc.fs.cat_file(loc.path)
    except FileNotFoundError:
        data = None

    def damaged(what: str) -> DamagedStoreError:
        shard = shard_of(name)
        repair = f"facerec repair --store {store_root}"
        rows = f", {record['rows']} rows" if record else ""
        return DamagedStoreError(
            f"{folder}: {name} (shard {shard}{rows}) {what}; the store is damaged, repair it with `{repair}`",
            where={"folder": str(folder), "file": name, "shard": shard}, repair=repair)

    problem = file_problem(data, record)
    if problem:
        raise damaged(problem)
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise damaged(f"cannot be read as Parquet ({exc})") from exc
    if record is not None and table.num_rows != record["rows"]:
        raise damaged(f"holds {table.num_rows} rows, recorded {record['rows']}")
    return table
