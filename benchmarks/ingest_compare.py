"""Spark ingest against driver ingest on all of LFW packed as Parquet: rows/s of each, identical bytes.

The Parquet source (image bytes + person name, 2,048-row files, 512-row row groups) is written once
under the work folder. Runs alternate driver, Spark, Spark, driver, ... into fresh stores; each Spark
run uses the warm session it is given. The two samples tables must be equal byte for byte.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("bench_ingest")

FILE_ROWS = 2048


def pack_lfw(lfw: Path, dest: Path) -> tuple[Path, int]:
    """All LFW images as Parquet files under ``dest`` (reused when complete); (folder, rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = dest / "_complete"
    if done.exists():
        return dest, int(done.read_text())
    dest.mkdir(parents=True, exist_ok=True)
    images = sorted((lfw / "lfw-deepfunneled").glob("*/*.jpg"))
    for f, start in enumerate(range(0, len(images), FILE_ROWS)):
        part = images[start:start + FILE_ROWS]
        table = pa.table({"image": pa.array([p.read_bytes() for p in part], pa.binary()),
                          "label": pa.array([p.parent.name for p in part], pa.string())})
        pq.write_table(table, dest / f"train-{f:05d}.parquet", row_group_size=512)
    done.write_text(str(len(images)))
    return dest, len(images)


def _files(store: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((store / "samples").glob("shard-*.parquet"))}


def compare_ingest(spark: Any, lfw: Path, work: Path, repeats: int, master: str) -> dict[str, Any]:
    """Alternating driver / Spark ingests of the packed LFW; rows/s each and whether the bytes match."""
    from facerec.pipeline.ingest import IngestConfig, run_ingest

    source, rows = pack_lfw(lfw, work / "lfw-parquet")
    runs: dict[str, list[dict[str, Any]]] = {"driver": [], "spark": []}
    tables: dict[str, dict[str, bytes]] = {}
    order = [("driver", "spark") if i % 2 == 0 else ("spark", "driver") for i in range(repeats)]
    for pair in order:
        for engine in pair:
            store = work / f"ingest-{engine}"
            shutil.rmtree(store, ignore_errors=True)
            load = os.getloadavg()[0]
            start = time.perf_counter()
            result = run_ingest(IngestConfig(source=str(source), store=str(store), engine=engine, master=master),
                                spark if engine == "spark" else None)
            seconds = time.perf_counter() - start
            runs[engine].append({"seconds": round(seconds, 2), "rows_per_s": round(result.rows_in / seconds, 1),
                                 "load_1min_before": round(load, 2)})
            log.info("ingest %s: %d rows in %.1f s (%.0f rows/s), load %.1f", engine, result.rows_in, seconds,
                     result.rows_in / seconds, load)
            tables[engine] = _files(store)
    driver_s = sum(r["seconds"] for r in runs["driver"])
    spark_s = sum(r["seconds"] for r in runs["spark"])
    return {
        "rows": rows, "repeats": repeats, "runs": runs,
        "driver_rows_per_s": round(rows * repeats / driver_s, 1),
        "spark_rows_per_s": round(rows * repeats / spark_s, 1),
        "spark_over_driver": round(driver_s / spark_s, 3), "target_spark_over_driver": 1.6,
        "byte_identical": tables["driver"] == tables["spark"], "shards": len(tables["spark"]),
    }
