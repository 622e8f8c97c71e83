"""Readers against commit records, fast: a handmade real-face feature set, recorded as the stage records.

The slow end-to-end faults (every stage, verify, repair) are in test_integrity.py; here the reader's
rules alone: recorded chunks must be there and intact, chunks recorded as never written (all fill)
must stay absent, and without records a chunk that does not decode still names itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from facerec.errors import DamagedStoreError, StoreError
from facerec.schemas.zarr_layout import ARRAY_NAMES
from facerec.store.chunk_reader import ChunkReader
from facerec.store.fs import resolve
from facerec.store.integrity import chunk_records, crc32c, crc_hex
from facerec.store.open_store import FeatureSet

from store_builder import build_feature_set, resolve_index

SHARD, CHUNK = 8, 4


def _record(zarr_path: Path) -> None:
    """Write the index manifest's ``integrity`` section from what is stored, as the features stage does."""
    index = Path(resolve_index(zarr_path).path)
    group = zarr.open_group(str(zarr_path), mode="r")
    n = group["valid"].shape[0]
    files = {}
    for path in sorted(index.glob("shard-*.parquet")):
        shard = int(path.stem.split("-")[1])
        data = path.read_bytes()
        rows = min(SHARD, n - shard * SHARD)
        files[path.name] = {"file": {"name": path.name, "rows": rows, "bytes": len(data), "crc32c": crc_hex(crc32c(data))},
                            "arrays": chunk_records(resolve(str(zarr_path)), group, ARRAY_NAMES, shard * SHARD, shard * SHARD + rows)}
    manifest = json.loads((index / "_manifest.json").read_text())
    manifest["integrity"] = {"algorithm": "crc32c", "files": files}
    (index / "_manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def recorded(lfw_dir, tmp_path):
    zarr_path, truth = build_feature_set(tmp_path, lfw_dir, num_identities=4, per_identity=4, chunk_rows=CHUNK,
                                         shard_size=SHARD, invalid_rows=(4, 5, 6, 7))   # chunk 1: all fill
    _record(zarr_path)
    return zarr_path, truth


def test_intact_store_reads_exactly_and_fill_chunks_are_recorded_absent(recorded) -> None:
    zarr_path, truth = recorded
    fset = FeatureSet.open(str(zarr_path))
    assert fset.reader("image").expected is not None
    assert np.array_equal(fset.reader("image").read_rows(np.arange(16)), truth["images"])
    assert not (zarr_path / "image" / "c" / "1").exists()                    # Zarr skipped the all-zero chunk
    manifest = json.loads(Path(resolve_index(zarr_path).path, "_manifest.json").read_text())
    entry = manifest["integrity"]["files"]["shard-00000.parquet"]
    assert [(e["key"], e["crc32c"]) for e in entry["arrays"]["image"]][1] == ("c/1/0/0/0", None)


def test_a_missing_recorded_chunk_raises_with_its_rows_and_shard(recorded) -> None:
    zarr_path, _ = recorded
    (zarr_path / "mask" / "c" / "3" / "0" / "0" / "0").unlink()
    fset = FeatureSet.open(str(zarr_path))
    fset.reader("mask").read_rows(np.arange(8))                              # other chunks still read
    with pytest.raises(DamagedStoreError, match=r"'mask' chunk c/3/0/0/0 \(rows 12-15, shard 1\) is missing") as info:
        fset.reader("mask").read_rows(np.array([0, 13]))
    assert info.value.where["rows"] == [12, 15] and info.value.repair == f"facerec repair --store {zarr_path.parents[1]}"


def test_a_chunk_recorded_as_never_written_must_stay_absent(recorded) -> None:
    zarr_path, _ = recorded
    stray = zarr_path / "image" / "c" / "1" / "0" / "0" / "0"
    stray.parent.mkdir(parents=True)
    stray.write_bytes((zarr_path / "image" / "c" / "0" / "0" / "0" / "0").read_bytes())   # someone else's chunk
    with pytest.raises(DamagedStoreError, match="recorded as never written"):
        FeatureSet.open(str(zarr_path)).reader("image").read_rows(np.array([5]))


def test_without_records_an_undecodable_chunk_still_names_itself(lfw_dir, tmp_path) -> None:
    zarr_path, _ = build_feature_set(tmp_path, lfw_dir, num_identities=2, per_identity=4, chunk_rows=CHUNK, shard_size=SHARD,
                                     compressor="lz4", invalid_rows=(1,))
    chunk = zarr_path / "image" / "c" / "1" / "0" / "0" / "0"
    chunk.write_bytes(np.random.default_rng(0).bytes(chunk.stat().st_size))
    reader = ChunkReader(zarr.open_group(str(zarr_path), mode="r")["image"])
    with pytest.raises(StoreError, match=r"array 'image' chunk c/1/0/0/0 \(rows 4-7\) cannot be decoded"):
        reader.read_rows(np.array([5]))
