"""The Spark ingest writes the driver ingest's samples table byte for byte, whatever its task count.

Sources: an ImageFolder and Parquet files (ClassLabel and plain labels) and a saved dataset, all of
real LFW images plus bad rows (not an image, zero bytes, truncated, no label), each ingested by the
driver and by Spark, with the staging split into few and many tasks. Last: a Spark task killed just
before committing its shard is retried by Spark and the table is still the driver's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facerec.errors import ConfigError
from facerec.faults import KILL_BEFORE_COMMIT_ENV, ONCE_ENV
from facerec.pipeline import spark_ingest
from facerec.pipeline.ingest import IngestConfig, resolve_engine, run_ingest

from conftest import lfw_identities, make_image_folder
from store_compare import data_files, debris, read_shards

pytestmark = pytest.mark.slow


def _both(source: Path, tmp_path: Path, spark, name: str, **kw) -> tuple[Path, Path]:
    """Ingest ``source`` by the driver and by Spark; returns the two stores."""
    driver, sparked = tmp_path / f"{name}-driver", tmp_path / f"{name}-spark"
    run_ingest(IngestConfig(source=str(source), store=str(driver), engine="driver", **kw))
    run_ingest(IngestConfig(source=str(source), store=str(sparked), engine="spark", **kw), spark)
    return driver, sparked


def _assert_same_table(driver: Path, sparked: Path) -> None:
    a, b = data_files(driver), data_files(sparked)
    assert list(a) == list(b) and a == b                  # every samples shard byte-identical
    ma, mb = (json.loads((s / "samples" / "_manifest.json").read_text()) for s in (driver, sparked))
    for key in ("num_rows", "num_shards", "num_identities", "samples_digest", "sampled_out", "source",
                "excluded_by_limit_classes"):
        assert ma[key] == mb[key], key
    for key in ("rows_in", "ok", "rejected"):
        assert ma["counts"][key] == mb["counts"][key], key
    assert debris(sparked) == [] and not (sparked / "samples" / "_staging").exists()


@pytest.fixture(scope="module")
def folder(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 real LFW faces of 10 people, plus a corrupt, an empty, a truncated and a duplicated file."""
    root = make_image_folder(tmp_path_factory.mktemp("spark_ingest_src"), lfw_dir, 10, 4, min_images=4)
    bad = root / "Zz_bad"
    bad.mkdir()
    (bad / "corrupt.jpg").write_bytes(b"this is not an image")
    (bad / "empty.jpg").write_bytes(b"")
    real = next((root / sorted(p.name for p in root.iterdir())[0]).iterdir()).read_bytes()
    (bad / "truncated.jpg").write_bytes(real[: len(real) // 2])
    (bad / "copy-a.jpg").write_bytes(real)
    (bad / "copy-b.jpg").write_bytes(real)                # same identity, same bytes: one is a duplicate
    (bad / ".DS_Store").write_bytes(b"hidden")
    return root


@pytest.mark.parametrize("tasks_per_core", [1, 9])
def test_image_folder_spark_equals_driver_with_bad_rows(folder: Path, tmp_path: Path, spark, tasks_per_core: int,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spark_ingest, "TASKS_PER_CORE", tasks_per_core)
    driver, sparked = _both(folder, tmp_path, spark, "folder", shard_size=8, seed=5)
    _assert_same_table(driver, sparked)
    rows = read_shards(sparked / "samples").to_pylist()
    by_path = {r["source_path"]: r for r in rows}
    assert by_path["Zz_bad/corrupt.jpg"]["status"] == "corrupt"
    assert by_path["Zz_bad/empty.jpg"]["status"] == "empty"
    assert by_path["Zz_bad/truncated.jpg"]["status"] == "truncated"
    assert "Zz_bad/copy-a.jpg" in by_path and "Zz_bad/copy-b.jpg" not in by_path   # the first by path is kept
    manifest = json.loads((sparked / "samples" / "_manifest.json").read_text())
    assert manifest["counts"]["rejected"] == {"corrupt": 1, "duplicate": 1, "empty": 1, "truncated": 1}
    assert manifest["counts"]["rows_in"] == 45 and manifest["num_rows"] == 44
    assert manifest["source"]["ignored"] == {"hidden_files": 1}


def test_image_folder_options_limit_and_sample_prob(folder: Path, tmp_path: Path, spark) -> None:
    driver, sparked = _both(folder, tmp_path, spark, "opts", shard_size=5, seed=2, limit_classes=6, sample_prob=0.7)
    _assert_same_table(driver, sparked)


def _hf_rows(lfw_dir: Path, people: int, per: int) -> tuple[list[dict], list[str]]:
    """Rows {image: {bytes, path}, label} of real LFW faces plus a corrupt and an empty row."""
    rows, names = [], []
    for name, images in lfw_identities(lfw_dir, min_images=per)[:people]:
        names.append(name)
        for i, img in enumerate(images[:per]):
            # every other row without a path: its source_path becomes "<split>[<row>]"
            rows.append({"image": {"bytes": img.read_bytes(), "path": img.name if i % 2 else None},
                         "label": len(names) - 1})
    rows.insert(3, {"image": {"bytes": b"not an image", "path": None}, "label": 0})
    rows.insert(7, {"image": {"bytes": b"", "path": None}, "label": 1})
    return rows, names


@pytest.fixture(scope="module")
def hf_sources(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same rows as a Parquet folder (2 files, small row groups), plain-label Parquet and a saved dataset."""
    import datasets

    rows, names = _hf_rows(lfw_dir, 8, 4)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    ds = datasets.Dataset.from_list(rows, features=features)
    root = tmp_path_factory.mktemp("hf_sources")
    (root / "parquet").mkdir()
    half = len(rows) // 2
    ds.select(range(half)).to_parquet(str(root / "parquet" / "train-00000-of-00002.parquet"), batch_size=5)
    ds.select(range(half, len(rows))).to_parquet(str(root / "parquet" / "train-00001-of-00002.parquet"), batch_size=5)
    plain = datasets.Dataset.from_list([{**r, "label": f"person-{r['label']}" if r["label"] != 5 else None}
                                        for r in rows],
                                       features=datasets.Features({"image": datasets.Image(),
                                                                   "label": datasets.Value("string")}))
    (root / "plain").mkdir()
    plain.to_parquet(str(root / "plain" / "data.parquet"), batch_size=6)
    ds.save_to_disk(str(root / "saved"), num_shards=2)
    return {"parquet": root / "parquet", "plain": root / "plain", "saved": root / "saved"}


@pytest.mark.parametrize("kind,limit", [("parquet", 6), ("saved", 6), ("plain", None), ("plain", 6)])
def test_parquet_and_saved_sources_spark_equals_driver(hf_sources: dict[str, Path], tmp_path: Path, spark,
                                                       kind: str, limit: int | None) -> None:
    driver, sparked = _both(hf_sources[kind], tmp_path, spark, kind, shard_size=7, seed=11, limit_classes=limit)
    _assert_same_table(driver, sparked)
    rows = read_shards(sparked / "samples").to_pylist()
    statuses = {r["status"] for r in rows}
    assert {"ok", "corrupt", "empty"} <= statuses
    if limit is None:
        assert "no_label" in statuses                                  # the rows whose label is missing
    else:                                                              # plain labels: limited after reading
        assert len({r["identity"] for r in rows}) == limit
    assert any(r["source_path"].startswith("train[") for r in rows)


def test_engine_choice_and_refusals(folder: Path, tmp_path: Path) -> None:
    assert resolve_engine(IngestConfig(source=str(folder), store="s", engine="auto")) == "spark"
    assert resolve_engine(IngestConfig(source=str(folder), store="s", engine="auto", max_samples=5)) == "driver"
    assert resolve_engine(IngestConfig(source="owner/name", store="s", engine="auto", streaming=True)) == "driver"
    assert resolve_engine(IngestConfig(source="owner/name", store="s", engine="auto")) == "driver"
    with pytest.raises(ConfigError, match="--max-samples and --streaming read rows in source order"):
        IngestConfig(source=str(folder), store="s", engine="spark", max_samples=5).validate()


def test_a_killed_ingest_task_is_retried_without_duplicates(folder: Path, tmp_path: Path) -> None:
    """``local[2,4]`` retries failed tasks; the worker writing shard 1 is SIGKILLed before its commit once."""
    driver = tmp_path / "driver"
    run_ingest(IngestConfig(source=str(folder), store=str(driver), shard_size=8, seed=5))
    once = tmp_path / "killed-once"
    conf = {f"spark.executorEnv.{KILL_BEFORE_COMMIT_ENV}": "samples/shard-00001.parquet",
            f"spark.executorEnv.{ONCE_ENV}": str(once)}
    sparked = tmp_path / "spark"
    result = run_ingest(IngestConfig(source=str(folder), store=str(sparked), shard_size=8, seed=5, engine="spark",
                                     master="local[2,4]", conf=conf))
    assert once.exists()                                  # a worker really died
    assert result.rows_in == 45 and result.shards_done == 6
    _assert_same_table(driver, sparked)
    ids = read_shards(sparked / "samples").column("sample_id").to_pylist()
    assert len(ids) == len(set(ids)) == 44
