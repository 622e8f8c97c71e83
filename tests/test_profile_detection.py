"""Profile detection paths: MediaPipe's crop retries land where the first pass does, are recorded by
name, and find CFP profiles the first pass misses; dlib's CNN fall-back finds profiles HOG misses."""

from __future__ import annotations

import numpy as np
import pytest
from lfw_spread import load_rgb, spread_paths

from facerec.pipeline.decode import decode_rgb
from facerec.pipeline.extractors.dlib68 import CNN, HOG
from facerec.pipeline.extractors.mediapipe_mesh import PRIMARY, RETRY_DETECTORS, MediaPipeExtractor


@pytest.mark.slow
def test_retry_crops_agree_with_the_first_pass(lfw_dir):
    """On frontal LFW faces the retry path (forced) gives the first pass's points within 5% of the eye span."""
    ex = MediaPipeExtractor()
    errors = []
    for path in spread_paths(lfw_dir, 200)[:12]:
        rgb = load_rgb(path)
        first, retried = ex.extract(rgb), ex._retry_crops(rgb)
        assert first.detector == PRIMARY and retried is not None and retried.detector in RETRY_DETECTORS
        eye = np.linalg.norm(first.points[33] - first.points[263])
        errors.append(np.median(np.linalg.norm(first.points[:468] - retried.points[:468], axis=1)) / eye)
        assert retried.depth.shape == (478,) and np.isfinite(retried.depth).all()
    assert np.median(errors) < 0.05, errors


def _profiles(cfp_dir, step):
    return sorted((cfp_dir / "cfp-dataset" / "Data" / "Images").glob("*/profile/*.jpg"))[::step]


@pytest.mark.slow
def test_cfp_profiles_found_by_the_retries(cfp_dir):
    """40 CFP profiles (every 50th): the first pass misses some, the retries find nearly all."""
    ex_first, ex = MediaPipeExtractor(retry=False), MediaPipeExtractor()
    images = [decode_rgb(p.read_bytes()) for p in _profiles(cfp_dir, 50)]
    first = sum(ex_first.extract(rgb) is not None for rgb in images)
    found = [ex.extract(rgb) for rgb in images]
    assert sum(f is not None for f in found) >= 39 > first
    assert {f.detector for f in found if f is not None} <= {PRIMARY, *RETRY_DETECTORS}


@pytest.mark.slow
def test_dlib_cnn_finds_profiles_hog_misses(cfp_dir):
    from facerec.pipeline.extractors.dlib68 import DlibExtractor

    ex = DlibExtractor()
    found = [ex.extract(decode_rgb(p.read_bytes())) for p in _profiles(cfp_dir, 200)]   # 10 profiles
    kinds = [f.detector for f in found if f is not None]
    assert len(kinds) >= 9 and kinds.count(CNN) >= 5 and set(kinds) <= {HOG, CNN}


@pytest.mark.slow
def test_dlib_cnn_looks_again_at_upsample_1_for_small_profiles(cfp_dir):
    """Small CFP profiles (under 100 px) that HOG and the CNN at upsample 0 miss: the retry finds them."""
    from facerec.pipeline.extractors.dlib_cnn import DlibCnnDetector

    images = cfp_dir / "cfp-dataset" / "Data" / "Images"
    rgbs = [decode_rgb((images / rel).read_bytes()) for rel in ("084/profile/04.jpg", "091/profile/03.jpg",
                                                                 "104/profile/03.jpg")]
    assert all(max(rgb.shape[:2]) < 100 for rgb in rgbs)
    assert [len(DlibCnnDetector(retry_upsample=None).detect(rgb)[0]) for rgb in rgbs] == [0, 0, 0]
    boxes = [DlibCnnDetector().detect(rgb)[0] for rgb in rgbs]
    for rgb, found in zip(rgbs, boxes):
        h, w = rgb.shape[:2]
        assert len(found) == 1
        x0, y0, x1, y1 = found[0]
        # a box on the face, which in these tight photos may run a little past the edges
        assert -0.25 * w <= x0 < x1 <= 1.25 * w and -0.25 * h <= y0 < y1 <= 1.25 * h and x1 - x0 >= 0.3 * w
