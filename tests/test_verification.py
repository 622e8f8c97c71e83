"""Verification metrics: threshold search, the 10-fold protocol on a hand-made pair set, yaw bins."""

from __future__ import annotations

import numpy as np
import pytest

from facerec.errors import ConfigError
from facerec.evaluation.metrics import best_threshold, tar_at_far, verification_metrics
from facerec.evaluation.verification import cosine_scores, ten_fold_accuracy, yaw_bin_of, yaw_binned_metrics


def test_best_threshold_matches_a_brute_force_search() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=400), 2)          # rounded: many ties
    same = scores + rng.normal(scale=0.7, size=400) > 0
    acc, thr = best_threshold(scores, same)
    candidates = np.r_[np.unique(scores), scores.min() - 1]
    brute = max(np.mean((scores > c) == same) for c in candidates)
    assert acc == pytest.approx(brute)
    assert np.mean((scores > thr) == same) == pytest.approx(acc)


def _hand_made_folds() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """10 folds of 2 same + 2 different pairs. Folds 1-9 separate cleanly at any cut in (0.2, 0.8);
    fold 0 holds same {0.6, 0.45} and different {0.3, 0.5}."""
    scores, same, folds = [], [], []
    for k in range(10):
        s = [0.6, 0.45, 0.3, 0.5] if k == 0 else [0.8, 0.9, 0.1, 0.2]
        scores += s
        same += [True, True, False, False]
        folds += [k] * 4
    return np.array(scores), np.array(same), np.array(folds)


def test_ten_fold_chooses_the_threshold_on_the_other_folds() -> None:
    scores, same, folds = _hand_made_folds()
    result = ten_fold_accuracy(scores, same, folds)
    # Fold 0 is judged at the clean folds' midpoint 0.5: 0.6 accepted, 0.45 rejected (wrong), 0.3 and 0.5
    # rejected (right) -> 0.75. Every other fold is judged with fold 0 among the 9: one error whatever
    # the cut in [0.3, 0.6), and all four of its own pairs right -> 1.0.
    assert result.fold_thresholds[0] == pytest.approx(0.5)
    assert result.fold_accuracies == pytest.approx([0.75] + [1.0] * 9)
    assert all(0.3 < t < 0.6 for t in result.fold_thresholds[1:])
    assert result.mean == pytest.approx(0.975)
    assert result.std == pytest.approx(0.075)


def test_ten_fold_refuses_mismatched_inputs() -> None:
    scores, same, folds = _hand_made_folds()
    with pytest.raises(ConfigError, match="fold ids"):
        ten_fold_accuracy(scores, same, folds[:-1])
    with pytest.raises(ConfigError, match="at least 2 folds"):
        ten_fold_accuracy(scores, same, np.zeros_like(folds))
    with pytest.raises(ConfigError, match="NaN"):
        ten_fold_accuracy(np.r_[scores[:-1], np.nan], same, folds)


def test_verification_metrics_on_separable_and_known_scores() -> None:
    same = np.array([True] * 5 + [False] * 5)
    perfect, _ = verification_metrics(np.r_[np.linspace(0.6, 1, 5), np.linspace(-1, 0.4, 5)], same)
    assert perfect.auc == 1.0 and perfect.best_accuracy == 1.0
    assert perfect.tar_at_far["0.01"] is None          # 5 different pairs cannot resolve FAR 1e-2
    # One different pair scores above all same pairs: AUC loses exactly 5 of 25 orderings.
    scores = np.r_[np.linspace(0.6, 0.9, 5), 0.95, np.linspace(-1, 0.2, 4)]
    m, (fpr, tpr) = verification_metrics(scores, same)
    assert m.auc == pytest.approx(20 / 25)
    assert tar_at_far(fpr, tpr, 0.1, num_different=10) == pytest.approx(0.0)
    assert tar_at_far(fpr, tpr, 0.2, num_different=10) == pytest.approx(1.0)


def test_cosine_scores_ignore_scale() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[3.0, 0.0], [1.0, 0.0]])
    assert cosine_scores(a, b) == pytest.approx([1.0, 0.0])


def test_pairs_fall_in_the_bin_of_their_larger_yaw() -> None:
    bins = yaw_bin_of(np.array([5.0, -20.0, 3.0, 10.0, 70.0, -88.0, np.nan]),
                      np.array([-14.9, 2.0, 44.0, -59.0, 1.0, 0.0, 1.0]))
    assert bins.tolist() == ["0-15", "15-30", "30-45", "45-60", "60-75", "75+", ""]


def test_yaw_binned_metrics_mark_small_bins_and_missing_pose() -> None:
    rng = np.random.default_rng(1)
    n = 120
    same = np.arange(n) % 2 == 0
    scores = np.where(same, 0.6, 0.2) + rng.normal(scale=0.1, size=n)
    yaw_a = np.r_[rng.uniform(0, 14, 100), rng.uniform(31, 44, 20)]
    yaw_b = np.zeros(n)
    yaw_a[-5:] = 50.0                                    # 5 pairs in 45-60: too few
    out = yaw_binned_metrics(scores, same, yaw_a, yaw_b, min_pairs=10)
    assert out["bins"]["0-15"]["num_pairs"] == 100 and out["bins"]["0-15"]["auc"] > 0.9
    assert out["bins"]["30-45"]["num_pairs"] == 15 and out["bins"]["30-45"]["auc"] is not None
    assert out["bins"]["15-30"]["auc"] is None and "too few" in out["bins"]["15-30"]["note"]
    assert out["bins"]["45-60"]["num_pairs"] == 5 and out["bins"]["45-60"]["auc"] is None
    assert out["bins"]["75+"]["num_pairs"] == 0 and "too few" in out["bins"]["75+"]["note"]
    no_pose = yaw_binned_metrics(scores, same, np.full(n, np.nan), np.full(n, np.nan))
    assert "no pose" in no_pose["note"] and no_pose["num_unknown_pose"] == n
    assert all(b["auc"] is None for b in no_pose["bins"].values())
