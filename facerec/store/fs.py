"""Filesystem access for stores: local paths and any fsspec URL (file://, s3://, hdfs://, ...).

Every output is written under a temporary name and committed by rename, so a reader never sees a
half-written part and an interrupted stage leaves only ``.tmp-*`` debris that the next run removes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from facerec import faults
from facerec.errors import StoreError
from facerec.schemas.tables import check_table_schema

TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class Location:
    """A filesystem plus a path on it; ``str(loc)`` gives back a URL usable by fsspec and Spark."""

    fs: fsspec.AbstractFileSystem
    path: str
    url: str

    def child(self, *parts: str) -> "Location":
        path = "/".join([self.path.rstrip("/"), *parts])
        url = "/".join([self.url.rstrip("/"), *parts])
        return Location(self.fs, path, url)

    def exists(self) -> bool:
        return self.fs.exists(self.path)

    def __str__(self) -> str:
        return self.url


def resolve(url_or_path: str) -> Location:
    fs, path = fsspec.core.url_to_fs(str(url_or_path))
    url = str(url_or_path) if "://" in str(url_or_path) else fs._strip_protocol(path)
    return Location(fs, path, url)


def _tmp_name(loc: Location) -> Location:
    parent, _, name = loc.path.rstrip("/").rpartition("/")
    uparent, _, _ = loc.url.rstrip("/").rpartition("/")
    tmp = f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{name}"
    return Location(loc.fs, f"{parent}/{tmp}", f"{uparent}/{tmp}")


def commit(tmp: Location, final: Location) -> None:
    """Move ``tmp`` onto ``final`` (rename on local disks); the final name appears whole or not at all."""
    faults.before_commit(final.path)   # no-op unless a recovery test asks for a crash here
    try:
        if final.fs.exists(final.path):
            final.fs.rm(final.path, recursive=True)
        final.fs.mv(tmp.path, final.path, recursive=True)
    except OSError as exc:
        raise StoreError(f"cannot commit {final}: {exc}") from exc


@dataclass(frozen=True)
class FileDigest:
    """What was written to a file: its size and the CRC32C of its bytes (``facerec.store.integrity``)."""

    bytes: int
    crc32c: int


class _DigestWriter:
    """A write-only file wrapper that checksums the bytes on their way to disk (no second read)."""

    def __init__(self, fh: BinaryIO) -> None:
        import google_crc32c

        self._fh = fh
        self._crc = google_crc32c.Checksum()
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        data = bytes(data)   # the C checksum takes read-only bytes; pyarrow hands over its buffers
        self._crc.update(data)
        self.size += len(data)
        return self._fh.write(data)

    def flush(self) -> None:
        self._fh.flush()

    def tell(self) -> int:
        return self.size

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def digest(self) -> FileDigest:
        return FileDigest(self.size, int.from_bytes(self._crc.digest(), "big"))


def write_parquet_atomic(table: pa.Table, loc: Location, *, before_commit: Callable[[FileDigest], None] | None = None,
                         **kwargs: Any) -> FileDigest:
    """Write one Parquet file under a temporary name, then rename it into place; returns its digest.

    ``before_commit(digest)`` runs after the bytes are on disk and before the rename (a stage records
    what it wrote there, so a committed file always has its record).
    """
    tmp = _tmp_name(loc)
    try:
        loc.fs.makedirs(loc.path.rpartition("/")[0], exist_ok=True)
        with loc.fs.open(tmp.path, "wb") as fh:
            faults.disk_full_while_writing(loc.path, fh)   # no-op unless a recovery test asks for ENOSPC here
            writer = _DigestWriter(fh)
            pq.write_table(table, writer, **{"compression": "zstd", **kwargs})
    except OSError as exc:
        _remove_quietly(tmp)
        raise StoreError(f"cannot write {loc}: {exc}") from exc
    digest = writer.digest()
    if before_commit is not None:
        before_commit(digest)
    commit(tmp, loc)
    return digest


def write_json_atomic(obj: Any, loc: Location, *, default: Callable[[Any], Any] = str) -> None:
    """``obj`` as indented JSON, whole or not at all; ``default`` turns what JSON lacks (numpy scalars) into JSON."""
    write_text_atomic(json.dumps(obj, indent=2, sort_keys=True, default=default), loc)


def write_text_atomic(text: str, loc: Location) -> None:
    """``text`` (UTF-8) written to a temporary sibling, then committed onto ``loc``."""
    tmp = _tmp_name(loc)
    data = text.encode("utf-8")
    try:
        loc.fs.makedirs(loc.path.rpartition("/")[0], exist_ok=True)
        with loc.fs.open(tmp.path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        _remove_quietly(tmp)
        raise StoreError(f"cannot write {loc}: {exc}") from exc
    commit(tmp, loc)


@contextlib.contextmanager
def atomic_local_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling of the local ``path`` for a writer that wants a file name (``torch.save``,
    ``np.savez``, the ONNX exporter); renamed onto ``path`` when the block succeeds, removed when it fails."""
    loc = resolve(str(path))
    tmp = _tmp_name(loc)
    loc.fs.makedirs(loc.path.rpartition("/")[0], exist_ok=True)
    try:
        yield Path(tmp.path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    commit(tmp, loc)


def read_parquet_checked(loc: Location, schema: pa.Schema, columns: list[str] | None = None) -> pa.Table:
    """Open one Parquet file, refuse it unless it is a ``schema`` table of this layout version
    (``check_table_schema``), then read ``columns`` (all when None): the one way a store table is read whole."""
    with loc.fs.open(loc.path, "rb") as fh:
        pf = pq.ParquetFile(fh)
        check_table_schema(pf.schema_arrow, schema, str(loc))
        return pf.read(columns=columns)


def read_json(loc: Location) -> Any:
    with loc.fs.open(loc.path, "rb") as fh:
        return json.load(io.TextIOWrapper(fh, encoding="utf-8"))


def remove_tmp_debris(folder: Location) -> int:
    """Delete leftovers of interrupted writes in ``folder``; returns how many were removed."""
    if not folder.exists():
        return 0
    removed = 0
    for entry in folder.fs.ls(folder.path, detail=False):
        if entry.rstrip("/").rpartition("/")[2].startswith(TMP_PREFIX):
            folder.fs.rm(entry, recursive=True)
            removed += 1
    return removed


def _remove_quietly(loc: Location) -> None:
    try:
        if loc.fs.exists(loc.path):
            loc.fs.rm(loc.path, recursive=True)
    except OSError:
        pass
