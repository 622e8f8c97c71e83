"""Bad and unusual inputs through ingest and the landmarks stage: every row gets a status, the job goes on.

The folder is built in tmp from real LFW faces (re-encoded, cropped, upscaled, put side by side) plus
broken files; every case is checked by its source path.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from facerec.pipeline.decode import CORRUPT, EMPTY, TOO_SMALL, TRUNCATED
from facerec.pipeline.extractors.base import get_extractor
from facerec.pipeline.ingest import IngestConfig, run_ingest
from facerec.geometry.landmark_sets import landmark_set
from facerec.pipeline.landmark_stage import EXTRACTOR_ERROR, NO_FACE, LandmarksConfig, extract_landmarks_row, run_landmarks

from conftest import lfw_identities

EDGE = "edge_cases"
# source file -> (ingest status, landmarks status, faces the mediapipe row must report)
EXPECTED = {
    "corrupt.jpg": (CORRUPT, CORRUPT, 0),
    "truncated.jpg": (TRUNCATED, TRUNCATED, 0),
    "zero_bytes.jpg": (EMPTY, EMPTY, 0),
    "tiny_8x8.png": (TOO_SMALL, TOO_SMALL, 0),
    "grayscale.jpg": ("ok", "ok", 1),
    "cmyk.jpg": ("ok", "ok", 1),
    "rgba.png": ("ok", "ok", 1),
    "gray16.png": ("ok", "ok", 1),
    "huge_6000.jpg": ("ok", "ok", 1),
    "no_face.jpg": ("ok", NO_FACE, 0),
    "two_faces.jpg": ("ok", "ok", 2),
}


def _save(img: Image.Image, path: Path, **kw) -> None:
    img.save(path, **kw)


def _build_folder(root: Path, lfw: Path) -> Path:
    people = lfw_identities(lfw, min_images=2)
    face = Image.open(people[0][1][0]).convert("RGB")
    other = Image.open(people[1][1][0]).convert("RGB")
    edge = root / EDGE
    edge.mkdir(parents=True)
    jpeg = people[0][1][0].read_bytes()
    (edge / "corrupt.jpg").write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)))
    (edge / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (edge / "zero_bytes.jpg").write_bytes(b"")
    _save(face.convert("L"), edge / "grayscale.jpg", quality=95)
    _save(face.convert("CMYK"), edge / "cmyk.jpg", quality=95)
    rgba = face.convert("RGBA")
    alpha = np.full((250, 250), 255, np.uint8)
    alpha[:20] = 0                                   # a transparent band: composited on black
    rgba.putalpha(Image.fromarray(alpha))
    _save(rgba, edge / "rgba.png")
    gray16 = Image.fromarray((np.asarray(face.convert("L"), np.uint16) * 257).astype(np.uint16))
    assert gray16.mode.startswith("I;16")
    _save(gray16, edge / "gray16.png")
    _save(face.resize((8, 8)), edge / "tiny_8x8.png")
    _save(face.resize((6000, 6000), Image.BILINEAR), edge / "huge_6000.jpg", quality=60)
    noise = np.random.default_rng(1).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    _save(Image.fromarray(noise).resize((250, 250), Image.BICUBIC), edge / "no_face.jpg", quality=95)
    pair = Image.new("RGB", (500, 250))
    pair.paste(face, (0, 0))
    pair.paste(other, (250, 0))
    _save(pair, edge / "two_faces.jpg", quality=95)
    for name, images in people[2:5]:                 # a few normal faces, linked, not copied
        (root / name).mkdir()
        for img in images[:2]:
            (root / name / img.name).symlink_to(img)
    return root


@pytest.fixture(scope="module")
def bad_store(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad_inputs")
    folder = _build_folder(root / "src", lfw_dir)
    result = run_ingest(IngestConfig(source=str(folder), store=str(root / "store"), shard_size=5))
    assert result.rows_in == len(EXPECTED) + 6
    return root / "store"


def _by_path(store: Path) -> dict[str, dict]:
    table = pa.concat_tables(pq.read_table(f) for f in sorted((store / "samples").glob("shard-*.parquet")))
    return {r["source_path"]: r for r in table.to_pylist()}


def test_ingest_gives_every_bad_file_a_status(bad_store: Path) -> None:
    rows = _by_path(bad_store)
    assert len(rows) == len(EXPECTED) + 6
    for name, (status, _, _) in EXPECTED.items():
        row = rows[f"{EDGE}/{name}"]
        assert row["status"] == status, (name, row["error"])
        assert (row["error"] is None) == (status == "ok"), name
    assert rows[f"{EDGE}/zero_bytes.jpg"]["image"] == b""           # kept as given, not dropped
    assert rows[f"{EDGE}/huge_6000.jpg"]["width"] == 6000
    assert rows[f"{EDGE}/gray16.png"]["format"] == "PNG"
    normal = [r for p, r in rows.items() if not p.startswith(EDGE)]
    assert len(normal) == 6 and all(r["status"] == "ok" for r in normal)


@pytest.mark.slow
def test_landmarks_stage_goes_on_through_bad_rows(bad_store: Path, spark) -> None:
    result = run_landmarks(LandmarksConfig(store=str(bad_store), extractor="mediapipe"), spark=spark)
    n = len(EXPECTED) + 6
    assert result.rows_in == n == result.ok + sum(result.rejected.values())
    assert result.rejected == {CORRUPT: 1, TRUNCATED: 1, EMPTY: 1, TOO_SMALL: 1, NO_FACE: 1}
    assert result.extra["not_processed_rejected_at_ingest"] == 4
    samples = {r["sample_id"]: r["source_path"] for r in _by_path(bad_store).values()}
    folder = bad_store / "landmarks" / "mediapipe"
    table = pa.concat_tables(pq.read_table(f) for f in sorted(folder.glob("shard-*.parquet")))
    rows = {samples[r["sample_id"]]: r for r in table.to_pylist()}
    assert len(rows) == n
    for name, (_, status, faces) in EXPECTED.items():
        row = rows[f"{EDGE}/{name}"]
        assert row["status"] == status, (name, row["error"])
        assert row["detected"] == (status == "ok"), name
        assert row["num_faces"] == faces, name
        assert row["placeholder"] is False
        if status == "ok":
            assert len(row["points"]) == 2 * 478 and row["yaw"] is not None
    huge = np.asarray(rows[f"{EDGE}/huge_6000.jpg"]["points"]).reshape(-1, 2)
    assert huge.min() > 0 and huge.max() < 6000 and np.ptp(huge[:, 0]) > 1500   # source pixels, not 250 px
    # the two-face image keeps the larger/central face; either way its box is one face wide, not two
    x0, _, x1, _ = rows[f"{EDGE}/two_faces.jpg"]["bbox"]
    assert x1 - x0 < 250
    assert all(rows[p]["status"] == "ok" for p in rows if not p.startswith(EDGE))
    assert rows[f"{EDGE}/corrupt.jpg"]["error"].startswith("rejected at ingest")


class _Exploding:
    name = "template"
    num_points = 68
    placeholder = False

    def extract(self, rgb: np.ndarray):
        raise RuntimeError(f"cannot handle {rgb.shape}")

    def close(self) -> None:
        pass


def _sample(data: bytes, status: str = "ok") -> dict:
    return {"sample_id": "s", "shard": 0, "position": 0, "image": data, "status": status, "error": None}


def _jpeg(lfw_dir: Path) -> bytes:
    return lfw_identities(lfw_dir, 2)[0][1][0].read_bytes()


def test_row_function_turns_failures_into_statuses(lfw_dir: Path) -> None:
    lset = landmark_set("template")
    row = extract_landmarks_row(_Exploding(), lset, _sample(_jpeg(lfw_dir)))
    assert row["status"] == EXTRACTOR_ERROR and "RuntimeError: cannot handle (250, 250, 3)" in row["error"]
    assert row["detected"] is False and row["points"] is None
    # bytes that pass ingest's status but fail to decode later still give a row with the decode reason
    row = extract_landmarks_row(get_extractor("template"), lset, _sample(b"\xff\xd8 not really", "ok"))
    assert row["status"] == CORRUPT and row["detected"] is False


def test_template_rows_are_marked_placeholder(lfw_dir: Path) -> None:
    buf = io.BytesIO()
    Image.open(io.BytesIO(_jpeg(lfw_dir))).resize((300, 200)).save(buf, format="PNG")
    row = extract_landmarks_row(get_extractor("template"), landmark_set("template"), _sample(buf.getvalue()))
    assert row["status"] == "ok" and row["placeholder"] is True and row["detected"] is True
    assert row["num_faces"] == 0 and row["score"] is None and row["num_points"] == 68
    points = np.asarray(row["points"]).reshape(68, 2)
    assert abs(points[:, 0].mean() - 149.5) < 10 and abs(points[:, 1].mean() - 99.5) < 15
