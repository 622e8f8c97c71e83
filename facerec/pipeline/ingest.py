"""Ingest: a source -> ``STORE/samples/shard-NNNNN.parquet``, validated, deduplicated, globally shuffled.

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
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from facerec.errors import ConfigError, SourceError
from facerec.pipeline.decode import CORRUPT, EMPTY, ImageRejected, probe_image
from facerec.pipeline.report import ShardCounts, StageResult
from facerec.pipeline.sources import OpenedSource, SourceRecord, open_source, sort_identities
from facerec.schemas import LAYOUT_VERSION, SAMPLES, STATUS_OK
from facerec.store import fs
from facerec.store.fs import Location
from facerec.store.integrity import finished_stage_fields, write_recorded_parquet
from facerec.store.layout import StoreLayout, shard_file

log = logging.getLogger(__name__)

DUPLICATE = "duplicate"
NO_LABEL = "no_label"
STAGING_DIR = "_staging"
STAGED_MARKER = "_staged.json"
RUN_BYTES = 256 << 20          # image bytes per sorted staging run (the staging memory bound)
MERGE_BATCH_ROWS = 32          # rows read at a time from each run during the merge
_ORDER_KEY = "order_key"
_STAGED_COLUMNS = ("sample_id", "identity", "source_path", "image", "format", "width", "height", "status", "error")
_STAGING_SCHEMA = pa.schema([SAMPLES.field(n) for n in _STAGED_COLUMNS] + [pa.field(_ORDER_KEY, pa.uint64(), False)])


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

    def validate(self) -> None:
        if not self.store:
            raise ConfigError("ingest needs a store: --store PATH")
        if self.shard_size < 1:
            raise ConfigError(f"--shard-size must be at least 1, got {self.shard_size}")
        if not 0.0 < self.sample_prob <= 1.0:
            raise ConfigError(f"--sample-prob must be in (0, 1], got {self.sample_prob}")
        for name in ("limit_classes", "max_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")

    def fingerprint(self) -> str:
        """What decides the output: everything but ``overwrite``."""
        spec = {k: v for k, v in asdict(self).items() if k != "overwrite"}
        spec["layout_version"] = LAYOUT_VERSION
        return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()


# ------------------------------------------------------------------------------------------- rows
def sample_id(identity: str, data: bytes | None, source_path: str) -> str:
    """Content hash: sha1(identity NUL bytes), hex. Rows without bytes are keyed by their source path."""
    h = hashlib.sha1(identity.encode("utf-8") + b"\0")
    h.update(data if data else b"\0no-bytes\0" + source_path.encode("utf-8"))
    return h.hexdigest()


def _keyed_u64(sid: str, seed: int, person: bytes) -> int:
    digest = hashlib.blake2b(sid.encode(), digest_size=8, key=str(seed).encode(), person=person).digest()
    return int.from_bytes(digest, "big")


def order_key(sid: str, seed: int) -> int:
    """Position of a sample in the shuffled order: a seeded 64-bit hash of its id."""
    return _keyed_u64(sid, seed, b"shuffle")


def keep_sample(sid: str, seed: int, prob: float) -> bool:
    """Seeded Bernoulli(prob) per sample id: the same sample is kept or not whatever the arrival order."""
    return prob >= 1.0 or _keyed_u64(sid, seed, b"sample") < prob * 2.0**64


def validate_record(rec: SourceRecord, seed: int, sid: str | None = None) -> dict[str, Any]:
    """One staged row: ids, the bytes as given, and the probe's verdict (status + message)."""
    sid = sid or sample_id(rec.identity, rec.data, rec.source_path)
    row: dict[str, Any] = {
        "sample_id": sid, "identity": rec.identity, "source_path": rec.source_path, "image": rec.data,
        "format": None, "width": None, "height": None, "status": STATUS_OK, "error": None,
        _ORDER_KEY: order_key(sid, seed),
    }
    if not rec.identity:
        row.update(status=NO_LABEL, error="the source row has no label (identity)")
        return row
    if rec.data is None:
        row.update(status=EMPTY, error="the source row holds no image bytes")
        return row
    try:
        info = probe_image(rec.data)
    except ImageRejected as exc:
        row.update(status=exc.reason, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this row's verdict, not the job's
        row.update(status=CORRUPT, error=f"decoder failed: {type(exc).__name__}: {exc}")
    else:
        row.update(format=info.format, width=info.width, height=info.height)
    return row


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
def _write_shard(rows: list[dict[str, Any]], shard: int, labels: dict[str, int], split: str, loc: Location) -> None:
    cols: dict[str, list[Any]] = {name: [r[name] for r in rows] for name in _STAGED_COLUMNS}
    cols["label"] = [labels.get(r["identity"], -1) for r in rows]
    cols["split"] = [split] * len(rows)
    cols["shard"] = [shard] * len(rows)
    cols["position"] = list(range(len(rows)))
    write_recorded_parquet(pa.Table.from_pydict(cols, schema=SAMPLES), loc)


def _merge_into_shards(out: Location, staging: Location, marker: dict, config: IngestConfig,
                       result: StageResult) -> dict[str, Any]:
    """Merge the sorted runs, drop duplicates, cut into shards; writes the shards not yet on disk."""
    identities = marker["identities"]
    pending_limit = config.limit_classes is not None and not marker["limit_applied"]
    if pending_limit:  # identity names were unknown before reading: apply --limit-classes now
        identities = identities[: config.limit_classes]
    keep = frozenset(identities)
    labels = {name: i for i, name in enumerate(identities)}
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
            _write_shard(shard_rows, shard, labels, config.split, loc)
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


def run_ingest(config: IngestConfig) -> StageResult:
    """Run (or resume, or skip) the ingest stage; returns its counts. See the module docstring."""
    config.validate()
    start = time.perf_counter()
    out = StoreLayout.at(config.store).samples
    if StoreLayout.is_finished(out) and not config.overwrite:
        leftover = out.child(STAGING_DIR)
        if leftover.exists():  # killed between writing the manifest and removing the staged runs
            leftover.fs.rm(leftover.path, recursive=True)
        return _finished_result(out, config)
    source = open_source(config.source, config.split, image_column=config.image_column,
                         label_column=config.label_column, streaming=config.streaming)
    staging = out.child(STAGING_DIR)
    marker = None if config.overwrite else (_read_marker(staging, config) if out.exists() else None)
    if marker is None and out.exists():
        out.fs.rm(out.path, recursive=True)   # stale or foreign partial output: start clean
    fs.remove_tmp_debris(out)
    fs.remove_tmp_debris(staging)
    if marker is None:
        marker = _stage(source, config, staging, _resolve_allowed(source, config))
    else:
        log.info("ingest: resuming from %d staged runs in %s", len(marker["runs"]), staging)
    result = StageResult(stage="ingest", output=str(out))
    shape = _merge_into_shards(out, staging, marker, config, result)
    result.check_balanced()
    result.seconds = time.perf_counter() - start
    result.extra = {**shape, "sampled_out": marker["sampled_out"]}
    manifest = {
        "stage": "ingest", "layout_version": LAYOUT_VERSION, "fingerprint": config.fingerprint(),
        "config": asdict(config), "source": source.info(), "counts": result.to_dict(),
        "shard_size": config.shard_size, "split": config.split, "seed": config.seed, **result.extra,
        **finished_stage_fields(out, [shard_file(s) for s in range(shape["num_shards"])], "ingest",
                                source_revision=source.info().get("revision")),
    }
    fs.write_json_atomic(manifest, StoreLayout.manifest(out))
    staging.fs.rm(staging.path, recursive=True)
    return result
