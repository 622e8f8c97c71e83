"""Alignment: Umeyama similarity, the ArcFace template, the warp's pixel convention, real LFW faces."""

from __future__ import annotations

import numpy as np
import pytest

from facerec.geometry.alignment import (
    ARCFACE_TEMPLATE_112,
    AlignmentError,
    align_face,
    center_crop,
    similarity_transform,
    template_for,
    transform_points,
)
from facerec.geometry.landmark_sets import DLIB_68, MEDIAPIPE_478


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([rot, [[tx], [ty]]])


def _dlib_points_with_five(five: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[68, 2] dlib points whose 5 alignment groups average exactly to ``five``; others random."""
    points = rng.uniform(20, 200, size=(68, 2))
    for g, members in enumerate(DLIB_68.alignment_groups):
        members = list(members)
        jitter = rng.normal(0, 2.0, size=(len(members), 2))
        points[members] = five[g] + jitter - jitter.mean(axis=0)
    return points


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    for _ in range(20):
        truth = _similarity(rng.uniform(-180, 180), rng.uniform(0.2, 5.0), *rng.uniform(-100, 100, 2))
        src = rng.uniform(0, 250, size=(rng.integers(2, 12), 2))
        found = similarity_transform(src, transform_points(src, truth).astype(np.float64))
        np.testing.assert_allclose(found, truth, atol=1e-3)


def test_umeyama_never_reflects():
    src = ARCFACE_TEMPLATE_112.copy()
    mirrored = src * [-1.0, 1.0]
    m = similarity_transform(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0          # a rotation times a positive scale, no flip


def test_umeyama_least_squares_beats_perturbations():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, size=(5, 2))
    dst = transform_points(src, _similarity(20, 1.3, 5, -3)) + rng.normal(0, 2.0, size=(5, 2))
    best = similarity_transform(src, dst)
    cost = lambda m: ((transform_points(src, m) - dst) ** 2).sum()  # noqa: E731
    for _ in range(50):
        a, s, tx, ty = rng.normal(0, [1.0, 0.02, 0.5, 0.5])
        assert cost(best) <= cost(best @ np.vstack([_similarity(a, 1 + s, tx, ty), [0, 0, 1]])) + 1e-9


def test_template_maps_onto_itself_and_scales():
    np.testing.assert_allclose(similarity_transform(ARCFACE_TEMPLATE_112, template_for(112)), np.eye(2, 3), atol=1e-12)
    np.testing.assert_allclose(template_for(224), ARCFACE_TEMPLATE_112 * 2)
    assert template_for(112)[0, 0] < template_for(112)[1, 0]          # image-left eye first
    m = similarity_transform(ARCFACE_TEMPLATE_112, template_for(160))
    np.testing.assert_allclose(m, [[160 / 112, 0, 0], [0, 160 / 112, 0]], atol=1e-12)


def test_align_face_puts_the_five_points_on_the_template():
    rng = np.random.default_rng(2)
    five = transform_points(ARCFACE_TEMPLATE_112, _similarity(-15, 1.7, 30, 20)).astype(np.float64)
    points = _dlib_points_with_five(five, rng)
    rgb = rng.integers(0, 255, size=(250, 250, 3), dtype=np.uint8)
    crop, aligned, matrix = align_face(rgb, points, DLIB_68, 112)
    assert crop.shape == (3, 112, 112) and crop.dtype == np.uint8
    assert aligned.shape == (68, 2) and aligned.dtype == np.float32
    np.testing.assert_allclose(DLIB_68.five_points(aligned), template_for(112), atol=1e-3)
    np.testing.assert_allclose(transform_points(points, matrix), aligned, atol=1e-4)


def test_warp_follows_the_point_transform_pixel_for_pixel():
    """A bright dot drawn at a landmark lands where the transformed landmark says (cv2 pixel centres)."""
    rng = np.random.default_rng(3)
    five = transform_points(ARCFACE_TEMPLATE_112, _similarity(25, 2.0, 10, 15)).astype(np.float64)
    points = _dlib_points_with_five(five, rng)
    yy, xx = np.mgrid[0:300, 0:300]
    dot = (int(round(points[30, 0])), int(round(points[30, 1])))          # the nose tip, on a pixel centre
    points[30] = dot
    blob = np.exp(-((xx - dot[0]) ** 2 + (yy - dot[1]) ** 2) / (2 * 3.0**2))
    rgb = np.repeat((blob * 255).astype(np.uint8)[..., None], 3, axis=2)
    crop, aligned, _ = align_face(rgb, points, DLIB_68, 112)
    peak = np.unravel_index(np.argmax(crop[0].astype(float)), crop[0].shape)
    assert abs(peak[1] - aligned[30, 0]) <= 1.0 and abs(peak[0] - aligned[30, 1]) <= 1.0


def test_center_crop_takes_the_middle_square():
    rgb = np.zeros((100, 160, 3), np.uint8)
    rgb[:, 30:130] = 200                                    # the centred 100x100 square
    crop = center_crop(rgb, 50)
    assert crop.shape == (3, 50, 50) and crop.dtype == np.uint8
    assert (crop == 200).all()


def test_bad_landmarks_are_refused():
    rgb = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(AlignmentError, match="collapse"):
        align_face(rgb, np.full((68, 2), 10.0), DLIB_68, 112)
    with pytest.raises(AlignmentError, match="NaN"):
        align_face(rgb, np.full((68, 2), np.nan), DLIB_68, 112)
    with pytest.raises(AlignmentError, match=r"\[68, 2\]"):
        align_face(rgb, np.zeros((478, 2)), DLIB_68, 112)
    with pytest.raises(AlignmentError, match="RGB uint8"):
        align_face(np.zeros((64, 64), np.uint8), np.zeros((68, 2)), DLIB_68, 112)


def test_real_frontal_lfw_faces_align_onto_the_template(lfw_dir):
    """MediaPipe on real LFW faces: eye centres near the template, and the crop re-detects in place."""
    from facerec.pipeline.extractors.base import get_extractor
    from facerec.geometry.pose import estimate_head_pose
    from lfw_spread import landmarks, load_rgb, spread_paths

    extractor = get_extractor("mediapipe")
    eye_err, redetect_err = [], []
    for path in spread_paths(lfw_dir, 200)[:30]:       # the extractor tests' spread: landmarks are cached
        face = landmarks("mediapipe", path)
        if face is None:
            continue
        rgb = load_rgb(path)
        yaw, pitch, _ = estimate_head_pose(face.points, MEDIAPIPE_478, rgb.shape[1], rgb.shape[0])
        if not (abs(yaw) < 20 and abs(pitch) < 20):
            continue
        crop, aligned, _ = align_face(rgb, face.points, MEDIAPIPE_478, 112)
        eyes = MEDIAPIPE_478.five_points(aligned)[:2]
        eye_err.append(np.hypot(*(eyes - template_for(112)[:2]).T).max())
        again = extractor.extract(np.ascontiguousarray(crop.transpose(1, 2, 0)))
        assert again is not None
        redetect_err.append(np.hypot(*(MEDIAPIPE_478.five_points(again.points)[:2] - eyes).T).max())
    assert len(eye_err) >= 5
    # MediaPipe's eye-contour centres differ a little from the template's 5-point detector geometry.
    assert np.median(eye_err) < 2.0 and max(eye_err) < 4.0, eye_err
    # The crop is where the transformed points say: the eye centres found again in it agree.
    assert np.median(redetect_err) < 1.0, redetect_err
