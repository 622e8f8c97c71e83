"""Faults while writing a store: killed Spark Python workers, a full disk; nothing lost, nothing twice.

Faults are injected with ``facerec.faults`` (environment variables read where the write happens: in
the Spark Python workers through ``SparkContext.environment``, in this process through monkeypatch).
``local[2]`` does not retry a failed task, so here each fault fails the stage with a ``StoreError``
and a rerun must complete it; ``test_cluster`` shows the retry route on a standalone cluster.
The template extractor keeps these tests fast: faults are about shards and commits, not faces.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

import pytest

from facerec.errors import StoreError
from facerec.faults import DISK_FULL_ENV, KILL_BEFORE_COMMIT_ENV
from facerec.pipeline.feature_stage import FeaturesConfig, run_features
from facerec.pipeline.ingest import IngestConfig, run_ingest
from facerec.pipeline.landmark_stage import LandmarksConfig, finished_shards, run_landmarks
from facerec.store.layout import StoreLayout

from conftest import make_image_folder
from store_compare import data_files, debris, read_shards

NUM_IDENTITIES, PER_IDENTITY, SHARD_SIZE = 8, 3, 8     # 24 real LFW faces in 3 shards
N = NUM_IDENTITIES * PER_IDENTITY


@pytest.fixture(scope="module")
def source(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("faults_src"), lfw_dir, NUM_IDENTITIES, PER_IDENTITY,
                             min_images=PER_IDENTITY)


def _ingest(source: Path, store: Path):
    return run_ingest(IngestConfig(source=str(source), store=str(store), seed=1, shard_size=SHARD_SIZE))


@contextlib.contextmanager
def worker_env(spark, **variables: str):
    """Environment variables for the Spark Python workers of the jobs run inside the block."""
    environment = spark.sparkContext.environment
    saved = {k: environment.get(k) for k in variables}
    environment.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                environment.pop(key, None)
            else:
                environment[key] = value


def _assert_each_sample_once(store: Path, folder: Path) -> None:
    expected = read_shards(store / "samples").column("sample_id").to_pylist()
    written = read_shards(folder).column("sample_id").to_pylist()
    assert len(written) == len(expected) == N
    assert Counter(written) == Counter(expected) and max(Counter(written).values()) == 1


# ---------------------------------------------------------------------------------------------- driver
def test_a_full_disk_during_ingest_leaves_no_partial_file_and_a_rerun_completes(
        source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    monkeypatch.setenv(DISK_FULL_ENV, "samples/shard-00001.parquet")
    with pytest.raises(StoreError, match=r"cannot write .*shard-00001\.parquet.*No space left on device"):
        _ingest(source, store)
    samples = store / "samples"
    assert not StoreLayout.is_finished(StoreLayout.at(str(store)).samples)       # the stage is not done
    assert sorted(p.name for p in samples.glob("shard-*")) == ["shard-00000.parquet"]   # whole shards only
    assert debris(store) == []                                                   # the torn temp file is gone

    monkeypatch.delenv(DISK_FULL_ENV)
    resumed = _ingest(source, store)
    assert (resumed.rows_in, resumed.shards_skipped, resumed.shards_done) == (N, 1, 2)
    clean = _ingest(source, tmp_path / "clean")
    assert data_files(store) == data_files(tmp_path / "clean")                   # same bytes as a clean run


# ---------------------------------------------------------------------------------------------- Spark
def test_a_failed_spark_job_becomes_one_line_naming_the_workers_reason() -> None:
    from facerec.pipeline.spark import task_failure

    crashed = ("An error occurred while calling o91.collectToPython.\n: org.apache.spark.SparkException: Job aborted "
               "due to stage failure: Task 1 in stage 3.0 failed 4 times, most recent failure: Lost task 1.3 in stage "
               "3.0 (TID 9) (10.0.0.7 executor 2): org.apache.spark.SparkException: Python worker exited unexpectedly "
               "(crashed). Consider setting 'spark.python.worker.faulthandler.enabled'\n\tat org.apache.spark.api")
    error = task_failure("features mediapipe-112", RuntimeError(crashed))
    assert isinstance(error, StoreError)
    assert str(error).startswith("features mediapipe-112: a shard task failed after 4 attempt(s) "
                                 "(Python worker exited unexpectedly (crashed)); committed shards are kept")
    raised = ("Job aborted due to stage failure: Task 0 in stage 0.0 failed 1 times\nTraceback (most recent call last):"
              "\n  File \"fs.py\", line 80\nfacerec.errors.StoreError: cannot write s3://b/landmarks/x/shard-00000.parquet: "
              "[Errno 13] Permission denied\n")
    assert "(StoreError: cannot write s3://b/landmarks/x/shard-00000.parquet: [Errno 13] Permission denied)" in \
        str(task_failure("landmarks x", RuntimeError(raised)))


@pytest.mark.slow
def test_landmarks_survive_a_full_disk_and_a_killed_worker(source: Path, tmp_path: Path, spark) -> None:
    store = tmp_path / "store"
    _ingest(source, store)
    out = StoreLayout.at(str(store)).landmarks("template")
    config = LandmarksConfig(store=str(store), extractor="template")

    # 1. A full disk in the Python worker writing shard 2: a clear error naming the file and ENOSPC.
    with worker_env(spark, **{DISK_FULL_ENV: "landmarks/template/shard-00002.parquet"}):
        with pytest.raises(StoreError, match=r"landmarks template: a shard task failed.* \(StoreError: cannot write "
                                             r".*shard-00002\.parquet.*No space left on device"):
            run_landmarks(config, spark)
    assert not StoreLayout.is_finished(out) and 2 not in finished_shards(out)
    assert not [d for d in debris(store) if "shard-00002" in d]

    # 2. The worker computing shard 2 again is SIGKILLed after writing it, just before the commit (rename).
    with worker_env(spark, **{KILL_BEFORE_COMMIT_ENV: "landmarks/template/shard-00002.parquet"}):
        with pytest.raises(StoreError, match="Python worker exited unexpectedly"):
            run_landmarks(config, spark)
    committed = finished_shards(out)
    assert not StoreLayout.is_finished(out) and 2 not in committed
    assert any("shard-00002" in d for d in debris(store))        # its temp file: invisible to readers

    # 3. A rerun computes only the missing shards; every sample appears exactly once.
    result = run_landmarks(config, spark)
    assert (result.rows_in, result.shards_skipped, result.shards_done) == (N, len(committed), 3 - len(committed))
    assert StoreLayout.read_manifest(out)["num_rows"] == N
    _assert_each_sample_once(store, Path(out.path))
    assert debris(store) == []


@pytest.mark.slow
def test_features_survive_a_worker_killed_between_its_arrays_and_its_commit(source: Path, tmp_path: Path, spark) -> None:
    import numpy as np

    from facerec.store.open_store import open_feature_set

    store = tmp_path / "store"
    _ingest(source, store)
    run_landmarks(LandmarksConfig(store=str(store), extractor="template"), spark)
    config = FeaturesConfig(store=str(store), extractor="template", img_size=32)
    index = StoreLayout.at(str(store)).features_index("template", 32)

    # Shard 1's Zarr rows are written, then its Python worker dies before the index file is committed.
    with worker_env(spark, **{KILL_BEFORE_COMMIT_ENV: "features/template-32.index/shard-00001.parquet"}):
        with pytest.raises(StoreError, match="Python worker exited unexpectedly"):
            run_features(config, spark)
    committed = finished_shards(index)
    assert 1 not in committed and not StoreLayout.is_finished(index)
    with pytest.raises(StoreError):
        open_feature_set(str(store))                           # readers refuse the unfinished feature set

    result = run_features(config, spark)
    assert (result.rows_in, result.shards_skipped, result.shards_done) == (N, len(committed), 3 - len(committed))
    _assert_each_sample_once(store, Path(index.path))
    fset = open_feature_set(str(store))                        # checks the index against the valid array
    assert fset.index["row"].tolist() == list(range(N)) and fset.valid.sum() == result.ok
    images = fset.array("image")[:]
    assert all(images[r].any() for r in np.flatnonzero(fset.valid))   # no row left unwritten
    assert debris(store) == []


# ---------------------------------------------------------------------------------------------- training
TRAIN_SIZE, TRAIN_EPOCHS = 32, 2


def _train_config(store: str, out: Path, **kw):
    from facerec.recognition.config import TrainConfig

    base = dict(store=store, out=str(out), backbone="resnet18", stem="imagenet", embedding_size=32, img_size=TRAIN_SIZE,
                epochs=TRAIN_EPOCHS, batch_size=8, lr=2e-3, warmup_epochs=0.5, num_workers=0, device="cpu",
                augment=True, holdout_identity_frac=0.2, log_every=1, evaluate_after=False)
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_training_killed_mid_epoch_resumes_from_its_checkpoint_as_if_never_killed(lfw_dir: Path, tmp_path: Path) -> None:
    """Reference: 2 epochs straight. Interrupted: a separate process SIGKILLed in the middle of epoch 2
    (its last checkpoint: the end of epoch 1), then ``--resume`` to the end. The weights, optimiser,
    scheduler, scaler and loop state, and the logged loss at every step, must equal the reference's;
    metrics.jsonl must hold each step once (what the killed run logged after its checkpoint is dropped)."""
    import dataclasses
    import json
    import os
    import signal
    import subprocess
    import sys

    import torch

    from facerec.faults import KILL_AT_STEP_ENV
    from facerec.recognition import train as tr
    from facerec.training.runs import RunFolder

    from conftest import REPO
    from store_builder import build_feature_set

    zarr_path, _ = build_feature_set(tmp_path / "store", lfw_dir, num_identities=12, per_identity=5,
                                     size=TRAIN_SIZE, chunk_rows=8, shard_size=32, invalid_rows=())
    store = str(zarr_path)
    reference = tr.main(_train_config(store, tmp_path / "reference"))
    per_epoch = reference.steps // TRAIN_EPOCHS
    run = tmp_path / "run"

    kill_at = per_epoch + per_epoch // 2 + 1                                         # mid-epoch 2
    config = dataclasses.asdict(_train_config(store, run))
    code = ("import json, sys; from facerec.recognition.config import TrainConfig; from facerec.recognition.train import main; "
            "main(TrainConfig(**json.loads(sys.argv[1])))")
    killed = subprocess.run([sys.executable, "-c", code, json.dumps(config)], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, KILL_AT_STEP_ENV: str(kill_at)}, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    logged = [m["step"] for m in RunFolder(run, resume=True).read_metrics() if m["phase"] == "train"]
    assert max(logged) == kill_at                                                   # it logged past its checkpoint
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["loop"]
    assert (saved["step"], saved["epoch"], saved["batch_in_epoch"]) == (per_epoch, 1, 0)

    resumed = tr.main(_train_config(store, run, resume=True))
    assert resumed.steps == reference.steps and resumed.epochs_done == TRAIN_EPOCHS
    a = torch.load(tmp_path / "reference" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    for key, value in a["model"].items():
        assert torch.allclose(value.float(), b["model"][key].float(), atol=1e-6), key
    assert a["scheduler"] == b["scheduler"] and a["loop"] == b["loop"] and a["scaler"] == b["scaler"]
    for pid, st in a["optimizer"]["state"].items():
        assert int(st["step"]) == int(b["optimizer"]["state"][pid]["step"])
        assert torch.allclose(st["exp_avg"], b["optimizer"]["state"][pid]["exp_avg"], atol=1e-7)

    def curve(folder: Path) -> list[tuple[int, float]]:
        return [(m["step"], m["loss"]) for m in RunFolder(folder, resume=True).read_metrics() if m["phase"] == "train"]

    ref_curve, run_curve = curve(tmp_path / "reference"), curve(run)
    assert [s for s, _ in run_curve] == list(range(1, reference.steps + 1))            # no gap, no duplicate
    assert [s for s, _ in ref_curve] == [s for s, _ in run_curve]
    assert [round(v, 4) for _, v in run_curve] == [round(v, 4) for _, v in ref_curve]  # the curve carries on
