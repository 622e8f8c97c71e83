"""The pair-benchmark report: EER on known ROCs, fall-back alignment accounting, one-kind pair sets,
the CFP gap, and benchmark names."""

from __future__ import annotations

import numpy as np
import pytest

from facerec.errors import ConfigError
from facerec.evaluation.benchmarks import expand_specs
from facerec.evaluation.pair_report import cfp_gap, equal_error_rate, pair_benchmark_report
from facerec.evaluation.pairs import VerificationPair


def test_eer_on_known_rocs():
    assert equal_error_rate(np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0])) == 0.0     # perfect
    # chance line: FAR = FRR at 0.5
    fpr = np.linspace(0, 1, 11)
    assert equal_error_rate(fpr, fpr) == pytest.approx(0.5)
    # crossing between (0.1, tpr 0.8) and (0.3, tpr 0.9): FRR 0.2 -> 0.1, FAR 0.1 -> 0.3; equal at 1/6
    assert equal_error_rate(np.array([0.0, 0.1, 0.3, 1.0]), np.array([0.5, 0.8, 0.9, 1.0])) == pytest.approx(1 / 6)


def _pairs_and_scores():
    """10 folds x (2 same + 2 different). Pairs touching image 'x/fb.jpg' (a fall-back) are all wrong."""
    pairs, scores = [], []
    for k in range(10):
        for j in range(2):
            bad = k < 3 and j == 0
            pairs.append(VerificationPair(f"s{k}/a.jpg", "x/fb.jpg" if bad else f"s{k}/b{j}.jpg", True, k))
            scores.append(0.1 if bad else 0.9)
            pairs.append(VerificationPair(f"d{k}/a{j}.jpg", f"e{k}/b{j}.jpg", False, k))
            scores.append(0.2)
    return pairs, np.array(scores)


def test_fallback_alignment_is_counted_not_mixed():
    pairs, scores = _pairs_and_scores()
    keys = {p.path_a for p in pairs} | {p.path_b for p in pairs}
    how = {k: ("no_face_centre_crop" if k == "x/fb.jpg" else "aligned") for k in keys}
    report, roc = pair_benchmark_report(pairs, scores, how, {"no_face_centre_crop"})
    a = report["alignment"]
    assert a["num_images"] == len(keys) and sum(a["images"].values()) == len(keys)    # every image, once
    assert a["images"] == {"aligned": len(keys) - 1, "no_face_centre_crop": 1}
    assert a["pairs_touching_fallback"] == 3
    assert a["accuracy_pairs_touching_fallback"] == 0.0 and a["accuracy_other_pairs"] == 1.0
    assert report["ten_fold"]["mean"] == pytest.approx(37 / 40)
    assert report["verification"]["num_pairs"] == 40 and roc is not None and 0 < report["eer"] < 0.2


def test_only_same_pairs_get_a_note_not_a_crash():
    pairs = [VerificationPair(f"p{k}/a.jpg", f"p{k}/b.jpg", True, k) for k in range(10)]
    how = {k: "aligned" for p in pairs for k in (p.path_a, p.path_b)}
    report, roc = pair_benchmark_report(pairs, np.linspace(0.1, 0.9, 10), how, set())
    assert roc is None and report["verification"] is None and "only same pairs" in report["note"]
    assert report["ten_fold"]["mean"] == 1.0


def test_cfp_gap_and_specs():
    ff = {"ten_fold": {"mean": 0.97}, "verification": {"auc": 0.99}, "eer": 0.03}
    fp = {"ten_fold": {"mean": 0.85}, "verification": {"auc": 0.92}, "eer": 0.15}
    gap = cfp_gap({"cfp-ff": ff, "cfp-fp": fp})
    assert gap["accuracy"] == pytest.approx(0.12) and gap["auc"] == pytest.approx(0.07) and gap["eer"] == pytest.approx(0.12)
    assert cfp_gap({"cfp-ff": ff}) is None
    assert expand_specs(["cfp", "lfw", "cfp-fp", "bin:x.bin"]) == ["cfp-ff", "cfp-fp", "lfw", "bin:x.bin"]
    with pytest.raises(ConfigError, match="cfp-ff"):
        expand_specs(["agedb"])
