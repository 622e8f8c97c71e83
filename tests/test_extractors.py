"""The landmark extractors on real LFW faces: detection rate, geometry, edge cases, errors."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from lfw_spread import landmarks, load_rgb, spread_paths

from facerec.errors import ConfigError, FacerecError
from facerec.pipeline.extractors.base import EXTRACTORS, create_extractor, get_extractor, pick_primary_face
from facerec.geometry.landmark_sets import TEMPLATE_68, landmark_set

REAL = ("mediapipe", "dlib")
NUM_IMAGES = 200


def _results(lfw_dir, name):
    paths = spread_paths(lfw_dir, NUM_IMAGES)
    return paths, [landmarks(name, p) for p in paths]


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_detects_faces_on_lfw(lfw_dir, name):
    paths, results = _results(lfw_dir, name)
    assert len(paths) == NUM_IMAGES and len({p.parent for p in paths}) == NUM_IMAGES
    found = [r for r in results if r is not None]
    assert len(found) >= 0.97 * NUM_IMAGES, f"{name} found {len(found)}/{NUM_IMAGES} faces"
    ex = get_extractor(name)
    for r in found:
        assert r.points.shape == (ex.num_points, 2) and r.points.dtype == np.float32
        assert np.isfinite(r.points).all()
        assert r.num_faces >= 1 and math.isfinite(r.score) and r.score > 0
        assert ex.placeholder is False


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_landmarks_inside_image_and_face_box(lfw_dir, name):
    """Every point lies in the image; the points lie in the face box grown by 25% a side.

    MediaPipe's bbox is the bounds of its own points, so it is checked against dlib's independent
    detection box instead; dlib's chin points may sit a little below its HOG box.
    """
    paths, results = _results(lfw_dir, name)
    for path, r in zip(paths, results):
        if r is None:
            continue
        h, w = load_rgb(path).shape[:2]
        assert (r.points >= -0.5).all() and (r.points[:, 0] <= w - 0.5).all() and (r.points[:, 1] <= h - 0.5).all()
        box = landmarks("dlib", path)
        if box is None:
            continue
        x0, y0, x1, y1 = box.bbox
        gx, gy = 0.25 * (x1 - x0), 0.25 * (y1 - y0)
        inside = ((r.points[:, 0] >= x0 - gx) & (r.points[:, 0] <= x1 + gx)
                  & (r.points[:, 1] >= y0 - gy) & (r.points[:, 1] <= y1 + gy))
        assert inside.mean() >= 0.9, f"{name} on {path.name}: {inside.mean():.0%} of points in the face box"
        # the five alignment points lie in the box grown by only 10% a side
        five = landmark_set(name).five_points(r.points)
        tx, ty = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
        assert ((five[:, 0] >= x0 - tx) & (five[:, 0] <= x1 + tx)).all(), path.name
        assert ((five[:, 1] >= y0 - ty) & (five[:, 1] <= y1 + ty)).all(), path.name


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_face_layout_eyes_above_mouth_left_is_image_left(lfw_dir, name):
    _, results = _results(lfw_dir, name)
    groups = np.stack([landmark_set(name).group_points(r.points) for r in results if r is not None])
    left_eye, right_eye, nose, left_mouth, right_mouth, chin = np.moveaxis(groups, 1, 0)
    assert (np.maximum(left_eye[:, 1], right_eye[:, 1]) < np.minimum(left_mouth[:, 1], right_mouth[:, 1])).all()
    assert (left_eye[:, 0] < right_eye[:, 0]).all() and (left_mouth[:, 0] < right_mouth[:, 0]).all()
    assert (nose[:, 1] < chin[:, 1]).all()


@pytest.mark.slow
def test_extractors_agree_on_the_five_points(lfw_dir):
    """Two independent models find the same eyes, nose and mouth corners (within 15% of the eye span)."""
    paths = spread_paths(lfw_dir, NUM_IMAGES)
    errors = []
    for path in paths:
        a, b = landmarks("mediapipe", path), landmarks("dlib", path)
        if a is None or b is None:
            continue
        fa, fb = landmark_set("mediapipe").five_points(a.points), landmark_set("dlib").five_points(b.points)
        errors.append(np.linalg.norm(fa - fb, axis=1) / np.linalg.norm(fb[1] - fb[0]))
    errors = np.array(errors)
    assert len(errors) >= 0.95 * NUM_IMAGES
    assert (np.median(errors, axis=0) < 0.15).all(), np.median(errors, axis=0)


@pytest.mark.parametrize("name", REAL)
@pytest.mark.parametrize("kind", ["grey", "noise", "tiny", "thin"])
def test_no_face_gives_none(name, kind):
    rng = np.random.default_rng(0)
    image = {
        "grey": np.full((250, 250, 3), 128, np.uint8),
        "noise": rng.integers(0, 256, (250, 250, 3), dtype=np.uint8),
        "tiny": np.full((3, 5, 3), 200, np.uint8),
        "thin": np.full((1, 400, 3), 60, np.uint8),
    }[kind]
    assert get_extractor(name).extract(image) is None


@pytest.mark.parametrize("name", REAL)
def test_two_faces_primary_is_the_larger(lfw_dir, name):
    """Two LFW faces pasted on a canvas, a large one at the left and a small one at the right.

    Each half alone gives that face's box; on the whole canvas the extractor must see both and return
    the one pick_primary_face chooses between those two boxes (the larger).
    """
    paths = spread_paths(lfw_dir, NUM_IMAGES)
    canvas = np.full((320, 600, 3), 128, np.uint8)
    canvas[10:310, 10:310] = cv2.resize(load_rgb(paths[0]), (300, 300))
    canvas[10:170, 430:590] = cv2.resize(load_rgb(paths[100]), (160, 160))
    ex = get_extractor(name)
    left = ex.extract(np.ascontiguousarray(canvas[:, :320]))
    right = ex.extract(np.ascontiguousarray(canvas[:, 320:]))
    both = ex.extract(canvas)
    assert left is not None and right is not None and both is not None
    assert both.num_faces >= 2
    boxes = np.array([np.add(right.bbox, [320, 0, 320, 0]), left.bbox])
    assert pick_primary_face(boxes, 600, 320) == 1
    np.testing.assert_allclose(both.bbox, left.bbox, atol=0.05 * (left.bbox[2] - left.bbox[0]))
    assert (both.points[:, 0] < 320).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_huge_image_points_in_source_pixels(lfw_dir, name):
    """An LFW face upscaled 24x to 6000x6000 gives the 250x250 points scaled by 24 (within 4% of the eyes' span)."""
    path = spread_paths(lfw_dir, NUM_IMAGES)[0]
    rgb = load_rgb(path)
    huge = cv2.resize(rgb, (6000, 6000), interpolation=cv2.INTER_CUBIC)
    r = get_extractor(name).extract(huge)
    ref = landmarks(name, path)
    assert r is not None and ref is not None
    expected = (ref.points.astype(np.float64) + 0.5) * 24 - 0.5
    span = np.linalg.norm(np.subtract(*landmark_set(name).five_points(expected)[:2]))
    err = np.linalg.norm(r.points - expected, axis=1)
    assert np.median(err) < 0.04 * span, (np.median(err), span)
    assert r.points.max() > 2000  # really source pixels, not the detection scale


def test_template_is_a_placeholder_over_the_centre():
    ex = create_extractor("template")
    for w, h in ((250, 250), (640, 360), (40, 90)):
        r = ex.extract(np.zeros((h, w, 3), np.uint8))
        assert ex.placeholder is True and ex.num_points == TEMPLATE_68.num_points == 68
        assert r.points.shape == (68, 2) and r.num_faces == 0 and math.isnan(r.score)
        centre = np.array([(r.bbox[0] + r.bbox[2]) / 2, (r.bbox[1] + r.bbox[3]) / 2])
        np.testing.assert_allclose(centre, [(w - 1) / 2, (h - 1) / 2], atol=1e-3)
        np.testing.assert_allclose(r.bbox[2] - r.bbox[0], 0.5 * min(w, h), rtol=1e-5)
        g = TEMPLATE_68.group_points(r.points)
        assert g[0, 0] < g[1, 0] and g[3, 0] < g[4, 0] and g[:2, 1].max() < g[2, 1] < g[3:5, 1].min() < g[5, 1]


def test_unknown_extractor_lists_the_allowed_names():
    with pytest.raises(ConfigError) as info:
        create_extractor("openpose")
    for name in EXTRACTORS:
        assert name in str(info.value)
    assert "openpose" in str(info.value)


def test_missing_dlib_model_is_a_clear_error(tmp_path, monkeypatch):
    missing = tmp_path / "nope.dat"
    monkeypatch.setenv("DLIB_LANDMARK_MODEL", str(missing))
    with pytest.raises(FacerecError) as info:
        create_extractor("dlib")
    assert "DLIB_LANDMARK_MODEL" in str(info.value) and str(missing) in str(info.value)


def test_corrupt_dlib_model_is_a_clear_error(tmp_path, monkeypatch):
    bad = tmp_path / "bad.dat"
    bad.write_bytes(b"not a model")
    monkeypatch.setenv("DLIB_LANDMARK_MODEL", str(bad))
    with pytest.raises(FacerecError, match="cannot load dlib landmark model"):
        create_extractor("dlib")


@pytest.mark.parametrize("name", [*REAL, "template"])
@pytest.mark.parametrize("image", [np.zeros((50, 50), np.uint8), np.zeros((50, 50, 4), np.uint8),
                                   np.zeros((50, 50, 3), np.float32)], ids=["gray", "rgba", "float"])
def test_non_rgb_input_is_refused(name, image):
    with pytest.raises(FacerecError, match="RGB uint8"):
        get_extractor(name).extract(image)
