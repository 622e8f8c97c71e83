"""Stages against their bare work, in one run: landmarks, features and ingest on real LFW.

    python -m benchmarks.bench_landmarks --lfw ../shared/data/lfw [--limit N] [--dlib-images 500] [--repeats 1]

Samples tables under ``runs/bench/landmarks/`` (all 13,233 LFW images for MediaPipe unless ``--limit``,
a seeded ~``--dlib-images`` for dlib). On one warm Spark session (``local[2]``), alternating the arms
(stage, bare, bare, stage, ...) because a shared machine's load drifts:
- **landmarks**: the Spark stage ``run_landmarks`` (samples table to written landmarks table) against
  the bare extractor: decode + Face Mesh (or dlib) in a warm ``Pool(2)`` over the same bytes held in
  RAM (``benchmarks/bare_work.py``); target stage/bare >= 0.85. The stage's own timing split (task
  seconds in read / extract / write, extractor start) says where the rest goes.
- **features**: the Spark stage ``run_features`` against its per-face work (decode, align, heatmaps,
  mask) in a warm ``Pool(2)`` over the same inputs in RAM.
- **ingest**: Spark ingest against driver ingest on all of LFW packed as Parquet
  (``benchmarks/ingest_compare.py``): rows/s of each, target Spark >= 1.6x, byte-identical tables.
Both arms are warm: the bare pool maps a few images before its clock starts, and the stage's Python
workers first run an untimed job that imports the stages and creates the extractor (``WarmWorker``;
its seconds, the stage's cold start, are recorded as ``stage_warm_up_s``).
CPU seconds per image of the Spark stage are summed over every process (driver, JVM, Python workers).
The Spark session start-up and its first trivial job are timed apart. ``uptime`` is recorded before
and after. Writes ``benchmarks/results/landmarks.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import proc_stats, process_tree
from facerec.pipeline.ingest import IngestConfig, run_ingest
from facerec.pipeline.landmark_stage import LandmarksConfig, run_landmarks

log = logging.getLogger("bench_landmarks")

WORKERS = 2
LFW_IMAGES = 13_233


# ------------------------------------------------------------------------------------------- CPU accounting
def process_tree_cpu(root: int | None = None) -> dict[int, tuple[float, str]]:
    """(CPU seconds, kind) of ``root`` (default: this process) and of every live descendant.

    kind: ``driver`` (root), ``jvm`` (java) or ``python_workers`` (the PySpark daemon and its workers).
    """
    stats = proc_stats()
    root = root or os.getpid()
    return {pid: (stats[pid].cpu_seconds, "driver" if pid == root else "jvm" if stats[pid].name == "java"
                  else "python_workers") for pid in process_tree(root, stats)}


def _cpu_by_kind(before: dict[int, tuple[float, str]], after: dict[int, tuple[float, str]]) -> dict[str, float]:
    """CPU seconds spent between two snapshots, by kind of process (where the stage's overhead goes)."""
    out: dict[str, float] = {}
    for pid, (cpu, kind) in after.items():
        out[kind] = round(out.get(kind, 0.0) + cpu - before.get(pid, (0.0, kind))[0], 2)
    return out


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


# ------------------------------------------------------------------------------------------- (a) spark
def _noop(shard: int) -> dict[str, Any]:
    return {"rows_in": 0, "ok": 0, "rejected": {}}


@dataclass(frozen=True)
class WarmWorker:
    """Untimed, like the bare pool's warm-up: import the stages and run ``extractor`` on real faces.

    The faces matter: on an image without one, Face Mesh never runs its landmark model, which then
    initialises inside the first timed task instead (the bare pool warms on real images too).
    """

    extractor: str
    images: tuple[bytes, ...]

    def __call__(self, item: int) -> dict[str, Any]:
        import facerec.pipeline.feature_stage  # noqa: F401 - the import is the warm-up
        import facerec.pipeline.landmark_stage  # noqa: F401
        from facerec.pipeline.decode import decode_rgb
        from facerec.pipeline.extractors.base import get_extractor

        extractor = get_extractor(self.extractor)
        for data in self.images:
            extractor.extract(decode_rgb(data))
        return {"pid": os.getpid()}


def warm_workers(spark: Any, store: Path, extractor: str) -> float:
    """Seconds of one untimed job that warms every Python worker (the stage's cold start, reported)."""
    from benchmarks.bare_work import ok_image_bytes
    from facerec.pipeline.spark import run_shards

    images = tuple(ok_image_bytes(store, limit=2))
    start = time.perf_counter()
    pids = {s["pid"] for s in run_shards(spark, list(range(WORKERS)), WarmWorker(extractor, images),
                                         description=f"warm {extractor}")}
    if len(pids) < WORKERS:
        log.warning("warm-up of %s ran in %d Python worker(s) of %d", extractor, len(pids), WORKERS)
    return time.perf_counter() - start


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
    after = process_tree_cpu()
    by_kind = _cpu_by_kind(before, after)
    return {"images": result.rows_in, "seconds": seconds, "cpu_seconds": round(sum(by_kind.values()), 2),
            "cpu_seconds_by_process": by_kind, "python_processes_started": len(set(after) - set(before)),
            "statuses": {"ok": result.ok, **result.rejected}, "shards": result.shards_done,
            "timings": result.extra.get("timings")}


# ------------------------------------------------------------------------------------------- main
def run_features_stage(spark: Any, store: Path, extractor: str) -> dict[str, Any]:
    from facerec.pipeline.feature_stage import FeaturesConfig, run_features

    before = process_tree_cpu()
    start = time.perf_counter()
    result = run_features(FeaturesConfig(store=str(store), extractor=extractor, overwrite=True), spark=spark)
    seconds = time.perf_counter() - start
    by_kind = _cpu_by_kind(before, process_tree_cpu())
    return {"images": result.rows_in, "seconds": seconds, "cpu_seconds": round(sum(by_kind.values()), 2),
            "cpu_seconds_by_process": by_kind, "valid": result.ok, "timings": result.extra.get("timings")}


def _alternate(name: str, arms: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Run the two arms alternating (stage, bare, bare, stage, ...); returns their runs and the ratio."""
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in arms}
    first, second = list(arms)
    for i in range(repeats):
        for kind in ((first, second) if i % 2 == 0 else (second, first)):
            load = os.getloadavg()[0]
            run = arms[kind]()
            run.update(load_average_1min_before=round(load, 2),
                       images_per_s=round(run["images"] / run["seconds"], 2))
            log.info("%s %s: %d images in %.1f s (%.1f/s), load %.1f", name, kind, run["images"], run["seconds"],
                     run["images_per_s"], load)
            runs[kind].append(run)
    secs = {k: sum(r["seconds"] for r in v) for k, v in runs.items()}
    images = {k: sum(r["images"] for r in v) for k, v in runs.items()}
    rates = {k: round(images[k] / secs[k], 2) for k in runs}
    cpu = {k: round(1000 * sum(r.get("cpu_seconds", 0.0) for r in v) / images[k], 2) for k, v in runs.items()}
    return {"runs": runs, **{f"{k}_images_per_s": v for k, v in rates.items()},
            **{f"{k}_cpu_ms_per_image": v for k, v in cpu.items()},
            "stage_over_bare": round(rates[first] / rates[second], 3),
            "stage_over_bare_cpu": round(cpu[second] / cpu[first], 3) if cpu[first] else None}


def bench(lfw: Path, work: Path, dlib_images: int, limit: int | None, shard_size: int, master: str,
          repeats: int, parts: set[str]) -> dict[str, Any]:
    from benchmarks.bare_work import bare_features, bare_landmarks
    from benchmarks.ingest_compare import compare_ingest

    plans = [p for p in [("mediapipe", limit), ("dlib", min(dlib_images, limit) if limit else dlib_images)]
             if p[0] in parts]
    stores = {name: samples_store(lfw, work, n, shard_size) for name, n in plans}
    spark, startup, warmup = start_spark(master)
    log.info("spark session %.1f s, first job %.1f s", startup, warmup)
    out: dict[str, Any] = {"master": master, "workers": WORKERS, "spark_session_startup_s": round(startup, 2),
                           "spark_first_job_s": round(warmup, 2), "target_stage_over_bare": 0.85, "extractors": {}}
    for name, _ in plans:
        store = stores[name]
        warm = warm_workers(spark, store, name)
        out["extractors"][name] = _alternate(f"landmarks {name}", {
            "stage": lambda: run_spark(spark, store, name),
            "bare": lambda: bare_landmarks(store, name, WORKERS)}, repeats)
        out["extractors"][name]["stage_warm_up_s"] = round(warm, 2)
    if "features" in parts and "mediapipe" in stores:
        store = stores["mediapipe"]
        out["features"] = _alternate("features mediapipe", {
            "stage": lambda: run_features_stage(spark, store, "mediapipe"),
            "bare": lambda: bare_features(store, "mediapipe", 112, WORKERS)}, repeats)
    if "ingest" in parts:
        out["ingest"] = compare_ingest(spark, lfw, work, max(repeats, 1), master)
    return out


def main(argv: list[str] | None = None) -> None:
    import subprocess

    from benchmarks.common import print_table, write_result
    from facerec.console import quiet_console

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw", type=Path, required=True, help="LFW folder holding lfw-deepfunneled/")
    parser.add_argument("--dlib-images", type=int, default=500, help="images for the dlib run")
    parser.add_argument("--limit", type=int, default=None, help="cap the MediaPipe run (and dlib) at N images")
    parser.add_argument("--repeats", type=int, default=1, help="runs per arm, alternating the order")
    parser.add_argument("--shard-size", type=int, default=1024, help="rows per shard of the samples tables")
    parser.add_argument("--work", type=Path, default=Path("runs/bench/landmarks"), help="where samples tables live")
    parser.add_argument("--master", default=f"local[{WORKERS}]")
    parser.add_argument("--parts", default="mediapipe,dlib,features,ingest", help="which comparisons to run")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    quiet_console()
    if not (args.lfw / "lfw-deepfunneled").is_dir():
        raise SystemExit(f"no LFW images at {args.lfw / 'lfw-deepfunneled'}")
    uptime = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()  # noqa: E731
    before = uptime()
    result = bench(args.lfw.resolve(), args.work, args.dlib_images, args.limit, args.shard_size, args.master,
                   args.repeats, set(args.parts.split(",")))
    result.update(uptime_before=before, uptime_after=uptime(),
                  note="2-core machine shared with other engineers: compare ratios, not absolute rates")
    path = write_result("landmarks", result, args.out)
    rows = [{"comparison": f"landmarks {name}", "stage /s": r["stage_images_per_s"], "bare /s": r["bare_images_per_s"],
             "ratio": r["stage_over_bare"]} for name, r in result["extractors"].items()]
    if "features" in result:
        f = result["features"]
        rows.append({"comparison": "features mediapipe", "stage /s": f["stage_images_per_s"],
                     "bare /s": f["bare_images_per_s"], "ratio": f["stage_over_bare"]})
    if "ingest" in result:
        g = result["ingest"]
        rows.append({"comparison": f"ingest spark vs driver (identical: {g['byte_identical']})",
                     "stage /s": g["spark_rows_per_s"], "bare /s": g["driver_rows_per_s"],
                     "ratio": g["spark_over_driver"]})
    print_table(f"stages against their bare work; session start {result['spark_session_startup_s']} s, "
                f"first job {result['spark_first_job_s']} s", rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
