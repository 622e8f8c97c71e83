"""The canonical stage: per identity, the frontal landmark shape the landmark autoencoder learns to reach.

Rule: an identity's canonical landmarks are the mean aligned landmarks (crop pixels) of its ``k`` valid
samples with the smallest pose deviation ``|yaw| + |pitch| + |roll|`` (degrees), ties broken by row.
Averaging a few near-frontal samples cancels landmark noise while staying frontal; ``k = 5`` by default.

As a Spark job (never a driver loop over identities):
1. the feature index (small columns only) is read by Spark; per identity, ``groupBy`` gives the counts
   and the mean deviation of valid samples, and a ``row_number`` window over (deviation, row) picks the
   ``k`` least-posed candidates, so only k rows per identity go further;
2. the candidates are grouped by shard and one task per shard reads their aligned landmarks from the
   shard's single chunk of the Zarr ``landmarks`` array;
3. ``groupBy(bucket).applyInPandas`` (identities hashed into buckets) averages each identity with ``aggregate_canonical``.
The small per-identity result is collected and written as one Parquet part (schema ``IDENTITIES``).
Samples with a missing or non-finite pose are counted as valid but never chosen as candidates.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from facerec.errors import ConfigError, FacerecError, StageNotReadyError, StoreError
from facerec.pipeline.feature_stage import read_shard_table
from facerec.pipeline.report import StageResult
from facerec.pipeline.spark import spark_session
from facerec.schemas import tables
from facerec.schemas.zarr_layout import LANDMARKS
from facerec.store.feature_arrays import open_feature_group
from facerec.store.fs import resolve, write_json_atomic, write_parquet_atomic
from facerec.store.layout import StoreLayout, shard_file
from facerec.store.integrity import finished_stage_fields, write_recorded_parquet

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

STAGE = "canonical"
NO_VALID = "no_valid_sample"     # rejection reason: an identity with no valid posed sample
PART_FILE = "part-00000.parquet"

_POINTS_DDL = "identity STRING, row BIGINT, yaw FLOAT, pitch FLOAT, roll FLOAT, points ARRAY<FLOAT>"
_CANON_DDL = "identity STRING, num_canonical INT, canonical_points ARRAY<FLOAT>, canonical_pose_deviation FLOAT"


@dataclass(frozen=True)
class CanonicalConfig:
    store: str
    extractor: str
    img_size: int = 112
    k: int = 5
    master: str | None = None
    conf: dict[str, str] = field(default_factory=dict)
    overwrite: bool = False


def pose_deviation(pose: np.ndarray) -> np.ndarray:
    """[..., 3] (yaw, pitch, roll) degrees -> [...] |yaw| + |pitch| + |roll|."""
    return np.abs(np.asarray(pose, dtype=np.float64)).sum(axis=-1)


def aggregate_canonical(points: np.ndarray, pose: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Mean landmarks of the ``k`` least-posed samples.

    points: [n, P, 2] aligned landmarks (crop pixels); pose: [n, 3] degrees; n >= 1. Ties in deviation
    keep input order. Returns (canonical [P, 2] float32, mean deviation of the chosen samples in degrees).
    """
    points = np.asarray(points, dtype=np.float64)
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    if points.ndim != 3 or points.shape[-1] != 2 or len(points) != len(pose) or len(points) == 0:
        raise FacerecError(f"aggregate_canonical needs points [n, P, 2] and pose [n, 3] with n >= 1, "
                           f"got {points.shape} and {np.shape(pose)}")
    dev = pose_deviation(pose)
    chosen = np.argsort(dev, kind="stable")[:k]
    return points[chosen].mean(axis=0).astype(np.float32), float(dev[chosen].mean())


# ------------------------------------------------------------------------------------------ Spark tasks
def _landmarks_array(zarr_url: str):
    """Opened per task, not cached: a rebuilt group must never be read through stale metadata."""

    group, _ = open_feature_group(resolve(zarr_url))
    return group[LANDMARKS]


def read_candidate_points(zarr_url: str, pdf: "pd.DataFrame") -> "pd.DataFrame":
    """One shard's candidates -> the same rows with their aligned landmarks flattened (x0, y0, ...)."""
    import pandas as pd

    pdf = pdf.sort_values("row")
    rows = pdf["row"].to_numpy(dtype=np.int64)
    pts = _landmarks_array(zarr_url).get_orthogonal_selection((rows, slice(None), slice(None)))
    return pd.DataFrame({
        "identity": pdf["identity"].to_numpy(), "row": rows,
        "yaw": pdf["yaw"].to_numpy(np.float32), "pitch": pdf["pitch"].to_numpy(np.float32),
        "roll": pdf["roll"].to_numpy(np.float32), "points": list(pts.reshape(len(rows), -1).astype(np.float32)),
    })


def canonical_of_identity(k: int, pdf: "pd.DataFrame") -> "pd.DataFrame":
    """One identity's candidates -> one row: k used, canonical points (flattened), their deviation."""
    import pandas as pd

    pdf = pdf.sort_values("row")
    points = np.stack(pdf["points"].to_list()).reshape(len(pdf), -1, 2)
    canonical, deviation = aggregate_canonical(points, pdf[["yaw", "pitch", "roll"]].to_numpy(), k)
    return pd.DataFrame({
        "identity": [pdf["identity"].iloc[0]], "num_canonical": [min(k, len(pdf))],
        "canonical_points": [canonical.reshape(-1)], "canonical_pose_deviation": [np.float32(deviation)],
    })


def canonical_of_bucket(k: int, pdf: "pd.DataFrame") -> "pd.DataFrame":
    """Many identities' candidates -> one row per identity (``canonical_of_identity`` on each).

    Spark calls a grouped pandas function once per group with an Arrow round trip each; per identity
    that cost grew with the number of identities (150 s for 5,365 on 2 busy cores), so identities are
    grouped into hash buckets and split here with one pandas ``groupby``.
    """
    import pandas as pd

    parts = [canonical_of_identity(k, group) for _, group in pdf.groupby("identity", sort=False)]
    if not parts:
        return pd.DataFrame({"identity": [], "num_canonical": [], "canonical_points": [],
                             "canonical_pose_deviation": []})
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------------------------------ driver
def _index_files(index) -> list[str]:
    """URLs of the feature index shards, each checked for table kind and layout version."""
    import pyarrow.parquet as pq

    from facerec.pipeline.landmark_stage import finished_shards

    urls = []
    for shard in sorted(finished_shards(index)):
        loc = index.child(shard_file(shard))
        with loc.fs.open(loc.path, "rb") as fh:
            tables.check_table_schema(pq.ParquetFile(fh).schema_arrow, tables.FEATURE_INDEX, str(loc))
        urls.append(loc.url)
    return urls


def identities_frame(spark: "SparkSession", index_urls: list[str], zarr_url: str, shard_size: int, k: int):
    """The Spark plan: feature index -> one row per identity with the IDENTITIES columns."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    df = spark.read.parquet(*index_urls).select("row", "identity", "label", "valid", "yaw", "pitch", "roll")
    dev = F.abs("yaw") + F.abs("pitch") + F.abs("roll")
    df = df.withColumn("dev", dev.cast("double"))
    usable = F.col("valid") & F.col("dev").isNotNull() & ~F.isnan("dev")
    counts = df.groupBy("identity").agg(
        F.min("label").alias("label"),
        F.count(F.lit(1)).cast("int").alias("num_samples"),
        F.sum(F.col("valid").cast("int")).cast("int").alias("num_valid"),
        F.avg(F.when(usable, F.col("dev"))).cast("float").alias("mean_pose_deviation"),
    )
    rank = F.row_number().over(Window.partitionBy("identity").orderBy("dev", "row"))
    candidates = (
        df.filter(usable).withColumn("rank", rank).filter(F.col("rank") <= k)
        .withColumn("shard", F.floor(F.col("row") / shard_size))
        .select("shard", "identity", "row", "yaw", "pitch", "roll")
    )
    def read_points(pdf):          # closures, not partials: Spark inspects the function it is given
        return read_candidate_points(zarr_url, pdf)

    def canonical(pdf):
        return canonical_of_bucket(k, pdf)

    buckets = int(spark.conf.get("spark.sql.shuffle.partitions", "8"))
    points = candidates.groupBy("shard").applyInPandas(read_points, _POINTS_DDL)
    canon = (points.withColumn("bucket", F.pmod(F.hash("identity"), F.lit(buckets)))
             .groupBy("bucket").applyInPandas(canonical, _CANON_DDL))
    return counts.join(canon, "identity", "left").select(
        "identity", "label", "num_samples", "num_valid",
        F.coalesce("num_canonical", F.lit(0)).cast("int").alias("num_canonical"),
        "canonical_points", "canonical_pose_deviation", "mean_pose_deviation",
    )


def run_canonical(config: CanonicalConfig, spark: "SparkSession | None" = None) -> StageResult:
    """Compute the identities table of a finished feature set; a finished one is left alone."""
    import pyarrow.compute as pc

    t0 = time.perf_counter()
    if config.k < 1:
        raise ConfigError(f"--k must be at least 1, got {config.k}")
    store = StoreLayout.at(config.store)
    index = store.features_index(config.extractor, config.img_size)
    zloc = store.features_zarr(config.extractor, config.img_size)
    out = store.identities(config.extractor, config.img_size)
    result = StageResult(stage=STAGE, output=str(out))
    if not StoreLayout.is_finished(index):
        raise StageNotReadyError(
            f"no finished feature set at {index}; run `facerec features --store {config.store} "
            f"--extractor {config.extractor} --img-size {config.img_size}` first"
        )
    _, layout = open_feature_group(zloc)
    if StoreLayout.is_finished(out) and not config.overwrite:
        manifest = StoreLayout.read_manifest(out)
        if manifest.get("config", {}).get("k") != config.k:
            raise StoreError(f"{out} was built with k={manifest.get('config', {}).get('k')}, asked k={config.k}; "
                             "rerun with --overwrite")
        result.skipped_stage = True
        result.merge(manifest["counts"])
        return result
    if out.exists():
        out.fs.rm(out.path, recursive=True)

    spark = spark or spark_session(config.master, config.conf, app_name="facerec-canonical")
    spark.sparkContext.setJobDescription(f"canonical {layout.name}")
    frame = identities_frame(spark, _index_files(index), zloc.url, layout.shard_size, config.k)
    table = frame.toArrow().select(tables.IDENTITIES.names)
    table = table.cast(tables.IDENTITIES).sort_by("label")

    have = pc.greater(table.column("num_canonical"), 0)
    result.rows_in = table.num_rows
    result.ok = int(pc.sum(have).as_py() or 0)
    if result.rows_in - result.ok:
        result.rejected = {NO_VALID: result.rows_in - result.ok}
    result.check_balanced()
    write_recorded_parquet(table, out.child(PART_FILE))
    result.seconds = time.perf_counter() - t0
    result.extra = {"k": config.k, "rule": "mean aligned landmarks of the k valid samples with least |yaw|+|pitch|+|roll|"}
    manifest = {
        "stage": STAGE, "layout_version": layout.layout_version, "config": dataclasses.asdict(config),
        "layout": dataclasses.asdict(layout), "counts": result.to_dict(), "seconds": round(result.seconds, 3),
        **finished_stage_fields(out, [PART_FILE], STAGE, config.extractor),
    }
    write_json_atomic(manifest, StoreLayout.manifest(out))
    log.info("canonical %s: %d identities, %d with a canonical shape", layout.name, result.rows_in, result.ok)
    return result


def read_identities(store: str, extractor: str, img_size: int) -> Any:
    """The identities table of a finished canonical stage (pyarrow Table, schema checked)."""

    out = StoreLayout.at(store).identities(extractor, img_size)
    if not StoreLayout.is_finished(out):
        raise StageNotReadyError(f"no canonical landmarks at {out}; run `facerec canonical` first")
    return read_shard_table(out.child(PART_FILE), tables.IDENTITIES, list(tables.IDENTITIES.names))
