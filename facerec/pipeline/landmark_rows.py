"""What the landmarks stage makes of one samples row, and a shard of those built column by column.

``extract_outcome`` is the per-image work: decode, extractor, head pose, or the status that says why
not. ``landmarks_table`` turns a shard's outcomes into a ``LANDMARKS`` table without a dict per row:
the points stay numpy (one flat float32 array and offsets) instead of 956 Python floats per MediaPipe
face that Arrow converts back. Building one dict per row that way cost about 0.4 ms an image, with the
head pose about 0.5 ms (its reference mesh was re-read from JSON lists per face; ``pose3d`` now keeps
it): together 15% on top of decode + Face Mesh (7.3 ms CPU an image on LFW). The table is the same,
value for value and byte for byte once written, as ``pa.Table.from_pylist`` of the row dicts that
``outcome_row`` gives (``tests/test_landmark_rows.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from facerec.geometry.face_pose import estimate_face_pose
from facerec.geometry.landmark_sets import LandmarkSet
from facerec.pipeline.decode import ImageRejected, decode_rgb
from facerec.pipeline.extractors.base import FaceLandmarks, LandmarkExtractor
from facerec.schemas import LANDMARKS, STATUS_OK

NO_FACE = "no_face"
EXTRACTOR_ERROR = "extractor_error"
_ID_COLUMNS = ("sample_id", "shard", "position")
_NAN3 = (math.nan, math.nan, math.nan)


@dataclass(frozen=True)
class Outcome:
    """One image's result: a status (``ok`` or a reason), its message, and the face with its pose."""

    status: str
    error: str | None = None
    face: FaceLandmarks | None = None
    pose: tuple[float, float, float] = _NAN3      # yaw, pitch, roll degrees (NaN: the solver failed)


def extract_outcome(extractor: LandmarkExtractor, lset: LandmarkSet, status: str, error: str | None,
                    image: bytes | None) -> Outcome:
    """Decode + extract + pose of one samples row (its ingest ``status``/``error`` and ``image`` bytes).

    Never raises for a bad image or a failing extractor: the outcome's status says what happened (a
    row rejected at ingest is not decoded and keeps its ingest reason).
    """
    if status != STATUS_OK:
        return Outcome(status, f"rejected at ingest: {error}")
    try:
        rgb = decode_rgb(image)
    except ImageRejected as exc:
        return Outcome(exc.reason, str(exc))
    height, width = rgb.shape[:2]
    try:
        face = extractor.extract(rgb)
    except Exception as exc:  # noqa: BLE001 - one image's failure is its row's status, not the job's end
        return Outcome(EXTRACTOR_ERROR, f"{extractor.name}: {type(exc).__name__}: {exc}")
    if face is None:
        return Outcome(NO_FACE, f"{extractor.name} found no face in the {width}x{height} image")
    return Outcome(STATUS_OK, None, face, estimate_face_pose(face.points, lset, width, height, face.depth))


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _scalars(extractor: LandmarkExtractor, lset: LandmarkSet, outcome: Outcome) -> dict[str, Any]:
    """Every LANDMARKS column of one row except the ids and the points."""
    face = outcome.face
    yaw, pitch, roll = outcome.pose
    return {
        "extractor": extractor.name, "num_points": lset.num_points, "detected": face is not None,
        "detector": face.detector if face else None, "num_faces": int(face.num_faces) if face else 0,
        "score": _finite(face.score) if face else None, "bbox": [float(v) for v in face.bbox] if face else None,
        "yaw": _finite(yaw), "pitch": _finite(pitch), "roll": _finite(roll),
        "placeholder": bool(extractor.placeholder), "status": outcome.status, "error": outcome.error,
    }


def outcome_row(extractor: LandmarkExtractor, lset: LandmarkSet, ids: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    """One LANDMARKS row as a dict (``ids``: sample_id, shard, position); points ``[x0, y0, ...]``."""
    face = outcome.face
    points = face.points.astype("float32").reshape(-1).tolist() if face else None
    row = {key: ids[key] for key in _ID_COLUMNS} | {"points": points} | _scalars(extractor, lset, outcome)
    return {field.name: row[field.name] for field in LANDMARKS}


def _points_column(outcomes: list[Outcome]) -> pa.Array:
    """list<float32> of ``[x0, y0, x1, y1, ...]`` per row, null where there is no face, from numpy."""
    flat = [o.face.points.astype("float32").reshape(-1) for o in outcomes if o.face is not None]
    lengths = np.array([0 if o.face is None else o.face.points.size for o in outcomes], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int32)]).astype(np.int32)
    values = np.concatenate(flat) if flat else np.zeros(0, dtype=np.float32)
    missing = np.array([o.face is None for o in outcomes], dtype=bool)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.float32()), mask=pa.array(missing),
                                    type=LANDMARKS.field("points").type)


def landmarks_table(extractor: LandmarkExtractor, lset: LandmarkSet, samples: pa.Table,
                    outcomes: list[Outcome]) -> pa.Table:
    """The LANDMARKS table of a samples table (ids taken from it) and its outcomes, row for row."""
    if samples.num_rows != len(outcomes):
        raise ValueError(f"{samples.num_rows} samples rows but {len(outcomes)} outcomes")
    rows = [_scalars(extractor, lset, o) for o in outcomes]
    columns: dict[str, Any] = {key: samples.column(key).to_pylist() for key in _ID_COLUMNS}
    columns["points"] = _points_column(outcomes)
    for name in LANDMARKS.names:
        if name not in columns:
            columns[name] = [row[name] for row in rows]
    return pa.Table.from_pydict({name: columns[name] for name in LANDMARKS.names}, schema=LANDMARKS)
