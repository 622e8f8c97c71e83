"""Head pose (yaw, pitch, roll in degrees) from six landmarks and a generic 3-D face.

``cv2.solvePnP`` fits the classic six-point face model (nose tip, chin, outer eye corners, mouth
corners; millimetre-like units) to the image points with a pinhole camera of focal length
``max(width, height)`` pixels, principal point at the image centre, no distortion.

The model is written in OpenCV's camera axes (x image-right, y image-down, z away from the camera)
facing the camera, so a frontal face needs no rotation; the solver starts from that frontal pose at a
distance implied by the eye spacing, which keeps it off the mirrored "face seen from behind" solution.
The rotation is then read in viewer axes (x image-right, y up, z towards the viewer) as
``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``:

- yaw > 0: the face turns towards image right (its nose points to the image's right side);
- pitch > 0: the face tilts up (chin forward/up, nose points above the camera);
- roll > 0: the head tilts counter-clockwise as seen in the image (the image-right eye is higher).

A horizontal mirror of the image negates yaw and roll and keeps pitch. Angles lie in (-180, 180].

The pipeline calls ``facerec.geometry.face_pose.estimate_face_pose``, which uses this six-point fit for
dlib and the 3-D mesh fit of ``facerec.geometry.pose3d`` for MediaPipe, then calibrates the yaw
against faces rendered at known yaw (this fit over-reads dlib's small turns: the generic model is
shallower than a face).
"""

from __future__ import annotations

import math

import numpy as np

from facerec.errors import FacerecError
from facerec.geometry.landmark_sets import LandmarkSet

# The classic generic model, in lset.pose_points order: nose tip, chin, image-left eye outer corner,
# image-right eye outer corner, image-left mouth corner, image-right mouth corner.
# Camera axes: x right, y down, z away from the camera (the nose tip is nearest the camera).
FACE_MODEL_3D = np.array([
    (0.0, 0.0, 0.0),
    (0.0, 330.0, 65.0),
    (-225.0, -170.0, 135.0),
    (225.0, -170.0, 135.0),
    (-150.0, 150.0, 125.0),
    (150.0, 150.0, 125.0),
])
_EYE_SPAN_3D = 450.0
_CAMERA_TO_VIEWER = np.diag([1.0, -1.0, -1.0])   # flip y and z: camera axes <-> viewer axes
_NAN3 = (math.nan, math.nan, math.nan)


def euler_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of a viewer-axes rotation ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``."""
    r = np.asarray(rotation, dtype=np.float64)
    yaw = math.atan2(-r[2, 0], math.hypot(r[2, 1], r[2, 2]))
    if math.hypot(r[0, 0], r[1, 0]) > 1e-6:
        pitch = math.atan2(r[2, 1], r[2, 2])
        roll = math.atan2(r[1, 0], r[0, 0])
    else:  # yaw = +-90 deg: pitch and roll share one axis; put it all in pitch
        pitch = math.atan2(-r[1, 2], r[1, 1])
        roll = 0.0
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def rotation_from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Viewer-axes rotation ``Rz(roll) @ Ry(yaw) @ Rx(pitch)`` from degrees (inverse of the above)."""
    y, p, r = np.radians([yaw, pitch, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def camera_matrix(width: int, height: int) -> np.ndarray:
    """Pinhole intrinsics: focal max(w, h) px, principal point at the centre (pixel-centre coords)."""
    f = float(max(width, height))
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def estimate_head_pose(points: np.ndarray, lset: LandmarkSet, width: int, height: int) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of the face whose landmarks are ``points``.

    points: [P, 2] (x, y) source pixels in ``lset``'s layout; width, height: source image size.
    Returns NaNs when the six pose points are not finite or the solver fails (degenerate points);
    a points array of the wrong shape is refused.
    """
    import cv2  # deferred: this module is imported by the CLI's stage modules at start-up

    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape != (lset.num_points, 2):
        raise FacerecError(f"head pose for landmark set {lset.name!r} expects points [{lset.num_points}, 2]; "
                           f"got shape {pts.shape}")
    image_points = pts[list(lset.pose_points)]
    if not np.isfinite(image_points).all() or width <= 0 or height <= 0:
        return _NAN3
    cam = camera_matrix(width, height)
    eye_span = float(np.linalg.norm(image_points[3] - image_points[2]))
    if eye_span < 1e-6:
        return _NAN3
    # Frontal start at the distance that makes the model's eye span match the image's.
    z = cam[0, 0] * _EYE_SPAN_3D / eye_span
    nose = image_points[0]
    tvec = np.array([[(nose[0] - cam[0, 2]) * z / cam[0, 0]], [(nose[1] - cam[1, 2]) * z / cam[1, 1]], [z]])
    rvec = np.zeros((3, 1))
    ok, rvec, tvec = cv2.solvePnP(FACE_MODEL_3D, image_points, cam, None, rvec, tvec,
                                  useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok or not np.isfinite(rvec).all():
        return _NAN3
    rotation_cam, _ = cv2.Rodrigues(rvec)
    return euler_from_rotation(_CAMERA_TO_VIEWER @ rotation_cam @ _CAMERA_TO_VIEWER)

