"""Ingest on real LFW images: bytes kept exactly, stable ids, global shuffle, shards, options, resume."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from facerec.errors import ConfigError, SourceError
from facerec.pipeline import ingest as ingest_mod
from facerec.pipeline.ingest import IngestConfig, keep_sample, run_ingest
from facerec.schemas import LAYOUT_VERSION, SAMPLES, check_table_schema
from facerec.store.fs import TMP_PREFIX
from facerec.store.layout import StoreLayout

from conftest import make_image_folder


def _read_samples(store: Path) -> pa.Table:
    files = sorted((store / "samples").glob("shard-*.parquet"))
    tables = [pq.read_table(f) for f in files]
    for f, t in zip(files, tables):
        check_table_schema(t.schema, SAMPLES, str(f))
    return pa.concat_tables(tables)


def _ingest(source: Path, store: Path, **kw) -> ingest_mod.StageResult:
    return run_ingest(IngestConfig(source=str(source), store=str(store), **kw))


@pytest.fixture(scope="module")
def base_run(lfw_small_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pa.Table]:
    store = tmp_path_factory.mktemp("ingest_base")
    result = _ingest(lfw_small_folder, store, shard_size=32, seed=7)
    assert result.rows_in == 120 and result.ok == 120 and result.shards_done == 4
    return store, _read_samples(store)


def test_rows_keep_original_bytes_and_content_ids(base_run, lfw_small_folder: Path) -> None:
    store, table = base_run
    rows = table.to_pylist()
    files = sorted(p for p in lfw_small_folder.rglob("*.jpg"))
    assert len(rows) == len(files) == 120
    by_path = {r["source_path"]: r for r in rows}
    for f in files:
        row = by_path[str(f.relative_to(lfw_small_folder))]
        data = f.read_bytes()
        assert row["image"] == data                      # never re-encoded
        assert row["identity"] == f.parent.name
        assert row["sample_id"] == hashlib.sha1(f.parent.name.encode() + b"\0" + data).hexdigest()
        assert (row["status"], row["format"], row["width"], row["height"]) == ("ok", "JPEG", 250, 250)
        assert row["error"] is None and row["split"] == "train"
    names = sorted({r["identity"] for r in rows})
    assert all(r["label"] == names.index(r["identity"]) for r in rows)


def test_shards_positions_and_manifest(base_run) -> None:
    store, table = base_run
    assert [f.name for f in sorted((store / "samples").glob("*"))] == [
        "_commits", "_manifest.json", "shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet", "shard-00003.parquet"]
    shard, position = table.column("shard").to_pylist(), table.column("position").to_pylist()
    assert [s * 32 + p for s, p in zip(shard, position)] == list(range(120))
    manifest = StoreLayout.read_manifest(StoreLayout.at(str(store)).samples)
    assert (manifest["num_rows"], manifest["num_shards"], manifest["shard_size"], manifest["num_identities"]) == (120, 4, 32, 30)
    assert manifest["counts"]["rows_in"] == 120 and manifest["config"]["seed"] == 7
    assert manifest["layout_version"] == LAYOUT_VERSION and manifest["source"]["kind"] == "imagefolder"


def test_order_is_a_global_shuffle(base_run) -> None:
    _, table = base_run
    identities = table.column("identity").to_pylist()
    assert identities != sorted(identities)
    # 30 identities x 4 images: a global shuffle puts many identities into every 32-row shard
    for s in range(3):
        assert len(set(identities[s * 32:(s + 1) * 32])) >= 15
    # the order is the seeded key order, whatever the arrival order
    keys = [ingest_mod.order_key(sid, 7) for sid in table.column("sample_id").to_pylist()]
    assert keys == sorted(keys)


def test_deterministic_for_a_seed(base_run, lfw_small_folder: Path, tmp_path: Path) -> None:
    _, table = base_run
    again = _ingest(lfw_small_folder, tmp_path / "a", shard_size=32, seed=7)
    assert again.ok == 120
    assert _read_samples(tmp_path / "a").equals(table)
    _ingest(lfw_small_folder, tmp_path / "b", shard_size=32, seed=8)
    other = _read_samples(tmp_path / "b")
    assert other.column("sample_id").to_pylist() != table.column("sample_id").to_pylist()
    assert sorted(other.column("sample_id").to_pylist()) == sorted(table.column("sample_id").to_pylist())


def test_external_merge_of_many_runs_gives_the_same_table(base_run, lfw_small_folder: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _, table = base_run
    monkeypatch.setattr(ingest_mod, "RUN_BYTES", 200_000)     # about 15 LFW images per sorted run
    monkeypatch.setattr(ingest_mod, "MERGE_BATCH_ROWS", 3)
    seen_runs = []
    real_stage = ingest_mod._stage

    def spy(*args, **kwargs):
        marker = real_stage(*args, **kwargs)
        seen_runs.append(len(marker["runs"]))
        return marker

    monkeypatch.setattr(ingest_mod, "_stage", spy)
    _ingest(lfw_small_folder, tmp_path / "s", shard_size=32, seed=7)
    assert seen_runs and seen_runs[0] >= 5
    assert _read_samples(tmp_path / "s").equals(table)
    assert not (tmp_path / "s" / "samples" / ingest_mod.STAGING_DIR).exists()


def test_limit_classes_max_samples_and_sample_prob(base_run, lfw_small_folder: Path, tmp_path: Path) -> None:
    _, table = base_run
    names = sorted(set(table.column("identity").to_pylist()))

    _ingest(lfw_small_folder, tmp_path / "limit", limit_classes=5, seed=7)
    limited = _read_samples(tmp_path / "limit")
    assert sorted(set(limited.column("identity").to_pylist())) == names[:5]
    assert limited.num_rows == 20 and sorted(set(limited.column("label").to_pylist())) == [0, 1, 2, 3, 4]

    result = _ingest(lfw_small_folder, tmp_path / "max", max_samples=10, seed=7)
    assert result.rows_in == 10 and _read_samples(tmp_path / "max").num_rows == 10

    result = _ingest(lfw_small_folder, tmp_path / "prob", sample_prob=0.5, seed=7)
    kept = set(_read_samples(tmp_path / "prob").column("sample_id").to_pylist())
    expected = {sid for sid in table.column("sample_id").to_pylist() if keep_sample(sid, 7, 0.5)}
    assert kept == expected and 30 <= len(kept) <= 90
    manifest = StoreLayout.read_manifest(StoreLayout.at(str(tmp_path / "prob")).samples)
    assert manifest["sampled_out"] == 120 - len(kept)

    with pytest.raises(ConfigError, match="sample-prob"):
        _ingest(lfw_small_folder, tmp_path / "bad", sample_prob=0.0)


def test_resume_after_interruption_and_rerun(base_run, lfw_small_folder: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _, table = base_run
    store = tmp_path / "store"
    real_write = ingest_mod._write_shard
    calls = []

    def write_then_die(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated kill after 2 shards")
        calls.append(args[1])
        real_write(*args, **kwargs)

    monkeypatch.setattr(ingest_mod, "_write_shard", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        _ingest(lfw_small_folder, store, shard_size=32, seed=7)
    samples = store / "samples"
    assert not (samples / "_manifest.json").exists()
    assert sorted(f.name for f in samples.glob("shard-*")) == ["shard-00000.parquet", "shard-00001.parquet"]
    assert not [f for f in samples.rglob("*") if f.name.startswith(TMP_PREFIX)]

    monkeypatch.setattr(ingest_mod, "_write_shard", real_write)
    resumed = _ingest(lfw_small_folder, store, shard_size=32, seed=7)
    assert (resumed.shards_skipped, resumed.shards_done, resumed.rows_in) == (2, 2, 120)
    final = _read_samples(store)
    assert final.equals(table)
    assert len(set(final.column("sample_id").to_pylist())) == 120

    mtimes = {f: f.stat().st_mtime_ns for f in samples.iterdir()}
    rerun = _ingest(lfw_small_folder, store, shard_size=32, seed=7)
    assert rerun.skipped_stage and rerun.rows_in == 120 and rerun.shards_done == 0
    assert {f: f.stat().st_mtime_ns for f in samples.iterdir()} == mtimes

    redo = _ingest(lfw_small_folder, store, shard_size=32, seed=7, overwrite=True)
    assert not redo.skipped_stage and redo.shards_done == 4 and redo.shards_skipped == 0
    assert _read_samples(store).equals(table)


def test_changed_options_restart_a_partial_ingest(lfw_small_folder: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards left by an interrupted run with other options are never mixed into a new run."""
    def die(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ingest_mod, "_write_shard", die)
    with pytest.raises(KeyboardInterrupt):
        _ingest(lfw_small_folder, tmp_path, shard_size=32, seed=1)
    monkeypatch.undo()
    result = _ingest(lfw_small_folder, tmp_path, shard_size=32, seed=2)
    assert result.shards_skipped == 0 and result.shards_done == 4


def test_duplicate_bytes_are_counted_not_repeated(lfw_dir: Path, tmp_path: Path) -> None:
    folder = make_image_folder(tmp_path / "src", lfw_dir, 3, 2)
    first, second = sorted(p for p in folder.iterdir())[:2]
    original = sorted(first.iterdir())[0]
    (first / "copy_of_first.jpg").symlink_to(original.resolve())       # same identity, same bytes
    (second / "same_bytes_other_person.jpg").symlink_to(original.resolve())  # other identity: not a duplicate
    result = _ingest(folder, tmp_path / "store", shard_size=4)
    assert (result.rows_in, result.ok, result.rejected) == (8, 7, {"duplicate": 1})
    table = _read_samples(tmp_path / "store")
    ids = table.column("sample_id").to_pylist()
    assert table.num_rows == 7 and len(set(ids)) == 7
    kept = [r for r in table.to_pylist() if r["image"] == original.read_bytes()]
    assert sorted(r["identity"] for r in kept) == [first.name, second.name]


def test_hub_id_without_network_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(SourceError, match=r"--source /path/to/ImageFolder") as err:
        _ingest(Path("logasja/VGGFace2"), tmp_path)
    assert "HF_HUB_OFFLINE" in str(err.value) and time.perf_counter() - start < 60
    assert not (tmp_path / "samples").exists()

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")   # nothing listens on the discard port
    start = time.perf_counter()
    with pytest.raises(SourceError, match="no network"):
        _ingest(Path("logasja/VGGFace2"), tmp_path, streaming=True)
    assert time.perf_counter() - start < 10


def test_missing_local_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        _ingest(tmp_path / "nowhere", tmp_path / "store")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.jpg").write_bytes(b"x")
    with pytest.raises(SourceError, match="not an ImageFolder"):
        _ingest(tmp_path / "flat", tmp_path / "store")


@pytest.mark.slow
def test_saved_hf_dataset_and_parquet_sources(lfw_dir: Path, tmp_path: Path) -> None:
    """The datasets code path: ClassLabel names, undecoded bytes, column detection and overrides."""
    import datasets

    folder = make_image_folder(tmp_path / "src", lfw_dir, 6, 3)
    files = sorted(folder.rglob("*.jpg"))
    names = sorted({f.parent.name for f in files})
    ds = datasets.Dataset.from_dict({
        "image": [{"bytes": f.read_bytes(), "path": f.name} for f in files],
        "class_id": [names.index(f.parent.name) for f in files],
    }, features=datasets.Features({"image": datasets.Image(), "class_id": datasets.ClassLabel(names=names)}))
    ds.save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "pq").mkdir()
    ds.to_parquet(str(tmp_path / "pq" / "train-00000-of-00001.parquet"))
    plain = pa.table({"jpg": [f.read_bytes() for f in files], "who": [f.parent.name for f in files]})
    pq.write_table(plain, tmp_path / "plain.parquet")

    expected = {(f.parent.name, f.read_bytes()) for f in files}
    for source, kw in ((tmp_path / "saved", {}), (tmp_path / "pq", {}),
                       (tmp_path / "plain.parquet", {"label_column": "who"})):
        store = tmp_path / f"store-{source.name}"
        result = _ingest(source, store, shard_size=8, **kw)
        assert result.rows_in == len(files) == result.ok, source
        table = _read_samples(store)
        assert {(r["identity"], r["image"]) for r in table.to_pylist()} == expected, source
        assert sorted(set(table.column("label").to_pylist())) == list(range(6))

    with pytest.raises(SourceError, match="expected one label column"):
        _ingest(tmp_path / "plain.parquet", tmp_path / "store-x")
    with pytest.raises(SourceError, match="--image-column 'nope' is not a column"):
        _ingest(tmp_path / "saved", tmp_path / "store-y", image_column="nope")


def test_cli_ingest_prints_counts(lfw_small_folder: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from facerec.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["ingest", "--source", str(lfw_small_folder), "--store", str(tmp_path),
                              "--shard-size", "64", "--limit-classes", "3"])
    assert out.exit_code == 0, out.output
    assert "ingest: 12 in, 12 ok, 0 rejected" in out.output
    again = runner.invoke(app, ["ingest", "--source", str(lfw_small_folder), "--store", str(tmp_path)])
    assert again.exit_code == 0 and "already finished" in again.output
    assert os.path.exists(tmp_path / "samples" / "shard-00000.parquet")
