"""Compare two stores built from the same source: data files byte for byte, Zarr arrays value for value.

JSON bookkeeping (``_manifest.json`` with timings and the Spark master used, input markers) is only
checked for presence. The data a reader sees — every Parquet file, every Zarr array and its chunk
files — must be identical byte for byte whatever the number of partitions, workers or retries.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from facerec.store.fs import TMP_PREFIX
from facerec.store.layout import MANIFEST


def data_files(store: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every Parquet file of a store (the Zarr groups aside)."""
    return {p.relative_to(store).as_posix(): p.read_bytes() for p in sorted(store.rglob("*.parquet"))
            if ".zarr/" not in p.relative_to(store).as_posix()}


def other_files(store: Path) -> list[str]:
    """Relative paths of the JSON bookkeeping files (manifests, markers) outside the Zarr groups."""
    return sorted(p.relative_to(store).as_posix() for p in store.rglob("*")
                  if p.is_file() and p.suffix != ".parquet" and ".zarr/" not in p.relative_to(store).as_posix())


def zarr_groups(store: Path) -> dict[str, dict[str, np.ndarray]]:
    """``features/<name>.zarr`` -> {array name: values} of every feature group in the store."""
    import zarr

    out = {}
    for group_path in sorted((store / "features").glob("*.zarr")):
        group = zarr.open_group(str(group_path), mode="r")
        out[group_path.relative_to(store).as_posix()] = {name: arr[:] for name, arr in sorted(group.arrays())}
    return out


def zarr_chunk_files(store: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file inside the Zarr groups (metadata and compressed chunks)."""
    return {p.relative_to(store).as_posix(): p.read_bytes()
            for p in sorted(store.glob("features/*.zarr/**/*")) if p.is_file()}


def debris(store: Path) -> list[str]:
    """Temporary files of interrupted writes anywhere in the store."""
    return sorted(p.relative_to(store).as_posix() for p in store.rglob(f"{TMP_PREFIX}*"))


def read_shards(folder: Path) -> pa.Table:
    """All committed ``shard-*.parquet`` files of a stage folder, in shard order."""
    return pa.concat_tables(pq.read_table(f) for f in sorted(folder.glob("shard-*.parquet")))


def assert_same_store(a: Path, b: Path) -> dict[str, int]:
    """Assert byte-identical data files and Zarr chunks and equal arrays; returns what was compared."""
    assert other_files(a) == other_files(b), "the stores hold different manifests or markers"
    assert any(name.endswith(MANIFEST) for name in other_files(a))
    files_a, files_b = data_files(a), data_files(b)
    assert sorted(files_a) == sorted(files_b), "the stores hold different data files"
    differ = [name for name in files_a if files_a[name] != files_b[name]]
    assert not differ, f"data files differ in bytes: {differ}"
    groups_a, groups_b = zarr_groups(a), zarr_groups(b)
    assert sorted(groups_a) == sorted(groups_b) and groups_a, "the stores hold different feature groups"
    arrays = 0
    for name, arrays_a in groups_a.items():
        arrays_b = groups_b[name]
        assert sorted(arrays_a) == sorted(arrays_b)
        for key, values in arrays_a.items():
            assert values.dtype == arrays_b[key].dtype and np.array_equal(values, arrays_b[key], equal_nan=True), \
                f"{name}/{key} differs"
            arrays += 1
    chunks_a, chunks_b = zarr_chunk_files(a), zarr_chunk_files(b)
    assert sorted(chunks_a) == sorted(chunks_b), "the Zarr groups hold different chunk files"
    assert [k for k in chunks_a if chunks_a[k] != chunks_b[k]] == [], "Zarr chunk files differ in bytes"
    return {"parquet_files": len(files_a), "arrays": arrays, "zarr_files": len(chunks_a)}
