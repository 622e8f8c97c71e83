"""Normalised mean error (NME) of predicted landmarks, overall and binned by |yaw|.

NME of one face = mean over its P points of the Euclidean distance between prediction and target,
divided by the target's inter-ocular distance: the distance between the centres of the two eye groups
of ``facerec.geometry.landmark_sets`` (the mean of each eye's indices; for dlib-68 points 36-41 and
42-47, for MediaPipe-478 the two 16-point eye contours). Normalising by the TARGET's eyes makes the
figure independent of the frame both shapes are expressed in (pixels or normalised units) as long as
prediction and target share it, and keeps a bad prediction from shrinking its own denominator.

The functions take numpy arrays or torch tensors alike (only indexing, ``mean``, ``sum`` and ``**``
are used), so training can use the very same NME as its loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from facerec.errors import ConfigError
from facerec.geometry.yaw_bins import YAW_BIN_EDGES, bin_name
from facerec.geometry.landmark_sets import LandmarkSet

# |yaw| bins in degrees: [lo, hi), the last open-ended (``facerec.geometry.yaw_bins``).
YAW_BINS: tuple[tuple[float, float], ...] = YAW_BIN_EDGES


def yaw_bin_names(bins: Sequence[tuple[float, float]] = YAW_BINS) -> list[str]:
    """``["0-15", "15-30", ..., "75+"]`` for the default bins."""
    return [bin_name(lo, hi) for lo, hi in bins]


def inter_ocular_distance(points: Any, lset: LandmarkSet) -> Any:
    """[..., P, 2] -> [...]: distance between the centres of the left and right eye groups."""
    _check_points(points, lset)
    left = points[..., list(lset.groups[0]), :].mean(-2)
    right = points[..., list(lset.groups[1]), :].mean(-2)
    return (((left - right) ** 2).sum(-1)) ** 0.5


def nme_per_sample(pred: Any, target: Any, lset: LandmarkSet, eps: float = 1e-6, smooth: float = 0.0) -> Any:
    """[N, P, 2] prediction and target in one frame -> [N] NME (a fraction of the inter-ocular distance).

    ``eps`` only guards a division by zero; a target whose eyes coincide is a bad target, refused by
    the data reader before it gets here. ``smooth`` (squared units) is added under the square root so
    that the gradient stays finite where prediction and target coincide (training uses 1e-12).
    """
    _check_points(target, lset)
    if tuple(pred.shape) != tuple(target.shape):
        raise ConfigError(f"NME: prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    point_error = (((pred - target) ** 2).sum(-1) + smooth) ** 0.5      # [N, P]
    return point_error.mean(-1) / (inter_ocular_distance(target, lset) + eps)


def yaw_bin_index(yaw_deg: np.ndarray, bins: Sequence[tuple[float, float]] = YAW_BINS) -> np.ndarray:
    """[N] yaw in degrees (any sign) -> [N] index of the |yaw| bin; -1 for a NaN yaw."""
    abs_yaw = np.abs(np.asarray(yaw_deg, dtype=np.float64))
    out = np.full(abs_yaw.shape, -1, dtype=np.int64)
    for i, (lo, hi) in enumerate(bins):
        out[(abs_yaw >= lo) & (abs_yaw < hi)] = i
    return out


def summarise_by_yaw(
    errors: dict[str, np.ndarray], yaw_deg: np.ndarray, bins: Sequence[tuple[float, float]] = YAW_BINS
) -> dict[str, Any]:
    """Mean NME of each method overall and per |yaw| bin, with the number of faces in each bin.

    errors: method name -> [N] per-sample NME, all over the same N faces; yaw_deg: [N] degrees.
    Returns ``{"count": {"all": N, "0-15": n0, ...}, "nme": {method: {"all": m, "0-15": m0 or None}}}``;
    an empty bin has mean None (no number is made up for it).
    """
    yaw_deg = np.asarray(yaw_deg)
    idx = yaw_bin_index(yaw_deg, bins)
    names = yaw_bin_names(bins)
    count = {"all": int(yaw_deg.shape[0])}
    count.update({name: int((idx == i).sum()) for i, name in enumerate(names)})
    table: dict[str, dict[str, float | None]] = {}
    for method, values in errors.items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape != yaw_deg.shape:
            raise ConfigError(f"NME of {method!r} has shape {values.shape}, expected {yaw_deg.shape} (one per face)")
        row: dict[str, float | None] = {"all": float(values.mean()) if values.size else None}
        for i, name in enumerate(names):
            sel = values[idx == i]
            row[name] = float(sel.mean()) if sel.size else None
        table[method] = row
    return {"count": count, "nme": table}


def _check_points(points: Any, lset: LandmarkSet) -> None:
    shape = tuple(points.shape)
    if len(shape) < 2 or shape[-2:] != (lset.num_points, 2):
        raise ConfigError(f"landmarks for {lset.name!r} must have shape [..., {lset.num_points}, 2], found {shape}")
