"""The bare work a stage wraps, in a warm ``multiprocessing.Pool``: what a stage is measured against.

- landmarks: decode + the extractor alone (``decode_rgb`` then ``extractor.extract``; no pose, no
  row dicts, no Parquet), over encoded bytes already in RAM;
- features: the stage's pure per-face function (``feature_stage._row_features``: decode, align,
  heatmaps, mask), over bytes and landmark rows already in RAM, results dropped.

The pool is started and its extractors created before the clock starts ("warm"), so the figure is
the work itself on ``workers`` processes; the stage's own costs (reading and writing shards, Spark
scheduling, worker start) are what the ratio stage / bare shows.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

from benchmarks.common import proc_stat

_STATE: dict[str, Any] = {}


def _init_landmarks(extractor: str) -> None:
    from facerec.pipeline.extractors.base import get_extractor

    _STATE["extractor"] = get_extractor(extractor)


def _landmarks(data: bytes) -> bool:
    from facerec.pipeline.decode import decode_rgb

    return _STATE["extractor"].extract(decode_rgb(data)) is not None


def _init_features(extractor: str, layout: Any) -> None:
    from facerec.geometry.landmark_sets import landmark_set

    _STATE["lset"] = landmark_set(extractor)
    _STATE["layout"] = layout


def _features(args: tuple[dict, dict | None]) -> str:
    from facerec.pipeline.feature_stage import _row_features

    sample, lm = args
    return _row_features(sample, lm, _STATE["lset"], _STATE["layout"])[0]


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes, from /proc."""
    return sum(stat.cpu_seconds for stat in map(proc_stat, pids) if stat is not None)


def _timed_map(pool: Any, fn: Any, items: list[Any], warm: list[Any]) -> tuple[list[Any], float, float]:
    """(results, wall seconds, CPU seconds of the pool's workers) of ``pool.map`` after a warm-up map."""
    pool.map(fn, warm, chunksize=1)                      # every worker imports and initialises first
    pids = [p.pid for p in pool._pool]
    cpu0, start = _cpu_seconds(pids), time.perf_counter()
    out = pool.map(fn, items, chunksize=8)
    return out, time.perf_counter() - start, _cpu_seconds(pids) - cpu0


def ok_image_bytes(store: Path, limit: int | None = None) -> list[bytes]:
    """Encoded bytes of every ``ok`` sample of a store's samples table (the first ``limit``), in RAM."""
    from facerec.pipeline.landmark_stage import read_samples_shard
    from facerec.store.layout import StoreLayout

    samples = StoreLayout.at(str(store)).samples
    shards = int(StoreLayout.read_manifest(samples)["num_shards"])
    out = []
    for shard in range(shards):
        table = read_samples_shard(samples, shard, ["image", "status"])
        out += [r["image"] for r in table.to_pylist() if r["status"] == "ok"]
        if limit is not None and len(out) >= limit:
            return out[:limit]
    return out


def bare_landmarks(store: Path, extractor: str, workers: int = 2) -> dict[str, Any]:
    """Decode + extractor over the store's ok images in a warm Pool(workers); images/s."""
    images = ok_image_bytes(store)
    with mp.get_context("spawn").Pool(workers, initializer=_init_landmarks, initargs=(extractor,)) as pool:
        found, seconds, cpu = _timed_map(pool, _landmarks, images, images[:workers * 2])
    return {"images": len(images), "seconds": round(seconds, 2), "images_per_s": round(len(images) / seconds, 2),
            "cpu_seconds": round(cpu, 2), "faces": int(sum(found))}


def feature_inputs(store: Path, extractor: str) -> list[tuple[dict, dict | None]]:
    """(sample row, landmarks row) pairs of every sample, as the features stage joins them, in RAM."""
    from facerec.pipeline import feature_stage as fst
    from facerec.pipeline.landmark_stage import read_samples_shard
    from facerec.schemas import tables
    from facerec.store.layout import StoreLayout, shard_file

    layout = StoreLayout.at(str(store))
    shards = int(StoreLayout.read_manifest(layout.samples)["num_shards"])
    pairs = []
    for shard in range(shards):
        samples = read_samples_shard(layout.samples, shard, fst._SAMPLE_COLUMNS)
        landmarks = fst.read_shard_table(layout.landmarks(extractor).child(shard_file(shard)), tables.LANDMARKS,
                                         fst._LANDMARK_COLUMNS)
        rows, joined = fst._join(samples, landmarks, f"shard {shard}")
        pairs += list(zip(rows, joined))
    return pairs


def bare_features(store: Path, extractor: str, img_size: int = 112, workers: int = 2) -> dict[str, Any]:
    """The per-face features work over every sample in a warm Pool(workers); faces/s."""
    from facerec.pipeline.feature_stage import FeaturesConfig, plan_layout
    from facerec.store.layout import StoreLayout

    layout = plan_layout(FeaturesConfig(store=str(store), extractor=extractor, img_size=img_size),
                         StoreLayout.at(str(store)))
    pairs = feature_inputs(store, extractor)
    with mp.get_context("spawn").Pool(workers, initializer=_init_features, initargs=(extractor, layout)) as pool:
        statuses, seconds, cpu = _timed_map(pool, _features, pairs, pairs[:workers * 2])
    return {"images": len(pairs), "seconds": round(seconds, 2), "images_per_s": round(len(pairs) / seconds, 2),
            "cpu_seconds": round(cpu, 2), "valid": sum(s == "ok" for s in statuses)}
