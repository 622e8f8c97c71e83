"""Canonical landmarks: the pure aggregation on hand-made data, and the Spark stage on real LFW faces."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from facerec.errors import ConfigError, FacerecError, StageNotReadyError, StoreError
from facerec.pipeline.canonical import CanonicalConfig, aggregate_canonical, read_identities, run_canonical
from facerec.geometry.landmark_sets import MEDIAPIPE_478
from facerec.schemas import zarr_layout as zl

from test_feature_stage import K, build_lfw_store


# ------------------------------------------------------------------------------------------ pure function
def test_aggregate_takes_the_k_least_posed_samples():
    shapes = np.arange(5, dtype=float)[:, None, None] * np.ones((5, 4, 2))     # sample i: every point = i
    pose = np.array([[30, 0, 0], [0, -2, 1], [-10, 5, 5], [1, 1, -1], [0, 40, 0]], dtype=float)
    canonical, deviation = aggregate_canonical(shapes, pose, 2)               # deviations 30, 3, 20, 3, 40
    np.testing.assert_allclose(canonical, np.full((4, 2), (1 + 3) / 2))
    assert canonical.dtype == np.float32 and deviation == pytest.approx(3.0)
    canonical, deviation = aggregate_canonical(shapes, pose, 3)
    np.testing.assert_allclose(canonical, np.full((4, 2), (1 + 3 + 2) / 3))
    assert deviation == pytest.approx((3 + 3 + 20) / 3)


def test_aggregate_ties_keep_input_order_and_k_may_exceed_n():
    shapes = np.stack([np.full((3, 2), v) for v in (7.0, 9.0, 11.0)])
    pose = np.array([[5, 0, 0], [0, 0, -5], [0, 5, 0]], dtype=float)          # all deviate by 5
    np.testing.assert_allclose(aggregate_canonical(shapes, pose, 1)[0], np.full((3, 2), 7.0))
    canonical, deviation = aggregate_canonical(shapes, pose, 10)
    np.testing.assert_allclose(canonical, np.full((3, 2), 9.0))
    assert deviation == 5.0


def test_aggregate_refuses_bad_input():
    with pytest.raises(ConfigError, match="k must be at least 1"):
        aggregate_canonical(np.zeros((2, 3, 2)), np.zeros((2, 3)), 0)
    with pytest.raises(FacerecError, match="n >= 1"):
        aggregate_canonical(np.zeros((0, 3, 2)), np.zeros((0, 3)), 2)


def test_canonical_needs_finished_features(tmp_path):
    with pytest.raises(StageNotReadyError, match="facerec features --store"):
        run_canonical(CanonicalConfig(store=str(tmp_path), extractor="mediapipe"))


# ------------------------------------------------------------------------------------------ on real faces
@pytest.fixture(scope="module")
def lfw_store(lfw_dir, tmp_path_factory):
    return build_lfw_store(lfw_dir, tmp_path_factory)[0]


def _index(store) -> pa.Table:
    files = sorted((store / "features" / "mediapipe-112.index").glob("shard-*.parquet"))
    return pa.concat_tables(pq.read_table(f) for f in files).sort_by("row")


def _aligned(store) -> np.ndarray:
    import zarr

    return zarr.open_group(str(store / "features" / "mediapipe-112.zarr"), mode="r")[zl.LANDMARKS][:]


@pytest.mark.slow
def test_identities_table_counts(lfw_store):
    ident = read_identities(str(lfw_store), "mediapipe", 112).to_pylist()
    index = _index(lfw_store).to_pylist()
    assert [r["label"] for r in ident] == sorted(r["label"] for r in ident) and len(ident) == 10
    for r in ident:
        rows = [x for x in index if x["identity"] == r["identity"]]
        assert r["num_samples"] == len(rows) and r["label"] == rows[0]["label"]
        assert r["num_valid"] == sum(x["valid"] for x in rows)
        assert r["num_canonical"] == min(K, r["num_valid"])
    empty = {r["identity"]: r for r in ident if r["num_valid"] == 0}
    assert set(empty) == {"zz_no_face", "zz_corrupt"}
    assert all(r["canonical_points"] is None and r["mean_pose_deviation"] is None for r in empty.values())


@pytest.mark.slow
def test_canonical_points_are_the_mean_of_the_least_posed(lfw_store):
    index = _index(lfw_store)
    aligned = _aligned(lfw_store)
    ident = {r["identity"]: r for r in read_identities(str(lfw_store), "mediapipe", 112).to_pylist()}
    valid = index.filter(index.column("valid")).to_pylist()
    for name in {r["identity"] for r in valid}:
        rows = [r for r in valid if r["identity"] == name]
        pose = np.array([[r["yaw"], r["pitch"], r["roll"]] for r in rows])
        expect, deviation = aggregate_canonical(aligned[[r["row"] for r in rows]], pose, K)
        got = np.asarray(ident[name]["canonical_points"]).reshape(-1, 2)
        np.testing.assert_allclose(got, expect, atol=1e-4)
        assert ident[name]["canonical_pose_deviation"] == pytest.approx(deviation, rel=1e-5)
        assert ident[name]["mean_pose_deviation"] == pytest.approx(np.abs(pose).sum(axis=1).mean(), rel=1e-5)


@pytest.mark.slow
def test_canonical_shapes_are_more_frontal_than_the_posed_samples(lfw_store):
    """Against the store's mean frontal shape, each canonical shape is closer than its most-posed samples."""
    index = _index(lfw_store)
    aligned = _aligned(lfw_store)
    valid = index.filter(index.column("valid")).to_pylist()
    dev = {r["row"]: abs(r["yaw"]) + abs(r["pitch"]) + abs(r["roll"]) for r in valid}
    frontal_rows = [row for row, d in dev.items() if d <= np.quantile(list(dev.values()), 0.25)]
    reference = aligned[frontal_rows].mean(axis=0)                                   # [478, 2]
    rms = lambda shape: float(np.sqrt(((shape - reference) ** 2).sum(axis=-1).mean()))  # noqa: E731

    closer, canon_rms, posed_rms = [], [], []
    for r in read_identities(str(lfw_store), "mediapipe", 112).to_pylist():
        if r["num_valid"] < 2 * K:
            continue
        rows = sorted((x["row"] for x in valid if x["identity"] == r["identity"]), key=lambda row: dev[row])
        canonical = np.asarray(r["canonical_points"]).reshape(-1, 2)
        most_posed = aligned[rows[-K:]].mean(axis=0)
        canon_rms.append(rms(canonical))
        posed_rms.append(rms(most_posed))
        closer.append(canon_rms[-1] < posed_rms[-1])
        assert r["canonical_pose_deviation"] <= r["mean_pose_deviation"]
    assert len(closer) == 8
    assert np.mean(closer) >= 0.75 and np.mean(canon_rms) < np.mean(posed_rms), (canon_rms, posed_rms)
    # Canonical shapes stay on the alignment template's frame: eyes where the template puts them.
    eyes = np.array([MEDIAPIPE_478.five_points(np.asarray(r["canonical_points"]).reshape(-1, 2))[:2]
                     for r in read_identities(str(lfw_store), "mediapipe", 112).to_pylist() if r["num_canonical"]])
    assert np.abs(eyes.mean(axis=0) - MEDIAPIPE_478.five_points(reference)[:2]).max() < 3


@pytest.mark.slow
def test_rerun_is_a_no_op_and_another_k_is_refused(lfw_store):
    config = CanonicalConfig(store=str(lfw_store), extractor="mediapipe", k=K)
    result = run_canonical(config)
    assert result.skipped_stage and result.rows_in == 10 and result.ok == 8
    assert result.rejected == {"no_valid_sample": 2}
    with pytest.raises(StoreError, match="--overwrite"):
        run_canonical(dataclasses.replace(config, k=K + 1))
