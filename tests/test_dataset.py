"""FaceStoreDataset / FeatureSet on small stores of real LFW crops (tests/store_builder.py)."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import zarr

from facerec.errors import ConfigError, SchemaMismatchError, StageNotReadyError
from facerec.geometry.heatmaps import render_heatmaps
from facerec.geometry.landmark_sets import landmark_set
from facerec.schemas.tables import LAYOUT_VERSION, META_VERSION
from facerec.schemas.zarr_layout import ATTR_LAYOUT_VERSION
from facerec.store.dataset import FaceStoreDataset, normalize_batch
from facerec.store.open_store import FeatureSet
from facerec.store.sampler import ChunkShuffleSampler, make_loader
from facerec.store.splits import TEST, TRAIN, VAL, SplitConfig
from facerec.store.transforms import default_train_transform

from store_builder import build_feature_set, resolve_index

INVALID = (3, 17)


@pytest.fixture(scope="module")
def store(lfw_dir, tmp_path_factory):
    """32 real crops of 8 people, chunks of 4 rows, shards of 16; rows 3 and 17 invalid."""
    return build_feature_set(tmp_path_factory.mktemp("dstore"), lfw_dir, invalid_rows=INVALID)


@pytest.fixture(scope="module")
def fset(store) -> FeatureSet:
    return FeatureSet.open(str(store[0]))


def peaks(maps: np.ndarray) -> np.ndarray:
    """[..., S, S] -> [..., 2] (x, y) argmax."""
    s = maps.shape[-1]
    idx = maps.reshape(*maps.shape[:-2], -1).argmax(-1)
    return np.stack([idx % s, idx // s], axis=-1)


@pytest.mark.parametrize(
    ("use_heatmaps", "mask", "all_landmarks", "channels"),
    [(False, False, False, 3), (False, True, False, 4), (True, False, False, 9), (True, True, False, 10),
     (True, False, True, 3 + 68), (True, True, True, 3 + 68 + 1)],
)
def test_shapes_and_dtypes_per_option(fset, use_heatmaps, mask, all_landmarks, channels):
    ds = FaceStoreDataset(fset, use_heatmaps=use_heatmaps, add_mask_channel=mask, group_all_landmarks=all_landmarks)
    assert ds.num_channels == channels and len(ds) == 32
    sample = ds[0]
    assert sample["image"].shape == (channels, 112, 112) and sample["image"].dtype == torch.uint8
    assert sample["label"].dtype == torch.int64 and sample["valid"].dtype == torch.bool
    batch = ds.__getitems__([0, 5, 9])
    assert batch["image"].shape == (3, channels, 112, 112) and batch["image"].dtype == torch.uint8
    for key in ("yaw", "pitch", "roll"):
        assert batch[key].dtype == torch.float32 and batch[key].shape == (3,)
    assert batch["row"].tolist() == [0, 5, 9]


def test_values_match_what_was_stored(store, fset):
    _, truth = store
    ds = FaceStoreDataset(fset, add_mask_channel=True)
    batch = ds.read_rows(np.arange(32))
    image = batch["image"].numpy()
    assert np.array_equal(image[:, :3], truth["images"])
    assert np.array_equal(image[:, 3:9], truth["heatmaps"])
    assert np.array_equal(image[:, 9], truth["mask"][:, 0] * 255)
    assert batch["label"].tolist() == truth["labels"].tolist() == batch["identity"].tolist()
    assert batch["valid"].numpy().tolist() == truth["valid"].tolist()
    assert np.allclose(batch["yaw"].numpy(), truth["pose"][:, 0], equal_nan=True)
    assert np.isnan(batch["yaw"][list(INVALID)]).all() and not np.isnan(batch["yaw"][0])
    assert fset.num_classes == 8


def test_unsorted_and_repeated_rows_come_back_in_order(fset):
    ds = FaceStoreDataset(fset)
    for rows in ([30, 2, 2, 17, 0, 31], [5, 5, 7], [8, 9, 10, 11, 12]):   # shuffled, gaps, repeats, dense
        batch = ds.read_rows(rows)
        single = torch.stack([ds[r]["image"] for r in rows])
        assert batch["row"].tolist() == rows and torch.equal(batch["image"], single)


def test_float16_heatmaps_come_back_as_uint8(lfw_dir, tmp_path, store):
    zarr_path, _ = build_feature_set(tmp_path, lfw_dir, num_identities=2, per_identity=4, heatmap_dtype="float16", invalid_rows=())
    ds = FaceStoreDataset(str(zarr_path))
    maps = ds.read_rows(np.arange(8))["image"][:, 3:].numpy().astype(int)
    stored = np.asarray(zarr.open_group(str(zarr_path), mode="r")["heatmaps"][:], dtype=np.float32)
    assert maps.max() == 255 and np.abs(maps - np.rint(stored * 255)).max() <= 1


def test_read_time_rendering_equals_stored_group_peaks(fset):
    stored = FaceStoreDataset(fset, include_invalid=False).read_rows(np.flatnonzero(fset.valid))["image"][:, 3:].numpy()
    rendered = FaceStoreDataset(fset, include_invalid=False, render_heatmaps=True)
    again = rendered.read_rows(np.flatnonzero(fset.valid))["image"][:, 3:].numpy()
    assert rendered.render_groups
    assert np.array_equal(peaks(again), peaks(stored))
    assert np.abs(again.astype(int) - stored.astype(int)).max() <= 1


def test_per_landmark_channels_peak_on_their_landmarks(store, fset):
    _, truth = store
    ds = FaceStoreDataset(fset, group_all_landmarks=True, sigma=1.5, return_landmarks=True)
    batch = ds.read_rows(np.arange(8))
    maps = batch["image"][:, 3:].numpy()
    pts = truth["points"][:8]
    ok = truth["valid"][:8]
    assert np.allclose(batch["landmarks"].numpy()[ok], pts[ok])
    inside = ((pts >= 1) & (pts <= 110)).all(-1) & ok[:, None]
    assert np.abs(peaks(maps) - np.rint(pts))[inside].max() <= 1
    assert maps[~ok].max() == 0                                     # no face: empty maps, not a map at (0, 0)
    # sigma is honoured: the reader used render_heatmaps at 1.5 px
    expected = np.rint(render_heatmaps(pts[0:1], 112, 1.5) * 255).astype(np.uint8)[0]
    assert np.array_equal(maps[0], expected)


def test_mediapipe_478_channels(lfw_dir, tmp_path):
    zarr_path, _ = build_feature_set(tmp_path, lfw_dir, num_identities=2, per_identity=2, extractor="mediapipe", invalid_rows=(), chunk_rows=2, shard_size=4)
    ds = FaceStoreDataset(str(zarr_path), group_all_landmarks=True, add_mask_channel=True)
    assert ds.num_channels == 3 + 478 + 1
    assert ds[1]["image"].shape == (482, 112, 112)
    assert len(ds.channel_layout.channel_flip_permutation()) == 482


def test_include_invalid_and_explicit_rows(fset):
    ds = FaceStoreDataset(fset, include_invalid=False)
    assert len(ds) == 30 and not set(INVALID) & set(ds.rows.tolist())
    sub = FaceStoreDataset(fset, rows=[4, 8, 12])
    assert len(sub) == 3 and sub[1]["row"] == 8
    with pytest.raises(ConfigError, match="rows must be rows"):
        FaceStoreDataset(fset, rows=[40])
    with pytest.raises(ConfigError, match="either rows or split"):
        FaceStoreDataset(fset, rows=[1], split=TRAIN)
    with pytest.raises(ConfigError, match="unknown split"):
        FaceStoreDataset(fset, split="holdout")


def test_split_datasets_remap_labels_to_training_classes(fset):
    config = SplitConfig(holdout_identity_frac=0.4, holdout_image_frac=0.3, seed=1)
    parts = {name: FaceStoreDataset(fset, split=name, split_config=config) for name in (TRAIN, VAL, TEST)}
    rows = [set(p.rows.tolist()) for p in parts.values()]
    assert sum(len(r) for r in rows) == 32 and not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])
    train = parts[TRAIN].read_rows(parts[TRAIN].rows)
    classes = parts[TRAIN].num_classes
    assert 0 < classes < 8 and sorted(set(train["label"].tolist())) == list(range(classes))
    val = parts[VAL].read_rows(parts[VAL].rows)
    assert ((val["label"] >= 0) & (val["label"] < classes)).all()
    test = parts[TEST].read_rows(parts[TEST].rows)
    assert (test["label"] == -1).all() and not set(test["identity"].tolist()) & set(train["identity"].tolist())


def test_feature_set_pickles_without_open_arrays(fset):
    fset.array("image")                                             # opened here
    data = pickle.dumps(fset)
    assert b"zarr" not in data.replace(b".zarr", b"")              # no zarr object, only the path
    again = pickle.loads(data)
    assert again._arrays == {} and np.array_equal(again.labels, fset.labels)
    assert np.array_equal(np.asarray(again.array("image")[0:2]), np.asarray(fset.array("image")[0:2]))
    assert len(again.index) == 32                                   # re-read from the store when asked


def test_refuses_another_layout_version(store, tmp_path):
    zarr_path, _ = store
    copy = tmp_path / "features" / zarr_path.name
    shutil.copytree(zarr_path, copy)
    shutil.copytree(resolve_index(zarr_path).path, tmp_path / "features" / zarr_path.name.replace(".zarr", ".index"))
    FeatureSet.open(str(copy))                                      # the copy opens
    index_dir = resolve_index(copy).path
    shard = sorted(p for p in __import__("os").listdir(index_dir) if p.startswith("shard-"))[0]
    table = pq.read_table(f"{index_dir}/{shard}")
    meta = dict(table.schema.metadata)
    pq.write_table(table.replace_schema_metadata({**meta, META_VERSION: b"0"}), f"{index_dir}/{shard}")
    with pytest.raises(SchemaMismatchError, match="layout version 0"):
        FeatureSet.open(str(copy))
    pq.write_table(table, f"{index_dir}/{shard}")
    group = zarr.open_group(str(copy), mode="r+")
    group.attrs[ATTR_LAYOUT_VERSION] = 99
    with pytest.raises(SchemaMismatchError, match="version 99"):
        FeatureSet.open(str(copy))
    group.attrs[ATTR_LAYOUT_VERSION] = LAYOUT_VERSION
    FeatureSet.open(str(copy))
    (tmp_path / "features" / zarr_path.name.replace(".zarr", ".index") / "_manifest.json").unlink()
    with pytest.raises(StageNotReadyError, match="has not finished"):
        FeatureSet.open(str(copy))


def test_normalize_batch_moves_then_scales():
    images = torch.zeros(2, 10, 4, 4, dtype=torch.uint8)
    images[:, :3] = 255
    images[:, 3:, 0, 0] = 255
    x = normalize_batch(images, "cpu")
    assert x.dtype == torch.float32
    assert torch.all(x[:, :3] == 1.0) and torch.all(x[:, 3:, 0, 0] == 1.0) and torch.all(x[:, 3:, 1, 1] == 0.0)
    assert torch.all(normalize_batch(torch.zeros(1, 3, 2, 2, dtype=torch.uint8), "cpu") == -1.0)
    with pytest.raises(ConfigError, match="uint8"):
        normalize_batch(images.float(), "cpu")


@pytest.mark.slow
def test_loader_with_two_spawn_workers_matches_direct_reads(fset):
    ds = FaceStoreDataset(fset, add_mask_channel=True, transform=default_train_transform())
    sampler = ChunkShuffleSampler.for_dataset(ds, batch_size=6, shuffle_buffer_chunks=2, seed=3)
    loader = make_loader(ds, sampler, num_workers=2, multiprocessing_context="spawn", prefetch_factor=2)
    for epoch in (0, 1):                                                # persistent workers serve both epochs
        sampler.set_epoch(epoch)
        seen = []
        for indices, batch in zip(list(sampler), loader, strict=True):
            direct = ds.__getitems__(indices)                           # same rows, same augmentation seed
            assert torch.equal(batch["image"], direct["image"]) and torch.equal(batch["row"], direct["row"])
            seen += batch["row"].tolist()
        assert sorted(seen) == list(range(32))


@pytest.mark.slow
def test_reads_a_store_built_by_the_pipeline(lfw_dir, tmp_path_factory):
    """The shared 66-row store of test_feature_stage (64 LFW faces, a face-less and a corrupt image)."""
    from test_feature_stage import build_lfw_store

    store, _ = build_lfw_store(lfw_dir, tmp_path_factory)
    fs = FeatureSet.open(str(store))                                # the store's only feature set
    assert fs.layout.extractor == "mediapipe" and fs.num_rows == 66 and fs.valid.sum() == 64
    assert fs.num_classes == 10                                     # 8 people + the two zz_ folders
    ds = FaceStoreDataset(fs, add_mask_channel=True, return_landmarks=True)
    batch = ds.read_rows(ds.rows)
    assert batch["image"].shape == (66, 10, 112, 112)
    valid = batch["valid"].numpy()
    image = batch["image"].numpy()
    groups = landmark_set("mediapipe").group_points(batch["landmarks"].numpy()[valid])
    inside = ((groups > 6) & (groups < 105)).all(-1)
    assert np.abs(peaks(image[valid, 3:9]) - groups)[inside].max() <= 1
    assert not image[~valid, 3:].any()                              # no face: empty maps and mask
    assert set(np.unique(image[:, 9]).tolist()) == {0, 255}
    assert np.isfinite(batch["yaw"].numpy()[valid]).all()
    # the reader's own rendering of the 6 groups agrees with the stage's stored maps
    rendered = FaceStoreDataset(fs, render_heatmaps=True).read_rows(ds.rows)["image"].numpy()
    assert np.abs(rendered[:, 3:].astype(int) - image[:, 3:9].astype(int)).max() <= 1
    per_landmark = FaceStoreDataset(fs, group_all_landmarks=True, include_invalid=False).read_rows(np.flatnonzero(fs.valid)[:2])
    assert per_landmark["image"].shape == (2, 3 + 478, 112, 112)
    train = FaceStoreDataset(fs, split=TRAIN, include_invalid=False)
    labels = train.read_rows(train.rows)["label"]
    assert sorted(set(labels.tolist())) == list(range(train.num_classes))
