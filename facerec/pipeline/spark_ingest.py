"""Ingest as Spark jobs for file sources: the same samples table as the driver ingest, read in parallel.

The driver ingest (``facerec.pipeline.ingest``) reads, probes and merges on one core. Here three
Spark jobs share the work, and no per-row data passes through the driver:

1. **Stage** (one task per group of consecutive source units, ``file_sources.group_units``): read the
   rows, compute ``sample_id``, the order key and the probe's status exactly as the driver does
   (``ingest.validate_record``), apply ``--sample-prob``, and write sorted runs
   ``_staging/run-GGGGG-KK.parquet`` (small row groups, so later reads can skip by key) plus a
   ``group-GGGGG.json`` summary (rows, identities seen, rows sampled out). A group whose summary
   exists is not redone on a rerun.
2. **Count** (one task per range of key buckets; bucket ``b`` = keys in ``[b, b+1) * 2**64 / B``):
   read only ``order_key, sample_id, source_path, identity, status`` of the bucket's rows from every
   run, sort, apply a pending ``--limit-classes``, drop duplicates (same id = same key = same bucket),
   and return per bucket the rows kept and the status counts.
3. **Write** (one task per output shard): from the prefix sums of those counts a shard knows which
   buckets hold its global rows; it reads them whole, sorts and deduplicates as in 2, takes its slice
   and writes it with ``ingest.shard_table``, the function the driver ingest writes with.

Global order = sort by (order key, sample_id, source_path), duplicates keep the first: the driver's
k-way merge order, so the tables are byte-identical whatever the number of tasks or partitions. The
driver finally streams the ``sample_id`` column of the written shards into ``samples_digest``.
Every task commits by rename, so a killed and retried task leaves no duplicate and no torn file.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from facerec.errors import SourceError, StoreError
from facerec.pipeline.file_sources import FilePlan, group_units, read_units
from facerec.pipeline.ingest_rows import (
    _ORDER_KEY, _STAGING_SCHEMA, DUPLICATE, RUN_BYTES, keep_sample, sample_id, shard_table, validate_record,
)
from facerec.pipeline.report import ShardCounts, StageResult
from facerec.pipeline.sources import sort_identities
from facerec.store import fs
from facerec.store.fs import Location
from facerec.store.integrity import write_recorded_parquet
from facerec.store.layout import shard_file

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

RUN_ROW_GROUP = 128        # rows per row group of a staged run: the granularity of key-range reads
BUCKETS_PER_SHARD = 4      # key buckets per expected output shard (a shard task reads ~1.5 shards)
TASKS_PER_CORE = 4         # staging tasks per Spark core: small enough that the last wave idles little
_SORT = [(_ORDER_KEY, "ascending"), ("sample_id", "ascending"), ("source_path", "ascending")]
_LIGHT = [_ORDER_KEY, "sample_id", "source_path", "identity", "status"]
_TWO64 = 1 << 64


def bucket_bounds(bucket: int, buckets: int) -> tuple[int, int]:
    """Order keys ``[lo, hi)`` of bucket ``bucket`` of ``buckets`` equal ranges of the 64-bit keys."""
    return bucket * _TWO64 // buckets, (bucket + 1) * _TWO64 // buckets


@dataclass(frozen=True)
class IngestJob:
    """Everything a task needs (picklable): the plan, the options that decide rows, where to write."""

    plan: FilePlan
    groups: tuple[tuple[int, int], ...]
    staging: str
    out: str
    seed: int
    sample_prob: float
    split: str
    allowed: frozenset[str] | None


# ------------------------------------------------------------------------------------------- 1. stage
@dataclass(frozen=True)
class StageTask:
    job: IngestJob

    def __call__(self, group: int) -> dict[str, Any]:
        return stage_group(self.job, group)


def stage_group(job: IngestJob, group: int) -> dict[str, Any]:
    """Read one group of units into sorted runs; commit its summary last (that marks the group done)."""
    staging = fs.resolve(job.staging)
    start, stop = job.groups[group]
    hidden = [0]
    rows: list[dict[str, Any]] = []
    runs: list[str] = []
    identities: set[str] = set()
    buffered = sampled_out = 0

    def flush() -> None:
        nonlocal rows, buffered
        if rows:
            rows.sort(key=lambda r: (r[_ORDER_KEY], r["sample_id"], r["source_path"]))
            name = f"run-{group:05d}-{len(runs):02d}.parquet"
            fs.write_parquet_atomic(pa.Table.from_pylist(rows, schema=_STAGING_SCHEMA), staging.child(name),
                                    compression="none", row_group_size=RUN_ROW_GROUP)
            runs.append(name)
        rows, buffered = [], 0

    count = 0
    for rec in read_units(job.plan, job.plan.units[start:stop], job.allowed, hidden):
        sid = sample_id(rec.identity, rec.data, rec.source_path)
        if not keep_sample(sid, job.seed, job.sample_prob):
            sampled_out += 1
            continue
        rows.append(validate_record(rec, job.seed, sid))
        identities.add(rec.identity)
        buffered += len(rec.data or b"")
        count += 1
        if buffered >= RUN_BYTES:
            flush()
    flush()
    summary = {"runs": runs, "rows": count, "sampled_out": sampled_out, "hidden_files": hidden[0],
               "identities": sorted(identities)}
    fs.write_json_atomic(summary, staging.child(f"group-{group:05d}.json"))
    return summary


# ------------------------------------------------------------------------------------------- key-range reads
def read_key_range(staging: Location, runs: list[str], lo: int, hi: int, columns: list[str] | None) -> pa.Table:
    """Rows with ``lo <= order_key < hi`` from every run (row groups skipped by their key statistics)."""
    parts = []
    for name in runs:
        loc = staging.child(name)
        with loc.fs.open(loc.path, "rb") as fh:
            pf = pq.ParquetFile(fh)
            key_col = pf.schema_arrow.get_field_index(_ORDER_KEY)
            wanted = []
            for rg in range(pf.metadata.num_row_groups):
                stats = pf.metadata.row_group(rg).column(key_col).statistics
                if stats is None or not stats.has_min_max or (stats.max >= lo and stats.min < hi):
                    wanted.append(rg)
            if wanted:
                parts.append(pf.read_row_groups(wanted, columns=columns))
    if not parts:
        schema = _STAGING_SCHEMA if columns is None else pa.schema([_STAGING_SCHEMA.field(c) for c in columns])
        return schema.empty_table()
    table = pa.concat_tables(parts)
    return table.filter(_in_range(table.column(_ORDER_KEY), lo, hi))


def _in_range(keys: Any, lo: int, hi: int) -> Any:
    """Mask of ``lo <= key < hi`` over uint64 keys (``hi`` may be 2**64: no upper bound)."""
    low = pc.greater_equal(keys, pa.scalar(lo, pa.uint64()))
    return low if hi >= _TWO64 else pc.and_(low, pc.less(keys, pa.scalar(hi, pa.uint64())))


def ordered_unique(table: pa.Table, keep: frozenset[str] | None) -> tuple[pa.Table, int, int]:
    """Sort in the global order, drop rows of identities outside ``keep``, keep the first of equal ids.

    Returns (rows kept, rows excluded by --limit-classes, duplicates dropped).
    """
    table = table.take(pc.sort_indices(table, sort_keys=_SORT))
    excluded = 0
    if keep is not None:
        mask = pc.is_in(table.column("identity"), value_set=pa.array(sorted(keep), pa.string()))
        excluded = table.num_rows - pc.sum(mask).as_py() if table.num_rows else 0
        table = table.filter(mask)
    if table.num_rows < 2:
        return table, excluded, 0
    ids = table.column("sample_id").combine_chunks()
    first = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1))
    mask = pa.concat_arrays([pa.array([True]), first])
    kept = table.filter(mask)
    return kept, excluded, table.num_rows - kept.num_rows


# ------------------------------------------------------------------------------------------- 2. count
@dataclass(frozen=True)
class CountTask:
    staging: str
    runs: tuple[str, ...]
    buckets: int
    per_task: int
    keep: frozenset[str] | None

    def __call__(self, task: int) -> dict[str, Any]:
        staging = fs.resolve(self.staging)
        first = task * self.per_task
        last = min(self.buckets, first + self.per_task)
        lo, hi = bucket_bounds(first, self.buckets)[0], bucket_bounds(last - 1, self.buckets)[1]
        table = read_key_range(staging, list(self.runs), lo, hi, _LIGHT)
        out = []
        for b in range(first, last):
            part = table.filter(_in_range(table.column(_ORDER_KEY), *bucket_bounds(b, self.buckets)))
            kept, excluded, dups = ordered_unique(part, self.keep)
            counts = ShardCounts()
            for _ in range(dups):
                counts.add(DUPLICATE)
            for status in kept.column("status").to_pylist():
                counts.add(status)
            out.append({"bucket": b, "rows": kept.num_rows, "excluded": excluded, "counts": counts.to_dict()})
        return {"buckets": out}


# ------------------------------------------------------------------------------------------- 3. write
@dataclass(frozen=True)
class WriteTask:
    staging: str
    out: str
    runs: tuple[str, ...]
    buckets: int
    starts: tuple[int, ...]        # global row index of each bucket's first row (prefix sums), + total
    shard_size: int
    identities: tuple[str, ...]
    split: str
    keep: frozenset[str] | None

    def __call__(self, shard: int) -> dict[str, Any]:
        loc = fs.resolve(self.out).child(shard_file(shard))
        if loc.exists():
            return {"skipped": 1}
        lo_row = shard * self.shard_size
        hi_row = min(lo_row + self.shard_size, self.starts[-1])
        first = _bucket_of_row(self.starts, lo_row)
        last = _bucket_of_row(self.starts, hi_row - 1)
        lo, hi = bucket_bounds(first, self.buckets)[0], bucket_bounds(last, self.buckets)[1]
        table = read_key_range(fs.resolve(self.staging), list(self.runs), lo, hi, None)
        kept, _, _ = ordered_unique(table, self.keep)
        offset = lo_row - self.starts[first]
        rows = kept.slice(offset, hi_row - lo_row)
        if rows.num_rows != hi_row - lo_row:
            raise StoreError(f"ingest shard {shard}: expected {hi_row - lo_row} rows from buckets {first}..{last}, "
                             f"found {rows.num_rows}; the staged runs changed, rerun with --overwrite")
        write_recorded_parquet(shard_table(rows, shard, list(self.identities), self.split), loc)
        return {"skipped": 0}


def _bucket_of_row(starts: tuple[int, ...], row: int) -> int:
    """The bucket holding global row ``row`` (the last bucket whose start is <= row and is not empty)."""
    import bisect

    return bisect.bisect_right(starts, row) - 1


# ------------------------------------------------------------------------------------------- driver
def _stage_all(spark: "SparkSession", job: IngestJob) -> list[dict[str, Any]]:
    from facerec.pipeline.spark import run_shards

    staging = fs.resolve(job.staging)
    done: dict[int, dict[str, Any]] = {}
    for g in range(len(job.groups)):
        marker = staging.child(f"group-{g:05d}.json")
        if marker.exists():
            done[g] = fs.read_json(marker)
    todo = [g for g in range(len(job.groups)) if g not in done]
    log.info("ingest (spark): %d source units in %d staging tasks (%d done before)",
             len(job.plan.units), len(job.groups), len(done))
    summaries = run_shards(spark, todo, StageTask(job), description="ingest: read and probe")
    for g, summary in zip(todo, summaries):
        done[g] = summary
    return [done[g] for g in range(len(job.groups))]


def run_spark_ingest(plan: FilePlan, config: Any, out: Location, staging: Location,
                     allowed: frozenset[str] | None, spark: "SparkSession", result: StageResult) -> dict[str, Any]:
    """Stage, count and write the samples shards with Spark; returns the manifest's shape fields.

    ``config`` is the ``ingest.IngestConfig`` (not imported here: ``ingest`` imports this module).
    """
    from facerec.pipeline.spark import run_shards

    parallelism = max(1, spark.sparkContext.defaultParallelism)
    groups = tuple(group_units(plan.units, parallelism * TASKS_PER_CORE))
    job = IngestJob(plan, groups, str(staging), str(out), config.seed, config.sample_prob, config.split, allowed)
    plan_marker = {"fingerprint": config.fingerprint(), "groups": [list(g) for g in groups]}
    if staging.exists() and (not staging.child("_plan.json").exists()
                             or fs.read_json(staging.child("_plan.json")) != plan_marker):
        staging.fs.rm(staging.path, recursive=True)    # staged with another grouping: do not mix groups
    fs.write_json_atomic(plan_marker, staging.child("_plan.json"))
    summaries = _stage_all(spark, job)
    rows = sum(s["rows"] for s in summaries)
    sampled_out = sum(s["sampled_out"] for s in summaries)
    if rows == 0:
        raise SourceError(f"{plan.description}: no rows to ingest ({sampled_out} left out by --sample-prob "
                          f"{config.sample_prob}); expected at least one image")
    identities = sort_identities(i for s in summaries for i in s["identities"] if i)
    pending_limit = config.limit_classes is not None and allowed is None
    if pending_limit:
        identities = identities[: config.limit_classes]
    keep = frozenset(identities) if pending_limit else None
    runs = tuple(r for s in summaries for r in s["runs"])

    buckets = max(1, BUCKETS_PER_SHARD * -(-rows // config.shard_size))
    # counting reads only light columns: TASKS_PER_CORE tasks per core are enough (each task costs
    # ~50 ms of scheduling and worker round trips whatever it does), at least a shard's buckets each
    per_task = max(BUCKETS_PER_SHARD, -(-buckets // (parallelism * TASKS_PER_CORE)))
    count_tasks = -(-buckets // per_task)
    counted = run_shards(spark, list(range(count_tasks)), CountTask(str(staging), runs, buckets, per_task, keep),
                         description="ingest: count buckets")
    per_bucket = sorted((b for c in counted for b in c["buckets"]), key=lambda b: b["bucket"])
    starts = [0]
    excluded = 0
    for b in per_bucket:
        starts.append(starts[-1] + b["rows"])
        excluded += b["excluded"]
        result.merge(b["counts"])
    total = starts[-1]
    num_shards = -(-total // config.shard_size)
    writer = WriteTask(str(staging), str(out), runs, buckets, tuple(starts), config.shard_size, tuple(identities),
                       config.split, keep)
    written = run_shards(spark, list(range(num_shards)), writer, description="ingest: write shards")
    fs.remove_tmp_debris(out)     # temporary files of tasks killed before their commit (Spark redid them)
    result.shards_skipped = sum(w["skipped"] for w in written)
    result.shards_done = num_shards - result.shards_skipped
    hidden = sum(s["hidden_files"] for s in summaries)
    return {"num_rows": total, "num_shards": num_shards, "num_identities": len(identities),
            "excluded_by_limit_classes": excluded, "samples_digest": samples_digest(out, num_shards),
            "_sampled_out": sampled_out, "_hidden_files": hidden}


def samples_digest(out: Location, num_shards: int) -> str:
    """sha1 over the stored sample ids in order, streamed shard by shard (as the driver ingest defines it)."""
    digest = hashlib.sha1()
    for shard in range(num_shards):
        loc = out.child(shard_file(shard))
        with loc.fs.open(loc.path, "rb") as fh:
            ids = pq.ParquetFile(fh).read(columns=["sample_id"]).column("sample_id").to_pylist()
        digest.update("".join(f"{i}\n" for i in ids).encode())
    return digest.hexdigest()
