"""The head pose the pipeline records: the best estimate each landmark set allows.

MediaPipe meshes with depth take the 3-D fit of ``facerec.geometry.pose3d`` (the six-point fit
saturates near 45-60 degrees on profiles); every other landmark set, and MediaPipe points without
depth, take the six-point ``solvePnP`` of ``facerec.geometry.pose``. Both share its axes and signs.
"""

from __future__ import annotations

import numpy as np

from facerec.geometry.landmark_sets import LandmarkSet
from facerec.geometry.pose import estimate_head_pose
from facerec.geometry.pose3d import estimate_head_pose_3d


def estimate_face_pose(points: np.ndarray, lset: LandmarkSet, width: int, height: int,
                       depth: np.ndarray | None = None) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees: the 3-D mesh fit where ``lset`` is MediaPipe's and ``depth`` is given,
    else the six-point ``solvePnP``."""
    if depth is not None and lset.name == "mediapipe":
        return estimate_head_pose_3d(points, depth)
    return estimate_head_pose(points, lset, width, height)
