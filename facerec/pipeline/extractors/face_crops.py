"""Square, optionally rotated crops around a face box, and the map of crop points back to the source.

The retry paths of the extractors run a landmark model on such a crop when it found nothing in the
whole image: a profile whose BlazeFace box is found but whose mesh is rejected is often accepted once
the face fills the crop, or once the crop is turned by the head's roll. ``crop_around`` returns the
2x3 affine (source pixel centres -> crop pixel centres) so points go back exactly.
"""

from __future__ import annotations

import cv2
import numpy as np


def crop_around(rgb: np.ndarray, box: tuple[float, float, float, float] | np.ndarray, scale: float,
                angle: float = 0.0, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` x ``size`` crop centred on ``box`` whose side is ``scale`` x the box's longer side,
    rotated counter-clockwise by ``angle`` degrees; edges replicate the border. Returns (crop, M)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(scale * max(x1 - x0, y1 - y0), 1.0)
    m = cv2.getRotationMatrix2D((cx, cy), angle, size / side)
    m[:, 2] += (size - 1) / 2 - cx, (size - 1) / 2 - cy
    crop = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(crop), m


def uncrop_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """[P, 2] crop pixel centres -> source pixel centres (inverse of ``crop_around``'s affine)."""
    inv = cv2.invertAffineTransform(m)
    pts = np.asarray(points, dtype=np.float64)
    return pts @ inv[:, :2].T + inv[:, 2]


def crop_scale(m: np.ndarray) -> float:
    """Crop pixels per source pixel of the affine ``m`` (a rotation times a uniform scale)."""
    return float(np.hypot(m[0, 0], m[0, 1]))
