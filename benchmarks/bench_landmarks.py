"""Landmark benchmark: the Spark landmarks stage against a plain ``multiprocessing.Pool`` on real LFW.

    python -m benchmarks.bench_landmarks --lfw ../shared/data/lfw [--dlib-images 2000] [--limit N]

Builds (or reuses) samples tables under ``runs/bench/``: all 13,233 LFW images for MediaPipe, a seeded
random ~2,000 for dlib. For each extractor, in the same run and on the same samples table:
(a) the Spark stage ``run_landmarks`` with ``local[2]``, from the samples table to the written
    landmarks table (``overwrite``), timed from job submission to the manifest;
(b) a ``multiprocessing.Pool(2)`` loop: the parent reads the same encoded bytes from the same samples
    shards, two workers decode and call the same extractor through the same ``extract_landmarks_row``
    (results counted, not written).
Both include creating the workers and the extractors. The Spark session start-up and the first
(trivial) job, which starts the JVM's task machinery and the Python worker daemon, are timed apart.
Writes ``benchmarks/results/landmarks.json`` and prints a table; target: Spark >= 0.8 of the pool.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from facerec.pipeline.ingest import IngestConfig, run_ingest
from facerec.pipeline.landmark_stage import LandmarksConfig, extract_landmarks_row, read_samples_shard, run_landmarks
from facerec.store.layout import StoreLayout

log = logging.getLogger("bench_landmarks")

WORKERS = 2
LFW_IMAGES = 13_233


# ------------------------------------------------------------------------------------------- inputs
def samples_store(lfw: Path, work: Path, num_images: int | None, shard_size: int) -> Path:
    """A samples table of ``num_images`` LFW images (all when None); reused when already ingested."""
    name = f"lfw-{num_images or 'all'}-r{shard_size}"
    store = work / name
    prob = 1.0 if num_images is None else min(1.0, 1.2 * num_images / LFW_IMAGES)
    config = IngestConfig(source=str(lfw / "lfw-deepfunneled"), store=str(store), max_samples=num_images,
                          sample_prob=prob, seed=0, shard_size=shard_size)
    result = run_ingest(config)
    log.info("samples %s: %d rows (%s)", store, result.rows_in, "reused" if result.skipped_stage else "ingested")
    return store


# ------------------------------------------------------------------------------------------- (b) pool
def _pool_row(args: tuple[str, dict[str, Any]]) -> str:
    from facerec.pipeline.extractors.base import get_extractor
    from facerec.pipeline.landmark_sets import landmark_set

    name, sample = args
    return extract_landmarks_row(get_extractor(name), landmark_set(name), sample)["status"]


def run_pool(store: Path, extractor: str, workers: int = WORKERS) -> dict[str, Any]:
    """Same rows, same row function, a plain process pool; returns images, seconds, statuses."""
    samples = StoreLayout.at(str(store)).samples
    num_shards = int(StoreLayout.read_manifest(samples)["num_shards"])
    columns = ["sample_id", "shard", "position", "image", "status", "error"]
    start = time.perf_counter()
    statuses: Counter = Counter()
    ctx = mp.get_context("forkserver")
    with ctx.Pool(workers) as pool:
        for shard in range(num_shards):
            rows = read_samples_shard(samples, shard, columns).to_pylist()
            for status in pool.imap_unordered(_pool_row, ((extractor, r) for r in rows), chunksize=16):
                statuses[status] += 1
    seconds = time.perf_counter() - start
    return {"images": sum(statuses.values()), "seconds": seconds, "statuses": dict(statuses)}


# ------------------------------------------------------------------------------------------- (a) spark
def start_spark(master: str) -> tuple[Any, float, float]:
    """(session, start-up seconds, first trivial job seconds)."""
    from facerec.pipeline.spark import run_shards, spark_session

    t0 = time.perf_counter()
    spark = spark_session(master, app_name="bench-landmarks")
    startup = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_shards(spark, list(range(WORKERS)), _noop, description="warm-up")
    return spark, startup, time.perf_counter() - t0


def _noop(shard: int) -> dict[str, Any]:
    return {"rows_in": 0, "ok": 0, "rejected": {}}


def run_spark(spark: Any, store: Path, extractor: str) -> dict[str, Any]:
    start = time.perf_counter()
    result = run_landmarks(LandmarksConfig(store=str(store), extractor=extractor, overwrite=True), spark=spark)
    seconds = time.perf_counter() - start
    return {"images": result.rows_in, "seconds": seconds, "statuses": {"ok": result.ok, **result.rejected},
            "shards": result.shards_done}


# ------------------------------------------------------------------------------------------- main
def bench(lfw: Path, work: Path, dlib_images: int, limit: int | None, shard_size: int, master: str) -> dict[str, Any]:
    plans = [("mediapipe", limit), ("dlib", min(dlib_images, limit) if limit else dlib_images)]
    stores = {name: samples_store(lfw, work, n, shard_size) for name, n in plans}
    spark, startup, warmup = start_spark(master)
    log.info("spark session %.1f s, first job %.1f s", startup, warmup)
    results = {}
    for name, _ in plans:
        load_before = os.getloadavg()[0]
        spark_run = run_spark(spark, stores[name], name)
        log.info("%s spark: %d images in %.1f s", name, spark_run["images"], spark_run["seconds"])
        pool_run = run_pool(stores[name], name)
        log.info("%s pool: %d images in %.1f s", name, pool_run["images"], pool_run["seconds"])
        sips = spark_run["images"] / spark_run["seconds"]
        pips = pool_run["images"] / pool_run["seconds"]
        results[name] = {
            "images": spark_run["images"], "shards": spark_run["shards"], "shard_size": shard_size,
            "spark_seconds": round(spark_run["seconds"], 2), "pool_seconds": round(pool_run["seconds"], 2),
            "spark_images_per_s": round(sips, 2), "pool_images_per_s": round(pips, 2),
            "spark_over_pool": round(sips / pips, 3),
            "spark_statuses": spark_run["statuses"], "pool_statuses": pool_run["statuses"],
            "load_average_1min_before": round(load_before, 2), "load_average_1min_after": round(os.getloadavg()[0], 2),
        }
    return {
        "master": master, "workers": WORKERS,
        "spark_session_startup_s": round(startup, 2), "spark_first_job_s": round(warmup, 2),
        "target_spark_over_pool": 0.8, "extractors": results,
    }


def main(argv: list[str] | None = None) -> None:
    from benchmarks.common import print_table, write_result

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw", type=Path, required=True, help="LFW folder holding lfw-deepfunneled/")
    parser.add_argument("--dlib-images", type=int, default=2000, help="images for the dlib run")
    parser.add_argument("--limit", type=int, default=None, help="cap the MediaPipe run (and dlib) at N images")
    parser.add_argument("--shard-size", type=int, default=1024, help="rows per shard of the samples tables")
    parser.add_argument("--work", type=Path, default=Path("runs/bench/landmarks"), help="where samples tables live")
    parser.add_argument("--master", default=f"local[{WORKERS}]")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not (args.lfw / "lfw-deepfunneled").is_dir():
        raise SystemExit(f"no LFW images at {args.lfw / 'lfw-deepfunneled'}")
    result = bench(args.lfw.resolve(), args.work, args.dlib_images, args.limit, args.shard_size, args.master)
    path = write_result("landmarks", result)
    rows = [{"extractor": name, **{k: r[k] for k in ("images", "spark_images_per_s", "pool_images_per_s", "spark_over_pool")}}
            for name, r in result["extractors"].items()]
    print_table(f"landmarks: Spark {result['master']} vs Pool({WORKERS}); session start "
                f"{result['spark_session_startup_s']} s, first job {result['spark_first_job_s']} s", rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
