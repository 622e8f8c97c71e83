"""Device-side augmentation and rendering: equal to the stored maps (flips included), consistent with
the CPU transforms, maps on the moved landmarks; CUDA variants skip with a reason without CUDA."""

from __future__ import annotations

import pytest
import torch

from facerec.errors import ConfigError
from facerec.store.dataset import FaceStoreDataset, normalize_batch
from facerec.store.device_augment import DeviceAugment, DeviceInputs
from facerec.store.transforms import RandomHorizontalFlip, RandomResizedCropSmall

from store_builder import build_feature_set

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")
FLIP_ONLY = DeviceAugment(flip_p=1.0, scale=(1.0, 1.0), max_shift=0.0)


@pytest.fixture(scope="module")
def store(lfw_dir, tmp_path_factory):
    zarr_path, _ = build_feature_set(tmp_path_factory.mktemp("dstore"), lfw_dir, num_identities=6, per_identity=4, invalid_rows=(5,))
    return str(zarr_path)


def shipped(store: str, mask: bool = True) -> tuple[FaceStoreDataset, dict]:
    """What the device path ships: RGB (+ mask) and the landmarks, every row."""
    ds = FaceStoreDataset(store, use_heatmaps=False, add_mask_channel=mask, return_landmarks=True)
    return ds, ds.read_rows(ds.rows)


def cpu_input(store: str, rows, *, per_landmark: bool = False, flip: bool = False) -> torch.Tensor:
    """The CPU path's model input: stored (or read-time rendered) maps, flipped on the CPU if asked."""
    ds = FaceStoreDataset(store, add_mask_channel=True, group_all_landmarks=per_landmark)
    image = ds.read_rows(rows)["image"]
    if flip:
        image, _ = RandomHorizontalFlip(1.0)(image, ds.channel_layout)
    return normalize_batch(image, "cpu")


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("per_landmark", [False, True])
def test_equal_to_the_stored_maps_without_augmentation_and_with_flips(store, flip, per_landmark):
    ds, batch = shipped(store)
    cpu = cpu_input(store, ds.rows, per_landmark=per_landmark, flip=flip)
    layout = FaceStoreDataset(store, add_mask_channel=True, group_all_landmarks=per_landmark).channel_layout
    dev = DeviceInputs(layout, ds.layout.img_size, ds.sigma, augment=FLIP_ONLY if flip else None)(batch)
    assert dev.shape == cpu.shape == (len(ds), layout.num_channels, 112, 112)
    assert (dev[:, :3] - cpu[:, :3]).abs().max() < 1e-4                   # a flip resamples pixel centres
    assert torch.equal(dev[:, -1], cpu[:, -1])
    maps = slice(3, 3 + layout.num_heatmaps)
    assert (dev[:, maps] - cpu[:, maps]).abs().max() <= 1.0 / 255 + 1e-6      # uint8 rounding
    assert dev[5, maps].abs().sum() == 0                                        # the row without a face


def test_zoom_shift_warps_pixels_like_the_cpu_transform_and_maps_follow_the_points(store):
    ds, batch = shipped(store)
    aug = DeviceAugment(flip_p=0.0, scale=(1.08, 1.08), max_shift=0.0)
    layout = FaceStoreDataset(store, add_mask_channel=True).channel_layout
    dev = DeviceInputs(layout, 112, ds.sigma, augment=aug)(batch)
    cpu_pixels, cpu_points = RandomResizedCropSmall(scale=(1.08, 1.08), max_shift=0.0)(
        batch["image"], ds.channel_layout, landmarks=batch["landmarks"])
    assert (dev[:, :3] - normalize_batch(cpu_pixels, "cpu")[:, :3]).abs().max() <= 2.0 / 255 + 1e-6
    # each rendered group map peaks where the CPU transform moved that group's points
    from facerec.geometry.landmark_sets import landmark_set

    groups = torch.from_numpy(landmark_set("dlib").group_points(cpu_points.numpy()))
    valid = batch["valid"]
    maps = dev[valid, 3:9]
    flat = maps.reshape(*maps.shape[:2], -1).argmax(-1)
    peak = torch.stack([flat % 112, flat // 112], -1).float()
    inside = ((groups[valid] > 3) & (groups[valid] < 108)).all(-1)
    assert inside.sum() > 50
    assert (peak - groups[valid]).abs()[inside].max() <= 0.5 + 1e-4


def test_random_draws_are_seeded_and_inputs_stay_in_range(store):
    ds, batch = shipped(store, mask=False)
    layout = FaceStoreDataset(store).channel_layout
    inputs = DeviceInputs(layout, 112, ds.sigma, augment=DeviceAugment())
    a = inputs(batch, torch.Generator().manual_seed(3))
    assert torch.equal(a, inputs(batch, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, inputs(batch, torch.Generator().manual_seed(4)))
    assert a[:, 3:].max() <= 1 + 1e-6 and a[:, 3:].min() >= 0.0 and a[:, :3].abs().max() <= 1 + 1e-6


def test_a_batch_with_heatmap_channels_is_refused(store):
    ds = FaceStoreDataset(store, add_mask_channel=True)
    with pytest.raises(ConfigError, match="use_heatmaps=False"):
        DeviceInputs(ds.channel_layout, 112, ds.sigma)(ds.read_rows(ds.rows[:4]))


@CUDA
def test_on_cuda_equal_to_cpu_and_channels_last_from_pinned_memory(store):
    ds, batch = shipped(store)
    layout = FaceStoreDataset(store, add_mask_channel=True).channel_layout
    batch = {k: v.pin_memory() for k, v in batch.items()}
    cpu = DeviceInputs(layout, 112, ds.sigma, augment=FLIP_ONLY)(batch)
    gpu = DeviceInputs(layout, 112, ds.sigma, augment=FLIP_ONLY, device="cuda")(batch)
    assert gpu.is_cuda and (gpu.cpu() - cpu).abs().max() <= 1.0 / 255 + 1e-5
    assert gpu.contiguous(memory_format=torch.channels_last).is_contiguous(memory_format=torch.channels_last)


@CUDA
def test_on_cuda_the_bf16_input_keeps_maps_within_bf16_rounding(store):
    ds, batch = shipped(store)
    layout = FaceStoreDataset(store, add_mask_channel=True).channel_layout
    ref = DeviceInputs(layout, 112, ds.sigma, device="cuda")(batch)
    half = DeviceInputs(layout, 112, ds.sigma, device="cuda", dtype=torch.bfloat16)(batch)
    assert half.dtype == torch.bfloat16 and (half.float() - ref).abs().max() <= 1 / 128
