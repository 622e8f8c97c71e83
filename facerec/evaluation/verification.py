"""Verification protocols on pair scores: LFW's 10-fold accuracy and metrics binned by head yaw.

10-fold (LFW View 2): for each fold k the threshold that maximises accuracy on the other 9 folds is
applied to fold k; the result is the mean and standard deviation (population, ``np.std``, as
insightface reports it) of the 10 fold accuracies.

Yaw bins: a pair falls in the bin of its larger |yaw| (the harder of its two faces), bins 0-15,
15-30, 30-45, 45-60, 60-75 and 75+ degrees (``facerec.geometry.yaw_bins``). A bin with fewer than ``min_pairs`` pairs, or without both same and
different pairs, gets no metric and says why, rather than a noisy number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from facerec.geometry.yaw_bins import YAW_BIN_EDGES, YAW_BIN_NAMES
from facerec.errors import ConfigError
from facerec.evaluation.metrics import check_pairs, accuracy_at, best_threshold, roc_auc

YAW_BINS: tuple[tuple[str, float, float], ...] = tuple(
    (name, lo, hi) for name, (lo, hi) in zip(YAW_BIN_NAMES, YAW_BIN_EDGES)
)
MIN_PAIRS_PER_BIN = 20


def cosine_scores(emb_a: np.ndarray, emb_b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two [N, E] arrays (normalised here, so any scale is fine)."""
    a = np.asarray(emb_a, dtype=np.float64)
    b = np.asarray(emb_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ConfigError(f"cosine_scores needs two [N, E] arrays of one shape, got {a.shape} and {b.shape}")
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return (a * b).sum(axis=1)


@dataclass(frozen=True)
class TenFoldResult:
    mean: float
    std: float
    fold_accuracies: list[float]
    fold_thresholds: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


def ten_fold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> TenFoldResult:
    """Threshold chosen on the other folds, accuracy on each fold; any number of folds >= 2."""
    scores, same = check_pairs(scores, same)
    folds = np.asarray(folds).reshape(-1)
    if folds.shape != scores.shape:
        raise ConfigError(f"ten_fold_accuracy: {len(folds)} fold ids for {len(scores)} pairs")
    fold_ids = np.unique(folds)
    if len(fold_ids) < 2:
        raise ConfigError(f"ten_fold_accuracy needs at least 2 folds, found {len(fold_ids)}")
    accs, thrs = [], []
    for k in fold_ids:
        test = folds == k
        _, thr = best_threshold(scores[~test], same[~test])
        accs.append(accuracy_at(scores[test], same[test], thr))
        thrs.append(thr)
    return TenFoldResult(float(np.mean(accs)), float(np.std(accs)), accs, thrs)


def yaw_bin_of(yaw_a: np.ndarray, yaw_b: np.ndarray) -> np.ndarray:
    """Bin name per pair from the larger |yaw| of its two faces (degrees); "" where a yaw is unknown."""
    worst = np.fmax(np.abs(np.asarray(yaw_a, np.float64)), np.abs(np.asarray(yaw_b, np.float64)))
    unknown = ~(np.isfinite(yaw_a) & np.isfinite(yaw_b))
    out = np.full(worst.shape, "", dtype=object)
    for name, lo, hi in YAW_BINS:
        out[(worst >= lo) & (worst < hi) & ~unknown] = name
    return out


def yaw_binned_metrics(scores: np.ndarray, same: np.ndarray, yaw_a: np.ndarray, yaw_b: np.ndarray, *,
                       threshold: float | None = None, min_pairs: int = MIN_PAIRS_PER_BIN) -> dict:
    """Per yaw bin: pair counts, AUC and accuracy at ``threshold`` (default: best over all pairs).

    Returns {"threshold", "bins": {name: {"num_pairs", "num_same", "auc", "accuracy", "note"}},
    "num_unknown_pose", "note"}; metrics are None where the bin has too few pairs. When no pair has a
    known yaw (a store without pose) every bin is None and ``note`` says so.
    """
    scores, same = check_pairs(scores, same)
    if threshold is None:
        _, threshold = best_threshold(scores, same)
    bins = yaw_bin_of(yaw_a, yaw_b)
    unknown = int((bins == "").sum())
    result: dict = {"threshold": float(threshold), "bins": {}, "num_unknown_pose": unknown, "note": None}
    if unknown == len(scores):
        result["note"] = "no pose known for these pairs (the store has no yaw): yaw bins skipped"
    for name, _, _ in YAW_BINS:
        sel = bins == name
        n, n_same = int(sel.sum()), int(same[sel].sum())
        entry = {"num_pairs": n, "num_same": n_same, "auc": None, "accuracy": None, "note": None}
        if n < min_pairs:
            entry["note"] = f"too few pairs ({n} < {min_pairs})"
        elif n_same == 0 or n_same == n:
            entry["note"] = f"needs both same and different pairs ({n_same} same of {n})"
            entry["accuracy"] = accuracy_at(scores[sel], same[sel], threshold)
        else:
            entry["auc"] = roc_auc(scores[sel], same[sel])
            entry["accuracy"] = accuracy_at(scores[sel], same[sel], threshold)
        result["bins"][name] = entry
    return result
