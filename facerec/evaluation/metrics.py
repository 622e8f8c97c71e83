"""Classification and verification metrics on plain arrays (no torch needed for verification).

Verification takes one similarity score per pair (higher = more alike; cosine in [-1, 1] here) and a
boolean ``same`` per pair. Thresholds are "same when score > threshold".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from facerec.errors import ConfigError

DEFAULT_FARS = (1e-2, 1e-3)


def top1_accuracy(logits, labels) -> float:
    """Fraction of rows whose arg-max column is the label. logits [B, K], labels [B] (tensors or arrays)."""
    pred = logits.argmax(1)
    return float((pred == labels).float().mean()) if hasattr(pred, "float") else float(np.mean(pred == labels))


def check_pairs(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores as float64 [N] and same as bool [N]; refuses mismatched lengths and non-finite scores."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    same = np.asarray(same, dtype=bool).reshape(-1)
    if scores.shape != same.shape:
        raise ConfigError(f"verification: {len(scores)} scores but {len(same)} same/different labels")
    if not np.isfinite(scores).all():
        raise ConfigError(f"verification: {int((~np.isfinite(scores)).sum())} scores are NaN or infinite")
    return scores, same


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(accuracy, threshold) maximising accuracy of ``score > threshold`` over every cut.

    Candidate cuts lie midway between consecutive distinct sorted scores (plus below the lowest and
    above the highest), evaluated at once with cumulative sums: O(n log n).
    """
    scores, same = check_pairs(scores, same)
    if len(scores) == 0:
        raise ConfigError("verification: no pairs to choose a threshold on")
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], same[order]
    distinct = np.r_[np.flatnonzero(np.diff(s) > 0), len(s) - 1]     # last index of each distinct score
    cuts = np.r_[s[0] - 1.0, (s[distinct[:-1]] + s[distinct[:-1] + 1]) / 2.0, s[-1] + 1.0]
    neg_below = np.r_[0, np.cumsum(~y)[distinct]]                   # different pairs rejected correctly
    pos_above = int(y.sum()) - np.r_[0, np.cumsum(y)[distinct]]     # same pairs accepted
    correct = neg_below + pos_above
    best = int(np.argmax(correct))
    return float(correct[best] / len(s)), float(cuts[best])


def accuracy_at(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    scores, same = check_pairs(scores, same)
    return float(np.mean((scores > threshold) == same))


def roc_curve(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) from sklearn; needs both same and different pairs."""
    from sklearn.metrics import roc_curve as sk_roc

    scores, same = check_pairs(scores, same)
    _need_both(same)
    fpr, tpr, thr = sk_roc(same, scores)
    return fpr, tpr, thr


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    scores, same = check_pairs(scores, same)
    _need_both(same)
    return float(roc_auc_score(same, scores))


def tar_at_far(fpr: np.ndarray, tpr: np.ndarray, far: float, num_different: int) -> float | None:
    """Highest true-accept rate with false-accept rate <= ``far``; None when the pairs cannot resolve
    that FAR (fewer than 1/far different pairs: one false accept already exceeds it)."""
    if num_different * far < 1.0:
        return None
    ok = fpr <= far + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def _need_both(same: np.ndarray) -> None:
    n_same = int(same.sum())
    if n_same == 0 or n_same == len(same):
        raise ConfigError(
            f"verification needs both same and different pairs; found {n_same} same of {len(same)}"
        )


@dataclass(frozen=True)
class VerificationMetrics:
    """Summary of one pair set. ``tar_at_far`` maps a FAR (as a string, e.g. "0.001") to TAR or None."""

    num_pairs: int
    num_same: int
    auc: float
    best_accuracy: float
    best_threshold: float
    tar_at_far: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def verification_metrics(scores: np.ndarray, same: np.ndarray, fars: tuple[float, ...] = DEFAULT_FARS
                         ) -> tuple[VerificationMetrics, tuple[np.ndarray, np.ndarray]]:
    """Metrics and the ROC points (fpr, tpr) for plotting."""
    scores, same = check_pairs(scores, same)
    fpr, tpr, _ = roc_curve(scores, same)
    acc, thr = best_threshold(scores, same)
    num_diff = int((~same).sum())
    tars = {f"{far:g}": tar_at_far(fpr, tpr, far, num_diff) for far in fars}
    metrics = VerificationMetrics(
        num_pairs=len(scores), num_same=int(same.sum()), auc=roc_auc(scores, same),
        best_accuracy=acc, best_threshold=thr, tar_at_far=tars,
    )
    return metrics, (fpr, tpr)
