"""Landmark benchmark: the Spark landmarks stage against a plain ``multiprocessing.Pool`` on real LFW.

    python -m benchmarks.bench_landmarks --lfw ../shared/data/lfw [--dlib-images 2000] [--limit N] [--repeats 2]

Builds (or reuses) samples tables under ``runs/bench/landmarks/``: all 13,233 LFW images for MediaPipe, a
seeded random ~2,000 for dlib. For each extractor, in the same run and on the same samples table:
(a) the Spark stage ``run_landmarks`` with ``local[2]``, from the samples table to the written
    landmarks table (``overwrite``), timed from job submission to the manifest;
(b) a ``multiprocessing.Pool(2)`` loop: the parent reads the same encoded bytes from the same samples
    shards, two workers decode and call the same extractor through the same ``extract_landmarks_row``
    (results counted, not written).
Both include creating the workers and the extractors. The Spark session start-up and the first
(trivial) job, which starts the JVM's task machinery and the Python worker daemon, are timed apart.

Two measures, because a shared machine's load drifts between runs:
- wall images/s (what a user waits for), runs alternating a, b, b, a, ... (``--repeats`` pairs);
- CPU seconds per image summed over every process involved (Spark: driver, JVM, Python daemon and
  workers; pool: parent and workers), read from /proc: the overhead of Spark itself, independent of
  how busy the machine is.
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
_TICK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------- CPU accounting
def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, user+system CPU seconds of the process itself)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK)
    return table


def process_tree_cpu(root: int | None = None) -> dict[int, float]:
    """CPU seconds of ``root`` (default: this process) and of every live descendant."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, stack = {}, [root or os.getpid()]
    while stack:
        pid = stack.pop()
        if pid in table:
            out[pid] = table[pid][1]
        stack += children.get(pid, [])
    return out


def _cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


# ------------------------------------------------------------------------------------------- inputs
def samples_store(lfw: Path, work: Path, num_images: int | None, shard_size: int) -> Path:
    """A samples table of ``num_images`` LFW images (all when None); reused when already ingested."""
    store = work / f"lfw-{num_images or 'all'}-r{shard_size}"
    prob = 1.0 if num_images is None else min(1.0, 1.2 * num_images / LFW_IMAGES)
    config = IngestConfig(source=str(lfw / "lfw-deepfunneled"), store=str(store), max_samples=num_images,
                          sample_prob=prob, seed=0, shard_size=shard_size)
    result = run_ingest(config)
    log.info("samples %s: %d rows (%s)", store, result.rows_in, "reused" if result.skipped_stage else "ingested")
    return store


# ------------------------------------------------------------------------------------------- (b) pool
def _pool_row(args: tuple[str, dict[str, Any]]) -> str:
    from facerec.pipeline.extractors.base import get_extractor
    from facerec.geometry.landmark_sets import landmark_set

    name, sample = args
    return extract_landmarks_row(get_extractor(name), landmark_set(name), sample)["status"]


def run_pool(store: Path, extractor: str, workers: int = WORKERS) -> dict[str, Any]:
    """Same rows, same row function, a plain process pool; returns images, seconds, CPU, statuses."""
    samples = StoreLayout.at(str(store)).samples
    num_shards = int(StoreLayout.read_manifest(samples)["num_shards"])
    columns = ["sample_id", "shard", "position", "image", "status", "error"]
    statuses: Counter = Counter()
    own = os.times()
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(workers) as pool:   # spawned workers are our children: CPU readable
        for shard in range(num_shards):
            rows = read_samples_shard(samples, shard, columns).to_pylist()
            for status in pool.imap_unordered(_pool_row, ((extractor, r) for r in rows), chunksize=16):
                statuses[status] += 1
        seconds = time.perf_counter() - start
        table = _proc_table()   # the parent and the pool workers, not the idle Spark JVM beside them
        workers_cpu = sum(table[p.pid][1] for p in mp.active_children() if p.pid in table)
        cpu = workers_cpu + (os.times().user - own.user) + (os.times().system - own.system)
    return {"images": sum(statuses.values()), "seconds": seconds, "cpu_seconds": cpu, "statuses": dict(statuses)}


# ------------------------------------------------------------------------------------------- (a) spark
def _noop(shard: int) -> dict[str, Any]:
    return {"rows_in": 0, "ok": 0, "rejected": {}}


def start_spark(master: str) -> tuple[Any, float, float]:
    """(session, start-up seconds, first trivial job seconds)."""
    from facerec.pipeline.spark import run_shards, spark_session

    t0 = time.perf_counter()
    spark = spark_session(master, app_name="bench-landmarks")
    startup = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_shards(spark, list(range(WORKERS)), _noop, description="warm-up")
    return spark, startup, time.perf_counter() - t0


def run_spark(spark: Any, store: Path, extractor: str) -> dict[str, Any]:
    before = process_tree_cpu()            # the driver, its JVM, the Python daemon and its workers
    start = time.perf_counter()
    result = run_landmarks(LandmarksConfig(store=str(store), extractor=extractor, overwrite=True), spark=spark)
    seconds = time.perf_counter() - start
    cpu = _cpu_delta(before, process_tree_cpu())
    return {"images": result.rows_in, "seconds": seconds, "cpu_seconds": cpu,
            "statuses": {"ok": result.ok, **result.rejected}, "shards": result.shards_done}


# ------------------------------------------------------------------------------------------- main
def _compare(spark: Any, store: Path, name: str, repeats: int, shard_size: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"spark": [], "pool": []}
    order = [("spark", "pool") if i % 2 == 0 else ("pool", "spark") for i in range(repeats)]
    for pair in order:
        for kind in pair:
            load = os.getloadavg()[0]
            run = run_spark(spark, store, name) if kind == "spark" else run_pool(store, name)
            run.update(load_average_1min_before=round(load, 2), images_per_s=round(run["images"] / run["seconds"], 2),
                       cpu_ms_per_image=round(1000 * run["cpu_seconds"] / run["images"], 2))
            log.info("%s %s: %d images in %.1f s (%.1f/s), %.1f ms CPU per image, load %.1f", name, kind,
                     run["images"], run["seconds"], run["images_per_s"], run["cpu_ms_per_image"], load)
            runs[kind].append(run)
    spark_s = sum(r["seconds"] for r in runs["spark"])
    pool_s = sum(r["seconds"] for r in runs["pool"])
    spark_cpu = sum(r["cpu_seconds"] for r in runs["spark"])
    pool_cpu = sum(r["cpu_seconds"] for r in runs["pool"])
    images = runs["spark"][0]["images"]
    return {
        "images": images, "shard_size": shard_size, "shards": runs["spark"][0]["shards"], "repeats": repeats,
        "spark_images_per_s": round(images * repeats / spark_s, 2),
        "pool_images_per_s": round(images * repeats / pool_s, 2),
        "spark_over_pool": round(pool_s / spark_s, 3),
        "spark_cpu_ms_per_image": round(1000 * spark_cpu / (images * repeats), 2),
        "pool_cpu_ms_per_image": round(1000 * pool_cpu / (images * repeats), 2),
        "spark_over_pool_cpu_efficiency": round(pool_cpu / spark_cpu, 3),
        "statuses": runs["spark"][0]["statuses"],
        "runs": runs,
    }


def bench(lfw: Path, work: Path, dlib_images: int, limit: int | None, shard_size: int, master: str,
          repeats: int) -> dict[str, Any]:
    plans = [("mediapipe", limit), ("dlib", min(dlib_images, limit) if limit else dlib_images)]
    stores = {name: samples_store(lfw, work, n, shard_size) for name, n in plans}
    spark, startup, warmup = start_spark(master)
    log.info("spark session %.1f s, first job %.1f s", startup, warmup)
    results = {name: _compare(spark, stores[name], name, repeats, shard_size) for name, _ in plans}
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
    parser.add_argument("--repeats", type=int, default=1, help="pairs of runs, alternating spark/pool order")
    parser.add_argument("--shard-size", type=int, default=1024, help="rows per shard of the samples tables")
    parser.add_argument("--work", type=Path, default=Path("runs/bench/landmarks"), help="where samples tables live")
    parser.add_argument("--master", default=f"local[{WORKERS}]")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not (args.lfw / "lfw-deepfunneled").is_dir():
        raise SystemExit(f"no LFW images at {args.lfw / 'lfw-deepfunneled'}")
    result = bench(args.lfw.resolve(), args.work, args.dlib_images, args.limit, args.shard_size, args.master,
                   args.repeats)
    path = write_result("landmarks", result)
    columns = {"images": "images", "spark_images_per_s": "spark img/s", "pool_images_per_s": "pool img/s",
               "spark_over_pool": "ratio", "spark_cpu_ms_per_image": "spark CPU ms/img",
               "pool_cpu_ms_per_image": "pool CPU ms/img", "spark_over_pool_cpu_efficiency": "CPU ratio"}
    rows = [{"extractor": name, **{label: r[key] for key, label in columns.items()}}
            for name, r in result["extractors"].items()]
    print_table(f"landmarks: Spark {result['master']} vs Pool({WORKERS}); session start "
                f"{result['spark_session_startup_s']} s, first job {result['spark_first_job_s']} s", rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
