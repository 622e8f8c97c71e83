"""The store knows what it wrote: a commit record per shard, with the checksum of every byte it stored.

Zarr reads a missing chunk as its fill value by design, and a Parquet footer says nothing about
whether its pages are the ones written; so each stage records, when it commits a shard, what that
shard's files and chunks must be:

    <stage folder>/_commits/shard-00007.json
    {"file": {"name": "shard-00007.parquet", "rows": 1024, "bytes": 51234, "crc32c": "1a2b3c4d"},
     "arrays": {"image": [{"key": "c/224/0/0/0", "chunk": 224, "bytes": 1180231, "crc32c": "9e3f0a11"},
                          ...], ...}}

Checksums are CRC32C (hardware, ~5 GB/s here) of the bytes as stored: the Parquet file, and each Zarr
chunk file as its codec chain left it (read back after writing), so they do not depend on the codec.
A chunk that Zarr did not write because it holds only the fill value is recorded with ``bytes`` 0
and ``crc32c`` null: it must stay absent. The record is written before the shard's file is renamed
into place, so a committed shard always has one. A finished stage copies its records into its
``_manifest.json`` (``integrity``), which is what readers and ``facerec verify`` check against.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from facerec.errors import StoreError
from facerec.store.fs import FileDigest, Location, read_json, remove_tmp_debris, write_json_atomic, write_parquet_atomic

if TYPE_CHECKING:
    import pyarrow as pa
    import zarr

log = logging.getLogger(__name__)

ALGORITHM = "crc32c"
COMMITS = "_commits"


def crc32c(data: bytes) -> int:
    import google_crc32c

    return int(google_crc32c.value(data))


def crc_hex(value: int) -> str:
    return f"{value:08x}"


def record_location(file_loc: Location) -> Location:
    """``<folder>/_commits/<stem>.json`` for the data file ``<folder>/<stem>.parquet``."""
    folder, _, name = file_loc.path.rstrip("/").rpartition("/")
    ufolder = file_loc.url.rstrip("/").rpartition("/")[0]
    stem = name.rsplit(".", 1)[0]
    return Location(file_loc.fs, f"{folder}/{COMMITS}/{stem}.json", f"{ufolder}/{COMMITS}/{stem}.json")


def write_recorded_parquet(table: "pa.Table", loc: Location, arrays: dict[str, list[dict]] | None = None,
                           **kwargs: Any) -> dict[str, Any]:
    """Write a shard's Parquet file and its commit record (before the rename); returns the record."""
    record: dict[str, Any] = {}

    def write_record(digest: FileDigest) -> None:
        record["file"] = {"name": loc.path.rstrip("/").rpartition("/")[2], "rows": table.num_rows,
                          "bytes": digest.bytes, "crc32c": crc_hex(digest.crc32c)}
        if arrays is not None:
            record["arrays"] = arrays
        write_json_atomic(record, record_location(loc))

    write_parquet_atomic(table, loc, before_commit=write_record, **kwargs)
    return record


# ------------------------------------------------------------------------------------------ Zarr chunks
def chunk_key(array: "zarr.Array", chunk: int) -> str:
    """The store key of row-chunk ``chunk`` of an array chunked along rows only."""
    return array.metadata.chunk_key_encoding.encode_chunk_key((chunk,) + (0,) * (len(array.shape) - 1))


def read_chunk_bytes(array_loc: Location, key: str) -> bytes | None:
    """The stored bytes of one chunk, or None when there is no such file."""
    try:
        return array_loc.fs.cat_file(f"{array_loc.path}/{key}")
    except FileNotFoundError:
        return None


def chunk_records(group_loc: Location, group: "zarr.Group", names: list[str] | tuple[str, ...],
                  start: int, stop: int) -> dict[str, list[dict[str, Any]]]:
    """Records of every chunk of rows ``start..stop-1`` of each array, from the bytes now stored."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        array = group[name]
        rows_per_chunk = int(array.chunks[0])
        array_loc = group_loc.child(name)
        entries = []
        for chunk in range(start // rows_per_chunk, -(-stop // rows_per_chunk)):
            key = chunk_key(array, chunk)
            data = read_chunk_bytes(array_loc, key)
            entries.append({
                "key": key, "chunk": chunk, "bytes": 0 if data is None else len(data),
                "crc32c": None if data is None else crc_hex(crc32c(data)),
            })
        out[name] = entries
    return out


# ------------------------------------------------------------------------------------------ manifests
def read_record(file_loc: Location) -> dict[str, Any] | None:
    loc = record_location(file_loc)
    return read_json(loc) if loc.exists() else None


def integrity_section(folder: Location, files: list[str]) -> dict[str, Any]:
    """The ``integrity`` section of a finished stage's manifest: the commit record of each of ``files``.

    Refuses to finish a stage whose committed file has no record (it was committed by a facerec that
    did not record, or its record was lost): the stage must recompute it.
    """
    remove_tmp_debris(folder.child(COMMITS))
    records, missing = {}, []
    for name in files:
        record = read_record(folder.child(name))
        if record is None:
            missing.append(name)
        else:
            records[name] = record
    if missing:
        raise StoreError(
            f"{folder}: {len(missing)} committed files have no commit record in {COMMITS}/ (first {missing[0]}); "
            f"delete them and rerun the stage to recompute them"
        )
    return {"algorithm": ALGORITHM, "files": records}


def finished_stage_fields(folder: Location, files: list[str], stage: str, extractor: str | None = None,
                          source_revision: str | None = None) -> dict[str, Any]:
    """What every finished stage adds to its manifest: ``integrity`` and ``provenance``."""
    from facerec.store.provenance import provenance

    return {"integrity": integrity_section(folder, files),
            "provenance": provenance(stage, extractor, source_revision)}


def manifest_integrity(manifest: dict[str, Any] | None) -> dict[str, Any] | None:
    """A manifest's ``integrity`` section, None when the stage predates integrity records."""
    if not manifest:
        return None
    section = manifest.get("integrity")
    if section is not None and section.get("algorithm") != ALGORITHM:
        raise StoreError(f"unknown integrity algorithm {section.get('algorithm')!r}; expected {ALGORITHM!r}")
    return section
