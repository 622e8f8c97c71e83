"""The landmark autoencoder: model shapes, data normalisation and identity splits, NME, baselines, training,
resume, CLI, and a few steps on real LFW-derived landmarks.

Fast tests use a hand-made store: the real schemas and Zarr layout, filled with shapes generated here
(a per-identity canonical shape, posed by shrinking x by cos(yaw) plus noise), so every expected value
is known. The slow tests build a real store from LFW images with the pipeline (``build_store``).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from facerec.errors import ConfigError, TrainingError
from facerec.frontalization.data import (
    HOLDOUT,
    TRAIN,
    InMemoryLandmarks,
    LandmarkReader,
    StreamingLandmarks,
    canonical_targets,
    identity_holdout,
    normalise_shapes,
)
from facerec.evaluation.nme import inter_ocular_distance, nme_per_sample, summarise_by_yaw, yaw_bin_names
from facerec.geometry.landmark_sets import DLIB_68, MEDIAPIPE_478, flip_permutation, landmark_set
from facerec.schemas.tables import FEATURE_INDEX, IDENTITIES
from facerec.schemas.zarr_layout import LANDMARKS, VALID, FeatureLayout
from facerec.store.feature_arrays import create_feature_group
from facerec.store.fs import write_json_atomic, write_parquet_atomic
from facerec.store.layout import StoreLayout, shard_file

torch = pytest.importorskip("torch")


# ---------------------------------------------------------------------------------------------------
# A hand-made store
# ---------------------------------------------------------------------------------------------------
def make_handmade_store(root, extractor: str = "dlib", n_id: int = 30, per_id: int = 6, size: int = 112,
                        shard: int = 64, seed: int = 0, invalid_every: int = 0):
    """Write features (landmarks + valid), index and identities tables for ``n_id`` made-up people.

    Sample i of identity k: canonical_k with x shrunk by cos(yaw) around its centre, shifted by
    0.1*yaw px, plus N(0, 0.5 px) noise. Returns (root, canonical [n_id, P, 2] px, points [N, P, 2] px).
    """
    rng = np.random.default_rng(seed)
    lset = landmark_set(extractor)
    p = lset.num_points
    base = rng.uniform(30, 80, size=(p, 2)).astype(np.float32)
    canon = base + rng.normal(0, 3, size=(n_id, p, 2)).astype(np.float32)
    n = n_id * per_id
    ident = rng.permutation(np.repeat(np.arange(n_id), per_id))
    yaw = rng.uniform(-70, 70, n).astype(np.float32)
    pitch, roll = rng.uniform(-10, 10, (2, n)).astype(np.float32)
    c = canon[ident]
    centre = c.mean(1, keepdims=True)
    pts = c.copy()
    pts[..., 0] = centre[..., 0] + (c[..., 0] - centre[..., 0]) * np.cos(np.radians(yaw))[:, None] + 0.1 * yaw[:, None]
    pts = (pts + rng.normal(0, 0.5, pts.shape)).astype(np.float32)
    valid = np.ones(n, bool)
    if invalid_every:
        valid[::invalid_every] = False
    layout = StoreLayout.at(str(root))
    group = create_feature_group(layout.features_zarr(extractor, size),
                                 FeatureLayout(extractor=extractor, img_size=size, num_points=p, num_rows=n,
                                               shard_size=shard, chunk_rows=shard, sigma=2.0))
    group[LANDMARKS][:] = np.where(valid[:, None, None], pts, 0)
    group[VALID][:] = valid
    names = np.array([f"person_{k:03d}" for k in ident])
    index_loc = layout.features_index(extractor, size)
    for s in range(0, n, shard):
        sl = slice(s, min(n, s + shard))
        m = sl.stop - sl.start
        table = pa.table({
            "row": pa.array(np.arange(n)[sl], pa.int64()), "sample_id": [f"s{i}" for i in range(sl.start, sl.stop)],
            "identity": names[sl].tolist(), "label": pa.array(ident[sl], pa.int32()), "split": ["train"] * m,
            "valid": valid[sl], "yaw": yaw[sl], "pitch": pitch[sl], "roll": roll[sl],
            "status": np.where(valid[sl], "ok", "no_face").tolist(),
        }, schema=FEATURE_INDEX)
        write_parquet_atomic(table, index_loc.child(shard_file(s // shard)))
    write_json_atomic({"stage": "features"}, StoreLayout.manifest(index_loc))
    ident_table = pa.table({
        "identity": [f"person_{k:03d}" for k in range(n_id)], "label": pa.array(np.arange(n_id), pa.int32()),
        "num_samples": pa.array([per_id] * n_id, pa.int32()), "num_valid": pa.array([per_id] * n_id, pa.int32()),
        "num_canonical": pa.array([2] * n_id, pa.int32()), "canonical_points": [x.reshape(-1).tolist() for x in canon],
        "canonical_pose_deviation": pa.array([1.0] * n_id, pa.float32()),
        "mean_pose_deviation": pa.array([20.0] * n_id, pa.float32()),
    }, schema=IDENTITIES)
    id_loc = layout.identities(extractor, size)
    write_parquet_atomic(ident_table, id_loc.child("part-00000.parquet"))
    write_json_atomic({"stage": "canonical"}, StoreLayout.manifest(id_loc))
    return root, canon, pts


@pytest.fixture(scope="module")
def handmade(tmp_path_factory):
    return make_handmade_store(tmp_path_factory.mktemp("ae_store"), invalid_every=11)


def _config(store, out, **kw):
    from facerec.frontalization.train import AutoencoderConfig

    base = dict(store=str(store), extractor="dlib", out=str(out), epochs=2, batch_size=32, width=64, depth=1,
                code_size=16, device="cpu", threads=1, holdout_identity_frac=0.25, num_examples=3)
    base.update(kw)
    return AutoencoderConfig(**base)


# ---------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lset", [DLIB_68, MEDIAPIPE_478], ids=lambda s: s.name)
@pytest.mark.parametrize("residual", [False, True])
def test_model_shapes_and_backward(lset, residual):
    from facerec.frontalization.model import LandmarkAutoencoder

    model = LandmarkAutoencoder(lset.num_points, width=64, depth=2, code_size=16, residual=residual)
    points, pose = torch.randn(5, lset.num_points, 2), torch.randn(5, 3)
    assert model.encode(points, pose).shape == (5, 16)
    out = model(points, pose)
    assert out.shape == (5, lset.num_points, 2) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    if residual:  # starts as the identity map
        model.eval()
        assert torch.allclose(model(points, pose), points)


def test_model_output_bias_and_bad_input():
    from facerec.frontalization.model import LandmarkAutoencoder

    model = LandmarkAutoencoder(68, width=32, depth=1, code_size=8, dropout=0.0, residual=False)
    mean = torch.randn(68, 2)
    model.set_output_bias(mean)
    with torch.no_grad():
        model.decoder[-1].weight.zero_()
    assert torch.allclose(model(torch.randn(3, 68, 2), torch.zeros(3, 3)), mean.expand(3, 68, 2))
    with pytest.raises(ConfigError, match=r"\[B, 68, 2\]"):
        model(torch.randn(3, 478, 2), torch.zeros(3, 3))
    with pytest.raises(ConfigError, match="dropout"):
        LandmarkAutoencoder(68, dropout=1.0)


# ---------------------------------------------------------------------------------------------------
# Normalisation, NME, bins
# ---------------------------------------------------------------------------------------------------
def test_normalise_shapes_centre_and_rms():
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 100, (4, 68, 2)).astype(np.float32)
    norm, centre, scale = normalise_shapes(pts)
    np.testing.assert_allclose(norm.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(np.sqrt((norm**2).sum(-1).mean(-1)), 1, atol=1e-5)
    np.testing.assert_allclose(norm * scale[:, None, None] + centre[:, None, :], pts, atol=1e-3)
    collapsed = np.full((1, 68, 2), 7.0, np.float32)
    assert np.isnan(normalise_shapes(collapsed)[0]).all()


def test_nme_against_hand_made_example():
    # Target: left-eye points at (0, 0), right-eye points at (4, 0), the rest anywhere -> IOD = 4.
    target = np.zeros((2, 68, 2), np.float64)
    target[:, 42:48] = [4.0, 0.0]
    target[:, 48:] = np.arange(20 * 2).reshape(20, 2)
    np.testing.assert_allclose(inter_ocular_distance(target, DLIB_68), [4.0, 4.0])
    pred = target.copy()
    pred[0] += [3.0, 4.0]            # every point 5 px off -> NME 5/4
    pred[1, :34] += [0.0, 8.0]       # half the points 8 px off -> mean 4 px -> NME 1
    np.testing.assert_allclose(nme_per_sample(pred, target, DLIB_68, eps=0.0), [1.25, 1.0])
    # The same in torch, and the prediction's own eyes do not matter (target-normalised).
    got = nme_per_sample(torch.from_numpy(pred), torch.from_numpy(target), DLIB_68, eps=0.0)
    np.testing.assert_allclose(got.numpy(), [1.25, 1.0])
    with pytest.raises(ConfigError, match="68"):
        nme_per_sample(pred[:, :60], target[:, :60], DLIB_68)


def test_mediapipe_inter_ocular_distance_uses_eye_contours():
    pts = np.zeros((478, 2))
    pts[list(MEDIAPIPE_478.groups[0])] = [10.0, 20.0]
    pts[list(MEDIAPIPE_478.groups[1])] = [40.0, 60.0]
    assert inter_ocular_distance(pts, MEDIAPIPE_478) == pytest.approx(50.0)


def test_summarise_by_yaw_bins_counts_and_empty_bins():
    yaw = np.array([-5.0, 14.9, 15.0, -29.0, 60.0, -90.0])
    errors = {"a": np.array([1.0, 3.0, 5.0, 7.0, 9.0, 11.0])}
    out = summarise_by_yaw(errors, yaw)
    assert yaw_bin_names() == ["0-15", "15-30", "30-45", "45-60", "60-75", "75+"]
    assert out["count"] == {"all": 6, "0-15": 2, "15-30": 2, "30-45": 0, "45-60": 0, "60-75": 1, "75+": 1}
    assert out["nme"]["a"] == {"all": 6.0, "0-15": 2.0, "15-30": 6.0, "30-45": None, "45-60": None,
                               "60-75": 9.0, "75+": 11.0}


# ---------------------------------------------------------------------------------------------------
# Data: targets, identity split, rows
# ---------------------------------------------------------------------------------------------------
def test_identity_holdout_matches_recogniser_test_split():
    import pandas as pd

    from facerec.store.splits import assign_splits

    names = [f"id{i}" for i in range(400)]
    held = identity_holdout(names, 0.1, seed=3)
    index = pd.DataFrame({"identity": names, "sample_id": [f"s{i}" for i in range(400)]})
    test = assign_splits(index, holdout_identity_frac=0.1, seed=3).to_numpy() == "test"
    np.testing.assert_array_equal(held, test)
    assert 20 < held.sum() < 60
    with pytest.raises(ConfigError, match="holdout_identity_frac"):
        identity_holdout(names, 0.0, seed=0)


def test_reader_parts_are_identity_disjoint_and_account_for_every_row(handmade):
    root, canon, pts = handmade
    reader = LandmarkReader(str(root), "dlib", 112, holdout_frac=0.25, seed=0)
    train, held = reader.load(TRAIN), reader.load(HOLDOUT)
    ids = reader.targets.identity.to_numpy(zero_copy_only=False)
    train_ids, held_ids = set(ids[train.target_index]), set(ids[held.target_index])
    assert train_ids and held_ids and not train_ids & held_ids
    n = pts.shape[0]
    invalid = len(range(0, n, 11))
    assert len(train) + len(held) + invalid == n
    assert sum(reader.excluded[p].get("invalid", 0) for p in (TRAIN, HOLDOUT)) == invalid
    # Rows are the store's points, normalised, and their identity's normalised canonical shape.
    expected_points, _, _ = normalise_shapes(pts[train.row])
    np.testing.assert_allclose(train.points, expected_points, atol=1e-5)
    name_of_row = np.array([int(i.split("_")[1]) for i in ids[train.target_index]])
    np.testing.assert_allclose(train.target, normalise_shapes(canon[name_of_row])[0], atol=1e-5)


def test_canonical_targets_exclusions_and_length_check(handmade):
    root, _, _ = handmade
    from facerec.pipeline.canonical import read_identities

    table = read_identities(str(root), "dlib", 112)
    points = table["canonical_points"].to_pylist()
    points[0] = None
    num_valid = table["num_valid"].to_numpy().copy()
    num_valid[1] = 1
    table = table.set_column(table.schema.get_field_index("canonical_points"), "canonical_points",
                             pa.array(points, pa.list_(pa.float32())))
    table = table.set_column(table.schema.get_field_index("num_valid"), "num_valid", pa.array(num_valid, pa.int32()))
    targets = canonical_targets(table, DLIB_68, 0.25, seed=0, min_valid=2)
    assert targets.excluded == {"no_canonical": 1, "identity_too_few_valid": 1}
    assert len(targets.identity) == table.num_rows - 2
    with pytest.raises(Exception, match="2\\*478"):
        canonical_targets(table, MEDIAPIPE_478, 0.25, seed=0)


def test_streaming_source_yields_the_same_rows_as_ram(handmade):
    root, _, _ = handmade
    reader = LandmarkReader(str(root), "dlib", 112, holdout_frac=0.25, seed=0, index_batch_rows=16)
    ram = InMemoryLandmarks(reader.load(TRAIN))
    stream = StreamingLandmarks(reader, TRAIN, ram.num_rows, buffer_rows=50)
    batches = list(stream.batches(32, epoch=1, seed=0))
    assert all(len(b) == 32 for b in batches[:-1])
    rows = np.concatenate([b.row for b in batches])
    assert sorted(rows.tolist()) == sorted(ram.rows.row.tolist())
    assert rows.tolist() != sorted(rows.tolist())   # shuffled
    by_row = {int(r): i for i, r in enumerate(ram.rows.row)}
    first = batches[0]
    np.testing.assert_array_equal(first.points, ram.rows.points[[by_row[int(r)] for r in first.row]])


def test_open_source_streams_when_over_the_ram_budget(handmade):
    from facerec.frontalization.data import open_source

    reader = LandmarkReader(str(handmade[0]), "dlib", 112, holdout_frac=0.25, seed=0)
    small = open_source(reader, HOLDOUT, max_ram_mb=1024)
    big = open_source(reader, HOLDOUT, max_ram_mb=1e-3)
    assert isinstance(small, InMemoryLandmarks) and isinstance(big, StreamingLandmarks)
    assert big.num_rows == small.num_rows > 0


def test_missing_canonical_stage_is_a_clear_error(tmp_path):
    from facerec.errors import StageNotReadyError

    root, _, _ = make_handmade_store(tmp_path / "s", n_id=4, per_id=2)
    (tmp_path / "s" / "identities" / "dlib-112" / "_manifest.json").unlink()
    with pytest.raises(StageNotReadyError, match="facerec canonical"):
        LandmarkReader(str(root), "dlib", 112, holdout_frac=0.25, seed=0)


# ---------------------------------------------------------------------------------------------------
# Baselines, mirror augmentation
# ---------------------------------------------------------------------------------------------------
def test_baselines_are_what_they_claim(handmade):
    from facerec.frontalization.model import LandmarkAutoencoder
    from facerec.frontalization.evaluate import baseline_predictions, evaluate

    root, canon, _ = handmade
    reader = LandmarkReader(str(root), "dlib", 112, holdout_frac=0.25, seed=0)
    mean = reader.targets.mean_shape(TRAIN)
    ids = reader.targets.identity.to_numpy(zero_copy_only=False)
    train_people = [int(n.split("_")[1]) for n in ids[~reader.targets.holdout]]
    np.testing.assert_allclose(mean, normalise_shapes(canon[train_people])[0].mean(axis=0), atol=1e-5)
    held = reader.load(HOLDOUT)
    base = baseline_predictions(held.points, mean)
    assert base["input"] is held.points
    np.testing.assert_array_equal(base["mean"], np.broadcast_to(mean, held.points.shape))
    model = LandmarkAutoencoder(68, width=16, depth=1, code_size=4)
    result = evaluate(model, InMemoryLandmarks(held), mean, DLIB_68, torch.device("cpu"), num_examples=2)
    np.testing.assert_allclose(result.errors["input"], nme_per_sample(held.points, held.target, DLIB_68), rtol=1e-6)
    np.testing.assert_allclose(result.errors["mean"], nme_per_sample(base["mean"], held.target, DLIB_68), rtol=1e-6)
    assert result.summary["count"]["all"] == len(held)
    assert np.abs(result.examples.yaw).min() >= np.sort(np.abs(held.pose_deg[:, 0]))[-2] - 1e-6


def test_mirror_batch_flips_points_targets_and_pose():
    from facerec.frontalization.train import mirror_batch

    perm = torch.as_tensor(np.array(flip_permutation("dlib")))
    points, target = torch.randn(4, 68, 2), torch.randn(4, 68, 2)
    pose = torch.tensor([[30.0, 5.0, 10.0]] * 4)
    flip = torch.tensor([True, False, True, False])
    p2, q2, t2 = mirror_batch(points, pose, target, perm, flip)
    assert torch.equal(p2[1], points[1]) and torch.equal(q2[1], pose[1])
    assert torch.allclose(p2[0, 36], points[0, 45] * torch.tensor([-1.0, 1.0]))   # image-left eye corner <- right one
    assert torch.allclose(t2[2, 48], target[2, 54] * torch.tensor([-1.0, 1.0]))
    assert q2[0].tolist() == [-30.0, 5.0, -10.0]
    p3, q3, t3 = mirror_batch(p2, q2, t2, perm, flip)   # an involution
    assert torch.allclose(p3, points) and torch.allclose(q3, pose) and torch.allclose(t3, target)


# ---------------------------------------------------------------------------------------------------
# Training, resume, predict_canonical, CLI
# ---------------------------------------------------------------------------------------------------
def _weights(run_dir):
    from facerec.training.runs import RunFolder

    return RunFolder(run_dir, resume=True).load_checkpoint()["model"]


def test_resume_after_interruption_matches_an_uninterrupted_run(handmade, tmp_path, monkeypatch):
    from facerec.frontalization import train as tae

    root = handmade[0]
    full = tmp_path / "full"
    tae.main(_config(root, full, epochs=2, plots=False))

    real = tae.train_one_epoch
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    part = tmp_path / "part"
    monkeypatch.setattr(tae, "train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tae.main(_config(root, part, epochs=2, plots=False))
    monkeypatch.setattr(tae, "train_one_epoch", real)
    assert _weights(part).keys() and not (part / "eval.json").exists()
    with pytest.raises(TrainingError, match="already holds a run"):
        tae.main(_config(root, part, epochs=2))
    with pytest.raises(TrainingError, match="lr"):
        tae.main(_config(root, part, epochs=2, lr=0.5, resume=True))
    tae.main(_config(root, part, epochs=2, resume=True, plots=False))
    assert not (part / "plots" / "nme_by_yaw.png").exists()
    a, b = _weights(full), _weights(part)
    assert all(torch.allclose(a[k], b[k]) for k in a)
    assert json.loads((part / "eval.json").read_text())["count"] == json.loads((full / "eval.json").read_text())["count"]


def test_predict_canonical_places_the_prediction_in_crop_pixels(handmade, tmp_path):
    from facerec.frontalization.evaluate import predict_normalised
    from facerec.frontalization.predict import load_autoencoder, predict_canonical
    from facerec.frontalization.train import main

    root, canon, pts = handmade
    run = tmp_path / "run"
    main(_config(root, run, epochs=1, plots=False))
    ae = load_autoencoder(run)
    pose = np.tile(np.array([[40.0, 0.0, 0.0]], np.float32), (3, 1))
    points = pts[:3].copy()
    points[2] = np.nan
    out = predict_canonical(ae, points, pose)
    assert out.shape == (3, 68, 2) and np.isnan(out[2]).all() and np.isfinite(out[:2]).all()
    norm_pred = predict_normalised(ae.model, normalise_shapes(points[:2])[0], pose[:2], ae.device)
    np.testing.assert_allclose(out[:2], norm_pred * ae.frame_scale + ae.frame_centre, atol=1e-4)
    # The canonical frame is where the training canonical shapes sit in the crop.
    assert np.abs(ae.frame_centre - canon.mean(axis=(0, 1))).max() < 5.0
    np.testing.assert_allclose(predict_canonical(ae, points[:2], pose[:2], img_size=224), out[:2] * 2, rtol=1e-5)
    with pytest.raises(ConfigError, match=r"\[N, 68, 2\]"):
        predict_canonical(ae, np.zeros((2, 478, 2), np.float32), pose[:2])


def test_cli_train_and_evaluate(handmade, tmp_path):
    from typer.testing import CliRunner

    from facerec.cli import app

    out = tmp_path / "cli_run"
    runner = CliRunner()
    result = runner.invoke(app, ["train-autoencoder", "--store", str(handmade[0]), "--extractor", "dlib", "--out", str(out),
                                 "--epochs", "1", "--batch-size", "32", "--width", "32", "--depth", "1", "--code-size", "8",
                                 "--holdout-identity-frac", "0.25", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "held-out NME" in result.output
    for name in ("config.json", "data.json", "eval.json", "metrics.jsonl", "checkpoints/last.pt",
                 "plots/nme_by_yaw.png", "plots/large_yaw_examples.png", "plots/training_curves.png"):
        assert (out / name).exists(), name
    result = runner.invoke(app, ["evaluate-autoencoder", "--run", str(out), "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary == json.loads((out / "eval.json").read_text())
    assert set(summary["nme"]) == {"model", "input", "mean"}


# ---------------------------------------------------------------------------------------------------
# Real LFW-derived landmarks
# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lfw_store(lfw_dir, tmp_path_factory):
    """The session's real store (64 LFW faces of 8 people + a face-less and a corrupt image, through every
    stage with mediapipe, 112 px), built once and shared with the feature and canonical tests."""
    from test_feature_stage import build_lfw_store

    return build_lfw_store(lfw_dir, tmp_path_factory)[0]


@pytest.mark.slow
def test_real_landmarks_parts_account_for_every_row(lfw_store):
    reader = LandmarkReader(str(lfw_store), "mediapipe", 112, holdout_frac=0.2, seed=0)
    train, held = reader.load(TRAIN), reader.load(HOLDOUT)
    assert len(train) >= 40 and len(held) >= 8      # 6 and 2 of the 8 people (8 faces each) at seed 0
    excluded = {k: v for k, v in reader.excluded[TRAIN].items()}
    held_ex = reader.excluded[HOLDOUT]
    total = reader.total_index_rows()
    unusable = excluded.pop("unusable_identity", 0)
    assert held_ex.get("unusable_identity", 0) == unusable
    in_parts = len(train) + len(held) + sum(excluded.values()) + sum(v for k, v in held_ex.items() if k != "unusable_identity")
    assert in_parts + unusable == total
    assert np.isfinite(train.pose_deg).all() and np.abs(train.pose_deg[:, 0]).max() > 10


@pytest.fixture
def one_thread():
    """Tiny MLPs run fastest on one torch thread on a busy machine; the setting is restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize("residual", [True, False])
def test_a_few_steps_lower_the_loss_on_real_landmarks(lfw_store, residual, one_thread):
    from facerec.frontalization.model import LandmarkAutoencoder
    from facerec.frontalization.data import pose_input

    torch.manual_seed(0)
    reader = LandmarkReader(str(lfw_store), "mediapipe", 112, holdout_frac=0.2, seed=0)
    train = reader.load(TRAIN)
    points, pose, target = (torch.from_numpy(train.points), torch.from_numpy(pose_input(train.pose_deg)),
                            torch.from_numpy(train.target))
    model = LandmarkAutoencoder(478, width=128, depth=2, code_size=16, dropout=0.0, residual=residual)
    model.set_output_bias(torch.from_numpy(reader.targets.mean_shape(TRAIN)))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)

    def loss():
        return nme_per_sample(model(points, pose), target, MEDIAPIPE_478, smooth=1e-12).mean()

    with torch.no_grad():
        first = loss().item()
    for _ in range(30):
        opt.zero_grad()
        loss().backward()
        opt.step()
    with torch.no_grad():
        last = loss().item()
    assert math.isfinite(last) and last < 0.9 * first


@pytest.mark.slow
def test_train_and_evaluate_on_real_landmarks(lfw_store, tmp_path):
    from facerec.frontalization.train import AutoencoderConfig, main

    out = tmp_path / "real_run"
    summary = main(AutoencoderConfig(store=str(lfw_store), extractor="mediapipe", out=str(out), epochs=3, batch_size=16,
                                     width=128, code_size=16, holdout_identity_frac=0.2, device="cpu", threads=1,
                                     plots=False))
    held = LandmarkReader(str(lfw_store), "mediapipe", 112, holdout_frac=0.2, seed=0).load(HOLDOUT)
    assert summary["count"]["all"] == len(held) > 0
    assert sum(summary["count"][b] for b in yaw_bin_names()) == len(held)
    assert all(math.isfinite(summary["nme"][m]["all"]) for m in ("model", "input", "mean"))
    data = json.loads((out / "data.json").read_text())
    assert data["identities_excluded"] == {"no_canonical": 2}      # the face-less and the corrupt picture
