"""The landmarks stage: ``samples/shard-N`` -> ``landmarks/<extractor>/shard-N`` (schema ``LANDMARKS``).

Every samples row gives exactly one landmarks row at the same shard and position, so the two tables
line up row for row (as the feature arrays do). Only rows with status ``ok`` are decoded and given to
the extractor; a row rejected at ingest is not processed and keeps its ingest reason as its status
(``error`` says "rejected at ingest: ..."). Row statuses:

- ``ok``: landmarks found (``detected`` true, ``detector`` names the detection path that found them,
  e.g. ``blazeface`` or ``blazeface_short_crop`` for MediaPipe, ``hog`` or ``mmod_cnn`` for dlib);
  yaw/pitch/roll are null only if the pose solver failed;
- ``no_face``: decoded fine, the extractor found no face (``detected`` false, no points);
- a decode reason (``decode.CORRUPT``, ``TRUNCATED``, ...) when the bytes do not decode;
- ``extractor_error``: the extractor raised; the message is in ``error``, the job goes on.

The template extractor's rows carry ``placeholder=True`` and ``detected=True`` (its mean-face points are
usable by later stages, but nothing was detected: ``num_faces`` 0, ``score`` null).

The driver runs one Spark task per missing shard (``facerec.pipeline.spark.run_shards``; with fewer than
4 shards per core, each shard is cut into pieces run as separate tasks, see ``landmark_pieces``); each Python
worker creates its extractor once (``get_extractor``), each task writes its shard under a temporary name
and renames it. A finished stage (``_manifest.json``) is not redone unless ``overwrite``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from facerec.errors import ConfigError, StageNotReadyError, StoreError, choice_error
from facerec.geometry.landmark_sets import LandmarkSet, landmark_set
from facerec.pipeline.extractors.base import EXTRACTORS, LandmarkExtractor, get_extractor
from facerec.pipeline.landmark_pieces import piece_file, piece_rows, run_pieces
from facerec.pipeline.landmark_rows import EXTRACTOR_ERROR, NO_FACE, extract_outcome, landmarks_table, outcome_row
from facerec.pipeline.report import ShardCounts, StageResult
from facerec.pipeline.spark import spark_session
from facerec.schemas import LANDMARKS, LAYOUT_VERSION, SAMPLES, STATUS_OK
from facerec.store import fs
from facerec.store.fs import Location, read_parquet_checked
from facerec.store.integrity import finished_stage_fields, write_recorded_parquet
from facerec.store.layout import StoreLayout, shard_file

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

INPUT_MARKER = "_input.json"     # which samples table the shards in a landmarks folder were computed from
_SHARD_RE = re.compile(r"shard-(\d{5})\.parquet$")
_INPUT_COLUMNS = ["sample_id", "shard", "position", "image", "status", "error"]


@dataclass(frozen=True)
class LandmarksConfig:
    store: str
    extractor: str = "mediapipe"
    master: str | None = None                 # Spark master URL; None: local[*]
    conf: dict[str, str] = field(default_factory=dict)
    partitions: int | None = None             # at most this many Spark tasks at once (None: one per shard)
    overwrite: bool = False


# ------------------------------------------------------------------------------------------- rows
def extract_landmarks_row(extractor: LandmarkExtractor, lset: LandmarkSet, sample: Mapping[str, Any]) -> dict[str, Any]:
    """One samples row (dict with sample_id, shard, position, image, status, error) -> one landmarks row.

    Points are ``[x0, y0, x1, y1, ...]`` (2P floats) in source-image pixels, bbox ``[x0, y0, x1, y1]``,
    yaw/pitch/roll in degrees (``facerec.geometry.pose``). Never raises for a bad image or a failing
    extractor: the row's status says what happened. (The stage builds whole shards column by column,
    ``landmark_rows.landmarks_table``; this is the same row for one image.)
    """
    outcome = extract_outcome(extractor, lset, sample["status"], sample.get("error"), sample.get("image"))
    return outcome_row(extractor, lset, dict(sample), outcome)


# ------------------------------------------------------------------------------------------- shards
def read_samples_shard(samples: Location, shard: int, columns: list[str] | None = None) -> pa.Table:
    """One samples shard, its schema checked against ``SAMPLES``."""
    return read_parquet_checked(samples.child(shard_file(shard)), SAMPLES, columns)


def landmark_shard(store: str, extractor_name: str, shard: int, piece: int = 0, pieces: int = 1) -> dict[str, Any]:
    """Compute and commit ``landmarks/<extractor>/shard-N.parquet``; returns ``ShardCounts.to_dict()``.

    With ``pieces > 1`` only the ``piece``-th of ``pieces`` equal row ranges of the shard is computed and
    committed as a piece file (``landmark_pieces``), which a second task joins into the shard.
    """
    t0 = time.perf_counter()
    layout = StoreLayout.at(store)
    extractor = get_extractor(extractor_name)      # created once per Python worker, then cached
    t1 = time.perf_counter()
    lset = landmark_set(extractor_name)
    table = read_samples_shard(layout.samples, shard, _INPUT_COLUMNS)
    if pieces > 1:
        start, stop = piece_rows(table.num_rows, piece, pieces)
        table = table.slice(start, stop - start)
    inputs = zip(*(table.column(key).to_pylist() for key in ("status", "error", "image")))
    t2 = time.perf_counter()
    outcomes = [extract_outcome(extractor, lset, status, error, image) for status, error, image in inputs]
    counts = ShardCounts()
    for outcome in outcomes:
        counts.add(outcome.status)
    table_out = landmarks_table(extractor, lset, table, outcomes)
    t3 = time.perf_counter()
    out = layout.landmarks(extractor_name)
    if pieces == 1:
        write_recorded_parquet(table_out, out.child(shard_file(shard)))
    else:   # a temporary piece: no commit record; the joined shard gets one (landmark_pieces.JoinPieces)
        fs.write_parquet_atomic(table_out, piece_file(out, shard, piece))
    timing = {"init_s": t1 - t0, "read_s": t2 - t1, "rows_s": t3 - t2, "write_s": time.perf_counter() - t3}
    return {**counts.to_dict(), "ingest_rejected": _rejected_at_ingest(table), "timing": timing}


def _rejected_at_ingest(samples: pa.Table) -> int:
    return sum(1 for s in samples.column("status").to_pylist() if s != STATUS_OK)


@dataclass(frozen=True)
class LandmarkShardTask:
    """The picklable ``work(shard)`` Spark ships to workers: two strings, nothing heavy."""

    store: str
    extractor: str
    pieces: int = 1                 # tasks per shard (``landmark_pieces.pieces_per_shard``)

    def __call__(self, item: int) -> dict[str, Any]:
        shard, piece = divmod(item, self.pieces)
        return landmark_shard(self.store, self.extractor, shard, piece, self.pieces)


def finished_shards(folder: Location) -> set[int]:
    """Shard numbers whose output file is committed in ``folder``."""
    if not folder.exists():
        return set()
    names = (p.rstrip("/").rpartition("/")[2] for p in folder.fs.ls(folder.path, detail=False))
    return {int(m.group(1)) for n in names if (m := _SHARD_RE.fullmatch(n))}


def counts_of_shard(layout: StoreLayout, extractor: str, shard: int) -> dict[str, Any]:
    """Counts of a shard committed by an earlier run, read back from its status column."""
    loc = layout.landmarks(extractor).child(shard_file(shard))
    statuses = read_parquet_checked(loc, LANDMARKS, ["status"]).column("status").to_pylist()
    counts = ShardCounts()
    for status in statuses:
        counts.add(status)
    return {**counts.to_dict(), "ingest_rejected": _rejected_at_ingest(read_samples_shard(layout.samples, shard, ["status"]))}


# ------------------------------------------------------------------------------------------- driver
def _check_config(config: LandmarksConfig) -> None:
    if config.extractor not in EXTRACTORS:
        raise choice_error("extractor", config.extractor, tuple(EXTRACTORS))
    if config.partitions is not None and config.partitions < 1:
        raise ConfigError(f"--partitions must be at least 1, got {config.partitions}")


def _finished_result(out: Location) -> StageResult:
    counts = StoreLayout.read_manifest(out)["counts"]
    return StageResult(stage="landmarks", output=str(out), rows_in=counts["rows_in"], ok=counts["ok"],
                       rejected=dict(counts["rejected"]), skipped_stage=True)


def _drop_stale_output(out: Location, samples_digest: str | None) -> None:
    """Remove landmarks computed from another samples table (ingest was redone since): never mix them."""
    if not out.exists():
        return
    marker = out.child(INPUT_MARKER)
    recorded = fs.read_json(marker).get("samples_digest") if marker.exists() else None
    if recorded != samples_digest:
        log.warning("landmarks: %s was computed from another samples table (digest %s, now %s); recomputing it",
                    out, recorded, samples_digest)
        out.fs.rm(out.path, recursive=True)


def run_landmarks(config: LandmarksConfig, spark: "SparkSession | None" = None) -> StageResult:
    """Run (or resume, or skip) the landmarks stage over every samples shard; returns its counts."""

    _check_config(config)
    start = time.perf_counter()
    layout = StoreLayout.at(config.store)
    if not StoreLayout.is_finished(layout.samples):
        raise StageNotReadyError(f"landmarks needs a finished ingest: {StoreLayout.manifest(layout.samples)} "
                                 "does not exist; run facerec ingest first")
    samples_manifest = StoreLayout.read_manifest(layout.samples)
    num_shards = int(samples_manifest["num_shards"])
    samples_digest = samples_manifest.get("samples_digest")
    out = layout.landmarks(config.extractor)
    _drop_stale_output(out, samples_digest)
    if StoreLayout.is_finished(out) and not config.overwrite:
        return _finished_result(out)
    if config.overwrite and out.exists():
        out.fs.rm(out.path, recursive=True)
    fs.remove_tmp_debris(out)
    fs.write_json_atomic({"samples_digest": samples_digest}, out.child(INPUT_MARKER))
    done = finished_shards(out) & set(range(num_shards))
    todo = [s for s in range(num_shards) if s not in done]
    log.info("landmarks (%s): %d shards to compute, %d already done", config.extractor, len(todo), len(done))
    result = StageResult(stage="landmarks", output=str(out), shards_done=len(todo), shards_skipped=len(done))
    summaries = []
    if todo:
        spark = spark or spark_session(config.master, config.conf, app_name=f"facerec-landmarks-{config.extractor}")
        summaries = run_pieces(spark, todo, LandmarkShardTask(str(layout.root), config.extractor), folder=out,
                               shard_size=int(samples_manifest["shard_size"]),
                               description=f"landmarks {config.extractor}", max_parallel=config.partitions)
    summaries += [counts_of_shard(layout, config.extractor, s) for s in sorted(done)]
    fs.remove_tmp_debris(out)   # temporary files of tasks killed before their commit (Spark redid them)
    ingest_rejected = 0
    timings: dict[str, float] = {}
    for summary in summaries:
        result.merge(summary)
        ingest_rejected += int(summary.get("ingest_rejected", 0))
        for key, value in summary.get("timing", {}).items():   # task seconds by part, summed over shards
            timings[key] = round(timings.get(key, 0.0) + value, 3)
    result.check_balanced()
    if result.rows_in != int(samples_manifest["num_rows"]):
        raise StoreError(f"landmarks: {result.rows_in} rows in {out} but the samples table has "
                         f"{samples_manifest['num_rows']} rows")
    result.seconds = time.perf_counter() - start
    result.extra = {"not_processed_rejected_at_ingest": ingest_rejected, "num_shards": num_shards, "timings": timings}
    manifest = {"stage": "landmarks", "layout_version": LAYOUT_VERSION, "config": asdict(config),
                "extractor": config.extractor, "num_points": landmark_set(config.extractor).num_points,
                "num_rows": result.rows_in, "num_shards": num_shards, "samples_digest": samples_digest,
                "counts": result.to_dict(),
                **finished_stage_fields(out, [shard_file(s) for s in range(num_shards)], "landmarks", config.extractor)}
    fs.write_json_atomic(manifest, StoreLayout.manifest(out))
    return result
