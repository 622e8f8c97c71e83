"""The face mask channel: 1 inside the convex hull of the aligned landmarks, 0 elsewhere.

Points are crop pixels with OpenCV's pixel-centre convention (see ``facerec.geometry.alignment``); the
hull is filled with 4 fractional bits so sub-pixel landmarks are not rounded to whole pixels first.
"""

from __future__ import annotations

import numpy as np

from facerec.errors import ConfigError

_SHIFT = 4   # fractional bits for cv2.fillConvexPoly


def face_mask(aligned_points: np.ndarray, size: int) -> np.ndarray:
    """aligned_points: [P, 2] crop pixels (x, y) -> uint8 [1, S, S], 1 inside their convex hull.

    Non-finite points are ignored; fewer than 3 finite points give an empty mask.
    """
    import cv2

    pts = np.asarray(aligned_points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ConfigError(f"face_mask needs points of shape [P, 2], got {pts.shape}")
    mask = np.zeros((size, size), dtype=np.uint8)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) >= 3:
        # Clip far-away points so the fixed-point coordinates cannot overflow int32.
        pts = np.clip(pts, -4.0 * size, 5.0 * size)
        hull = cv2.convexHull(np.round(pts * (1 << _SHIFT)).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return mask[None]
