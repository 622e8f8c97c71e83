"""insightface .bin sets: the real small_lfw.bin, a larger one written from aligned LFW pairs, and
truncated and malicious files, which are refused without running anything."""

from __future__ import annotations

import io
import os
import pickle

import cv2
import numpy as np
import pytest

from facerec.errors import SourceError
from facerec.evaluation.insightface_bin import UnsafeBinError, read_bin, write_bin
from facerec.pipeline.decode import decode_rgb


def test_real_small_lfw_bin(small_lfw_bin):
    s = read_bin(small_lfw_bin)
    assert len(s.images) == 20 and len(s.issame) == 10
    assert all(decode_rgb(b).shape == (112, 112, 3) for b in s.images)
    pairs = s.pairs()
    assert [p.fold for p in pairs] == list(range(10)) and [p.same for p in pairs] == s.issame
    assert (pairs[3].path_a, pairs[3].path_b) == ("000006", "000007") and s.image("000007") == s.images[7]


def _aligned_lfw_crops(lfw_dir, num_pairs: int) -> tuple[list[bytes], list[bool]]:
    """JPEGs of 112 px crops aligned by the pipeline (MediaPipe + 5-point template), pairs of LFW fold 1."""
    from facerec.geometry.alignment import align_face
    from facerec.geometry.landmark_sets import MEDIAPIPE_478
    from facerec.evaluation.lfw import read_pairs
    from facerec.pipeline.extractors.base import get_extractor

    extractor = get_extractor("mediapipe")
    images, issame = [], []
    pairs = read_pairs(lfw_dir / "pairs.txt")
    half = num_pairs // 2
    for pair in pairs[:half] + pairs[300:300 + half]:
        crops = []
        for rel in (pair.path_a, pair.path_b):
            rgb = decode_rgb((lfw_dir / "lfw-deepfunneled" / rel).read_bytes())
            face = extractor.extract(rgb)
            if face is None:
                break
            crop, _, _ = align_face(rgb, face.points, MEDIAPIPE_478, 112)
            crops.append(cv2.imencode(".jpg", crop.transpose(1, 2, 0)[:, :, ::-1])[1].tobytes())
        if len(crops) == 2:
            images += crops
            issame.append(pair.same)
    return images, issame


@pytest.mark.slow
def test_written_bin_round_trips(lfw_dir, tmp_path):
    images, issame = _aligned_lfw_crops(lfw_dir, 40)
    assert len(issame) >= 38 and 0 < sum(issame) < len(issame)
    path = write_bin(tmp_path / "lfw_part.bin", images, issame)
    s = read_bin(path)
    assert s.images == images and s.issame == issame
    folds = [p.fold for p in s.pairs()]
    assert folds == sorted(folds) and set(folds) == set(range(10))    # contiguous tenths, as insightface's KFold
    assert all(decode_rgb(b).shape == (112, 112, 3) for b in s.images)


def test_truncated_bin_is_refused(small_lfw_bin, tmp_path):
    data = small_lfw_bin.read_bytes()
    for cut in (len(data) // 2, 10, 0):
        bad = tmp_path / f"cut{cut}.bin"
        bad.write_bytes(data[:cut])
        with pytest.raises(SourceError, match="truncated or damaged"):
            read_bin(bad)


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_bins_are_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    cases = {
        "system": ([_Evil(str(marker)), b"x"], [True]),
        "eval": pickle.dumps(([b"a", b"b"], [True]), protocol=3).replace(b"\x80\x03", b"\x80\x03cbuiltins\neval\n(V1\ntR0", 1),
        "object_array": ([np.array([b"x", "y"], dtype=object), np.zeros(3, np.uint8)], [True]),
        "float_array": ([np.zeros(4, np.float32), np.zeros(3, np.uint8)], [True]),
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.bin"
        path.write_bytes(content if isinstance(content, bytes) else pickle.dumps(content, protocol=3))
        with pytest.raises(UnsafeBinError, match="refuse"):
            read_bin(path)
    assert not marker.exists()


def test_wrong_structure_is_refused(tmp_path):
    for content, match in [(([b"a"], [True]), "two images per pair"), (([b"a", b"b"], [1]), "only bools"),
                           ({"bins": []}, "expected a pickled"), (([b"a", 3], [True]), "image 1 is a int")]:
        path = tmp_path / "bad.bin"
        buf = io.BytesIO()
        pickle.dump(content, buf, protocol=3)
        path.write_bytes(buf.getvalue())
        with pytest.raises(SourceError, match=match):
            read_bin(path)
