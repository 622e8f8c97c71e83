"""The torch heatmap renderer against the NumPy reference (facerec.geometry.heatmaps)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerec.errors import ConfigError
from facerec.geometry.heatmaps import group_heatmaps, quantize, render_heatmaps
from facerec.geometry.landmark_sets import DLIB_68, MEDIAPIPE_478
from facerec.geometry.render_torch import group_points_torch, render_heatmaps_torch, window_size


def random_points(shape, size: int, seed: int = 0) -> np.ndarray:
    """Points over and around the crop (some off it, some right on the border), a few NaN."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(-12, size + 12, size=(*shape, 2)).astype(np.float32)
    points.reshape(-1, 2)[:5] = [[0, 0], [size - 1, size - 1], [-8.0, 50], [size + 7.9, 3], [np.nan, 4]]
    return points


@pytest.mark.parametrize("size,sigma", [(112, 2.0), (64, 1.3), (224, 4.0)])
def test_float_maps_equal_the_numpy_reference(size, sigma):
    points = random_points((3, 40), size)
    ref = render_heatmaps(points, size, sigma)
    got = render_heatmaps_torch(torch.from_numpy(points), size, sigma)
    assert got.shape == ref.shape and got.dtype == torch.float32
    assert np.abs(got.numpy() - ref).max() < 1e-6


def test_uint8_maps_equal_the_stored_quantization_within_rounding():
    points = random_points((4, MEDIAPIPE_478.num_points), 112, seed=1)
    ref = quantize(render_heatmaps(points, 112, 2.0), "uint8")
    got = render_heatmaps_torch(torch.from_numpy(points), 112, 2.0, dtype=torch.uint8).numpy()
    diff = np.abs(got.astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-5          # only float ties at .5 differ


def test_groups_through_the_group_matrix_equal_group_heatmaps():
    points = random_points((5, DLIB_68.num_points), 112, seed=2)
    points[np.isnan(points)] = 3.0
    groups = group_points_torch(torch.from_numpy(points), DLIB_68)
    assert np.abs(groups.numpy() - DLIB_68.group_points(points)).max() < 1e-4
    ref = group_heatmaps(points, DLIB_68, 112, 2.0)
    assert np.abs(render_heatmaps_torch(groups, 112, 2.0).numpy() - ref).max() < 1e-4


def test_out_view_is_filled_in_place_and_nothing_else_is_touched():
    points = torch.from_numpy(random_points((3, 6), 112, seed=3))
    x = torch.full((3, 10, 112, 112), 7.0)
    filled = render_heatmaps_torch(points, 112, 2.0, out=x[:, 3:9])
    assert filled.data_ptr() == x[:, 3:9].data_ptr()
    assert torch.equal(x[:, 3:9], render_heatmaps_torch(points, 112, 2.0))
    assert bool((x[:, :3] == 7).all()) and bool((x[:, 9] == 7).all())


def test_far_and_nan_points_give_empty_maps_and_bad_arguments_are_refused():
    points = torch.tensor([[[500.0, 500.0], [float("nan"), 10.0], [-9.0, 50.0]]])
    maps = render_heatmaps_torch(points, 112, 2.0)
    assert maps.abs().sum() == 0
    assert window_size(2.0) == 17
    with pytest.raises(ConfigError, match=r"\[\.\.\., K, 2\]"):
        render_heatmaps_torch(torch.zeros(5), 112, 2.0)
    with pytest.raises(ConfigError, match="positive"):
        render_heatmaps_torch(torch.zeros(1, 2), 112, 0.0)
    with pytest.raises(ConfigError, match="out must be"):
        render_heatmaps_torch(torch.zeros(2, 6, 2), 112, 2.0, out=torch.zeros(2, 5, 112, 112))
