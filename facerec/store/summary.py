"""What a store holds: stages done, counts and rejects, sizes on disk, layout version, pose summary.

``inspect_store`` reads only small columns of each table (never the image bytes) and the Zarr group's
attributes, so it is quick on a large store. Counts and rejects come from the tables' ``status`` column
(what is actually there); "finished" and the stage's seconds from its ``_manifest.json``. The same
summary feeds ``facerec inspect`` (rich tables or ``--json``) and the run report.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from facerec.errors import StoreError
from facerec.geometry.yaw_bins import YAW_BIN_EDGES, bin_name
from facerec.schemas import tables
from facerec.store.feature_arrays import open_feature_group
from facerec.store.fs import Location, TMP_PREFIX, read_parquet_checked
from facerec.store.layout import StoreLayout

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
ANGLES = ("yaw", "pitch", "roll")


@dataclass
class StageInfo:
    """One stage output folder of the store (a table folder, or a Zarr group with its index)."""

    stage: str                      # samples | landmarks | features | identities
    name: str                       # "samples", "mediapipe", "mediapipe-112", ...
    path: str
    finished: bool                  # its _manifest.json exists
    files: int                      # Parquet files (shards or parts)
    bytes: int                      # on disk, all files of the stage (Zarr arrays included)
    rows: int                       # rows in its table
    ok: int                         # rows with status "ok"
    rejected: dict[str, int] = field(default_factory=dict)   # reason code -> rows
    seconds: float | None = None    # from the manifest, when the stage recorded it
    layout_version: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class PoseSummary:
    """Head pose of the detected faces of one landmark set (degrees, see facerec.geometry.pose)."""

    extractor: str
    faces: int                                      # rows with a finite yaw
    quantiles: dict[str, dict[str, float]]          # angle -> {"q50": value, ...}
    abs_yaw_hist: list[tuple[str, int]]             # ("0-15", n), ..., ("75+", n)


@dataclass
class StoreSummary:
    store: str
    layout_version: int | None
    stages: list[StageInfo]
    identities: int                   # distinct identities among usable samples
    splits: dict[str, int]            # split -> usable samples
    pose: dict[str, PoseSummary]      # extractor -> summary
    total_bytes: int

    def stage(self, stage: str, name: str | None = None) -> StageInfo | None:
        for info in self.stages:
            if info.stage == stage and (name is None or info.name == name):
                return info
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# reading ---------------------------------------------------------------------------------------------
def _entries(loc: Location) -> list[str]:
    """Names directly inside a folder, without temporary debris."""
    if not loc.exists():
        return []
    names = [p.rstrip("/").rpartition("/")[2] for p in loc.fs.ls(loc.path, detail=False)]
    return sorted(n for n in names if not n.startswith(TMP_PREFIX))


def _parquet_files(loc: Location) -> list[Location]:
    return [loc.child(n) for n in _entries(loc) if n.endswith(".parquet")]


def read_columns(loc: Location, schema: "pa.Schema", columns: list[str]) -> "pa.Table":
    """Only ``columns`` of every Parquet file in a stage folder, schema and layout version checked."""
    import pyarrow as pa

    parts = [read_parquet_checked(part, schema, columns) for part in _parquet_files(loc)]
    if not parts:
        return schema.empty_table().select(columns)
    return pa.concat_tables(parts)


def _disk_bytes(loc: Location) -> int:
    if not loc.exists():
        return 0
    try:
        return int(loc.fs.du(loc.path, total=True))
    except OSError as exc:
        raise StoreError(f"cannot measure the size of {loc}: {exc}") from exc


def _manifest(loc: Location) -> dict | None:
    if not StoreLayout.is_finished(loc):
        return None
    return StoreLayout.read_manifest(loc)


def _manifest_seconds(manifest: dict | None) -> float | None:
    """The stage's wall seconds: top-level ``seconds`` or the StageResult under ``counts``."""
    if not manifest:
        return None
    value = manifest.get("seconds", (manifest.get("counts") or {}).get("seconds"))
    return None if value is None else float(value)


def _status_counts(table: "pa.Table") -> tuple[int, dict[str, int]]:
    counts = Counter(table.column("status").to_pylist())
    ok = counts.pop(tables.STATUS_OK, 0)
    return ok, dict(sorted(counts.items()))


def _stage_info(stage: str, name: str, folder: Location, table: "pa.Table", extra_bytes: int = 0,
                **details: Any) -> StageInfo:
    manifest = _manifest(folder)
    ok, rejected = _status_counts(table) if "status" in table.column_names else (table.num_rows, {})
    return StageInfo(
        stage=stage, name=name, path=str(folder), finished=manifest is not None,
        files=len(_parquet_files(folder)), bytes=_disk_bytes(folder) + extra_bytes, rows=table.num_rows,
        ok=ok, rejected=rejected, seconds=_manifest_seconds(manifest),
        layout_version=tables.LAYOUT_VERSION if _parquet_files(folder) else None,   # check_table_schema passed
        details=details,
    )


# pose ------------------------------------------------------------------------------------------------
def abs_yaw_histogram(yaw: np.ndarray) -> list[tuple[str, int]]:
    """Counts of |yaw| (degrees) in the bins every metric uses (``facerec.geometry.yaw_bins``: 0-15, ...,
    60-75, 75+)."""
    a = np.abs(np.asarray(yaw, dtype=np.float64))
    a = a[np.isfinite(a)]
    return [(bin_name(lo, hi), int(((a >= lo) & (a < hi)).sum())) for lo, hi in YAW_BIN_EDGES]


def pose_summary(extractor: str, table: "pa.Table") -> PoseSummary | None:
    """Quantiles of yaw, pitch, roll over rows with a finite pose; None when no row has one."""
    cols = {a: np.asarray(table.column(a).to_numpy(zero_copy_only=False), dtype=np.float64) for a in ANGLES}
    keep = np.isfinite(cols["yaw"]) & np.isfinite(cols["pitch"]) & np.isfinite(cols["roll"])
    if not keep.any():
        return None
    quantiles = {
        a: {f"q{round(q * 100):02d}": round(float(np.quantile(cols[a][keep], q)), 2) for q in QUANTILES}
        for a in ANGLES
    }
    return PoseSummary(extractor, int(keep.sum()), quantiles, abs_yaw_histogram(cols["yaw"][keep]))


def text_histogram(hist: list[tuple[str, int]], width: int = 30) -> list[str]:
    """Bars of '#' scaled to the largest bin: ["  0-15 | ##########  412", ...]."""
    top = max((n for _, n in hist), default=0) or 1
    pad = max((len(label) for label, _ in hist), default=0)
    return [f"{label:>{pad}} | {'#' * round(width * n / top):<{width}} {n}" for label, n in hist]


# the store -------------------------------------------------------------------------------------------
def inspect_store(store: str) -> StoreSummary:
    """Summarise every stage output found in ``store`` (a path or fsspec URL)."""
    layout = StoreLayout.at(store)
    if not layout.root.exists():
        raise StoreError(f"no store at {store}: the folder does not exist; build one with `facerec ingest`")
    stages: list[StageInfo] = []
    identities, splits = 0, {}

    if layout.samples.exists():
        t = read_columns(layout.samples, tables.SAMPLES, ["identity", "split", "status"])
        usable = t.filter(_is_ok(t))
        identities = len(set(usable.column("identity").to_pylist()))
        splits = dict(sorted(Counter(usable.column("split").to_pylist()).items()))
        stages.append(_stage_info("samples", "samples", layout.samples, t, identities=identities))

    pose: dict[str, PoseSummary] = {}
    for extractor in _entries(layout.root.child("landmarks")):
        folder = layout.landmarks(extractor)
        t = read_columns(folder, tables.LANDMARKS, ["detected", "placeholder", "yaw", "pitch", "roll", "status"])
        detected = int(np.asarray(t.column("detected").to_numpy(zero_copy_only=False)).sum()) if t.num_rows else 0
        placeholder = bool(t.num_rows) and bool(np.asarray(t.column("placeholder").to_numpy(zero_copy_only=False)).any())
        stages.append(_stage_info("landmarks", extractor, folder, t, detected=detected, placeholder=placeholder))
        summary = pose_summary(extractor, t.filter(_is_ok(t))) if t.num_rows else None
        if summary is not None:
            pose[extractor] = summary

    features_root = layout.root.child("features")
    for entry in _entries(features_root):
        if entry.endswith(".zarr"):
            stages.append(_feature_stage(features_root, entry[: -len(".zarr")]))

    for name in _entries(layout.root.child("identities")):
        folder = layout.root.child("identities", name)
        t = read_columns(folder, tables.IDENTITIES, ["identity", "num_samples", "num_valid"])
        stages.append(_stage_info("identities", name, folder, t))

    versions = {s.layout_version for s in stages if s.layout_version is not None}
    if len(versions) > 1:
        raise StoreError(f"{store}: stages of several layout versions {sorted(versions)}; rebuild with --overwrite")
    return StoreSummary(
        store=str(layout.root), layout_version=versions.pop() if versions else None, stages=stages,
        identities=identities, splits=splits, pose=pose, total_bytes=_disk_bytes(layout.root),
    )


def _is_ok(t: "pa.Table"):
    import pyarrow.compute as pc

    return pc.equal(t.column("status"), tables.STATUS_OK)


def _feature_stage(features_root: Location, name: str) -> StageInfo:
    """A features group: the index table's counts plus the Zarr layout (size, sigma, dtype, rows)."""

    zloc = features_root.child(f"{name}.zarr")
    index = features_root.child(f"{name}.index")
    _, flayout = open_feature_group(zloc)
    t = read_columns(index, tables.FEATURE_INDEX, ["valid", "status"])
    valid = int(np.asarray(t.column("valid").to_numpy(zero_copy_only=False)).sum()) if t.num_rows else 0
    info = _stage_info(
        "features", name, index, t, extra_bytes=_disk_bytes(zloc), valid=valid, img_size=flayout.img_size,
        num_points=flayout.num_points, sigma=flayout.sigma, heatmap_dtype=flayout.heatmap_dtype,
        compressor=f"{flayout.compressor}:{flayout.compression_level}" + (
            "" if flayout.crop_codec == "lossless" else f", crop {flayout.crop_codec}-{flayout.crop_quality}"),
        zarr_rows=flayout.num_rows,
        zarr_bytes=_disk_bytes(zloc),
    )
    info.layout_version = flayout.layout_version
    return info


def format_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def stage_label(info: StageInfo) -> str:
    return info.stage if info.stage == "samples" else f"{info.stage}/{info.name}"


def rejected_text(rejected: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in rejected.items()) or "-"


__all__ = [
    "PoseSummary", "StageInfo", "StoreSummary", "abs_yaw_histogram", "format_bytes",
    "inspect_store", "pose_summary", "read_columns", "rejected_text", "stage_label", "text_histogram",
]
