"""``facerec repair``: recompute exactly the shards ``facerec verify`` found damaged; leave the rest alone.

A repair reuses each stage's resume path: it removes the damaged shards' committed files (and their
commit records) and the stage's ``_manifest.json``, then reruns the stage, which computes only the
shards without a committed file, from the stage's inputs, and writes its manifest again. Stages run
in dependency order (landmarks, features, canonical). Every stage is deterministic, so a repaired
store is byte-identical to a clean build (tested), and undamaged shards are never rewritten.

Damage to the samples table is not repaired here: samples come from the source, outside the store.
The repair stops and names the ingest command that rebuilds it (ingest is deterministic, so the
later stages stay valid), after which ``facerec repair`` finishes the rest. A feature group whose
Zarr metadata is unreadable needs the features stage rebuilt with ``--overwrite``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from facerec.errors import DamagedStoreError
from facerec.pipeline.report import StageResult
from facerec.store.fs import Location
from facerec.store.integrity import record_location
from facerec.store.integrity_report import stage_folders
from facerec.store.layout import StoreLayout, shard_file
from facerec.store.verify import Problem, VerifyReport, verify_store

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

STAGE_ORDER = ("landmarks", "features", "identities")


@dataclass
class RepairResult:
    before: VerifyReport
    after: VerifyReport | None = None
    shards: dict[str, list[int]] = field(default_factory=dict)     # "features/mediapipe-112" -> shards recomputed
    results: list[StageResult] = field(default_factory=list)

    def lines(self) -> list[str]:
        if self.before.ok:
            return ["repair: nothing to do, the store is as recorded"]
        out = [f"repair: {len(self.before.problems)} problems found"]
        out += [f"  {stage}: recomputed shards {shards or 'none (stage rerun)'}" for stage, shards in self.shards.items()]
        if self.after is not None:
            out.append("  verified after repair: " + ("store OK" if self.after.ok else f"{len(self.after.problems)} problems left"))
        return out


def _damage(report: VerifyReport) -> dict[tuple[str, str], list[Problem]]:
    by_stage: dict[tuple[str, str], list[Problem]] = defaultdict(list)
    for problem in report.problems:
        by_stage[(problem.stage, problem.name)].append(problem)
    return by_stage


def _invalidate(folder: Location, shards: set[int], extra_files: set[str]) -> None:
    """Remove the committed files and records of ``shards`` (and ``extra_files``) and the stage manifest.

    Commit records a copy left out (``_commits/``) are put back from the manifests before this
    (``repair_store``), so the rerun stage can finish with every file recorded.
    """
    names = {shard_file(s) for s in shards} | extra_files
    for name in sorted(names):
        for loc in (folder.child(name), record_location(folder.child(name))):
            if loc.exists():
                loc.fs.rm(loc.path)
    manifest = StoreLayout.manifest(folder)
    if manifest.exists():
        manifest.fs.rm(manifest.path)


def _restore_records(folder: Location, damaged: set[str]) -> None:
    from facerec.store.fs import read_json, write_json_atomic
    from facerec.store.integrity import manifest_integrity

    manifest = StoreLayout.manifest(folder)
    try:
        section = manifest_integrity(read_json(manifest)) if manifest.exists() else None
    except ValueError:
        section = None
    for name, record in ((section or {}).get("files") or {}).items():
        loc = record_location(folder.child(name))
        if name not in damaged and not loc.exists():
            write_json_atomic(record, loc)


def _remove_shard_chunks(zloc: Location, group, shard_size: int, shards: set[int]) -> None:
    """Delete every chunk file of the shards' rows: Zarr skips writing an all-fill chunk and would
    leave a stray file in its place, which the recomputed shard's record would then bless."""
    from facerec.store.integrity import chunk_key

    for name in group.array_keys():
        array = group[name]
        rows_per_chunk, total = int(array.chunks[0]), int(array.shape[0])
        for shard in shards:
            start, stop = shard * shard_size, min((shard + 1) * shard_size, total)
            for chunk in range(start // rows_per_chunk, -(-stop // rows_per_chunk)):
                loc = zloc.child(name, chunk_key(array, chunk))
                if loc.exists():
                    loc.fs.rm(loc.path)


def _shards_and_files(problems: list[Problem]) -> tuple[set[int], set[str]]:
    shards = {p.shard for p in problems if p.shard is not None}
    files = {p.file for p in problems if p.file and p.shard is None}
    return shards, files


def _refuse_samples(problems: list[Problem]) -> None:
    first = problems[0]
    raise DamagedStoreError(
        f"the samples table is damaged ({len(problems)} problems, first: {first.line()}); samples come from the "
        f"source, so rebuild them first with `{first.repair}` (deterministic: the later stages stay valid), "
        "then run `facerec repair` again",
        where={"stage": "samples", "shard": first.shard}, repair=first.repair)


def repair_store(store: str, *, deep: bool = True, spark: "SparkSession | None" = None,
                 on_result: Callable[[StageResult], None] | None = None) -> RepairResult:
    """Verify ``store`` (``deep`` by default), recompute the damaged shards stage by stage, verify again."""
    from facerec.pipeline.canonical import CanonicalConfig, run_canonical
    from facerec.pipeline.feature_stage import FeaturesConfig, run_features
    from facerec.pipeline.landmark_stage import LandmarksConfig, run_landmarks
    from facerec.store.feature_arrays import open_feature_group
    from facerec.store.fs import read_json

    report = verify_store(store, deep=deep)
    result = RepairResult(before=report)
    if report.ok:
        return result
    damage = _damage(report)
    if ("samples", "samples") in damage:
        _refuse_samples(damage[("samples", "samples")])
    layout = StoreLayout.at(store)
    for _, folder in stage_folders(layout):     # a copy that left out _commits/: the manifests hold them all
        _restore_records(folder, set())
    for stage in STAGE_ORDER:
        for (kind, name), problems in sorted(damage.items()):
            if kind != stage:
                continue
            shards, files = _shards_and_files(problems)
            if stage == "landmarks":
                folder = layout.landmarks(name)
                _invalidate(folder, shards, files)
                run = run_landmarks(LandmarksConfig(store=store, extractor=name), spark)
            elif stage == "features":
                zloc = layout.root.child("features", f"{name}.zarr")
                try:
                    group, fl = open_feature_group(zloc)
                except Exception as exc:  # noqa: BLE001 - an unreadable group cannot be repaired shard by shard
                    raise DamagedStoreError(f"{zloc}: the Zarr group cannot be opened ({exc}); rebuild it with "
                                            f"`{problems[0].repair}`", repair=problems[0].repair) from exc
                folder = layout.features_index(fl.extractor, fl.img_size)
                _invalidate(folder, shards, files)
                _remove_shard_chunks(zloc, group, fl.shard_size, shards)
                run = run_features(FeaturesConfig(
                    store=store, extractor=fl.extractor, img_size=fl.img_size, sigma=fl.sigma,
                    heatmap_dtype=fl.heatmap_dtype, compressor=fl.compressor, compression_level=fl.compression_level), spark)
            else:
                folder = layout.root.child("identities", name)
                manifest = StoreLayout.manifest(folder)
                k = int(read_json(manifest).get("config", {}).get("k", 5)) if manifest.exists() else 5
                extractor, _, size = name.rpartition("-")
                if folder.exists():
                    folder.fs.rm(folder.path, recursive=True)
                run = run_canonical(CanonicalConfig(store=store, extractor=extractor, img_size=int(size), k=k), spark)
            result.shards[f"{stage}/{name}"] = sorted(shards)
            result.results.append(run)
            if on_result is not None:
                on_result(run)
            log.info("repair: %s/%s recomputed shards %s", stage, name, sorted(shards))
    result.after = verify_store(store, deep=deep)
    return result
