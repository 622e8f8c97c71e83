"""The pipeline on a Spark standalone cluster (a master and two workers on 127.0.0.1) equals ``local``.

``facerec build`` runs as a separate process against the cluster (as ``spark-submit`` would run it),
with MediaPipe on 24 real LFW faces in 3 shards; a Python worker running a features shard is killed
once just before it commits that shard (``FACEREC_FAULT_KILL_BEFORE_COMMIT``, shipped to the executors
through ``--conf spark.executorEnv.*``), so the job also has to finish through Spark's task retry.
The same store built in this process on ``local[2]`` must match it file for file and array for array.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from facerec.errors import ConfigError
from facerec.faults import KILL_BEFORE_COMMIT_ENV, ONCE_ENV
from facerec.pipeline.build import build_store
from facerec.pipeline.cluster import ClusterError, LocalStandaloneCluster, free_port, spark_home
from facerec.pipeline.spark import FAST_JVM_OPTIONS
from facerec.store.layout import StoreLayout

from conftest import REPO, make_image_folder
from store_compare import assert_same_store, debris, read_shards

NUM_IDENTITIES, PER_IDENTITY, SHARD_SIZE, IMG_SIZE, K, SEED = 8, 3, 8, 64, 2, 7
FAST_JVM = FAST_JVM_OPTIONS
KILLED = "features/mediapipe-64.index/shard-00001.parquet"


def test_cluster_helper_checks_its_arguments_and_finds_spark() -> None:
    assert (spark_home() / "bin" / "spark-class").exists() and list((spark_home() / "jars").glob("spark-core*.jar"))
    assert 0 < free_port() < 65536
    with pytest.raises(ConfigError, match="workers >= 1"):
        LocalStandaloneCluster(workers=0)
    with pytest.raises(ClusterError, match="not started"):
        LocalStandaloneCluster().master_url


@pytest.mark.slow
def test_build_on_a_standalone_cluster_with_a_killed_worker_equals_local(lfw_dir: Path, tmp_path: Path, spark) -> None:
    source = make_image_folder(tmp_path / "src", lfw_dir, NUM_IDENTITIES, PER_IDENTITY, min_images=PER_IDENTITY)
    local = tmp_path / "local"
    build_store(str(source), str(local), extractor="mediapipe", img_size=IMG_SIZE, seed=SEED, shard_size=SHARD_SIZE,
                k=K, spark=spark)

    remote = tmp_path / "cluster"
    marker = tmp_path / "killed-once"
    with LocalStandaloneCluster(workers=2, cores_per_worker=1, memory="1g", work_dir=tmp_path / "spark") as cluster:
        cmd = [sys.executable, "-m", "facerec.cli", "build", "--data-root", str(source), "--store", str(remote),
               "--extractor", "mediapipe", "--img-size", str(IMG_SIZE), "--seed", str(SEED),
               "--shard-size", str(SHARD_SIZE), "--k", str(K), "--master", cluster.master_url,
               "--conf", "spark.executor.memory=768m", "--conf", "spark.task.maxFailures=3",
               "--conf", f"spark.driver.extraJavaOptions={FAST_JVM}",
               "--conf", f"spark.executor.extraJavaOptions={FAST_JVM}",
               "--conf", f"spark.executorEnv.{KILL_BEFORE_COMMIT_ENV}={KILLED}",
               "--conf", f"spark.executorEnv.{ONCE_ENV}={marker}"]
        env = {**os.environ, "FACEREC_SPARK_DRIVER_MEMORY": "1g", "FACEREC_DEBUG": "1"}
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
        apps = cluster.status()["completedapps"]
        workers_used = sorted({p.relative_to(tmp_path / "spark").parts[0]
                               for p in (tmp_path / "spark").glob("worker-*/app-*/*/stderr")})

    assert [app["name"] for app in apps] == ["facerec-build"]
    assert workers_used == ["worker-0", "worker-1"]              # both workers ran an executor of the app
    killed_pid = int(marker.read_text())                         # the fault fired: that Python worker died
    assert not Path(f"/proc/{killed_pid}").exists()
    for line in ("ingest: 24 in, 24 ok", "landmarks: 24 in", "features: 24 in", "canonical: 8 in"):
        assert line in done.stdout

    samples = read_shards(remote / "samples").column("sample_id").to_pylist()
    index = read_shards(remote / "features" / "mediapipe-64.index")
    assert sorted(index.column("sample_id").to_pylist()) == sorted(samples) and len(set(samples)) == 24
    assert index.column("row").to_pylist() == list(range(24))
    assert StoreLayout.read_manifest(StoreLayout.at(str(remote)).features_index("mediapipe", IMG_SIZE))["counts"]["rows_in"] == 24
    assert debris(remote) == []
    compared = assert_same_store(local, remote)
    assert compared["parquet_files"] == 3 * 3 + 1 and compared["arrays"] == 5
