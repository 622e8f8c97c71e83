"""Face alignment: a 5-point similarity transform onto the ArcFace template, and the crop it gives.

Coordinates are (x, y) pixels with pixel ``i`` covering ``[i - 0.5, i + 0.5]`` (OpenCV's convention, the
one ``cv2.warpAffine`` uses): a point at x = 10.0 sits on the centre of pixel column 10, in the source
image as in the crop. The template is the ArcFace 112x112 one (image-left eye first), scaled by S/112
for other crop sizes, exactly as insightface's ``norm_crop`` uses it.
"""

from __future__ import annotations

import numpy as np

from facerec.errors import FacerecError
from facerec.geometry.landmark_sets import LandmarkSet

# (x, y) in a 112x112 crop: left eye, right eye, nose tip, left mouth corner, right mouth corner.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
ARCFACE_TEMPLATE_112.setflags(write=False)

DEGENERATE = "degenerate_landmarks"   # status code: the points cannot define a similarity transform


class AlignmentError(FacerecError):
    """Landmarks that cannot be aligned (non-finite or collapsed); ``reason`` is the row status code."""

    def __init__(self, message: str, reason: str = DEGENERATE) -> None:
        super().__init__(message)
        self.reason = reason


def template_for(size: int) -> np.ndarray:
    """The ArcFace template for a ``size`` x ``size`` crop: [5, 2] float64 crop pixels."""
    if size <= 0:
        raise AlignmentError(f"crop size must be positive, got {size}")
    return ARCFACE_TEMPLATE_112 * (size / 112.0)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) from src to dst.

    Umeyama (1991). src, dst: [K, 2] with K >= 2. Returns M [2, 3] float64 with
    ``dst ~= src @ M[:, :2].T + M[:, 2]``. Raises AlignmentError when src is non-finite or collapsed.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise AlignmentError(f"similarity_transform needs two [K, 2] arrays with K >= 2, got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise AlignmentError("alignment points contain NaN or infinity")
    mu_src, mu_dst = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    var_src = float((src_c**2).sum(axis=1).mean())
    if var_src < 1e-12:
        raise AlignmentError(f"alignment points collapse onto one point ({mu_src.round(2).tolist()})")
    cov = dst_c.T @ src_c / src.shape[0]
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float((s * d).sum()) / var_src
    trans = mu_dst - scale * rot @ mu_src
    return np.hstack([scale * rot, trans[:, None]])


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a [2, 3] affine matrix to [..., 2] points; returns float32 of the same shape."""
    points = np.asarray(points, dtype=np.float64)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def _check_rgb(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise AlignmentError(f"expected an RGB uint8 image [H, W, 3], got {rgb.dtype} {rgb.shape}", reason="bad_image")


def align_face(
    rgb: np.ndarray, points: np.ndarray, lset: LandmarkSet, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warp a face onto the template.

    rgb: [H, W, 3] uint8; points: [P, 2] source pixels in ``lset`` order.
    Returns (crop [3, S, S] uint8 channel-first, aligned points [P, 2] float32 crop pixels,
    matrix [2, 3] float64 source -> crop). Bilinear sampling, constant 0 border.
    """
    import cv2

    _check_rgb(rgb)
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (lset.num_points, 2):
        raise AlignmentError(f"{lset.name} landmarks must be [{lset.num_points}, 2], got {points.shape}")
    matrix = similarity_transform(lset.five_points(points), template_for(size))
    crop = cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.ascontiguousarray(crop.transpose(2, 0, 1)), transform_points(points, matrix), matrix


def center_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """The largest centred square of the image resized to S x S: the crop of a sample without a face.

    Returns [3, S, S] uint8 (area interpolation when shrinking, bilinear when enlarging).
    """
    import cv2

    _check_rgb(rgb)
    h, w = rgb.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    square = rgb[y0 : y0 + side, x0 : x0 + side]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    crop = cv2.resize(square, (size, size), interpolation=interp)
    return np.ascontiguousarray(crop.transpose(2, 0, 1))
