"""`facerec inspect`: counts, rejects, sizes, layout version and pose of a store.

The store here is written by hand with the schemas (known rows, so every count has one right answer);
the real-store path is covered end to end by tests/test_demo.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from facerec.errors import SchemaMismatchError, StoreError
from facerec.store.summary import abs_yaw_histogram, inspect_store, text_histogram
from facerec.schemas import tables
from facerec.schemas.zarr_layout import FeatureLayout
from facerec.store.feature_arrays import create_feature_group
from facerec.store.fs import resolve, write_json_atomic, write_parquet_atomic
from facerec.store.layout import StoreLayout, shard_file

YAWS = [-50.0, -20.0, 3.0, 10.0, 35.0, 95.0]   # the detected faces; one more row has no face


def _samples() -> pa.Table:
    ids = ["ann", "ann", "bob", "bob", "cat", "cat", "cat", "dan"]
    status = ["ok"] * 7 + ["corrupt"]
    n = len(ids)
    return pa.Table.from_pydict({
        "sample_id": [f"s{i}" for i in range(n)], "identity": ids, "label": [0, 0, 1, 1, 2, 2, 2, 3],
        "split": ["train", "val", "train", "val", "train", "train", "val", "train"],
        "shard": [0] * n, "position": list(range(n)), "source_path": [f"{p}/{i}.jpg" for i, p in enumerate(ids)],
        "image": [b"x"] * n, "format": ["JPEG"] * n, "width": [250] * n, "height": [250] * n,
        "status": status, "error": [None] * 7 + ["not a readable image"],
    }, schema=tables.SAMPLES)


def _landmarks() -> pa.Table:
    n = 7
    detected = [True] * 6 + [False]
    yaw = YAWS + [None]
    return pa.Table.from_pydict({
        "sample_id": [f"s{i}" for i in range(n)], "shard": [0] * n, "position": list(range(n)),
        "extractor": ["template"] * n, "num_points": [68] * n,
        "points": [[1.0] * 136] * 6 + [None], "detected": detected, "detector": ["template"] * 6 + [None],
        "num_faces": [1] * 6 + [0],
        "score": [0.9] * 6 + [None], "bbox": [[0.0, 0.0, 10.0, 10.0]] * 6 + [None],
        "yaw": yaw, "pitch": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, None], "roll": [0.0] * 6 + [None],
        "placeholder": [True] * n, "status": ["ok"] * 6 + ["no_face"], "error": [None] * 6 + ["no face found"],
    }, schema=tables.LANDMARKS)


def _manifest(stage: str, rows_in: int, ok: int, rejected: dict) -> dict:
    return {"stage": stage, "output": "x", "rows_in": rows_in, "ok": ok, "rejected": rejected, "shards_done": 1,
            "shards_skipped": 0, "skipped_stage": False, "seconds": 1.5}


def write_hand_store(root: Path, img_size: int = 16, crops: np.ndarray | None = None,
                     heatmaps: np.ndarray | None = None) -> Path:
    """A store of 8 samples (1 corrupt), 7 landmark rows (1 without a face), a features group and index.

    crops [7, 3, S, S] uint8 and heatmaps [7, 6, S, S] uint8, when given, fill the Zarr arrays.
    """
    layout = StoreLayout.at(str(root))
    write_parquet_atomic(_samples(), layout.samples.child(shard_file(0)))
    write_json_atomic(_manifest("ingest", 8, 7, {"corrupt": 1}), StoreLayout.manifest(layout.samples))
    lm = layout.landmarks("template")
    write_parquet_atomic(_landmarks(), lm.child(shard_file(0)))
    # landmarks deliberately left without a manifest: an unfinished stage
    flayout = FeatureLayout(extractor="template", img_size=img_size, num_points=68, num_rows=8, shard_size=8,
                            chunk_rows=8, sigma=1.0)
    group = create_feature_group(layout.features_zarr("template", img_size), flayout)
    group["valid"][:7] = np.array([True] * 6 + [False])
    if crops is not None:
        group["image"][:7] = crops
    if heatmaps is not None:
        group["heatmaps"][:7] = heatmaps
    index = pa.Table.from_pydict({
        "row": list(range(7)), "sample_id": [f"s{i}" for i in range(7)],
        "identity": ["ann", "ann", "bob", "bob", "cat", "cat", "cat"], "label": [0, 0, 1, 1, 2, 2, 2],
        "split": ["train", "val", "train", "val", "train", "train", "val"], "valid": [True] * 6 + [False],
        "yaw": YAWS + [None], "pitch": [0.0] * 6 + [None], "roll": [0.0] * 6 + [None],
        "status": ["ok"] * 6 + ["no_face"],
    }, schema=tables.FEATURE_INDEX)
    fidx = layout.features_index("template", img_size)
    write_parquet_atomic(index, fidx.child(shard_file(0)))
    write_json_atomic(_manifest("features", 7, 6, {"no_face": 1}), StoreLayout.manifest(fidx))
    return root


@pytest.fixture()
def hand_store(tmp_path: Path) -> Path:
    return write_hand_store(tmp_path / "store")


def test_inspect_counts_rejects_sizes_and_pose(hand_store: Path) -> None:
    s = inspect_store(str(hand_store))
    assert s.layout_version == tables.LAYOUT_VERSION
    assert s.identities == 3                       # dan's only image is corrupt
    assert s.splits == {"train": 4, "val": 3}
    samples = s.stage("samples")
    assert (samples.rows, samples.ok, samples.rejected, samples.finished) == (8, 7, {"corrupt": 1}, True)
    assert samples.seconds == 1.5 and samples.bytes > 0 and samples.files == 1
    lm = s.stage("landmarks", "template")
    assert (lm.rows, lm.ok, lm.rejected, lm.finished) == (7, 6, {"no_face": 1}, False)
    assert lm.details == {"detected": 6, "placeholder": True}
    feats = s.stage("features", "template-16")
    assert (feats.rows, feats.ok, feats.details["valid"], feats.details["zarr_rows"]) == (7, 6, 6, 8)
    assert feats.details["zarr_bytes"] > 0 and feats.bytes > feats.details["zarr_bytes"]
    assert s.total_bytes >= samples.bytes + lm.bytes + feats.bytes
    pose = s.pose["template"]
    assert pose.faces == 6
    assert pose.quantiles["yaw"]["q50"] == pytest.approx(float(np.median(YAWS)), abs=0.01)
    assert pose.quantiles["yaw"]["q00"] == -50.0 and pose.quantiles["yaw"]["q100"] == 95.0
    assert pose.quantiles["pitch"]["q50"] == pytest.approx(3.5)
    # |yaw| = 50, 20, 3, 10, 35, 95
    assert pose.abs_yaw_hist == [("0-15", 2), ("15-30", 1), ("30-45", 1), ("45-60", 1), ("60-75", 0), ("75+", 1)]
    by_url = inspect_store(f"file://{hand_store}")          # fsspec URLs read the same store
    assert [(x.stage, x.rows, x.ok, x.rejected, x.bytes) for x in by_url.stages] == \
        [(x.stage, x.rows, x.ok, x.rejected, x.bytes) for x in s.stages]


def test_yaw_histogram_bins_and_text_bars() -> None:
    hist = abs_yaw_histogram(np.array([0.0, 14.99, -3.0, 15.0, -74.9, 75.0, -90.0, np.nan]))
    assert hist == [("0-15", 3), ("15-30", 1), ("30-45", 0), ("45-60", 0), ("60-75", 1), ("75+", 2)]
    bars = text_histogram(hist, width=10)
    assert bars[0] == " 0-15 | ########## 3"
    assert bars[2].endswith("| " + " " * 10 + " 0")


def test_inspect_cli_json_and_table(hand_store: Path) -> None:
    from facerec.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["inspect", "--store", str(hand_store), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["identities"] == 3
    assert [(st["stage"], st["name"]) for st in data["stages"]] == [
        ("samples", "samples"), ("landmarks", "template"), ("features", "template-16")]
    res = runner.invoke(app, ["inspect", "--store", str(hand_store)], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    for text in ("landmarks/template", "corrupt 1", "no_face 1", "template-16", "|yaw| histogram", "75+ |"):
        assert text in res.output


def test_inspect_refuses_missing_store_and_other_layout(tmp_path: Path, hand_store: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        inspect_store(str(tmp_path / "nowhere"))
    old = _samples().replace_schema_metadata({tables.META_TABLE: b"samples", tables.META_VERSION: b"0"})
    write_parquet_atomic(old, resolve(str(hand_store)).child("samples", shard_file(1)))
    with pytest.raises(SchemaMismatchError, match="layout version 0"):
        inspect_store(str(hand_store))
