"""The Spark runner: a session builder and a shard-at-a-time map that every stage uses.

Stages hand ``run_shards`` a picklable function ``shard -> summary dict``. Spark schedules one task per
shard (``local[*]`` by default, any cluster with ``--master``), retries failed tasks, and the function
itself reads its input shard, writes its output shard under a temporary name and commits it by rename.
Output therefore never depends on how many partitions or workers ran it, and a killed task leaves
nothing a reader can see. Heavy per-process objects (extractors) are cached per Python worker by the
stage functions, not created per row.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from facerec.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from facerec.errors import FacerecError

log = logging.getLogger(__name__)

DEFAULT_MASTER = "local[*]"
# JVM flags of a local session (and of the local standalone daemons, ``cluster``): the C1 compiler only
# and the serial GC. Our tasks do their work in Python; the JVM only schedules them and moves small
# Arrow batches, and C2 compiling that young JVM's code cost about 45 ms CPU per task on 2 cores
# (80 no-op tasks: 5.5-6.0 s JVM CPU with the defaults, 1.9-2.9 s with these flags).
FAST_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"

_SUMMARY_DDL = "shard INT, summary STRING"


def parse_conf(pairs: Iterable[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` from ``--conf`` options into a dict, refusing malformed entries."""

    conf: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--conf expects key=value, got {pair!r}")
        conf[key.strip()] = value.strip()
    return conf


def spark_session(master: str | None = None, conf: dict[str, str] | None = None, app_name: str = "facerec") -> "SparkSession":
    """A SparkSession for a stage; reuses an active one with the same master.

    Under ``spark-submit`` (its JVM is already running: ``PYSPARK_GATEWAY_PORT`` is set) and without
    ``--master`` here, the master given to spark-submit is used instead of ``local[*]``. A ``local``
    master's JVM gets ``FAST_JVM_OPTIONS`` unless ``conf`` sets ``spark.driver.extraJavaOptions``.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    submitted = master is None and "PYSPARK_GATEWAY_PORT" in os.environ
    master = master or DEFAULT_MASTER
    active = SparkSession.getActiveSession()
    if active is not None and (submitted or active.sparkContext.master == master):
        return active
    if active is not None:
        active.stop()
    builder = SparkSession.builder if submitted else SparkSession.builder.master(master)
    builder = (
        builder
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.python.worker.reuse", "true")
        .config("spark.driver.memory", os.environ.get("FACEREC_SPARK_DRIVER_MEMORY", "4g"))
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.executorEnv.PYTHONPATH", os.pathsep.join(p for p in sys.path if p))
    )
    if not submitted and master.startswith("local"):
        builder = builder.config("spark.driver.extraJavaOptions", FAST_JVM_OPTIONS)
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    log.info("spark session on %s (default parallelism %d)", spark.sparkContext.master, spark.sparkContext.defaultParallelism)
    return spark


def run_shards(
    spark: "SparkSession",
    shards: list[int],
    work: Callable[[int], dict[str, Any]],
    *,
    description: str = "stage",
    max_parallel: int | None = None,
) -> list[dict[str, Any]]:
    """Run ``work(shard)`` once per shard as Spark tasks; returns the summaries in shard order.

    Each shard is its own partition, so Spark's retry of a failed task redoes exactly one shard.
    ``max_parallel`` caps the number of partitions (a task then runs several shards one after another).
    """
    if not shards:
        return []
    items = [int(s) for s in shards]

    def task(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        for batch in batches:
            for index in batch.column("id").to_pylist():
                shard = items[index]
                summary = work(shard)
                settle_worker_heap(work)
                yield pa.RecordBatch.from_pydict(
                    {"shard": pa.array([shard], pa.int32()), "summary": pa.array([json.dumps(summary)])}
                )

    sc = spark.sparkContext
    sc.setJobDescription(description)
    slices = len(items) if max_parallel is None else max(1, min(len(items), max_parallel))
    # Row i of a JVM range is items[i]; ``slices`` partitions of consecutive rows. A range needs no
    # Python worker to produce its rows, where a parallelized Python list cost each task a second one.
    frame = spark.range(0, len(items), 1, numPartitions=slices)
    try:
        rows = frame.mapInArrow(task, _SUMMARY_DDL).collect()
    except Exception as exc:  # noqa: BLE001 - Spark wraps a worker's failure in Py4J/PySpark exceptions
        raise task_failure(description, exc) from exc
    summaries = sorted(((r["shard"], json.loads(r["summary"])) for r in rows), key=lambda x: x[0])
    return [s for _, s in summaries]


_SETTLED: set[str] = set()     # kinds of work after which this Python worker froze its heap


def settle_worker_heap(work: Callable[[int], dict[str, Any]]) -> None:
    """The first time a Python worker has run this kind of work: collect, then ``gc.freeze()``.

    PySpark's daemon runs a full ``gc.collect()`` after every task of a reused worker, which walks
    every object the worker holds (pyspark, pyarrow, the extractor and its modules: 25 ms CPU a task
    on 2 cores, as much as the task's own Python bookkeeping). Frozen objects are not walked, so after
    the first task of each stage in a worker that collection is nearly free; garbage is still
    collected, only the long-lived heap of that moment (modules, cached extractors) is never revisited.
    """
    import gc

    kind = f"{type(work).__module__}.{type(work).__qualname__}"
    if kind not in _SETTLED:
        _SETTLED.add(kind)
        gc.collect()
        gc.freeze()


_WORKER_ERROR = re.compile(r"facerec\.errors\.(\w+): (.+)")
_LOST_TASK = re.compile(r"most recent failure: Lost task [^:]*\): (?:[\w.$]+(?:Exception|Error): )?(.+)")
_ATTEMPTS = re.compile(r"failed (\d+) times")


def task_failure(description: str, exc: BaseException) -> "FacerecError":
    """One clear line for a Spark job whose shard task failed (after Spark's retries, if any).

    A facerec error raised in a worker (a ``StoreError`` for a full disk, say) is quoted as raised
    there; otherwise Spark's reason for the last lost task (e.g. "Python worker exited unexpectedly
    (crashed)"). Shards committed before the failure stay; rerunning the stage computes only the rest.
    """

    text = str(exc)
    found = _WORKER_ERROR.findall(text)
    lost = _LOST_TASK.search(text)
    if found:
        kind, message = found[-1]
        cause = f"{kind}: {message.strip()}"
    elif lost:
        cause = lost.group(1).split(". ")[0].strip()
    else:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        cause = lines[0] if lines else repr(exc)
    attempts = _ATTEMPTS.search(text)
    tries = f" after {attempts.group(1)} attempt(s)" if attempts else ""
    return StoreError(f"{description}: a shard task failed{tries} ({cause}); committed shards are kept, rerun the "
                      "stage to compute the missing ones")
