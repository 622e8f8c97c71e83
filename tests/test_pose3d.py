"""3-D head pose from MediaPipe meshes: known rotations of the reference come back, mirrors negate yaw
and roll, degenerate meshes give NaN, and the reference is left-right symmetric."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facerec.errors import FacerecError
from facerec.geometry.landmark_sets import flip_permutation
from facerec.geometry.pose import rotation_from_euler
from facerec.geometry.pose3d import estimate_head_pose_3d, reference_mesh

_VIEWER = np.diag([1.0, -1.0, -1.0])


def _mesh(yaw: float, pitch: float, roll: float, scale: float = 0.3, shift=(200.0, 150.0, 40.0)):
    """(points [478, 2], depth [478]) of the reference turned by the viewer-axes angles, in 'pixels'."""
    rot_cam = _VIEWER @ rotation_from_euler(yaw, pitch, roll) @ _VIEWER
    mesh = scale * reference_mesh() @ rot_cam.T + shift
    return mesh[:, :2], mesh[:, 2]


@pytest.mark.parametrize("angles", [(0, 0, 0), (40, 0, 0), (-75, 0, 0), (88, 5, -3), (0, 20, 0), (15, -10, 12)])
def test_known_rotation_is_recovered(angles):
    np.testing.assert_allclose(estimate_head_pose_3d(*_mesh(*angles)), angles, atol=1e-6)


def test_mirror_negates_yaw_and_roll():
    points, depth = _mesh(62, -8, 7)
    mirrored = points.copy()
    mirrored[:, 0] = 399 - mirrored[:, 0]
    perm = flip_permutation("mediapipe")
    np.testing.assert_allclose(estimate_head_pose_3d(mirrored[perm], depth[perm]), (-62, -8, -7), atol=1e-6)


def test_reference_is_symmetric():
    ref = reference_mesh()
    mirrored = ref[flip_permutation("mediapipe")] * [-1.0, 1.0, 1.0]
    np.testing.assert_allclose(mirrored, ref, atol=0.02)


def test_bad_meshes():
    points, depth = _mesh(0, 0, 0)
    with pytest.raises(FacerecError, match=r"\[478, 2\]"):
        estimate_head_pose_3d(points[:68], depth[:68])
    assert all(math.isnan(v) for v in estimate_head_pose_3d(np.zeros((478, 2)), np.zeros(478)))
    depth = depth.copy()
    depth[5] = np.nan
    assert all(math.isnan(v) for v in estimate_head_pose_3d(points, depth))
