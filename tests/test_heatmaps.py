"""Heatmaps: peaks on the points (sub-pixel too), the separable form equals the formula, quantization."""

from __future__ import annotations

import numpy as np
import pytest

from facerec.errors import ConfigError
from facerec.geometry.heatmaps import (
    TRUNCATE,
    default_sigma,
    dequantize,
    group_heatmaps,
    measure_quantization,
    quantize,
    render_heatmaps,
    subpixel_peak,
)
from facerec.geometry.landmark_sets import DLIB_68, MEDIAPIPE_478


def _direct(points: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """The 2-D formula evaluated pixel by pixel over a grid (no truncation)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return np.stack([np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) for x, y in points])


def test_integer_point_peaks_on_its_pixel_with_value_one():
    hm = render_heatmaps(np.array([[10.0, 37.0], [0.0, 0.0], [111.0, 5.0]]), 112, 2.0)
    assert hm.shape == (3, 112, 112) and hm.dtype == np.float32
    for k, (x, y) in enumerate([(10, 37), (0, 0), (111, 5)]):
        assert np.unravel_index(hm[k].argmax(), hm[k].shape) == (y, x)
        assert hm[k, y, x] == pytest.approx(1.0)


def test_subpixel_points_peak_within_a_pixel_and_are_recovered():
    rng = np.random.default_rng(0)
    points = rng.uniform(3, 108, size=(200, 2)).astype(np.float32)
    hm = render_heatmaps(points, 112, 2.0)
    iy, ix = np.divmod(hm.reshape(200, -1).argmax(axis=1), 112)
    assert np.abs(ix - points[:, 0]).max() <= 0.5 + 1e-4 and np.abs(iy - points[:, 1]).max() <= 0.5 + 1e-4
    np.testing.assert_allclose(subpixel_peak(hm), points, atol=1e-3)


def test_separable_rendering_equals_the_direct_formula():
    rng = np.random.default_rng(1)
    points = rng.uniform(-5, 70, size=(12, 2))
    sigma = 3.0
    fast, slow = render_heatmaps(points, 64, sigma), _direct(points, 64, sigma)
    # Equal wherever both axes are within the truncation radius; elsewhere the formula is tiny.
    grid = np.arange(64)
    inside = (np.abs(grid[None, :, None] - points[:, 1, None, None]) <= TRUNCATE * sigma) & (
        np.abs(grid[None, None, :] - points[:, 0, None, None]) <= TRUNCATE * sigma
    )
    np.testing.assert_allclose(fast[inside], slow[inside], rtol=1e-5, atol=1e-7)
    assert (fast[~inside] == 0).all() and slow[~inside].max() < np.exp(-TRUNCATE**2 / 2) + 1e-9


def test_batch_shapes_and_many_points():
    rng = np.random.default_rng(2)
    pts = rng.uniform(0, 56, size=(4, 478, 2))
    hm = render_heatmaps(pts, 56, 1.5)
    assert hm.shape == (4, 478, 56, 56)
    np.testing.assert_array_equal(hm[2], render_heatmaps(pts[2], 56, 1.5))


def test_points_outside_the_image():
    hm = render_heatmaps(np.array([[-2.0, 20.0], [500.0, 20.0], [np.nan, 3.0], [20.0, -30.0]]), 40, 2.0)
    assert 0 < hm[0].max() < 1 and hm[0].argmax() % 40 == 0        # a truncated tail at column 0
    assert not hm[1].any() and not hm[2].any() and not hm[3].any()   # empty maps, no NaN
    assert np.isnan(subpixel_peak(hm[1])).all()


def test_group_heatmaps_peak_on_the_group_points():
    rng = np.random.default_rng(3)
    pts = rng.uniform(20, 90, size=(478, 2)).astype(np.float32)
    hm = group_heatmaps(pts, MEDIAPIPE_478, 112, default_sigma(112))
    assert hm.shape == (6, 112, 112)
    np.testing.assert_allclose(subpixel_peak(hm), MEDIAPIPE_478.group_points(pts), atol=1e-3)
    assert group_heatmaps(rng.uniform(0, 60, (3, 68, 2)), DLIB_68, 64, 2.0).shape == (3, 6, 64, 64)


def test_default_sigma_scales_with_the_crop():
    assert default_sigma(112) == 2.0 and default_sigma(224) == 4.0


def test_quantize_error_bounds_and_round_trip():
    rng = np.random.default_rng(4)
    hm = render_heatmaps(np.vstack([rng.uniform(0, 112, size=(5, 2)), [[40.0, 60.0]]]), 112, 2.0)
    q8, q16 = quantize(hm, "uint8"), quantize(hm, "float16")
    assert q8.dtype == np.uint8 and q16.dtype == np.float16 and q8.max() == 255
    assert np.abs(dequantize(q8) - hm).max() <= 0.5 / 255 + 1e-6
    assert np.abs(dequantize(q16) - hm).max() <= 2.0**-12 + 1e-7
    with pytest.raises(ConfigError, match="float16"):
        quantize(hm, "int8")


def test_measured_peak_error_of_stored_dtypes():
    stats = measure_quantization(112, 2.0, n=300, seed=5)
    assert stats["float32"]["peak_max_px"] < 1e-3
    assert stats["float16"]["peak_max_px"] < 0.01
    assert stats["uint8"]["peak_max_px"] < 0.05
    assert stats["float16"]["peak_mean_px"] < stats["uint8"]["peak_mean_px"]
    assert stats["uint8"]["bytes_raw"] == 6 * 112 * 112 and stats["float16"]["bytes_raw"] == 2 * 6 * 112 * 112


def test_bad_arguments_are_refused():
    with pytest.raises(ConfigError, match=r"\[\.\.\., K, 2\]"):
        render_heatmaps(np.zeros((5, 3)), 32, 2.0)
    with pytest.raises(ConfigError, match="sigma"):
        render_heatmaps(np.zeros((5, 2)), 32, 0.0)
