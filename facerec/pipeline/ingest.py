"""Ingest: a source -> ``STORE/samples/shard-NNNNN.parquet``, validated, deduplicated, globally shuffled.

Two engines write the same bytes: this module's driver path (below; hub ids, ``--streaming``,
``--max-samples``) and, for file sources, ``facerec.pipeline.spark_ingest`` (``engine="spark"``, or
``"auto"``, the CLI's default); both build rows with ``ingest_rows``.

Every source row becomes one row of the samples table (schema ``facerec.schemas.SAMPLES``) holding the
original encoded bytes and a status: ``ok`` or the reason ``decode.probe_image`` rejected it. Rejected
rows are kept, never dropped; only a second copy of identical bytes of the same identity is left out,
counted as rejected ``duplicate`` (its ``sample_id`` would repeat).

How the global shuffle works, and its memory bound (sources larger than RAM included):
1. Stage: read the source in arrival order; per row compute ``sample_id`` = sha1(identity NUL bytes) and
   an order key = 64-bit keyed BLAKE2b of (seed, sample_id). Rows are buffered until they hold
   ``RUN_BYTES`` of image bytes, sorted by (key, sample_id, source_path) and written as a sorted run
   ``samples/_staging/run-NNNNN.parquet``.
2. Merge: a k-way merge of the runs (``MERGE_BATCH_ROWS`` rows read at a time from each) gives every row in
   key order; identical ``sample_id``s arrive next to each other, so duplicates are dropped here without a
   set of all ids. The merged order is cut into shards of ``shard_size`` rows.
Peak memory is about ``RUN_BYTES`` while staging, and ``runs x MERGE_BATCH_ROWS x row bytes + one shard``
while merging, whatever the source size. The order depends only on the sample ids and the seed, never on
arrival order, so the result is deterministic.

Resume: the stage is finished when ``samples/_manifest.json`` exists (rerun = no-op unless overwrite).
Staging ends with ``_staging/_staged.json`` (a fingerprint of the config); a rerun with the same config
reuses the staged runs and writes only the shards not yet on disk. Every file is written under a
temporary name and renamed, so an interrupted run leaves no half-written file.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from facerec.errors import ConfigError, SourceError
from facerec.pipeline.ingest_rows import (  # noqa: F401 - re-exported: the names ingest always had
    _ORDER_KEY, _STAGED_COLUMNS, _STAGING_SCHEMA, DUPLICATE, NO_LABEL, RUN_BYTES, keep_sample, order_key, sample_id,
    shard_table, validate_record,
)
from facerec.pipeline.report import ShardCounts, StageResult
from facerec.pipeline.sources import OpenedSource, SourceRecord, open_source, sort_identities
from facerec.schemas import LAYOUT_VERSION, SAMPLES, STATUS_OK
from facerec.store import fs
from facerec.store.fs import Location
from facerec.store.integrity import finished_stage_fields, write_recorded_parquet
from facerec.store.layout import StoreLayout, shard_file

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

STAGING_DIR = "_staging"
STAGED_MARKER = "_staged.json"
MERGE_BATCH_ROWS = 32          # rows read at a time from each run during the merge


ENGINES = ("auto", "driver", "spark")
_NOT_IN_FINGERPRINT = ("overwrite", "engine", "master", "conf")   # how it runs, not what it writes


@dataclass(frozen=True)
class IngestConfig:
    source: str                      # hub id (DEFAULT_SOURCE), local ImageFolder, saved HF dataset, Parquet
    store: str                       # store root (local path or fsspec URL)
    split: str = "train"
    image_column: str | None = None
    label_column: str | None = None
    limit_classes: int | None = None  # keep the first N identities in sorted order
    max_samples: int | None = None    # stop after N rows (in arrival order, after the other filters)
    streaming: bool = False           # hub ids: stream instead of downloading the whole dataset
    sample_prob: float = 1.0          # keep each row with this probability (seeded, per sample_id)
    seed: int = 0
    shard_size: int = 1024
    overwrite: bool = False
    engine: str = "driver"            # driver | spark | auto (how it runs; never changes the output)
    master: str | None = None         # Spark master for engine spark; None: local[*]
    conf: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        if not self.store:
            raise ConfigError("ingest needs a store: --store PATH")
        if self.shard_size < 1:
            raise ConfigError(f"--shard-size must be at least 1, got {self.shard_size}")
        if not 0.0 < self.sample_prob <= 1.0:
            raise ConfigError(f"--sample-prob must be in (0, 1], got {self.sample_prob}")
        if self.engine not in ENGINES:
            raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.engine == "spark" and (self.max_samples is not None or self.streaming):
            raise ConfigError("--engine spark reads a file source in parallel; --max-samples and --streaming read "
                              "rows in source order on the driver: use --engine driver (or auto) with them")
        for name in ("limit_classes", "max_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")

    def fingerprint(self) -> str:
        """What decides the output: everything but ``overwrite``."""
        spec = {k: v for k, v in asdict(self).items() if k not in _NOT_IN_FINGERPRINT}
        spec["layout_version"] = LAYOUT_VERSION
        return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()


# ------------------------------------------------------------------------------------------- rows
def _sort_key(row: dict[str, Any]) -> tuple[int, str, str]:
    return row[_ORDER_KEY], row["sample_id"], row["source_path"]


# ------------------------------------------------------------------------------------------- staging
def _progress(total: int | None, desc: str, unit: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=None, leave=False)


def _stage(source: OpenedSource, config: IngestConfig, staging: Location, allowed: frozenset[str] | None) -> dict:
    """Read the source once into sorted runs; returns the staging marker (also written to disk)."""
    buffer: list[dict[str, Any]] = []
    buffered_bytes = 0
    runs: list[str] = []
    identities: set[str] = set()
    rows = sampled_out = read = 0

    def flush() -> None:
        nonlocal buffer, buffered_bytes
        if not buffer:
            return
        buffer.sort(key=_sort_key)
        name = f"run-{len(runs):05d}.parquet"
        table = pa.Table.from_pylist(buffer, schema=_STAGING_SCHEMA)
        fs.write_parquet_atomic(table, staging.child(name), compression="none", row_group_size=MERGE_BATCH_ROWS * 8)
        runs.append(name)
        buffer, buffered_bytes = [], 0

    total = config.max_samples if config.max_samples and source.total is None else source.total
    with _progress(total, "ingest: read", "img") as bar:
        for rec in source.records(allowed):
            bar.update(1)
            read += 1
            sid = sample_id(rec.identity, rec.data, rec.source_path)
            if not keep_sample(sid, config.seed, config.sample_prob):
                sampled_out += 1
                continue
            buffer.append(validate_record(rec, config.seed, sid))
            buffered_bytes += len(rec.data or b"")
            identities.add(rec.identity)
            rows += 1
            if buffered_bytes >= RUN_BYTES:
                flush()
            if config.max_samples is not None and rows >= config.max_samples:
                break
    flush()
    marker = {
        "fingerprint": config.fingerprint(), "runs": runs, "rows": rows, "sampled_out": sampled_out,
        "identities": sort_identities(i for i in identities if i), "limit_applied": allowed is not None,
    }
    if rows == 0:
        raise SourceError(f"{source.description}: no rows to ingest (read {read} rows, {sampled_out} left out by "
                          f"--sample-prob {config.sample_prob}); expected at least one image")
    fs.write_json_atomic(marker, staging.child(STAGED_MARKER))
    log.info("ingest: staged %d rows of %d identities in %d sorted runs", rows, len(marker["identities"]), len(runs))
    return marker


def _read_marker(staging: Location, config: IngestConfig) -> dict | None:
    marker_loc = staging.child(STAGED_MARKER)
    if not marker_loc.exists():
        return None
    marker = fs.read_json(marker_loc)
    return marker if marker.get("fingerprint") == config.fingerprint() else None


def _iter_run(loc: Location) -> Iterator[dict[str, Any]]:
    with loc.fs.open(loc.path, "rb") as fh:
        for batch in pq.ParquetFile(fh).iter_batches(batch_size=MERGE_BATCH_ROWS):
            yield from batch.to_pylist()


# ------------------------------------------------------------------------------------------- shards
def _write_shard(rows: list[dict[str, Any]], shard: int, identities: list[str], split: str, loc: Location) -> None:
    staged = pa.Table.from_pylist(rows, schema=_STAGING_SCHEMA)
    write_recorded_parquet(shard_table(staged, shard, identities, split), loc)


def _merge_into_shards(out: Location, staging: Location, marker: dict, config: IngestConfig,
                       result: StageResult) -> dict[str, Any]:
    """Merge the sorted runs, drop duplicates, cut into shards; writes the shards not yet on disk."""
    identities = marker["identities"]
    pending_limit = config.limit_classes is not None and not marker["limit_applied"]
    if pending_limit:  # identity names were unknown before reading: apply --limit-classes now
        identities = identities[: config.limit_classes]
    keep = frozenset(identities)
    counts = ShardCounts()
    merged = heapq.merge(*(_iter_run(staging.child(r)) for r in marker["runs"]), key=_sort_key)
    shard_rows: list[dict[str, Any]] = []
    shard = excluded = 0
    previous = None
    digest = hashlib.sha1()   # over the stored sample ids in order: names this exact samples table

    def flush() -> None:
        nonlocal shard_rows, shard
        loc = out.child(shard_file(shard))
        if loc.exists():
            result.shards_skipped += 1
        else:
            _write_shard(shard_rows, shard, identities, config.split, loc)
            result.shards_done += 1
        bar.update(1)
        shard_rows, shard = [], shard + 1

    num_shards = -(-marker["rows"] // config.shard_size)
    with _progress(num_shards, "ingest: shards", "shard") as bar:
        for row in merged:
            if pending_limit and row["identity"] not in keep:
                excluded += 1
                continue
            if row["sample_id"] == previous:
                counts.add(DUPLICATE)
                continue
            previous = row["sample_id"]
            digest.update(previous.encode() + b"\n")
            counts.add(row["status"])
            shard_rows.append(row)
            if len(shard_rows) == config.shard_size:
                flush()
        if shard_rows:
            flush()
    result.merge(counts.to_dict())
    return {"num_rows": counts.rows_in - counts.rejected.get(DUPLICATE, 0), "num_shards": shard,
            "num_identities": len(identities), "excluded_by_limit_classes": excluded,
            "samples_digest": digest.hexdigest()}


# ------------------------------------------------------------------------------------------- driver
def _finished_result(out: Location, config: IngestConfig) -> StageResult:
    manifest = StoreLayout.read_manifest(out)
    if manifest.get("fingerprint") != config.fingerprint():
        log.warning("ingest: %s was ingested with other options (%s); keeping it, use --overwrite to redo",
                    out, manifest.get("config"))
    counts = manifest["counts"]
    return StageResult(stage="ingest", output=str(out), rows_in=counts["rows_in"], ok=counts["ok"],
                       rejected=dict(counts["rejected"]), skipped_stage=True)


def _resolve_allowed(source: OpenedSource, config: IngestConfig) -> frozenset[str] | None:
    if config.limit_classes is None or source.identities is None:
        return None
    return frozenset(source.identities[: config.limit_classes])


def resolve_engine(config: IngestConfig) -> str:
    """driver or spark: ``auto`` takes Spark for file sources unless --max-samples or --streaming is given."""
    from facerec.pipeline.file_sources import is_file_source

    if config.engine != "auto":
        return config.engine
    if config.max_samples is not None or config.streaming or not is_file_source(config.source):
        return "driver"
    return "spark"


def _spark_source(source: str) -> str:
    """A hub id read by Spark is read as the hub's Parquet files through fsspec (hf://)."""
    from facerec.pipeline.file_sources import is_file_source

    return source if is_file_source(source) else f"hf://datasets/{source}"


def run_ingest(config: IngestConfig, spark: "SparkSession | None" = None) -> StageResult:
    """Run (or resume, or skip) the ingest stage; returns its counts. See the module docstring."""
    config.validate()
    start = time.perf_counter()
    out = StoreLayout.at(config.store).samples
    if StoreLayout.is_finished(out) and not config.overwrite:
        leftover = out.child(STAGING_DIR)
        if leftover.exists():  # killed between writing the manifest and removing the staged runs
            leftover.fs.rm(leftover.path, recursive=True)
        return _finished_result(out, config)
    staging = out.child(STAGING_DIR)
    result = StageResult(stage="ingest", output=str(out))
    if resolve_engine(config) == "spark":
        shape, source_info, sampled_out = _ingest_with_spark(config, out, staging, spark, result)
    else:
        source = open_source(config.source, config.split, image_column=config.image_column,
                             label_column=config.label_column, streaming=config.streaming)
        marker = None if config.overwrite else (_read_marker(staging, config) if out.exists() else None)
        if marker is None and out.exists():
            out.fs.rm(out.path, recursive=True)   # stale or foreign partial output: start clean
        fs.remove_tmp_debris(out)
        fs.remove_tmp_debris(staging)
        if marker is None:
            marker = _stage(source, config, staging, _resolve_allowed(source, config))
        else:
            log.info("ingest: resuming from %d staged runs in %s", len(marker["runs"]), staging)
        shape = _merge_into_shards(out, staging, marker, config, result)
        source_info, sampled_out = source.info(), marker["sampled_out"]
    result.check_balanced()
    result.seconds = time.perf_counter() - start
    result.extra = {**shape, "sampled_out": sampled_out}
    manifest = {
        "stage": "ingest", "layout_version": LAYOUT_VERSION, "fingerprint": config.fingerprint(),
        "config": asdict(config), "source": source_info, "counts": result.to_dict(),
        "shard_size": config.shard_size, "split": config.split, "seed": config.seed, **result.extra,
        **finished_stage_fields(out, [shard_file(s) for s in range(shape["num_shards"])], "ingest",
                                source_revision=source_info.get("revision")),
    }
    fs.write_json_atomic(manifest, StoreLayout.manifest(out))
    staging.fs.rm(staging.path, recursive=True)
    return result


def _ingest_with_spark(config: IngestConfig, out: Location, staging: Location, spark: "SparkSession | None",
                       result: StageResult) -> tuple[dict[str, Any], dict[str, Any], int]:
    """The Spark path (``facerec.pipeline.spark_ingest``); resumes staged groups of the same plan."""
    from facerec.pipeline.file_sources import plan_file_source
    from facerec.pipeline.spark import spark_session
    from facerec.pipeline.spark_ingest import run_spark_ingest

    plan = plan_file_source(_spark_source(config.source), config.split, config.image_column, config.label_column)
    previous = staging.child("_plan.json")
    same = (not config.overwrite and previous.exists()
            and fs.read_json(previous).get("fingerprint") == config.fingerprint())
    if not same and out.exists():
        out.fs.rm(out.path, recursive=True)       # another config's partial output: start clean
    fs.remove_tmp_debris(out)
    fs.remove_tmp_debris(staging)
    allowed = None
    if config.limit_classes is not None and plan.identities is not None:
        allowed = frozenset(plan.identities[: config.limit_classes])
    spark = spark or spark_session(config.master, config.conf, app_name="facerec-ingest")
    shape = run_spark_ingest(plan, config, out, staging, allowed, spark, result)
    hidden = shape.pop("_hidden_files")
    if hidden or plan.loose_files:
        log.warning("%s: ignored %d hidden files and %d files outside identity folders",
                    plan.description, hidden, plan.loose_files)
    return shape, plan.info(hidden), shape.pop("_sampled_out")
