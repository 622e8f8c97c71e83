"""A face re-rendered at a known yaw: ground truth for calibrating and testing head pose.

No face photo comes with its true yaw, and the benchmark that has profiles (CFP) must not be tuned on.
A near-frontal photo and its own MediaPipe mesh (points and depth, source pixels) give a textured 3-D
surface: each mesh triangle is cut from the photo and drawn where the mesh, turned by ``yaw`` about the
vertical axis through its centroid and projected orthographically, puts it (far triangles first, faces
turned away culled). The result is the face (the mesh's extent: no hair, ears or neck) at a yaw known
exactly, on a flat grey background. It is faithful while the mesh's own outline is what a head shows
(up to about 50 degrees; past that a real head shows its ear and hair where the render shows grey).
"""

from __future__ import annotations

import functools

import numpy as np

from facerec.errors import FacerecError
from facerec.geometry.pose import rotation_from_euler

MESH_POINTS = 468
_VIEWER_TO_CAMERA = np.diag([1.0, -1.0, -1.0])


@functools.lru_cache(maxsize=None)
def mesh_triangles() -> np.ndarray:
    """[T, 3] triangles over the 468 mesh points: Delaunay of the frontal reference's (x, y)."""
    import cv2

    from facerec.geometry.pose3d import reference_mesh

    xy = reference_mesh()[:MESH_POINTS, :2]
    lo = xy.min(axis=0) - 1.0
    subdiv = cv2.Subdiv2D((int(lo[0]), int(lo[1]), int(np.ptp(xy[:, 0])) + 3, int(np.ptp(xy[:, 1])) + 3))
    subdiv.insert([(float(x), float(y)) for x, y in xy])
    tris = []
    for t in subdiv.getTriangleList().reshape(-1, 3, 2):
        idx = [int(np.argmin(((xy - v) ** 2).sum(axis=1))) for v in t]
        if len(set(idx)) == 3 and all(np.abs(xy[i] - v).max() < 1e-3 for i, v in zip(idx, t)):
            tris.append(idx)
    out = np.asarray(tris, dtype=np.int64)
    out.setflags(write=False)
    return out


def render_at_yaw(rgb: np.ndarray, points: np.ndarray, depth: np.ndarray, yaw: float, size: int = 256,
                  face_height: float = 0.55, background: int = 128) -> np.ndarray:
    """[size, size, 3] uint8: the face of ``rgb`` (mesh ``points`` [>=468, 2], ``depth`` [>=468]) turned by
    ``yaw`` degrees (the convention of ``facerec.geometry.pose``: > 0 turns the nose to image right)."""
    import cv2

    pts = np.asarray(points, dtype=np.float64)[:MESH_POINTS]
    z = np.asarray(depth, dtype=np.float64).reshape(-1)[:MESH_POINTS]
    if pts.shape != (MESH_POINTS, 2) or z.shape != (MESH_POINTS,) or not np.isfinite(pts).all() or not np.isfinite(z).all():
        raise FacerecError(f"render_at_yaw expects a finite MediaPipe mesh (points [478, 2], depth [478]); got "
                           f"points {np.shape(points)}, depth {np.shape(depth)}")
    src = np.column_stack([pts, z])
    turned = (src - src.mean(axis=0)) @ (_VIEWER_TO_CAMERA @ rotation_from_euler(yaw, 0.0, 0.0) @ _VIEWER_TO_CAMERA).T
    dst = turned[:, :2] * (face_height * size / max(np.ptp(src[:, 1]), 1e-6)) + size / 2
    image = np.full((size, size, 3), background, dtype=np.uint8)
    tris = mesh_triangles()
    for tri in tris[np.argsort(-turned[tris, 2].mean(axis=1))]:          # far first: near ones paint over
        a, b = dst[tri], src[tri, :2]
        if np.cross(a[1] - a[0], a[2] - a[0]) * np.cross(b[1] - b[0], b[2] - b[0]) <= 0:
            continue                                                        # turned away from the viewer
        x0, y0 = np.maximum(np.floor(a.min(axis=0)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(a.max(axis=0)).astype(int) + 1, size)
        if x1 <= x0 or y1 <= y0:
            continue
        warp = cv2.getAffineTransform(b.astype(np.float32), (a - [x0, y0]).astype(np.float32))
        patch = cv2.warpAffine(rgb, warp, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        cv2.fillConvexPoly(mask, np.round((a - [x0, y0]) * 16).astype(np.int32), 1, shift=4)
        image[y0:y1, x0:x1][mask > 0] = patch[mask > 0]
    return image
