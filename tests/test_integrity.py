"""A damaged store is detected, named and repaired, never read as silent zeros (issue 16).

One real store is built once through every stage (24 LFW faces, MediaPipe, 3 shards of 8) and copied
for each fault. Each fault is one a copy or a disk really produces: a deleted chunk, a truncated
chunk, random bytes over a chunk, one flipped byte that still decompresses, a truncated Parquet file,
a missing index shard. Each must be found by ``verify`` (without ``--deep`` where the damage changes
sizes or listings), make the reader raise ``DamagedStoreError`` naming array/chunk/rows/shard and the
repair command, and be repaired to a store byte-identical to the clean build.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numcodecs
import numpy as np
import pytest

from facerec.errors import DamagedStoreError
from facerec.pipeline.canonical import CanonicalConfig, run_canonical
from facerec.pipeline.feature_stage import FeaturesConfig, run_features
from facerec.pipeline.ingest import IngestConfig, run_ingest
from facerec.pipeline.landmark_stage import LandmarksConfig, run_landmarks
from facerec.pipeline.repair import repair_store
from facerec.store.dataset import FaceStoreDataset
from facerec.store.open_store import FeatureSet
from facerec.store.verify import verify_store

from conftest import make_image_folder
from store_compare import assert_same_store

pytestmark = pytest.mark.slow

NUM_IDENTITIES, PER_IDENTITY, SHARD_SIZE, SIZE = 8, 3, 8, 64
N = NUM_IDENTITIES * PER_IDENTITY
FSET = f"mediapipe-{SIZE}"


@pytest.fixture(scope="module")
def clean(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import local_spark

    spark = local_spark()
    root = tmp_path_factory.mktemp("integrity")
    source = make_image_folder(root / "src", lfw_dir, NUM_IDENTITIES, PER_IDENTITY, min_images=PER_IDENTITY)
    store = root / "clean"
    run_ingest(IngestConfig(source=str(source), store=str(store), seed=3, shard_size=SHARD_SIZE))
    run_landmarks(LandmarksConfig(store=str(store), extractor="mediapipe"), spark)
    run_features(FeaturesConfig(store=str(store), extractor="mediapipe", img_size=SIZE), spark)
    run_canonical(CanonicalConfig(store=str(store), extractor="mediapipe", img_size=SIZE, k=2), spark)
    return store


@pytest.fixture
def copy(clean: Path, tmp_path: Path) -> Path:
    """A copy of the clean store, as `cp -r` or a bucket sync would make it."""
    dest = tmp_path / "copy"
    shutil.copytree(clean, dest)
    return dest


def _commit_records(store: Path) -> dict[str, bytes]:
    return {p.relative_to(store).as_posix(): p.read_bytes() for p in sorted(store.rglob("_commits/*.json"))}


def _chunk(store: Path, array: str, chunk: int) -> Path:
    return store / "features" / f"{FSET}.zarr" / array / "c" / str(chunk) / "0" / "0" / "0"


def _read_all(store: Path) -> None:
    ds = FaceStoreDataset(str(store), use_heatmaps=True, add_mask_channel=True)
    ds.read_rows(np.arange(N))


def _stats(store: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(store).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns) for p in store.rglob("*") if p.is_file()}


def _repair_and_compare(store: Path, clean: Path, spark) -> None:
    """Repair, then: byte-identical to the clean build, and only the damaged shards' files rewritten."""
    before = _stats(store)
    result = repair_store(str(store), deep=True, spark=spark)
    assert not result.before.ok and result.after is not None and result.after.ok, result.after.lines()
    assert_same_store(clean, store)
    assert _commit_records(store) == _commit_records(clean)
    after = _stats(store)
    rewritten = {path for path, stat in before.items() if after.get(path) != stat}
    repaired = {(stage.split("/")[0], shard) for stage, shards in result.shards.items() for shard in shards}
    assert repaired
    for path in rewritten:      # one chunk per shard here: chunk c/S/... belongs to shard S
        name = path.rpartition("/")[2]
        stage = "features" if path.startswith("features/") else path.split("/")[0]
        owned = any(s == stage and (f"shard-{n:05d}." in name or f"/c/{n}/" in path or path.endswith(f"/c/{n}"))
                    for s, n in repaired)
        assert owned or name in ("_manifest.json", "_input.json"), f"{path} was rewritten but its shard was not damaged"


# ---------------------------------------------------------------------------------------------- clean
def test_a_clean_store_records_everything_and_verifies(clean: Path) -> None:
    manifest = json.loads((clean / "features" / f"{FSET}.index" / "_manifest.json").read_text())
    records = manifest["integrity"]["files"]
    assert sorted(records) == [f"shard-0000{i}.parquet" for i in range(3)]
    assert sum(r["file"]["rows"] for r in records.values()) == N
    image = records["shard-00001.parquet"]["arrays"]["image"]
    assert [e["key"] for e in image] == ["c/1/0/0/0"] and image[0]["bytes"] == _chunk(clean, "image", 1).stat().st_size
    versions = manifest["provenance"]["versions"]
    assert {"facerec", "mediapipe", "dlib", "opencv", "numpy", "zarr"} <= set(versions) and versions["zarr"]
    samples = json.loads((clean / "samples" / "_manifest.json").read_text())
    assert sum(r["file"]["rows"] for r in samples["integrity"]["files"].values()) == N
    for deep in (False, True):
        report = verify_store(str(clean), deep=deep)
        assert report.ok, report.lines()
        assert report.files == 3 * 3 + 1 and report.chunks == 3 * 5
    assert verify_store(str(clean), deep=True).bytes_read > sum(p.stat().st_size for p in (clean / "features").rglob("c/*/*/*/*"))


# ---------------------------------------------------------------------------------------------- faults
def test_a_deleted_chunk(copy: Path, clean: Path, spark) -> None:
    _chunk(copy, "image", 1).unlink()
    report = verify_store(str(copy))
    assert not report.ok
    (p,) = report.problems
    assert (p.stage, p.shard, p.array, p.chunk, p.rows) == ("features", 1, "image", "c/1/0/0/0", [8, 15])
    assert "missing" in p.what and p.repair == f"facerec repair --store {copy}"
    with pytest.raises(DamagedStoreError, match=r"'image' chunk c/1/0/0/0 \(rows 8-15, shard 1\) is missing.*facerec repair --store"):
        _read_all(copy)
    _repair_and_compare(copy, clean, spark)


def test_a_truncated_chunk(copy: Path, clean: Path, spark) -> None:
    path = _chunk(copy, "heatmaps", 2)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    (p,) = verify_store(str(copy)).problems
    assert (p.array, p.chunk, p.shard) == ("heatmaps", "c/2/0/0/0", 2) and "truncated" in p.what
    with pytest.raises(DamagedStoreError, match=r"'heatmaps' chunk c/2/0/0/0 \(rows 16-23, shard 2\)") as info:
        _read_all(copy)
    assert info.value.where == {"array": "heatmaps", "chunk": "c/2/0/0/0", "rows": [16, 23], "shard": 2}
    _repair_and_compare(copy, clean, spark)


def test_random_bytes_over_a_chunk(copy: Path, clean: Path, spark) -> None:
    path = _chunk(copy, "image", 0)
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))    # same size: only --deep sees it
    assert verify_store(str(copy)).ok
    (p,) = verify_store(str(copy), deep=True).problems
    assert (p.array, p.chunk, p.rows) == ("image", "c/0/0/0/0", [0, 7]) and "checksum" in p.what
    with pytest.raises(DamagedStoreError, match=r"'image' chunk c/0/0/0/0 \(rows 0-7, shard 0\) fails its checksum"):
        _read_all(copy)
    _repair_and_compare(copy, clean, spark)


def _flip_a_byte_that_still_decodes(path: Path) -> int:
    """Flip one byte of a Blosc-lz4 chunk so that it still decompresses, to different pixels."""
    data = bytearray(path.read_bytes())
    original = numcodecs.Blosc().decode(bytes(data))
    for pos in range(len(data) // 2, len(data)):
        data[pos] ^= 0x01
        try:
            decoded = numcodecs.Blosc().decode(bytes(data))
        except Exception:  # noqa: BLE001 - this position breaks the stream; try the next one
            decoded = None
        if decoded is not None and len(decoded) == len(original) and bytes(decoded) != bytes(original):
            path.write_bytes(bytes(data))
            return pos
        data[pos] ^= 0x01
    raise AssertionError("no single-byte flip keeps this chunk decodable")


def test_a_flipped_byte_that_still_decompresses(copy: Path, clean: Path, spark) -> None:
    # heatmaps: a Blosc-lz4 array whatever the crop codec (the crops default to JPEG, see store/image_codec.py)
    _flip_a_byte_that_still_decodes(_chunk(copy, "heatmaps", 2))
    assert verify_store(str(copy)).ok                       # same size, still decodes: only checksums see it
    (p,) = verify_store(str(copy), deep=True).problems
    assert (p.array, p.chunk, p.shard) == ("heatmaps", "c/2/0/0/0", 2) and "checksum" in p.what
    with pytest.raises(DamagedStoreError, match="fails its checksum"):
        _read_all(copy)
    _repair_and_compare(copy, clean, spark)


def test_a_truncated_parquet_file(copy: Path, clean: Path, spark) -> None:
    index = copy / "features" / f"{FSET}.index" / "shard-00002.parquet"
    landmarks = copy / "landmarks" / "mediapipe" / "shard-00001.parquet"
    for path in (index, landmarks):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 100])
    problems = verify_store(str(copy)).problems
    assert sorted((p.stage, p.shard, p.file) for p in problems) == [
        ("features", 2, "shard-00002.parquet"), ("landmarks", 1, "shard-00001.parquet")]
    assert all("truncated" in p.what for p in problems)
    with pytest.raises(DamagedStoreError, match=r"shard-00002\.parquet \(shard 2, 8 rows\) has \d+ bytes, recorded"):
        FeatureSet.open(str(copy))
    _repair_and_compare(copy, clean, spark)


def test_a_missing_index_shard(copy: Path, clean: Path, spark) -> None:
    (copy / "features" / f"{FSET}.index" / "shard-00000.parquet").unlink()
    (p,) = verify_store(str(copy)).problems
    assert (p.stage, p.shard, p.file) == ("features", 0, "shard-00000.parquet") and "missing" in p.what
    with pytest.raises(DamagedStoreError, match=r"shard-00000\.parquet \(shard 0, 8 rows\) is missing"):
        FeatureSet.open(str(copy))
    _repair_and_compare(copy, clean, spark)


def test_a_damaged_samples_table_names_the_ingest_rerun(copy: Path) -> None:
    path = copy / "samples" / "shard-00001.parquet"
    path.write_bytes(path.read_bytes()[:-10])
    (p,) = verify_store(str(copy)).problems
    assert p.stage == "samples" and p.shard == 1
    assert p.repair.startswith("facerec ingest --source ") and "--seed 3 --shard-size 8" in p.repair and p.repair.endswith("--overwrite")
    with pytest.raises(DamagedStoreError, match="samples table is damaged.*facerec ingest --source"):
        repair_store(str(copy))


def test_the_cli_exits_non_zero_and_prints_the_repair(copy: Path) -> None:
    from typer.testing import CliRunner

    from facerec.cli import app

    _chunk(copy, "mask", 1).unlink()
    result = CliRunner().invoke(app, ["verify", "--store", str(copy)])
    assert result.exit_code == 1
    assert "problem: features/mediapipe-64, shard 1, array mask, chunk c/1/0/0/0, rows 8-15: is missing" in result.output
    assert f"repair: facerec repair --store {copy}" in result.output
    last = json.loads((copy / "_verify.json").read_text())
    assert last["ok"] is False and last["num_problems"] == 1 and last["deep"] is False
    assert os.path.exists(copy / "_verify.json")
    inspected = CliRunner().invoke(app, ["inspect", "--store", str(copy), "--json"])
    assert inspected.exit_code == 0, inspected.output
    integrity = json.loads(inspected.output)["integrity"]
    assert integrity["last_verification"]["num_problems"] == 1
    assert integrity["stages"]["landmarks/mediapipe"]["versions"]["mediapipe"]
    assert integrity["stages"][f"features/{FSET}"]["recorded"] is True
    text = CliRunner().invoke(app, ["inspect", "--store", str(copy)], terminal_width=200).output
    assert "(cheap): 1 problems" in text and "provenance" in text

    repaired = CliRunner().invoke(app, ["repair", "--store", str(copy)])
    assert repaired.exit_code == 0, repaired.output
    assert "features/mediapipe-64: recomputed shards [1]" in repaired.output and "store OK" in repaired.output
    assert json.loads((copy / "_verify.json").read_text())["ok"] is True


def test_verify_warns_when_versions_changed_since_the_build(copy: Path) -> None:
    path = copy / "landmarks" / "mediapipe" / "_manifest.json"
    manifest = json.loads(path.read_text())
    manifest["provenance"]["versions"]["mediapipe"] = "0.9.0"      # as if built with an older MediaPipe
    path.write_text(json.dumps(manifest))
    report = verify_store(str(copy))
    assert report.ok
    (warning,) = report.warnings
    assert warning.startswith("landmarks/mediapipe was built with mediapipe 0.9.0, this environment has 0.10")


def test_repair_works_on_a_copy_without_the_commit_records(copy: Path, clean: Path, spark) -> None:
    """A copy that left out the `_commits/` folders: the manifests still hold every record."""
    for folder in copy.rglob("_commits"):
        shutil.rmtree(folder)
    _chunk(copy, "image", 1).unlink()
    _repair_and_compare(copy, clean, spark)
