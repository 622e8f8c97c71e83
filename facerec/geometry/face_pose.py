"""The head pose the pipeline records: the best estimate each landmark set allows.

Raw fit (``raw_face_pose``): MediaPipe meshes with depth take the 3-D fit of ``facerec.geometry.pose3d``
(the six-point fit saturates near 45-60 degrees on profiles); every other landmark set, and MediaPipe
points without depth, take the six-point ``solvePnP`` of ``facerec.geometry.pose``. Both share its axes
and signs.

Calibrated yaw (``estimate_face_pose``): a rigid fit reads the turn of the landmarks, not of the head.
A landmark model regresses towards the faces it was trained on (MediaPipe's mesh turns about 0.67 as
far as the head, evenly from 0 to 50 degrees, and stops near 50-60 on CFP's 90-degree profiles), and
the generic six-point model, shallower than a face, over-reads dlib's small turns (about 1.5x at 10
degrees) and saturates near 45. Re-rendering near-frontal LFW faces at known yaws (``face_render``,
``tools/make_pose_calibration.py``) measures each extractor's response: the median raw yaw at each true
yaw from 0 to 50 degrees (``data/pose_calibration.json``). The recorded yaw is that response inverted:
linear between its knots, and past the last knot (where a render, lacking ears and hair, stops looking
like a head) continued at the least-squares gain of the whole range; odd in the raw yaw and capped at
+-90. Pitch and roll are kept. So a mirrored face still reads the negated yaw, a frontal one about 0,
and no constant comes from the benchmark photos (CFP) the pose is checked on. A landmark set the file
does not name (the placeholder ``template``) keeps its raw yaw.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np

from facerec.errors import FacerecError
from facerec.geometry.landmark_sets import LandmarkSet
from facerec.geometry.pose import estimate_head_pose
from facerec.geometry.pose3d import estimate_head_pose_3d

CALIBRATION_FILE = Path(__file__).with_name("data") / "pose_calibration.json"
MAX_YAW = 90.0


def raw_face_pose(points: np.ndarray, lset: LandmarkSet, width: int, height: int,
                  depth: np.ndarray | None = None) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of the rigid fit: the 3-D mesh fit where ``lset`` is MediaPipe's and
    ``depth`` is given, else the six-point ``solvePnP``."""
    if depth is not None and lset.name == "mediapipe":
        return estimate_head_pose_3d(points, depth)
    return estimate_head_pose(points, lset, width, height)


@functools.lru_cache(maxsize=None)
def _calibration(name: str) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(raw knots, true knots, gain past the last knot) of landmark set ``name``; None if not calibrated."""
    if not CALIBRATION_FILE.is_file():
        raise FacerecError(f"pose calibration {CALIBRATION_FILE} is missing; regenerate it with "
                           "tools/make_pose_calibration.py")
    entry = json.loads(CALIBRATION_FILE.read_text()).get(name)
    if entry is None:
        return None
    knots = np.asarray(entry["knots"], dtype=np.float64)
    if knots.ndim != 2 or knots.shape[1] != 2 or (knots[0] != 0).any() or (np.diff(knots, axis=0) <= 0).any():
        raise FacerecError(f"pose calibration {CALIBRATION_FILE}: {name!r} knots must start at (0, 0) and rise "
                           f"in both columns; got {entry['knots']}; regenerate it with tools/make_pose_calibration.py")
    return knots[:, 0], knots[:, 1], float(entry["gain"])


def yaw_gain(name: str) -> float:
    """The least-squares gain of landmark set ``name``'s response (1.0 for a set not calibrated)."""
    cal = _calibration(name)
    return 1.0 if cal is None else cal[2]


def calibrated_yaw(yaw: float, name: str) -> float:
    """Raw yaw of landmark set ``name`` -> the recorded yaw (the inverted response, capped at +-MAX_YAW)."""
    cal = _calibration(name)
    if cal is None or math.isnan(yaw):
        return yaw
    raw, true, gain = cal
    a = abs(yaw)
    out = float(np.interp(a, raw, true)) if a <= raw[-1] else true[-1] + gain * (a - raw[-1])
    return math.copysign(min(out, MAX_YAW), yaw)


def estimate_face_pose(points: np.ndarray, lset: LandmarkSet, width: int, height: int,
                       depth: np.ndarray | None = None) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees the pipeline records: the raw fit with the yaw gain applied."""
    yaw, pitch, roll = raw_face_pose(points, lset, width, height, depth)
    return calibrated_yaw(yaw, lset.name), pitch, roll
