"""Same source, seed and options -> byte-identical tables and identical arrays, whatever the partitioning.

Two stores are built from the same 24 real LFW images with MediaPipe: store A with every Spark job in
one partition (``--partitions 1`` for landmarks and features: one task runs the shards one after
another; one shuffle partition for canonical), store B with the defaults on ``local[2]`` (one task per
shard, two at a time; 8 shuffle partitions). Every Parquet data file must be equal byte for byte and
every Zarr array (and compressed chunk) equal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from facerec.pipeline.canonical import CanonicalConfig, run_canonical
from facerec.pipeline.feature_stage import FeaturesConfig, run_features
from facerec.pipeline.ingest import IngestConfig, run_ingest
from facerec.pipeline.landmark_stage import LandmarksConfig, run_landmarks

from conftest import make_image_folder
from store_compare import assert_same_store, debris

pytestmark = pytest.mark.slow

NUM_IDENTITIES, PER_IDENTITY, SHARD_SIZE = 8, 3, 8


def build(store: Path, source: Path, spark, partitions: int | None) -> list:
    results = [run_ingest(IngestConfig(source=str(source), store=str(store), seed=7, shard_size=SHARD_SIZE))]
    results.append(run_landmarks(LandmarksConfig(store=str(store), extractor="mediapipe", partitions=partitions), spark))
    results.append(run_features(FeaturesConfig(store=str(store), extractor="mediapipe", img_size=64,
                                               partitions=partitions), spark))
    shuffle = spark.conf.get("spark.sql.shuffle.partitions")
    if partitions is not None:
        spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
    try:
        results.append(run_canonical(CanonicalConfig(store=str(store), extractor="mediapipe", img_size=64, k=2), spark))
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", shuffle)
    return results


def test_partition_count_does_not_change_the_store(lfw_dir: Path, tmp_path: Path, spark) -> None:
    source = make_image_folder(tmp_path / "src", lfw_dir, NUM_IDENTITIES, PER_IDENTITY, min_images=PER_IDENTITY)
    one = build(tmp_path / "one_partition", source, spark, partitions=1)
    many = build(tmp_path / "default_partitions", source, spark, partitions=None)

    n = NUM_IDENTITIES * PER_IDENTITY
    for a, b in zip(one, many):
        assert (a.rows_in, a.ok, a.rejected) == (b.rows_in, b.ok, b.rejected)
    assert [r.rows_in for r in one] == [n, n, n, NUM_IDENTITIES]
    assert one[1].ok >= n - 2 and one[2].ok >= n - 2        # real faces: MediaPipe finds (almost) all
    compared = assert_same_store(tmp_path / "one_partition", tmp_path / "default_partitions")
    # samples, landmarks and feature index: 3 shards each; identities: one part
    assert compared["parquet_files"] == 3 * 3 + 1 and compared["arrays"] == 5
    assert debris(tmp_path / "one_partition") == debris(tmp_path / "default_partitions") == []
