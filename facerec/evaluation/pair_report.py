"""One verification report for any pair protocol: 10-fold accuracy, AUC, TAR@FAR, EER, yaw bins, and
how every image was aligned.

- ``ten_fold``: for each fold, the threshold maximising accuracy on the other folds applied to it;
  mean and population std over folds (``ten_fold_accuracy``).
- ``verification``: AUC, best accuracy, TAR at FAR 1e-2 and 1e-3 over all pairs; ``eer``: the equal
  error rate, where the false-accept and false-reject rates cross (linear between ROC points).
- ``alignment``: images per way they were aligned (``how``, e.g. ``aligned`` / ``no_face_centre_crop``
  for a trained run, ``detected`` / ``cnn_detected`` / ``no_face_whole_image`` for dlib), the pairs
  that touch an image aligned by a fall-back rule, and the 10-fold accuracy on those pairs and on the
  rest, each pair judged at its own fold's threshold. Fall-back images are scored, never dropped, and
  never silently mixed: their share and their accuracy are in the report.
- ``yaw_bins``: AUC and accuracy by the pair's larger |yaw| where the images' pose is known.
A pair set with only same (or only different) pairs gets the 10-fold accuracy and a note instead of
the metrics that need both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence

import numpy as np

from facerec.evaluation.metrics import check_pairs, roc_curve, verification_metrics
from facerec.evaluation.verification import ten_fold_accuracy, yaw_binned_metrics


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """The rate at which FAR = FRR (1 - TPR) on the ROC, interpolated between the two points around it."""
    fpr, fnr = np.asarray(fpr, np.float64), 1.0 - np.asarray(tpr, np.float64)
    diff = fpr - fnr                      # rises from <= 0 to >= 0 along the ROC
    i = int(np.argmax(diff >= 0))
    if i == 0:
        return float(fpr[0])
    t = diff[i - 1] / (diff[i - 1] - diff[i]) if diff[i] != diff[i - 1] else 0.0
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def fold_correct(scores: np.ndarray, same: np.ndarray, folds: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Per pair: right or wrong at its own fold's threshold (folds in sorted order, as ten_fold_accuracy)."""
    thr = dict(zip(np.unique(folds).tolist(), thresholds))
    return (scores > np.array([thr[f] for f in folds.tolist()])) == same


def alignment_accounting(pairs: Sequence, how: Mapping[str, str], fallback: Collection[str],
                         correct: np.ndarray) -> dict:
    """Counts of images per alignment kind and the accuracy of pairs touching a fall-back image."""
    keys = sorted({p.path_a for p in pairs} | {p.path_b for p in pairs})
    touched = np.array([how[p.path_a] in fallback or how[p.path_b] in fallback for p in pairs], dtype=bool)
    return {
        "images": dict(sorted(Counter(how[k] for k in keys).items())),
        "num_images": len(keys),
        "fallback_kinds": sorted(fallback),
        "pairs_touching_fallback": int(touched.sum()),
        "accuracy_pairs_touching_fallback": float(correct[touched].mean()) if touched.any() else None,
        "accuracy_other_pairs": float(correct[~touched].mean()) if (~touched).any() else None,
    }


def pair_benchmark_report(pairs: Sequence, scores: np.ndarray, how: Mapping[str, str], fallback: Collection[str],
                          yaw_a: np.ndarray | None = None, yaw_b: np.ndarray | None = None
                          ) -> tuple[dict, tuple[np.ndarray, np.ndarray] | None]:
    """The report of the module docstring and the ROC points (None without both kinds of pair)."""
    same = np.array([p.same for p in pairs], dtype=bool)
    folds = np.array([p.fold for p in pairs])
    scores, same = check_pairs(scores, same)
    ten = ten_fold_accuracy(scores, same, folds)
    report: dict = {"ten_fold": ten.to_dict(), "num_pairs": len(pairs), "num_same": int(same.sum()),
                    "alignment": alignment_accounting(pairs, how, fallback,
                                                      fold_correct(scores, same, folds, ten.fold_thresholds)),
                    "verification": None, "eer": None, "yaw_bins": None, "note": None}
    if same.all() or not same.any():
        report["note"] = (f"only {'same' if same.all() else 'different'} pairs ({len(same)}): AUC, TAR@FAR, EER "
                          "and yaw bins need both kinds")
        return report, None
    metrics, roc = verification_metrics(scores, same)
    fpr, tpr, _ = roc_curve(scores, same)
    report["verification"] = metrics.to_dict()
    report["eer"] = equal_error_rate(fpr, tpr)
    if yaw_a is not None and yaw_b is not None:
        report["yaw_bins"] = yaw_binned_metrics(scores, same, yaw_a, yaw_b)
    return report, roc


def cfp_gap(reports: Mapping[str, dict]) -> dict | None:
    """FF minus FP, the pose cost in one number, where both CFP protocols were run."""
    ff, fp = reports.get("cfp-ff"), reports.get("cfp-fp")
    if ff is None or fp is None:
        return None
    gap = {"accuracy": ff["ten_fold"]["mean"] - fp["ten_fold"]["mean"]}
    if ff["verification"] and fp["verification"]:
        gap["auc"] = ff["verification"]["auc"] - fp["verification"]["auc"]
        gap["eer"] = fp["eer"] - ff["eer"]
    return gap
