"""Joint augmentation on real LFW crops: heatmap peaks follow the transformed landmarks, flips swap channels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerec.errors import ConfigError
from facerec.geometry.landmark_sets import HEATMAP_GROUP_FLIP, flip_permutation, landmark_set
from facerec.store.dataset import FaceStoreDataset
from facerec.store.transforms import Compose, RandomHorizontalFlip, RandomResizedCropSmall

from store_builder import build_feature_set


@pytest.fixture(scope="module")
def store(lfw_dir, tmp_path_factory):
    zarr_path, truth = build_feature_set(tmp_path_factory.mktemp("tstore"), lfw_dir, num_identities=6, per_identity=4, invalid_rows=(5,))
    return zarr_path, truth


@pytest.fixture(scope="module")
def valid_batch(store):
    zarr_path, truth = store
    ds = FaceStoreDataset(str(zarr_path), add_mask_channel=True, include_invalid=False, return_landmarks=True)
    batch = ds.read_rows(ds.rows)
    groups = landmark_set("dlib").group_points(batch["landmarks"].numpy())
    return ds, batch, torch.from_numpy(groups)


def peaks(maps: torch.Tensor) -> torch.Tensor:
    """[B, K, S, S] -> [B, K, 2] (x, y) of each channel's argmax."""
    b, k, s, _ = maps.shape
    idx = maps.reshape(b, k, -1).argmax(-1)
    return torch.stack([idx % s, idx // s], dim=-1).float()


def inside(points: torch.Tensor, size: int, margin: float = 6.0) -> torch.Tensor:
    return ((points >= margin) & (points <= size - 1 - margin)).all(-1)


def test_flip_mirrors_every_channel_and_swaps_left_right_groups(valid_batch):
    ds, batch, groups = valid_batch
    image = batch["image"]
    out, moved = RandomHorizontalFlip(p=1.0)(image, ds.channel_layout, landmarks=groups, landmark_set="groups")
    assert torch.equal(out[:, :3], image[:, :3].flip(-1))
    assert torch.equal(out[:, -1], image[:, -1].flip(-1))                 # mask mirrored, not swapped
    for g, src in enumerate(HEATMAP_GROUP_FLIP):
        assert torch.equal(out[:, 3 + g], image[:, 3 + src].flip(-1))
    # exactly the eye and mouth-corner channels change places
    assert [g for g, src in enumerate(HEATMAP_GROUP_FLIP) if src != g] == [0, 1, 3, 4]
    size = image.shape[-1]
    ok = inside(moved, size)
    assert (peaks(out[:, 3:9].float()) - moved).abs()[ok].max() <= 1.0
    back, again = RandomHorizontalFlip(p=1.0)(out, ds.channel_layout, landmarks=moved, landmark_set="groups")
    assert torch.equal(back, image) and torch.allclose(again, groups)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_heatmap_peaks_follow_transformed_group_landmarks(valid_batch, seed):
    ds, batch, groups = valid_batch
    aug = Compose([RandomHorizontalFlip(0.5), RandomResizedCropSmall(scale=(0.9, 1.1), max_shift=4.0)])
    gen = torch.Generator().manual_seed(seed)
    out, moved = aug(batch["image"], ds.channel_layout, landmarks=groups, landmark_set="groups", generator=gen)
    assert out.dtype == torch.uint8 and out.shape == batch["image"].shape
    ok = inside(moved, out.shape[-1])
    assert ok.float().mean() > 0.9
    err = (peaks(out[:, 3:9].float()) - moved).abs()[ok]
    assert err.max() <= 1.0, f"peak off its transformed landmark by {err.max()} px"
    assert out[:, 3:9].amax(dim=(-1, -2))[ok].min() >= 200                  # the peak survives resampling
    assert set(torch.unique(out[:, -1]).tolist()) <= {0, 255}               # mask stays binary
    same, _ = aug(batch["image"], ds.channel_layout, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(same, out)
    other, _ = aug(batch["image"], ds.channel_layout, generator=torch.Generator().manual_seed(seed + 10))
    assert not torch.equal(other, out)


def test_per_landmark_channels_flip_by_the_landmark_permutation(store):
    zarr_path, _ = store
    ds = FaceStoreDataset(str(zarr_path), group_all_landmarks=True, include_invalid=False, return_landmarks=True)
    batch = ds.read_rows(ds.rows[:4])
    aug = Compose([RandomHorizontalFlip(1.0), RandomResizedCropSmall()])
    out, moved = aug(batch["image"], ds.channel_layout, landmarks=batch["landmarks"], generator=torch.Generator().manual_seed(3))
    perm = torch.as_tensor(np.array(flip_permutation("dlib")))
    assert torch.equal(RandomHorizontalFlip(1.0)(batch["image"], ds.channel_layout)[0][:, 3:], batch["image"][:, 3 + perm].flip(-1))
    ok = inside(moved, out.shape[-1])
    assert (peaks(out[:, 3:].float()) - moved).abs()[ok].max() <= 1.0


def test_single_sample_and_bad_shapes(valid_batch):
    ds, batch, groups = valid_batch
    one, pts = RandomResizedCropSmall()(batch["image"][0], ds.channel_layout, landmarks=groups[0], generator=torch.Generator().manual_seed(0))
    assert one.shape == batch["image"][0].shape and pts.shape == groups[0].shape
    with pytest.raises(ConfigError, match="flip probability"):
        RandomHorizontalFlip(p=2.0)
    with pytest.raises(ConfigError, match=r"\[C, S, S\]"):
        RandomHorizontalFlip(1.0)(batch["image"][0, 0], ds.channel_layout)
    with pytest.raises(ConfigError, match="landmark set"):
        RandomHorizontalFlip(1.0)(batch["image"], ds.channel_layout, landmarks=groups)   # 6 points, dlib has 68
