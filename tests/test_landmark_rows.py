"""The landmarks stage's column-built table equals the row-dict table, value for value and byte for byte.

Synthetic images (no data needed): a scripted extractor gives, by image width, a MediaPipe-shaped face
with depth (the 3-D pose path), a face with a NaN score and NaN points, no face, or an exception;
rows rejected at ingest and bytes that do not decode are mixed in.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from facerec.geometry.landmark_sets import landmark_set
from facerec.geometry.pose3d import reference_mesh
from facerec.pipeline.decode import CORRUPT
from facerec.pipeline.extractors.base import FaceLandmarks
from facerec.pipeline.landmark_rows import (EXTRACTOR_ERROR, NO_FACE, extract_outcome, landmarks_table,
                                            outcome_row)
from facerec.schemas import LANDMARKS, SAMPLES

LSET = landmark_set("mediapipe")


class Scripted:
    """Behaviour by image width: 64 a face with depth, 72 a NaN-score face, 80 no face, 88 raises."""

    name, num_points, placeholder = "mediapipe", LSET.num_points, False

    def extract(self, rgb: np.ndarray) -> FaceLandmarks | None:
        width = rgb.shape[1]
        if width == 80:
            return None
        if width == 88:
            raise RuntimeError("scripted failure")
        mesh = reference_mesh() * 0.1 + [32.0, 30.0, 5.0] + float(rgb[0, 0, 0]) * 0.01
        points = mesh[:, :2].astype(np.float32)
        if width == 72:
            points[3] = np.nan
            return FaceLandmarks(points=points, bbox=(0.0, 1.0, 2.0, 3.0), score=float("nan"), num_faces=2,
                                 detector="blazeface_short_crop")
        return FaceLandmarks(points=points, bbox=(*map(float, points.min(0)), *map(float, points.max(0))),
                             score=0.9, num_faces=1, detector="blazeface", depth=mesh[:, 2].astype(np.float32))


def _png(width: int, shade: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((60, width, 3), shade, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _samples() -> pa.Table:
    images, statuses = [], []
    for i, width in enumerate([64, 72, 80, 88, 64, 64, 72]):
        images.append(_png(width, 10 * i))
        statuses.append("ok")
    images += [b"\xff\xd8 not a jpeg", None]
    statuses += ["ok", "empty"]
    n = len(images)
    columns = {"sample_id": [f"s{i}" for i in range(n)], "shard": [3] * n, "position": list(range(n)),
               "image": images, "status": statuses, "error": [None] * (n - 1) + ["image has zero bytes"]}
    fields = [SAMPLES.field(name) for name in columns]
    return pa.Table.from_pydict(columns, schema=pa.schema(fields))


def test_columns_equal_row_dicts(tmp_path) -> None:
    samples = _samples()
    extractor = Scripted()
    outcomes = [extract_outcome(extractor, LSET, r["status"], r["error"], r["image"]) for r in samples.to_pylist()]
    assert [o.status for o in outcomes] == ["ok", "ok", NO_FACE, EXTRACTOR_ERROR, "ok", "ok", "ok", CORRUPT, "empty"]
    rows = [outcome_row(extractor, LSET, sample, o) for sample, o in zip(samples.to_pylist(), outcomes)]
    by_rows = pa.Table.from_pylist(rows, schema=LANDMARKS)
    by_columns = landmarks_table(extractor, LSET, samples, outcomes)
    assert by_columns.schema.equals(by_rows.schema, check_metadata=True)
    for name in LANDMARKS.names:    # points hold NaNs (row 1): compared as arrays, NaN equal to NaN
        if name == "points":
            assert by_columns.column(name).is_null().equals(by_rows.column(name).is_null())
            np.testing.assert_array_equal(by_columns.column(name).combine_chunks().values.to_numpy(zero_copy_only=False),
                                          by_rows.column(name).combine_chunks().values.to_numpy(zero_copy_only=False))
        else:
            assert by_columns.column(name).equals(by_rows.column(name)), name
    first = by_columns.slice(0, 1).to_pylist()[0]
    assert first["yaw"] is not None and len(first["points"]) == 2 * LSET.num_points
    assert by_columns.column("score").to_pylist()[1] is None and by_columns.column("points").null_count == 4
    assert by_columns.column("error").to_pylist()[-1] == "rejected at ingest: image has zero bytes"
    for name, table in (("rows", by_rows), ("columns", by_columns)):
        pq.write_table(table, tmp_path / f"{name}.parquet")
    assert (tmp_path / "rows.parquet").read_bytes() == (tmp_path / "columns.parquet").read_bytes()
    # a piece of a shard (a sliced input table) gives the same rows as the whole shard's slice
    piece = landmarks_table(extractor, LSET, samples.slice(4, 2), outcomes[4:6])   # rows without NaN points
    assert piece.equals(by_columns.slice(4, 2))
