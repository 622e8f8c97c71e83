"""Input checks and the detection-scale downscale shared by the real extractors.

Detectors cost time in proportion to the pixels they scan and gain nothing from pixels far finer than
the face needs, so huge images (a 6000x6000 photo) are shrunk to a bounded side for detection; the
points are mapped back to SOURCE pixels by the caller with the returned scale.
"""

from __future__ import annotations

import cv2
import numpy as np

from facerec.errors import FacerecError


def check_rgb(rgb: np.ndarray, extractor: str) -> np.ndarray:
    """The image as a C-contiguous uint8 ``[H, W, 3]`` array; anything else is refused clearly."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        found = f"{type(rgb).__name__} {getattr(rgb, 'dtype', '')} {getattr(rgb, 'shape', '')}".strip()
        raise FacerecError(f"{extractor} extractor expects an RGB uint8 array [H, W, 3]; got {found}")
    return np.ascontiguousarray(rgb)


def downscale(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Shrink so that the longer side is at most ``max_side``.

    Returns (image, scale) with scale ``[sx, sy]`` = new size / source size per axis (sizes are
    rounded, so the two differ slightly). INTER_AREA averages source pixels, so no aliasing; images
    already small enough pass untouched with scale ``[1, 1]``.
    """
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb, np.ones(2)
    factor = max_side / max(h, w)
    new_w, new_h = max(1, round(w * factor)), max(1, round(h * factor))
    small = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return small, np.array([new_w / w, new_h / h])


def to_source(points: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """[..., 2] pixel-centre (x, y) in a downscaled image -> source pixels (inverse of ``downscale``).

    Pixel centres sit at integer coordinates, so the pixel edges (-0.5 and size - 0.5) map onto each
    other: ``x_src = (x + 0.5) / sx - 0.5``.
    """
    return (np.asarray(points, dtype=np.float64) + 0.5) / scale - 0.5
