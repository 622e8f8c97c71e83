"""The features stage: samples + landmarks -> aligned crops, aligned landmarks, heatmaps, masks in Zarr.

The driver creates the Zarr group (``facerec.store.feature_arrays``) with its full shape, then Spark runs
one task per shard (``run_shards``). A task reads its samples and landmarks shards, joins them on
``sample_id``, and for every row decodes, aligns onto the ArcFace template, renders the 6 group heatmaps
and the hull mask, and writes rows ``shard * R .. shard * R + n - 1`` of every array: a disjoint,
chunk-aligned region (chunk rows divide the shard size), so tasks write in parallel without locks.
It then commits the shard's index table (``FEATURE_INDEX``) by rename; that file marks the shard done.
A resumed run recomputes only shards without an index file, rewriting their Zarr region whole.

Every sample row gets an index row, so in = ok + rejected:
- rejected at ingest: the ingest status, zero arrays, ``valid`` false;
- no face (or landmarks unusable): a centre crop, zero landmarks, heatmaps and mask, ``valid`` false,
  status from the landmarks stage;
- otherwise the aligned face, ``valid`` true, status ``ok``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from facerec.errors import ConfigError, StageNotReadyError, StoreError, choice_error
from facerec.geometry.alignment import AlignmentError, align_face, center_crop
from facerec.geometry.face_mask import face_mask
from facerec.geometry.heatmaps import HEATMAP_DTYPES, default_sigma, group_heatmaps, quantize
from facerec.geometry.landmark_sets import LANDMARK_SETS, landmark_set
from facerec.pipeline.report import ShardCounts, StageResult
from facerec.pipeline.spark import run_shards, spark_session
from facerec.schemas import tables, zarr_layout as zl
from facerec.schemas.zarr_layout import FeatureLayout, default_chunk_rows
from facerec.store.feature_arrays import COMPRESSORS, create_feature_group, open_feature_group
from facerec.store.fs import Location, read_parquet_checked, remove_tmp_debris, write_json_atomic
from facerec.store.layout import StoreLayout, shard_file
from facerec.store.integrity import chunk_records, finished_stage_fields, write_recorded_parquet

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

STAGE = "features"

_SAMPLE_COLUMNS = ["sample_id", "identity", "label", "split", "shard", "position", "image", "status"]
_LANDMARK_COLUMNS = ["sample_id", "num_points", "points", "detected", "yaw", "pitch", "roll", "status"]


@dataclass(frozen=True)
class FeaturesConfig:
    """Options of ``facerec features``; the resolved copy is saved in the stage manifest."""

    store: str
    extractor: str
    img_size: int = 112
    sigma: float | None = None           # heatmap sigma in crop pixels; None -> default_sigma(img_size)
    heatmap_dtype: str = "uint8"
    compressor: str = "lz4"              # measured: ~1.45x faster reads than zstd-3 for ~8% more bytes
    compression_level: int = 5
    crop_codec: str = "jpeg"             # the aligned crop: jpeg | webp | jxl | lossless (the compressor). JPEG-95
    crop_quality: int = 95               # measured: store 1.25x the source JPEGs (lz4: 4.8x), 6.6k faces/s/core
    master: str | None = None
    conf: dict[str, str] = field(default_factory=dict)
    partitions: int | None = None        # at most this many Spark tasks at once (None: one per shard)
    overwrite: bool = False

    @property
    def resolved_sigma(self) -> float:
        return default_sigma(self.img_size) if self.sigma is None else float(self.sigma)

    def validate(self) -> None:
        if self.extractor not in LANDMARK_SETS:
            raise choice_error("extractor", self.extractor, tuple(LANDMARK_SETS))
        if self.heatmap_dtype not in HEATMAP_DTYPES:
            raise choice_error("heatmap dtype", self.heatmap_dtype, HEATMAP_DTYPES)
        if self.compressor not in COMPRESSORS:
            raise choice_error("compressor", self.compressor, COMPRESSORS)
        from facerec.store.image_codec import check_crop_codec

        check_crop_codec(self.crop_codec, self.crop_quality)
        if self.img_size < 16:
            raise ConfigError(f"--img-size must be at least 16 pixels, got {self.img_size}")
        if not self.resolved_sigma > 0:
            raise ConfigError(f"--sigma must be positive, got {self.sigma}")
        if self.partitions is not None and self.partitions < 1:
            raise ConfigError(f"--partitions must be at least 1, got {self.partitions}")


# ---------------------------------------------------------------------------------------------- inputs
def read_shard_table(loc: Location, schema: "pa.Schema", columns: list[str]) -> "pa.Table":
    """``columns`` of one Parquet shard file, after checking its table kind and layout version."""
    try:
        return read_parquet_checked(loc, schema, columns)
    except FileNotFoundError as exc:
        raise StoreError(f"missing shard {loc}") from exc


def sample_geometry(store: StoreLayout) -> tuple[int, int, int]:
    """(shard_size, number of shards, total rows) of a finished samples stage, from its manifest."""
    if not StoreLayout.is_finished(store.samples):
        raise StageNotReadyError(f"no finished samples stage at {store.samples}; run `facerec ingest` first")
    manifest = StoreLayout.read_manifest(store.samples)
    try:
        return int(manifest["shard_size"]), int(manifest["num_shards"]), int(manifest["num_rows"])
    except KeyError as exc:
        raise StoreError(f"{StoreLayout.manifest(store.samples)} lacks {exc}; rerun `facerec ingest --overwrite`") from exc


# ---------------------------------------------------------------------------------------------- one shard
@dataclass(frozen=True)
class ShardJob:
    """What a Spark task needs to compute one shard (picklable; no open handles)."""

    store: str
    layout: FeatureLayout

    def __call__(self, shard: int) -> dict[str, Any]:
        return compute_shard(self, shard)


def _join(samples: "pa.Table", landmarks: "pa.Table", where: str) -> tuple[list[dict], list[dict | None]]:
    """Sample rows in position order, each with its landmarks row (None only for ingest rejects)."""
    rows = sorted(samples.to_pylist(), key=lambda r: r["position"])
    if [r["position"] for r in rows] != list(range(len(rows))):
        raise StoreError(f"{where}: sample positions are not 0..{len(rows) - 1}")
    by_id = {r["sample_id"]: r for r in _landmark_rows(landmarks)}
    joined = [by_id.get(r["sample_id"]) for r in rows]
    missing = [r["sample_id"] for r, lm in zip(rows, joined) if lm is None and r["status"] == tables.STATUS_OK]
    if missing:
        raise StoreError(f"{where}: {len(missing)} usable samples have no landmarks row (first {missing[0]}); "
                         "rerun `facerec landmarks --overwrite`")
    return rows, joined


def _landmark_rows(landmarks: "pa.Table") -> list[dict]:
    """Landmarks rows as dicts whose ``points`` are float32 numpy views (None without a face).

    ``to_pylist`` would make 956 Python floats per MediaPipe face only for ``_row_features`` to turn
    them back into an array: 0.34 ms a row, a sixth of the per-face work itself.
    """
    rows = landmarks.drop_columns(["points"]).to_pylist()
    if "points" not in landmarks.column_names:
        return rows
    points = landmarks.column("points").combine_chunks()
    offsets, values = points.offsets.to_numpy(), points.values.to_numpy(zero_copy_only=False)
    for i, (row, valid) in enumerate(zip(rows, points.is_valid().to_numpy(zero_copy_only=False))):
        row["points"] = values[offsets[i]:offsets[i + 1]] if valid else None
    return rows


def _row_features(sample: dict, lm: dict | None, lset, layout: FeatureLayout) -> tuple[str, dict[str, np.ndarray] | None]:
    """(status, arrays) of one sample; arrays None means all zero. Pure, no I/O."""
    from facerec.pipeline.decode import ImageRejected, decode_rgb
    from facerec.pipeline.landmark_stage import NO_FACE

    if sample["status"] != tables.STATUS_OK:
        return sample["status"], None
    try:
        rgb = decode_rgb(sample["image"])
    except ImageRejected as exc:
        return exc.reason, None
    size = layout.img_size
    status = lm["status"] if lm["status"] != tables.STATUS_OK else (tables.STATUS_OK if lm["detected"] else NO_FACE)
    if status == tables.STATUS_OK:
        points = np.asarray(lm["points"], dtype=np.float32).reshape(-1, 2)
        try:
            crop, aligned, _ = align_face(rgb, points, lset, size)
        except AlignmentError as exc:
            status = exc.reason
        else:
            heat = quantize(group_heatmaps(aligned, lset, size, layout.sigma), layout.heatmap_dtype)
            return status, {zl.IMAGE: crop, zl.LANDMARKS: aligned, zl.HEATMAPS: heat, zl.MASK: face_mask(aligned, size)}
    return status, {zl.IMAGE: center_crop(rgb, size)}


def compute_shard(job: ShardJob, shard: int) -> dict[str, Any]:
    """Compute, write and commit one shard; returns its ``ShardCounts`` summary plus timings."""
    from facerec.pipeline.landmark_stage import read_samples_shard

    t0 = time.perf_counter()
    layout, store = job.layout, StoreLayout.at(job.store)
    lset = landmark_set(layout.extractor)
    samples = read_samples_shard(store.samples, shard, _SAMPLE_COLUMNS)
    landmarks = read_shard_table(store.landmarks(layout.extractor).child(shard_file(shard)), tables.LANDMARKS, _LANDMARK_COLUMNS)
    rows, joined = _join(samples, landmarks, f"shard {shard}")
    bad = {lm["num_points"] for lm in joined if lm is not None and lm["points"] is not None} - {lset.num_points}
    if bad:
        raise StoreError(f"shard {shard}: landmarks have {sorted(bad)} points but {lset.name} has {lset.num_points}")

    n, size, start = len(rows), layout.img_size, shard * layout.shard_size
    if n > layout.shard_size or start + n > layout.num_rows:
        raise StoreError(f"shard {shard} has {n} rows, which do not fit rows {start}.. of a {layout.num_rows}-row "
                         f"feature set with shards of {layout.shard_size}; rerun `facerec features --overwrite`")
    group, _ = open_feature_group(store.features_zarr(layout.extractor, size), mode="r+")
    shapes = layout.shapes()
    landmarks_out = np.zeros((n, layout.num_points, 2), np.float32)
    valid = np.zeros(n, bool)
    statuses: list[str] = []
    counts = ShardCounts()
    t1 = time.perf_counter()
    rows_s = 0.0
    for block in range(0, n, layout.chunk_rows):
        t_block = time.perf_counter()
        stop = min(block + layout.chunk_rows, n)
        out = {name: np.zeros((stop - block, *shapes[name][0][1:]), shapes[name][2])
               for name in (zl.IMAGE, zl.HEATMAPS, zl.MASK)}
        for i in range(block, stop):
            status, arrays = _row_features(rows[i], joined[i], lset, layout)
            statuses.append(status)
            counts.add(status)
            valid[i] = status == tables.STATUS_OK
            for name, value in (arrays or {}).items():
                if name == zl.LANDMARKS:
                    landmarks_out[i] = value
                else:
                    out[name][i - block] = value
        rows_s += time.perf_counter() - t_block
        for name, value in out.items():       # encodes (crop codec, compressor) and writes the chunks
            group[name][start + block : start + stop] = value
    group[zl.LANDMARKS][start : start + n] = landmarks_out
    group[zl.VALID][start : start + n] = valid

    t2 = time.perf_counter()
    index = _index_table(rows, joined, statuses, valid, start)
    chunks = chunk_records(store.features_zarr(layout.extractor, size), group, zl.ARRAY_NAMES, start, start + n)
    write_recorded_parquet(index, store.features_index(layout.extractor, size).child(shard_file(shard)), arrays=chunks)
    summary = counts.to_dict()
    t3 = time.perf_counter()
    summary["seconds"] = round(t3 - t0, 3)
    # task seconds by part: read + join, per-face work, Zarr encode + write, index + commit record
    summary["timing"] = {"read_s": t1 - t0, "rows_s": rows_s, "write_s": t2 - t1 - rows_s, "commit_s": t3 - t2}
    log.info("features shard %d: %d rows, %d ok in %.1f s", shard, n, counts.ok, summary["seconds"])
    return summary


def _index_table(rows: list[dict], joined: list[dict | None], statuses: list[str], valid: np.ndarray, start: int) -> "pa.Table":
    import pyarrow as pa

    def pose(lm: dict | None, key: str):
        return None if lm is None else lm[key]

    cols = {
        "row": [start + i for i in range(len(rows))],
        "sample_id": [r["sample_id"] for r in rows],
        "identity": [r["identity"] for r in rows],
        "label": [r["label"] for r in rows],
        "split": [r["split"] for r in rows],
        "valid": valid.tolist(),
        "yaw": [pose(lm, "yaw") for lm in joined],
        "pitch": [pose(lm, "pitch") for lm in joined],
        "roll": [pose(lm, "roll") for lm in joined],
        "status": statuses,
    }
    return pa.Table.from_pydict(cols, schema=tables.FEATURE_INDEX)


# ---------------------------------------------------------------------------------------------- driver
def _index_counts(index_folder: Location, shards: list[int]) -> dict[str, Any]:
    """Counts of shards finished by an earlier run, from their index files' status column."""
    counts = ShardCounts()
    for shard in shards:
        t = read_shard_table(index_folder.child(shard_file(shard)), tables.FEATURE_INDEX, ["status"])
        for status in t.column("status").to_pylist():
            counts.add(status)
    return counts.to_dict()


def plan_layout(config: FeaturesConfig, store: StoreLayout) -> FeatureLayout:
    """The FeatureLayout this config asks for, from the finished samples and landmarks stages."""

    lm_folder = store.landmarks(config.extractor)
    if not StoreLayout.is_finished(lm_folder):
        raise StageNotReadyError(
            f"no finished {config.extractor} landmarks at {lm_folder}; run "
            f"`facerec landmarks --store {config.store} --extractor {config.extractor}` first"
        )
    shard_size, _, num_rows = sample_geometry(store)
    return FeatureLayout(
        extractor=config.extractor, img_size=config.img_size, num_points=landmark_set(config.extractor).num_points,
        num_rows=num_rows, shard_size=shard_size, chunk_rows=default_chunk_rows(config.img_size, shard_size),
        sigma=config.resolved_sigma, heatmap_dtype=config.heatmap_dtype, compressor=config.compressor,
        compression_level=config.compression_level, crop_codec=config.crop_codec, crop_quality=config.crop_quality,
    )


def _prepare_group(config: FeaturesConfig, store: StoreLayout, layout: FeatureLayout) -> bool:
    """Create (or check) the Zarr group; True when the stage is already finished with this layout."""

    zloc = store.features_zarr(config.extractor, config.img_size)
    index = store.features_index(config.extractor, config.img_size)
    if config.overwrite or not zloc.exists():
        # An index without its arrays means nothing, and identities of the old arrays are stale.
        for stale in (index, store.identities(config.extractor, config.img_size)):
            if stale.exists():
                log.info("features: removing %s (its feature arrays are rebuilt)", stale)
                stale.fs.rm(stale.path, recursive=True)
        create_feature_group(zloc, layout, overwrite=True)
        return False
    _, found = open_feature_group(zloc)
    if found != layout:
        diff = {k: (v, getattr(layout, k)) for k, v in dataclasses.asdict(found).items() if getattr(layout, k) != v}
        raise StoreError(
            f"{zloc} was built with other settings (found vs asked: {diff}); rerun with --overwrite to rebuild it"
        )
    remove_tmp_debris(index)
    return StoreLayout.is_finished(index)


def run_features(config: FeaturesConfig, spark: "SparkSession | None" = None) -> StageResult:
    """Run (or resume) the features stage; returns counts in = ok + rejected over all shards."""
    from facerec.pipeline.landmark_stage import finished_shards

    t0 = time.perf_counter()
    config.validate()
    store = StoreLayout.at(config.store)
    layout = plan_layout(config, store)
    index = store.features_index(config.extractor, config.img_size)
    result = StageResult(stage=STAGE, output=str(store.features_zarr(config.extractor, config.img_size)))
    if _prepare_group(config, store, layout):
        result.skipped_stage = True
        result.merge(StoreLayout.read_manifest(index)["counts"])
        return result

    shards = list(range(-(-layout.num_rows // layout.shard_size)))
    done = finished_shards(index) & set(shards)
    todo = [s for s in shards if s not in done]
    result.shards_skipped = len(shards) - len(todo)
    result.merge(_index_counts(index, sorted(done)))
    log.info("features %s: %d shards to compute, %d already done", layout.name, len(todo), len(done))
    summaries: list[dict[str, Any]] = []
    if todo:
        spark = spark or spark_session(config.master, config.conf, app_name="facerec-features")
        summaries = run_shards(spark, todo, ShardJob(config.store, layout), description=f"features {layout.name}",
                               max_parallel=config.partitions)
        for summary in summaries:
            result.merge(summary)
        result.shards_done = len(summaries)
    remove_tmp_debris(index)   # temporary files of tasks killed before their commit (Spark redid them)
    result.seconds = time.perf_counter() - t0
    if result.rows_in != layout.num_rows:
        raise StoreError(f"features: {result.rows_in} index rows but the samples hold {layout.num_rows}")
    result.check_balanced()
    shard_seconds = [s["seconds"] for s in summaries]
    timings = {key: round(sum(s["timing"][key] for s in summaries), 3) for key in summaries[0]["timing"]} if summaries else {}
    result.extra = {"valid": result.ok, "heatmap_dtype": layout.heatmap_dtype, "sigma": layout.sigma, "timings": timings}
    manifest = {
        "stage": STAGE, "layout_version": layout.layout_version, "config": dataclasses.asdict(config),
        "layout": dataclasses.asdict(layout), "counts": result.to_dict(), "seconds": round(result.seconds, 3),
        "timings": {"total_s": round(result.seconds, 3), "shard_s": shard_seconds, "task_parts_s": timings},
        **finished_stage_fields(index, [shard_file(s) for s in shards], STAGE, layout.extractor),
    }
    write_json_atomic(manifest, StoreLayout.manifest(index))
    return result

