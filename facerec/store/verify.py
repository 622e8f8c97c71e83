"""``facerec verify``: compare a store with what its stages recorded writing, and say what to repair.

Cheap checks (the default) read only manifests, Parquet footers and file listings: every recorded
Parquet file and Zarr chunk is there with its recorded size, row counts agree with the records and
across stages (samples, landmarks and feature index shard by shard, the Zarr arrays' length), chunks
recorded as never written are still absent, the Zarr metadata opens. ``deep`` also reads every
byte: the CRC32C of each file and chunk against its record, and every Parquet page decoded. Each
problem names the stage, shard, array, chunk and rows it touches and the command that repairs it;
version drift since the store was built is a warning (a repair may then not reproduce the bytes).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from facerec.errors import FacerecError
from facerec.store.fs import Location, read_json, resolve, write_json_atomic
from facerec.store.integrity import crc32c, manifest_integrity, read_chunk_bytes
from facerec.store.layout import MANIFEST, StoreLayout
from facerec.store.provenance import version_drift
from facerec.store.table_check import file_problem, shard_of

log = logging.getLogger(__name__)

LAST_VERIFICATION = "_verify.json"
READ_THREADS = 8


@dataclass
class Problem:
    """One thing in the store that differs from what its stage recorded."""

    stage: str                          # samples | landmarks | features | identities
    name: str                           # the stage folder's name: samples, mediapipe, mediapipe-112, ...
    what: str
    repair: str
    shard: int | None = None
    file: str | None = None
    array: str | None = None
    chunk: str | None = None
    rows: list[int] | None = None       # first and last row, inclusive

    def line(self) -> str:
        where = [f"{self.stage}/{self.name}" if self.stage != "samples" else "samples"]
        if self.shard is not None:
            where.append(f"shard {self.shard}")
        if self.file:
            where.append(self.file)
        if self.array:
            where.append(f"array {self.array}")
        if self.chunk:
            where.append(f"chunk {self.chunk}")
        if self.rows:
            where.append(f"rows {self.rows[0]}-{self.rows[1]}")
        return f"{', '.join(where)}: {self.what}; repair: {self.repair}"


@dataclass
class VerifyReport:
    store: str
    deep: bool
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: int = 0                      # Parquet files checked
    chunks: int = 0                     # Zarr chunks checked
    bytes_read: int = 0                 # bytes checksummed (deep only)
    seconds: float = 0.0
    finished_at: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        kind = "deep (every byte checksummed)" if self.deep else "cheap (presence, sizes, counts; --deep reads every byte)"
        head = (f"verify {self.store}: {self.files} files and {self.chunks} chunks checked, {kind}, "
                f"{self.bytes_read / 1e6:.1f} MB read, {self.seconds:.1f} s")
        out = [head]
        out += [f"warning: {w}" for w in self.warnings]
        out += [f"problem: {p.line()}" for p in self.problems]
        out.append(f"{len(self.problems)} problems" if self.problems else "store OK: everything is as recorded")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


# ---------------------------------------------------------------------------------------------- helpers
def _ingest_command(store: str, manifest: dict | None) -> str:
    """The ingest command that rebuilds the samples table identically (from the recorded options)."""
    config = (manifest or {}).get("config", {})
    parts = [f"facerec ingest --source {config.get('source', 'SRC')} --store {store}"]
    for key in ("split", "seed", "shard_size", "limit_classes", "max_samples", "sample_prob", "image_column", "label_column"):
        if config.get(key) is not None:
            parts.append(f"--{key.replace('_', '-')} {config[key]}")
    if config.get("streaming"):
        parts.append("--streaming")
    return " ".join(parts) + " --overwrite"


def _sizes(folder: Location) -> dict[str, int]:
    """Relative path -> size of every file under ``folder`` (one listing, also on object stores)."""
    if not folder.exists():
        return {}
    base = folder.path.rstrip("/") + "/"
    found = folder.fs.find(folder.path, detail=True)
    return {p[len(base):] if p.startswith(base) else p: int(info.get("size") or 0) for p, info in found.items()}


class _Verifier:
    def __init__(self, store: str, deep: bool) -> None:
        self.layout = StoreLayout.at(store)
        self.store = self.layout.root.url
        self.report = VerifyReport(store=self.store, deep=deep)
        self.deep = deep
        self.repair = f"facerec repair --store {self.store}"
        self.sample_rows: dict[int, int] = {}          # shard -> rows, from the samples records
        self.samples_manifest: dict | None = None

    def problem(self, stage: str, name: str, what: str, repair: str | None = None, **where: Any) -> None:
        self.report.problems.append(Problem(stage, name, what, repair or self.repair, **where))

    # --- tables ------------------------------------------------------------------------------------
    def table_stage(self, stage: str, name: str, folder: Location, rerun: str) -> dict | None:
        """Check one stage folder of Parquet files; returns its integrity records (None: unusable)."""
        manifest_loc = StoreLayout.manifest(folder)
        if not manifest_loc.exists():
            self.problem(stage, name, f"the stage is not finished (no {MANIFEST})", rerun)
            return None
        try:
            manifest = read_json(manifest_loc)
            integrity = manifest_integrity(manifest)
        except (ValueError, FacerecError) as exc:
            self.problem(stage, name, f"{MANIFEST} cannot be read ({exc})", rerun)
            return None
        if stage == "samples":
            self.samples_manifest = manifest
        for package, then, now in version_drift(manifest.get("provenance")):
            self.report.warnings.append(
                f"{stage}/{name} was built with {package} {then}, this environment has {now}: "
                "a repair or rerun of this stage may not reproduce the same bytes")
        if integrity is None:
            self.report.warnings.append(f"{stage}/{name} predates integrity records: only presence and counts checked")
            return None
        records = integrity["files"]
        sizes = _sizes(folder)
        for file_name, record in sorted(records.items()):
            self.table_file(stage, name, folder, file_name, record["file"], sizes.get(file_name))
        stray = sorted(n for n in sizes if "/" not in n and n.endswith(".parquet") and n not in records)
        for file_name in stray:
            self.problem(stage, name, "is not a file this stage recorded (left by another build?)", shard=shard_of(file_name),
                         file=file_name)
        return records

    def table_file(self, stage: str, name: str, folder: Location, file_name: str, record: dict, size: int | None) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.report.files += 1
        where = {"shard": shard_of(file_name), "file": file_name}
        if size is None:
            self.problem(stage, name, f"is missing (recorded {record['bytes']} bytes, {record['rows']} rows)", **where)
            return
        if size != record["bytes"]:
            self.problem(stage, name, f"has {size} bytes, recorded {record['bytes']} (truncated or overwritten)", **where)
            return
        loc = folder.child(file_name)
        try:
            if self.deep:
                data = loc.fs.cat_file(loc.path)
                self.report.bytes_read += len(data)
                what = file_problem(data, record, deep=True)
                if what:
                    self.problem(stage, name, what, **where)
                    return
                rows = pq.read_table(pa.BufferReader(data)).num_rows     # every page decoded
            else:
                with loc.fs.open(loc.path, "rb") as fh:
                    rows = pq.ParquetFile(fh).metadata.num_rows            # the footer only
        except (pa.ArrowException, OSError) as exc:
            self.problem(stage, name, f"cannot be read as Parquet ({exc})", **where)
            return
        if rows != record["rows"]:
            self.problem(stage, name, f"holds {rows} rows, recorded {record['rows']}", **where)

    def rows_agree(self, stage: str, name: str, records: dict) -> None:
        """Shard by shard, a stage's rows must equal the samples' rows."""
        if not self.sample_rows:
            return
        mine = {shard_of(n): r["file"]["rows"] for n, r in records.items()}
        for shard, rows in sorted(self.sample_rows.items()):
            if shard not in mine:
                self.problem(stage, name, f"has no record of shard {shard} ({rows} sample rows)", shard=shard)
            elif mine[shard] != rows:
                self.problem(stage, name, f"recorded {mine[shard]} rows but samples shard {shard} has {rows}", shard=shard)

    # --- Zarr --------------------------------------------------------------------------------------
    def zarr_group(self, name: str, zloc: Location, records: dict) -> None:
        from facerec.store.feature_arrays import open_feature_group

        extractor, _, size = name.rpartition("-")
        rebuild = (f"facerec features --store {self.store} --extractor {extractor} --img-size {size} --overwrite "
                   f"&& facerec canonical --store {self.store} --extractor {extractor} --img-size {size}")
        try:
            group, layout = open_feature_group(zloc)
        except (FacerecError, ValueError, KeyError, OSError) as exc:
            self.problem("features", name, f"the Zarr group cannot be opened ({exc})", rebuild)
            return
        expected_rows = (self.samples_manifest or {}).get("num_rows")
        if expected_rows is not None and layout.num_rows != expected_rows:
            self.problem("features", name, f"arrays have {layout.num_rows} rows, samples {expected_rows}", rebuild)
        jobs = []
        for array_name in sorted(group.array_keys()):
            array = group[array_name]
            if int(array.shape[0]) != layout.num_rows:
                self.problem("features", name, f"has {array.shape[0]} rows, the layout says {layout.num_rows}", rebuild,
                             array=array_name)
            sizes = _sizes(zloc.child(array_name))
            rows_per_chunk = int(array.chunks[0])
            for file_name, record in sorted(records.items()):
                for entry in record.get("arrays", {}).get(array_name, ()):
                    jobs.append((array_name, zloc.child(array_name), sizes.get(entry["key"]), entry,
                                 shard_of(file_name), rows_per_chunk, layout.num_rows))
        self.report.chunks += len(jobs)
        if self.deep:
            with ThreadPoolExecutor(READ_THREADS) as pool:
                self.report.bytes_read += sum(pool.map(lambda job: self.chunk(name, *job), jobs))
        else:
            for job in jobs:
                self.chunk(name, *job)

    def chunk(self, name: str, array: str, array_loc: Location, size: int | None, entry: dict, shard: int | None,
              rows_per_chunk: int, num_rows: int) -> int:
        """Check one chunk against its record; returns the bytes read."""
        first = entry["chunk"] * rows_per_chunk
        where = {"shard": shard, "array": array, "chunk": entry["key"],
                 "rows": [first, min(first + rows_per_chunk, num_rows) - 1]}
        if entry["crc32c"] is None:
            if size is not None:
                self.problem("features", name, f"exists ({size} bytes) but was recorded as never written (all fill)", **where)
            return 0
        if size is None:
            self.problem("features", name, f"is missing (recorded {entry['bytes']} bytes); readers would get zeros", **where)
            return 0
        if size != entry["bytes"]:
            self.problem("features", name, f"has {size} bytes, recorded {entry['bytes']} (truncated or overwritten)", **where)
            return 0
        if not self.deep:
            return 0
        data = read_chunk_bytes(array_loc, entry["key"]) or b""
        found = f"{crc32c(data):08x}"
        if found != entry["crc32c"]:
            self.problem("features", name, f"fails its checksum (crc32c {found}, recorded {entry['crc32c']})", **where)
        return len(data)

    # --- the store ---------------------------------------------------------------------------------
    def run(self) -> VerifyReport:
        t0 = time.perf_counter()
        layout = self.layout
        if not layout.root.exists():
            raise FacerecError(f"no store at {self.store}: the folder does not exist")
        samples = self.table_stage("samples", "samples", layout.samples, _ingest_command(self.store, None))
        if samples is not None:
            self.sample_rows = {shard_of(n): r["file"]["rows"] for n, r in samples.items()}
            ingest = _ingest_command(self.store, self.samples_manifest)
            for p in self.report.problems:
                if p.stage == "samples":
                    p.repair = ingest
        for extractor in _entries(layout.root.child("landmarks")):
            folder = layout.landmarks(extractor)
            rerun = f"facerec landmarks --store {self.store} --extractor {extractor}"
            records = self.table_stage("landmarks", extractor, folder, rerun)
            if records is not None:
                self.rows_agree("landmarks", extractor, records)
        features = layout.root.child("features")
        for entry in _entries(features):
            if not entry.endswith(".zarr"):
                continue
            name = entry[: -len(".zarr")]
            extractor, _, size = name.rpartition("-")
            rerun = f"facerec features --store {self.store} --extractor {extractor} --img-size {size}"
            records = self.table_stage("features", name, features.child(f"{name}.index"), rerun)
            if records is not None:
                self.rows_agree("features", name, records)
                self.zarr_group(name, features.child(entry), records)
        for name in _entries(layout.root.child("identities")):
            extractor, _, size = name.rpartition("-")
            rerun = f"facerec canonical --store {self.store} --extractor {extractor} --img-size {size}"
            self.table_stage("identities", name, layout.root.child("identities", name), rerun)
        self.report.seconds = round(time.perf_counter() - t0, 3)
        self.report.finished_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return self.report


def _entries(loc: Location) -> list[str]:
    if not loc.exists():
        return []
    return sorted(p.rstrip("/").rpartition("/")[2] for p in loc.fs.ls(loc.path, detail=False)
                  if not p.rstrip("/").rpartition("/")[2].startswith((".", "_")))


def verify_store(store: str, deep: bool = False) -> VerifyReport:
    """Check ``store`` against its commit records (see the module docstring); never modifies it."""
    return _Verifier(store, deep).run()


def record_verification(report: VerifyReport) -> None:
    """Keep the outcome as ``STORE/_verify.json`` for ``facerec inspect``; a read-only copy is left alone."""
    summary = {k: v for k, v in report.to_dict().items() if k != "problems"}
    summary["problems"] = [p.line() for p in report.problems[:20]]
    summary["num_problems"] = len(report.problems)
    try:
        write_json_atomic(summary, resolve(report.store).child(LAST_VERIFICATION))
    except (FacerecError, OSError) as exc:
        log.warning("could not record the verification in the store (%s); it may be read-only", exc)


def last_verification(store: str) -> dict[str, Any] | None:
    """What the last ``facerec verify`` of ``store`` found, or None when it was never verified."""
    loc = resolve(store).child(LAST_VERIFICATION)
    return read_json(loc) if loc.exists() else None
