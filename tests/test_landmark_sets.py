"""Landmark sets: flip permutations, group mapping under a flip, five-point order, checked on real faces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lfw_spread import landmarks, load_rgb, mirror_points, spread_paths

import facerec.geometry.landmark_sets as ls
from facerec.errors import ConfigError
from facerec.geometry.landmark_sets import (
    HEATMAP_GROUP_FLIP,
    LANDMARK_SETS,
    MEDIAPIPE_478,
    flip_permutation,
    landmark_set,
)

ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]])


@pytest.mark.parametrize("name", sorted(LANDMARK_SETS))
def test_flip_permutation_is_an_involution(name):
    perm = flip_permutation(name)
    n = landmark_set(name).num_points
    assert perm.shape == (n,) and sorted(perm.tolist()) == list(range(n))
    np.testing.assert_array_equal(perm[perm], np.arange(n))
    assert not perm.flags.writeable


@pytest.mark.parametrize("name", sorted(LANDMARK_SETS))
def test_flipping_points_flips_groups(name):
    """Mirroring + permuting the points, then grouping == grouping, mirroring, swapping channels."""
    lset = landmark_set(name)
    points = np.random.default_rng(1).uniform(0, 200, (lset.num_points, 2))
    flipped_points = mirror_points(points, 200)[flip_permutation(name)]
    flipped_groups = mirror_points(lset.group_points(points), 200)[list(HEATMAP_GROUP_FLIP)]
    np.testing.assert_allclose(lset.group_points(flipped_points), flipped_groups, atol=1e-9)
    for g, target in enumerate(HEATMAP_GROUP_FLIP):
        assert set(flip_permutation(name)[list(lset.groups[g])].tolist()) == set(lset.groups[target])


def test_mediapipe_flip_known_pairs():
    perm = flip_permutation("mediapipe")
    for a, b in ((1, 1), (152, 152), (61, 291), (33, 263), (468, 473), (133, 362)):
        assert perm[a] == b and perm[b] == a
    assert set(perm[468:473].tolist()) == set(range(473, 478))


def test_mediapipe_flip_maps_the_mesh_onto_itself():
    """Independent of how the permutation was measured: mediapipe's own mesh topology is mirror-symmetric."""
    from mediapipe.python.solutions import face_mesh_connections as fmc

    perm = flip_permutation("mediapipe")

    def mapped(edges):
        return {frozenset((int(perm[a]), int(perm[b]))) for a, b in edges}

    def plain(edges):
        return {frozenset(e) for e in edges}

    for left, right in (("LEFT_EYE", "RIGHT_EYE"), ("LEFT_EYEBROW", "RIGHT_EYEBROW"),
                        ("LEFT_IRIS", "RIGHT_IRIS"), ("LIPS", "LIPS"), ("FACE_OVAL", "FACE_OVAL"),
                        ("NOSE", "NOSE")):
        assert mapped(getattr(fmc, "FACEMESH_" + left)) == plain(getattr(fmc, "FACEMESH_" + right)), left
    # 3 quads per side are split along opposite diagonals: 1316 of the 1322 edges map onto edges.
    tess = plain(fmc.FACEMESH_TESSELATION)
    assert len(mapped(fmc.FACEMESH_TESSELATION) & tess) >= 0.99 * len(tess)


def test_unknown_landmark_set():
    with pytest.raises(ConfigError, match="mediapipe"):
        landmark_set("openpose")


def _similarity_residual(src: np.ndarray, dst: np.ndarray) -> float:
    """Largest residual of the least-squares similarity (no reflection) taking src [K, 2] onto dst."""
    w, z = src[:, 0] + 1j * src[:, 1], dst[:, 0] + 1j * dst[:, 1]
    (a, b), *_ = np.linalg.lstsq(np.stack([w, np.ones_like(w)], axis=1), z, rcond=None)
    return float(np.abs(a * w + b - z).max())


@pytest.mark.parametrize("name", ["mediapipe", "dlib"])
def test_five_points_follow_the_arcface_template_order(lfw_dir, name):
    """five_points is group_points[:5] in the template's order: fitting it onto the ArcFace template
    leaves a small residual, and the left/right-swapped order (only reachable by a reflection) a larger one."""
    lset = landmark_set(name)
    residuals = []
    for path in spread_paths(lfw_dir, 200)[:10]:
        face = landmarks(name, path)
        assert face is not None
        five = lset.five_points(face.points)
        np.testing.assert_array_equal(five, lset.group_points(face.points)[:5])
        residuals.append(_similarity_residual(five, ARCFACE_112))
        assert residuals[-1] < _similarity_residual(five[[1, 0, 2, 4, 3]], ARCFACE_112), path.name
    assert np.median(residuals) < 8, residuals     # pixels of the 112x112 template


@pytest.mark.parametrize("name", ["mediapipe", "dlib"])
def test_permuted_mirror_matches_the_mirrored_image(lfw_dir, name):
    """Landmarks of an image, mirrored and permuted, land on the landmarks found in the mirrored image."""
    perm = flip_permutation(name)
    errors = []
    for path in spread_paths(lfw_dir, 200)[:12]:
        width = load_rgb(path).shape[1]
        face, mirrored = landmarks(name, path), landmarks(name, path, mirrored=True)
        assert face is not None and mirrored is not None
        errors.append(np.linalg.norm(mirror_points(face.points, width)[perm] - mirrored.points, axis=1))
        # the unpermuted mirror is far off: the permutation matters
        assert np.median(np.linalg.norm(mirror_points(face.points, width) - mirrored.points, axis=1)) > 5
    errors = np.concatenate(errors)
    assert np.median(errors) < 1.5 and np.percentile(errors, 95) < 4.5, (np.median(errors), np.percentile(errors, 95))


def test_mediapipe_flip_json_records_how_it_was_made():
    record = json.loads((Path(ls.__file__).with_name("data") / "mediapipe_flip.json").read_text())
    assert record["images"] >= 20 and "linear_sum_assignment" in record["method"]
    assert len(record["permutation"]) == MEDIAPIPE_478.num_points
