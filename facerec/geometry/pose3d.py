"""Head pose from a 3-D landmark mesh: the rotation that best fits a frontal reference mesh.

``solvePnP`` on six 2-D points saturates on profiles: the hidden eye and mouth corners collapse onto
the visible ones and no rotation of the generic six-point model reproduces that, so CFP's 90-degree
profiles came out near 45-60. MediaPipe's mesh carries a depth per point, so the rotation can be read
from the 3-D shape itself: the least-squares similarity (Umeyama 1991) from the frontal reference mesh
to the observed mesh (x right, y down, z away from the camera, source pixels), over the 468 mesh points
(irises excluded). Yaw, pitch, roll follow the convention of ``facerec.geometry.pose``.

The reference (``data/mediapipe_reference.json``, written by ``tools/make_pose_references.py``) is the
Procrustes mean of MediaPipe meshes of LFW faces, made exactly left-right symmetric with the flip
permutation and turned so that its six pose points match the generic model of ``pose.FACE_MODEL_3D``:
a frontal face reads about 0 in both fits, and a mirrored mesh reads the negated yaw and roll.

dlib's 68 points have no depth and keep the six-point ``solvePnP``: on CFP profiles its predictor,
seeded by the CNN detector's box, returns near-frontal shapes (|yaw| median 14 degrees with six points,
10 with a 51-point fit to this reference), so no pose fit on its points can place them.

This fit still reads profiles at 50-60 degrees: the mesh itself turns only about 0.67 as far as the
head. ``facerec.geometry.face_pose`` calibrates the yaw for that; this module stays the rigid fit.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np

from facerec.errors import FacerecError
from facerec.geometry.pose import _CAMERA_TO_VIEWER, euler_from_rotation

REFERENCE_FILE = Path(__file__).with_name("data") / "mediapipe_reference.json"
MESH_POINTS = 468                       # the face mesh proper; 468..477 are the irises
_NAN3 = (math.nan, math.nan, math.nan)


@functools.lru_cache(maxsize=None)
def _reference() -> dict:
    if not REFERENCE_FILE.is_file():
        raise FacerecError(f"pose reference {REFERENCE_FILE} is missing; regenerate it with "
                           "tools/make_pose_references.py")
    return json.loads(REFERENCE_FILE.read_text())


@functools.lru_cache(maxsize=None)
def reference_mesh() -> np.ndarray:
    """[478, 3] frontal MediaPipe reference, camera axes, generic-model units (read-only, built once:
    converting the JSON lists cost a third of each pose fit)."""
    ref = np.asarray(_reference()["mesh"], dtype=np.float64)
    ref.setflags(write=False)
    return ref


@functools.lru_cache(maxsize=None)
def _centred_reference() -> np.ndarray:
    """The mesh points of the reference minus their mean: the fixed side of every fit, computed once."""
    ref = reference_mesh()[:MESH_POINTS]
    centred = ref - ref.mean(axis=0)
    centred.setflags(write=False)
    return centred


def kabsch_rotation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The proper rotation R (det +1) minimising |R (source - mean) - (target - mean)| (any scale)."""
    return _rotation_onto(source - source.mean(axis=0), target)


def _rotation_onto(centred_source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``kabsch_rotation`` with the source already centred (the same operations, in the same order)."""
    a = centred_source
    b = target - target.mean(axis=0)
    u, _, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    return u @ np.diag([1.0, 1.0, d]) @ vt


def mesh_rotation(points: np.ndarray, depth: np.ndarray) -> np.ndarray | None:
    """Camera-axes rotation taking the reference onto an observed 478-point mesh; None if degenerate."""
    pts = np.asarray(points, dtype=np.float64)
    z = np.asarray(depth, dtype=np.float64).reshape(-1)
    if pts.shape != (478, 2) or z.shape != (478,):
        raise FacerecError(f"3-D head pose expects MediaPipe points [478, 2] and depth [478]; got {pts.shape} "
                           f"and {z.shape}")
    mesh = np.column_stack([pts, z])[:MESH_POINTS]
    xy = mesh[:, :2]
    if not np.isfinite(mesh).all() or (xy.max(axis=0) - xy.min(axis=0)).min() < 1e-6:
        return None
    return _rotation_onto(_centred_reference(), mesh)


def euler_of_camera_rotation(rotation_cam: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) of a camera-axes rotation, in the viewer convention of ``pose``."""
    return euler_from_rotation(_CAMERA_TO_VIEWER @ rotation_cam @ _CAMERA_TO_VIEWER)


def estimate_head_pose_3d(points: np.ndarray, depth: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of a MediaPipe mesh (points [478, 2] source px, depth [478]); NaNs if
    the mesh is degenerate."""
    rotation = mesh_rotation(points, depth)
    return _NAN3 if rotation is None else euler_of_camera_rotation(rotation)
