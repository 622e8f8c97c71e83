"""How each stage's cost grows with the data: every stage at three generated sizes, plus one MediaPipe point.

    python -m benchmarks.bench_scale --lfw ../shared/data/lfw [--sizes 3000,12000,48000] [--mediapipe-size 2000]

Data: small real-looking JPEGs made at bench time from LFW (each a random crop of a random LFW image,
shifted, scaled and brightened by a seeded jitter, 128 px, JPEG quality 85; identity = the LFW
person), packed as Parquet files of 4,096 rows under ``--work`` (never committed). Each size runs in
its own process (so peak memory is per size) with one warm Spark session on ``--master``
(default ``local[2]``): ingest (the Spark path), landmarks, features, canonical, with ``--extractor
template`` so the extractor's fixed cost does not hide the pipeline's own; then one MediaPipe size.

Per stage: wall seconds, rows/s, peak RSS of the driver and of the largest Spark Python worker
(``VmHWM`` from /proc, reset before each stage through ``/proc/PID/clear_refs``), and the bytes the
stage wrote. ``uptime``'s load average is recorded with every size: on a shared machine the
figures move with it. Writes ``benchmarks/results/scale.json`` and ``scale.png`` (rows/s against size).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import proc_stats, process_tree

log = logging.getLogger("bench_scale")

STAGES = ("ingest", "landmarks", "features", "canonical")
FILE_ROWS = 4096
SIDE = 128


# ------------------------------------------------------------------------------------------- data
def _lfw_images(lfw: Path) -> list[Path]:
    return sorted((lfw / "lfw-deepfunneled").glob("*/*.jpg"))


def _variant(args: tuple[str, int]) -> tuple[bytes, str]:
    """A jittered 128 px JPEG of one LFW image (seeded by its index)."""
    import io

    import numpy as np
    from PIL import Image, ImageEnhance

    path, index = args
    rng = np.random.default_rng(index)
    img = Image.open(path).convert("RGB")
    side = int(150 * rng.uniform(0.9, 1.1))
    cx, cy = 125 + rng.integers(-8, 9), 125 + rng.integers(-8, 9)
    box = (cx - side // 2, cy - side // 2, cx - side // 2 + side, cy - side // 2 + side)
    img = img.crop(box).resize((SIDE, SIDE), Image.BILINEAR)
    img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(0.85, 1.15)))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue(), Path(path).parent.name


def make_source(lfw: Path, rows: int, dest: Path) -> Path:
    """``rows`` generated JPEGs as Parquet files in ``dest`` (reused when complete)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = dest / "_complete"
    if done.exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    images = _lfw_images(lfw)
    rng_order = [(str(images[(i * 7919) % len(images)]), i) for i in range(rows)]
    with mp.Pool(2) as pool:
        for f, start in enumerate(range(0, rows, FILE_ROWS)):
            out = pool.map(_variant, rng_order[start:start + FILE_ROWS], chunksize=64)
            table = pa.table({"image": pa.array([b for b, _ in out], pa.binary()),
                              "label": pa.array([n for _, n in out], pa.string())})
            pq.write_table(table, dest / f"part-{f:05d}.parquet", row_group_size=1024)
    done.write_text(str(rows))
    return dest


# ------------------------------------------------------------------------------------------- memory
def _children(root: int) -> list[int]:
    return [pid for pid in process_tree(root, proc_stats()) if pid != root]


def _kind(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"
    if "java" in cmd.split(" ")[0]:
        return "jvm"
    return "python_worker" if "pyspark" in cmd or "python" in cmd else "other"


def _hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peaks() -> None:
    """Reset the peak RSS of this process and its descendants (``echo 5 > /proc/PID/clear_refs``)."""
    for pid in [os.getpid(), *_children(os.getpid())]:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            pass


def peaks_mib() -> dict[str, float]:
    """Peak RSS since the last reset: the driver, the largest Python worker, the JVM (MiB)."""
    out = {"driver_peak_mib": _hwm_kib(os.getpid()) / 1024, "python_worker_peak_mib": 0.0, "jvm_peak_mib": 0.0}
    for pid in _children(os.getpid()):
        key = {"python_worker": "python_worker_peak_mib", "jvm": "jvm_peak_mib"}.get(_kind(pid))
        if key:
            out[key] = max(out[key], _hwm_kib(pid) / 1024)
    return {k: round(v, 1) for k, v in out.items()}


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


# ------------------------------------------------------------------------------------------- one size
def run_size(source: Path, store: Path, extractor: str, master: str) -> dict[str, Any]:
    """Every stage once on a warm session, in this process; returns the per-stage figures."""
    import shutil

    from facerec.pipeline.canonical import CanonicalConfig, run_canonical
    from facerec.pipeline.feature_stage import FeaturesConfig, run_features
    from facerec.pipeline.ingest import IngestConfig, run_ingest
    from facerec.pipeline.landmark_stage import LandmarksConfig, run_landmarks
    from facerec.pipeline.spark import spark_session

    shutil.rmtree(store, ignore_errors=True)
    t0 = time.perf_counter()
    spark = spark_session(master, {}, app_name="bench-scale")
    spark.sparkContext.parallelize(range(4), 2).map(lambda x: x).collect()     # start the Python workers
    session_s = time.perf_counter() - t0
    s = str(store)
    runs = {
        "ingest": (lambda: run_ingest(IngestConfig(source=str(source), store=s, engine="spark", master=master), spark),
                   [store / "samples"]),
        "landmarks": (lambda: run_landmarks(LandmarksConfig(store=s, extractor=extractor, master=master), spark),
                      [store / "landmarks"]),
        "features": (lambda: run_features(FeaturesConfig(store=s, extractor=extractor, master=master), spark),
                     [store / "features"]),
        "canonical": (lambda: run_canonical(CanonicalConfig(store=s, extractor=extractor, master=master), spark),
                      [store / "identities"]),
    }
    stages = {}
    for name, (call, outputs) in runs.items():
        reset_peaks()
        load = os.getloadavg()[0]
        start = time.perf_counter()
        result = call()
        seconds = time.perf_counter() - start
        rows = stages["ingest"]["rows_in"] if stages else result.rows_in   # canonical's rows_in: identities
        stages[name] = {"seconds": round(seconds, 2), "rows_in": result.rows_in,
                        "rows_per_s": round(rows / seconds, 1), **peaks_mib(),
                        "bytes": sum(folder_bytes(o) for o in outputs), "load_1min_before": round(load, 2)}
        log.info("%s: %s", name, stages[name])
    return {"session_start_s": round(session_s, 1), "stages": stages}


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _child(args: argparse.Namespace) -> None:
    result = run_size(Path(args.source), Path(args.store), args.extractor, args.master)
    Path(args.child_out).write_text(json.dumps(result))


# ------------------------------------------------------------------------------------------- parent
def plot(points: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    template = [p for p in points if p["extractor"] == "template"]
    for stage in STAGES:
        ax.plot([p["rows"] for p in template], [p["stages"][stage]["rows_per_s"] for p in template], "o-", label=stage)
    for p in points:
        if p["extractor"] != "template":
            for stage in ("landmarks", "features"):
                ax.plot([p["rows"]], [p["stages"][stage]["rows_per_s"]], "x", ms=9, color="k")
                ax.annotate(f"{stage} (mediapipe)", (p["rows"], p["stages"][stage]["rows_per_s"]), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows")
    ax.set_ylabel("rows/s (2 cores, shared)")
    ax.set_title("Stage throughput against size (--extractor template)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=Path("../shared/data/lfw"))
    parser.add_argument("--sizes", default="3000,12000,48000", help="comma-separated row counts (template)")
    parser.add_argument("--mediapipe-size", type=int, default=2000, help="rows of the MediaPipe point (0: none)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--work", type=Path, default=Path("runs/bench/scale"))
    parser.add_argument("--out", type=Path, default=None, help="result JSON (default benchmarks/results/scale.json)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the points of an existing result file whose sizes are not rerun now")
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--extractor", default="template", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from facerec.console import quiet_console

    quiet_console()
    if args.child_out:
        _child(args)
        return
    from benchmarks.common import RESULTS_DIR, write_result

    sizes = [int(s) for s in args.sizes.split(",") if s]
    plan = [(n, "template") for n in sizes] + ([(args.mediapipe_size, "mediapipe")] if args.mediapipe_size else [])
    points = []
    for rows, extractor in plan:
        t0 = time.perf_counter()
        source = make_source(args.lfw, rows, args.work / f"source-{rows}")
        gen_s = time.perf_counter() - t0
        out = args.work / f"result-{rows}-{extractor}.json"
        before = _uptime()
        cmd = [sys.executable, "-m", "benchmarks.bench_scale", "--child-out", str(out), "--source", str(source),
               "--store", str(args.work / f"store-{rows}-{extractor}"), "--extractor", extractor,
               "--master", args.master]
        subprocess.run(cmd, check=True)
        point = {"rows": rows, "extractor": extractor, "generate_s": round(gen_s, 1), "uptime_before": before,
                 "uptime_after": _uptime(), **json.loads(out.read_text())}
        points.append(point)
        log.info("size %d (%s) done: %s", rows, extractor, {k: v["rows_per_s"] for k, v in point["stages"].items()})
    out_path = (args.out.parent if args.out else RESULTS_DIR) / "scale.json"
    if args.merge and out_path.exists():
        fresh = {(p["rows"], p["extractor"]) for p in points}
        points += [p for p in json.loads(out_path.read_text())["points"] if (p["rows"], p["extractor"]) not in fresh]
    points.sort(key=lambda p: (p["extractor"] != "template", p["rows"]))
    sizes = sorted({p["rows"] for p in points if p["extractor"] == "template"})
    template = [p for p in points if p["extractor"] == "template"]
    growth = {st: round(template[0]["stages"][st]["rows_per_s"] / template[-1]["stages"][st]["rows_per_s"], 2)
              for st in STAGES} if len(template) > 1 else {}
    result = {"sizes": sizes, "master": args.master, "points": points,
              "rows_per_s_smallest_over_largest": growth, "target_ratio_at_most": 1.3,
              "note": "2-core machine shared with other engineers; load averages are in every point"}
    path = write_result("scale", result, args.out.parent if args.out else None)
    plot(points, (args.out.parent if args.out else RESULTS_DIR) / "scale.png")
    print(json.dumps({"written": str(path), "growth": growth}, indent=1))


if __name__ == "__main__":
    main()
