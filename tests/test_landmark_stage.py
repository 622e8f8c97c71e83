"""The landmarks stage on a few hundred real LFW faces through Spark local[2]: MediaPipe and dlib.

Mirrored copies of some faces are added to the source (written to tmp as new files) so the head pose
of a face and of its mirror image can be compared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import local_spark

from facerec.pipeline.extractors.dlib68 import DETECTORS as DLIB_DETECTORS
from facerec.pipeline.extractors.mediapipe_mesh import DETECTORS as MP_DETECTORS
from facerec.pipeline.ingest import IngestConfig, run_ingest
from facerec.geometry.landmark_sets import landmark_set
from facerec.pipeline.landmark_stage import LandmarksConfig, finished_shards, run_landmarks
from facerec.store.layout import StoreLayout

from conftest import make_image_folder

pytestmark = pytest.mark.slow

NUM_IDENTITIES, PER_IDENTITY, NUM_MIRRORED = 90, 2, 12
MIRROR_SUFFIX = "_mirror.jpg"


@pytest.fixture(scope="module")
def store(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("landmark_stage")
    folder = make_image_folder(root / "src", lfw_dir, NUM_IDENTITIES, PER_IDENTITY)
    for person in sorted(folder.iterdir())[:NUM_MIRRORED]:
        first = sorted(person.iterdir())[0]
        Image.open(first).transpose(Image.FLIP_LEFT_RIGHT).save(person / (first.stem + MIRROR_SUFFIX), quality=95)
    result = run_ingest(IngestConfig(source=str(folder), store=str(root / "store"), shard_size=64, seed=3))
    assert result.ok == NUM_IDENTITIES * PER_IDENTITY + NUM_MIRRORED
    return root / "store"


def _table(folder: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(f) for f in sorted(folder.glob("shard-*.parquet")))


def _rows(store: Path, extractor: str) -> dict[str, dict]:
    """source_path -> landmarks row (joined through sample_id)."""
    samples = {r["sample_id"]: r["source_path"] for r in _table(store / "samples").select(["sample_id", "source_path"]).to_pylist()}
    return {samples[r["sample_id"]]: r for r in _table(store / "landmarks" / extractor).to_pylist()}


@pytest.fixture(scope="module")
def landmarks(store: Path) -> dict[str, dict[str, dict]]:
    out = {}
    for name in ("mediapipe", "dlib"):
        result = run_landmarks(LandmarksConfig(store=str(store), extractor=name), spark=local_spark())
        assert result.rows_in == result.ok + sum(result.rejected.values()) == 192
        assert result.shards_done == 3 and set(result.rejected) <= {"no_face"}
        out[name] = _rows(store, name)
    return out


@pytest.mark.parametrize("name", ["mediapipe", "dlib"])
def test_detection_rate_and_geometry(landmarks, name: str) -> None:
    rows = landmarks[name]
    lset = landmark_set(name)
    detected = [r for r in rows.values() if r["detected"]]
    rate = len(detected) / len(rows)
    print(f"{name}: detection rate {rate:.4f} on {len(rows)} LFW images")
    assert rate >= 0.97
    for r in detected:
        assert r["status"] == "ok" and r["num_points"] == lset.num_points and r["placeholder"] is False
        assert r["detector"] in {"mediapipe": MP_DETECTORS, "dlib": DLIB_DETECTORS}[name]
        points = np.asarray(r["points"], dtype=np.float64).reshape(lset.num_points, 2)
        x0, y0, x1, y1 = r["bbox"]
        w, h = x1 - x0, y1 - y0
        assert 40 < w < 250 and 40 < h < 250                          # a face in a 250x250 LFW image
        inside = ((points[:, 0] >= x0 - 0.25 * w) & (points[:, 0] <= x1 + 0.25 * w)
                  & (points[:, 1] >= y0 - 0.25 * h) & (points[:, 1] <= y1 + 0.25 * h))
        assert inside.all()
        five = lset.five_points(points)                                 # eyes, nose, mouth corners
        assert ((five[:, 0] > x0) & (five[:, 0] < x1) & (five[:, 1] > y0) & (five[:, 1] < y1)).all()
        assert five[0, 1] < five[3, 1] and five[1, 1] < five[4, 1]      # eyes above the mouth corners
        assert five[0, 0] < five[1, 0]                                  # image-left eye first
        assert all(np.isfinite(r[k]) for k in ("yaw", "pitch", "roll"))
    missed = [r for r in rows.values() if not r["detected"]]
    assert all(r["status"] == "no_face" and r["points"] is None and r["detector"] is None for r in missed)


@pytest.mark.parametrize("name", ["mediapipe", "dlib"])
def test_mirrored_faces_have_opposite_yaw(landmarks, name: str) -> None:
    rows = landmarks[name]
    pairs = []
    for path, mirrored in rows.items():
        if path.endswith(MIRROR_SUFFIX):
            original = rows[path.replace(MIRROR_SUFFIX, ".jpg")]
            if original["detected"] and mirrored["detected"]:
                pairs.append((original["yaw"], mirrored["yaw"]))
    assert len(pairs) >= NUM_MIRRORED - 1
    yaw = np.array(pairs)
    print(f"{name}: yaw pairs {np.round(yaw, 1).tolist()}")
    # yaw(mirror) = -yaw(original), up to the landmark noise of a re-detected face
    assert (np.abs(yaw.sum(axis=1)) < 4.0 + 0.25 * np.abs(yaw[:, 0])).all()
    assert np.abs(yaw.sum(axis=1)).mean() < 5.0
    turned = np.abs(yaw[:, 0]) > 8.0
    assert (np.sign(yaw[turned, 0]) == -np.sign(yaw[turned, 1])).all()


def test_resume_recomputes_only_the_missing_shard(store: Path, landmarks, spark) -> None:
    folder = store / "landmarks" / "mediapipe"
    before = pq.read_table(folder / "shard-00001.parquet")
    (folder / "shard-00001.parquet").unlink()
    (folder / "_manifest.json").unlink()
    (folder / ".tmp-0123456789ab-shard-00002.parquet").write_bytes(b"debris of a killed task")
    result = run_landmarks(LandmarksConfig(store=str(store), extractor="mediapipe"), spark=spark)
    assert (result.shards_done, result.shards_skipped, result.rows_in) == (1, 2, 192)
    assert finished_shards(StoreLayout.at(str(store)).landmarks("mediapipe")) == {0, 1, 2}
    assert not [f for f in folder.iterdir() if f.name.startswith(".tmp-")]
    after = pq.read_table(folder / "shard-00001.parquet")
    assert after.column("sample_id").equals(before.column("sample_id"))
    assert after.column("status").equals(before.column("status"))
    np.testing.assert_allclose(np.asarray(after.column("points").to_pylist(), dtype=np.float64),
                               np.asarray(before.column("points").to_pylist(), dtype=np.float64), atol=0.5)

    again = run_landmarks(LandmarksConfig(store=str(store), extractor="mediapipe"), spark=spark)
    assert again.skipped_stage and again.rows_in == 192 and again.shards_done == 0


def test_placeholder_only_for_template_and_cli(store: Path, landmarks, spark) -> None:
    from typer.testing import CliRunner

    from facerec.cli import app

    out = CliRunner().invoke(app, ["landmarks", "--store", str(store), "--extractor", "template",
                                   "--master", "local[*]", "--partitions", "2"])
    assert out.exit_code == 0, out.output
    assert "landmarks: 192 in, 192 ok, 0 rejected" in out.output
    template = _table(store / "landmarks" / "template")
    assert set(template.column("placeholder").to_pylist()) == {True}
    assert set(template.column("extractor").to_pylist()) == {"template"}
    for name in ("mediapipe", "dlib"):
        assert not any(r["placeholder"] for r in landmarks[name].values())
    manifest = StoreLayout.read_manifest(StoreLayout.at(str(store)).landmarks("template"))
    assert manifest["num_rows"] == 192 and manifest["config"]["partitions"] == 2


def test_landmarks_of_a_redone_ingest_are_recomputed(lfw_small_folder: Path, tmp_path: Path, spark) -> None:
    """After ingest --overwrite with another seed the old landmark shards no longer line up: never reuse them."""
    store = str(tmp_path / "store")
    run_ingest(IngestConfig(source=str(lfw_small_folder), store=store, shard_size=50, seed=1))
    first = run_landmarks(LandmarksConfig(store=store, extractor="template"), spark=spark)
    assert first.shards_done == 3
    run_ingest(IngestConfig(source=str(lfw_small_folder), store=store, shard_size=50, seed=2, overwrite=True))
    second = run_landmarks(LandmarksConfig(store=store, extractor="template"), spark=spark)
    assert not second.skipped_stage and (second.shards_done, second.shards_skipped) == (3, 0)
    samples = _table(tmp_path / "store" / "samples").column("sample_id")
    assert _table(tmp_path / "store" / "landmarks" / "template").column("sample_id").equals(samples)
