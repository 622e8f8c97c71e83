"""Landmark index sets for MediaPipe-478 and dlib-68: the one place they are spelled.

Conventions used by every stage and reader:
- Points are (x, y) in pixels of whatever image they belong to (source image or aligned crop).
- "left"/"right" mean image-left/image-right in an unmirrored photo, as the ArcFace template does
  (its first point is the image-left eye, which is the subject's right eye).
- The 5 alignment points are: left eye centre, right eye centre, nose tip, left mouth corner,
  right mouth corner. Each is the mean of a few indices.
- The 6 heatmap groups are the 5 alignment points plus the chin; a group's heatmap is one Gaussian at
  the group's point (the mean of its indices), so a heatmap has one peak that transforms with the image.
  The chin group is the middle of the chin (mean of the lower-lip bottom and the chin tip): the chin tip
  itself falls below the ArcFace 112 crop in about 98% of LFW faces, which would leave that channel empty.
- ``flip_permutation(name)[i]`` is the index of the point that lands on point i's semantic place after a
  horizontal flip (left eye corner <-> right eye corner, ...).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerec.errors import choice_error

HEATMAP_GROUP_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth", "chin")
# After a horizontal flip, group g's content moves to channel HEATMAP_GROUP_FLIP[g].
HEATMAP_GROUP_FLIP = (1, 0, 2, 4, 3, 5)

# Eye contours (16 points each) of the MediaPipe face mesh. Subject's right eye = image-left.
_MP_LEFT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
_MP_RIGHT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)


@dataclass(frozen=True)
class LandmarkSet:
    """A point set and the semantic groups every later stage needs from it."""

    name: str
    num_points: int
    groups: tuple[tuple[int, ...], ...]        # 6 heatmap groups, in HEATMAP_GROUP_NAMES order
    pose_points: tuple[int, ...]               # nose tip, chin, left eye outer, right eye outer, left/right mouth

    @property
    def alignment_groups(self) -> tuple[tuple[int, ...], ...]:
        """The 5 alignment points: the first five heatmap groups."""
        return self.groups[:5]

    def group_points(self, points: np.ndarray) -> np.ndarray:
        """[..., P, 2] -> [..., 6, 2]: the mean of each group's points.

        One product with ``group_weights`` (about 10 µs a face; per-group fancy indexing and ``mean``
        took 0.2 ms, called twice per face by the features stage). Float points keep their dtype.
        """
        points = np.asarray(points)
        means = np.matmul(_group_weights(self), points)
        return means.astype(points.dtype, copy=False) if points.dtype.kind == "f" else means

    def five_points(self, points: np.ndarray) -> np.ndarray:
        """[..., P, 2] -> [..., 5, 2] alignment points in ArcFace template order."""
        return self.group_points(points)[..., :5, :]


@functools.lru_cache(maxsize=None)
def _group_weights(lset: LandmarkSet) -> np.ndarray:
    """[6, P] float64: row g averages group g's points (1/len on its indices, 0 elsewhere)."""
    weights = np.zeros((len(lset.groups), lset.num_points))
    for g, indices in enumerate(lset.groups):
        weights[g, list(indices)] = 1.0 / len(indices)
    weights.flags.writeable = False
    return weights


DLIB_68 = LandmarkSet(
    name="dlib",
    num_points=68,
    groups=(tuple(range(36, 42)), tuple(range(42, 48)), (30,), (48,), (54,), (57, 8)),
    pose_points=(30, 8, 36, 45, 48, 54),
)

MEDIAPIPE_478 = LandmarkSet(
    name="mediapipe",
    num_points=478,
    groups=(_MP_LEFT_EYE, _MP_RIGHT_EYE, (1,), (61,), (291,), (17, 152)),
    pose_points=(1, 152, 33, 263, 61, 291),
)

# The placeholder extractor reuses the dlib-68 layout so every later stage runs unchanged.
TEMPLATE_68 = LandmarkSet(name="template", num_points=68, groups=DLIB_68.groups, pose_points=DLIB_68.pose_points)

LANDMARK_SETS: dict[str, LandmarkSet] = {s.name: s for s in (MEDIAPIPE_478, DLIB_68, TEMPLATE_68)}


def landmark_set(name: str) -> LandmarkSet:
    try:
        return LANDMARK_SETS[name]
    except KeyError:
        raise choice_error("landmark set", name, tuple(LANDMARK_SETS)) from None


def _dlib_flip() -> np.ndarray:
    pairs = [(i, 16 - i) for i in range(17)]
    pairs += [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22)]
    pairs += [(27, 27), (28, 28), (29, 29), (30, 30), (31, 35), (32, 34), (33, 33)]
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    pairs += [(48, 54), (49, 53), (50, 52), (51, 51), (55, 59), (56, 58), (57, 57)]
    pairs += [(60, 64), (61, 63), (62, 62), (65, 67), (66, 66)]
    perm = np.arange(68)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


_MEDIAPIPE_FLIP_FILE = Path(__file__).with_name("data") / "mediapipe_flip.json"


def _mediapipe_flip() -> np.ndarray:
    """The MediaPipe-478 mirror permutation, generated once by ``tools/make_mediapipe_flip.py``.

    The wheel ships no canonical mesh, so the permutation was measured: landmarks of frontal LFW faces
    and of their mirror images, matched point to point (an involution, checked in the tests).
    """
    return np.asarray(json.loads(_MEDIAPIPE_FLIP_FILE.read_text())["permutation"], dtype=np.int64)


@functools.lru_cache(maxsize=None)
def flip_permutation(name: str) -> np.ndarray:
    """Index permutation that restores semantic order after a horizontal flip of the points."""
    lset = landmark_set(name)
    perm = _mediapipe_flip() if lset is MEDIAPIPE_478 else _dlib_flip()
    perm.setflags(write=False)
    return perm
