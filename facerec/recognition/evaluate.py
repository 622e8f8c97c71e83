"""Evaluate a trained run: verification on pairs of held-out identities, overall and by head yaw.

Embedding of a face (the verification convention of insightface and LFW papers):
``normalize(f(x) + f(mirror(x)))``, where the mirror flips every channel and swaps the left/right
heatmap channels (``facerec.store.transforms.RandomHorizontalFlip`` with p = 1), and pairs are scored by
cosine similarity.

``evaluate_run(run_dir, store)`` draws balanced pairs among the test split's rows (identities never
trained on; ``facerec.store.splits.make_verification_pairs``), and writes ``RUN/eval.json`` (AUC, best
accuracy, TAR at FAR 1e-2 / 1e-3, a 10-fold accuracy over the pairs, yaw-binned AUC and accuracy) and
``RUN/plots/roc.png``, ``RUN/plots/yaw_auc.png``, and the pairs themselves with their scores and folds
(``RUN/eval_pairs.npz``), so that another embedder can be scored on exactly these pairs
(``facerec.recognition.reference``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from facerec.errors import ConfigError
from facerec.evaluation.metrics import verification_metrics
from facerec.evaluation.plots import plot_roc, plot_yaw_bins
from facerec.evaluation.verification import cosine_scores, ten_fold_accuracy, yaw_binned_metrics
from facerec.recognition.data import split_rows
from facerec.recognition.inference import embed_dataset, load_run
from facerec.store.fs import atomic_local_path, resolve, write_json_atomic
from facerec.store.open_store import open_feature_set
from facerec.store.splits import make_verification_pairs
from facerec.training.runs import EVAL_FILE, RunFolder

log = logging.getLogger(__name__)

NUM_FOLDS = 10
PAIRS_FILE = "eval_pairs.npz"       # row_a, row_b, same, fold, score of every pair eval.json was computed on


def possible_pair_count(identities: np.ndarray) -> int:
    """Most balanced pairs ``make_verification_pairs`` can give: twice the smaller of the possible
    same-identity and different-identity pair counts."""
    _, counts = np.unique(identities, return_counts=True)
    same = int((counts * (counts - 1) // 2).sum())
    n = int(counts.sum())
    diff = (n * n - int((counts**2).sum())) // 2
    return 2 * min(same, diff)


def score_pairs(rows: np.ndarray, embeddings: np.ndarray, row_a: np.ndarray, row_b: np.ndarray) -> np.ndarray:
    """Cosine similarity per pair of store rows, looking each row up in (rows, embeddings)."""
    pos = {int(r): i for i, r in enumerate(rows)}
    missing = [int(r) for r in np.r_[row_a, row_b] if int(r) not in pos]
    if missing:
        raise ConfigError(f"no embedding for store rows {missing[:5]} ({len(missing)} in all)")
    ia = np.fromiter((pos[int(r)] for r in row_a), np.int64, len(row_a))
    ib = np.fromiter((pos[int(r)] for r in row_b), np.int64, len(row_b))
    return cosine_scores(embeddings[ia], embeddings[ib])


def pair_report(scores: np.ndarray, same: np.ndarray, yaw_a: np.ndarray, yaw_b: np.ndarray,
                folds: np.ndarray) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """Every verification number for one pair set, and the ROC points for the plot."""
    metrics, roc = verification_metrics(scores, same)
    report = {
        "verification": metrics.to_dict(),
        "ten_fold": ten_fold_accuracy(scores, same, folds).to_dict(),
        "yaw_bins": yaw_binned_metrics(scores, same, yaw_a, yaw_b),
    }
    return report, roc


def write_pair_plots(run: RunFolder, label: str, report: dict, roc: tuple[np.ndarray, np.ndarray]) -> list[Path]:
    paths = [plot_roc({label: (roc[0], roc[1], report["verification"]["auc"])}, run.plot_path("roc"))]
    yaw = report["yaw_bins"]
    if yaw["note"] is None:
        for metric in ("auc", "accuracy"):
            table = {label: {name: entry[metric] for name, entry in yaw["bins"].items()}}
            paths.append(plot_yaw_bins(table, run.plot_path(f"yaw_{metric}"), metric))
    return paths


def head_summary(model: Any) -> dict | None:
    """The margin head the run trained with, as built (defaults resolved): type, scale s, margin m."""
    head = getattr(model, "head", None)
    if head is None:
        return None
    return {"type": getattr(head, "margin_type", None), "s": getattr(head, "s", None), "m": getattr(head, "m", None)}


def save_pairs(path: Path, row_a: np.ndarray, row_b: np.ndarray, same: np.ndarray, folds: np.ndarray,
               scores: np.ndarray) -> Path:
    """The scored pairs as a small npz, written whole or not at all (``atomic_local_path``)."""
    with atomic_local_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, row_a=np.asarray(row_a, np.int64), row_b=np.asarray(row_b, np.int64),
                 same=np.asarray(same, bool), fold=np.asarray(folds, np.int64), score=np.asarray(scores, np.float64))
    return path


def load_pairs(path: Path) -> dict[str, np.ndarray]:
    """What ``save_pairs`` wrote; a clear error when the run was never evaluated."""
    if not Path(path).is_file():
        raise ConfigError(f"{path} not found: the run has no scored pairs; run `facerec evaluate --run RUN` first")
    with np.load(path) as data:
        return {k: data[k] for k in ("row_a", "row_b", "same", "fold", "score")}


def evaluate_run(run_dir: Path | str, store: Any = None, *, device: str = "auto", num_pairs: int = 3000,
                 checkpoint: str = "last.pt", batch_size: int = 64, seed: int = 0) -> dict:
    """Verification of a run on its store's test identities; writes eval.json and plots; returns the report.

    ``store``: a store path or an open ``FeatureSet``; None uses the run's own ``store``.
    """
    loaded = load_run(run_dir, checkpoint, device)
    cfg = loaded.config
    run = RunFolder(loaded.path, resume=True)
    fset = open_feature_set(store if store is not None else cfg.store, cfg.extractor, cfg.img_size)
    indexed = fset.index.set_index("row")
    index = indexed.loc[split_rows(cfg, fset, "test")].reset_index()
    train_ids = indexed.loc[split_rows(cfg, fset, "train"), "identity"]
    possible = possible_pair_count(index["identity"].to_numpy())
    n_pairs = min(num_pairs, possible)
    if n_pairs < 2 * NUM_FOLDS:
        raise ConfigError(f"the test split of {fset.location} allows only {possible} balanced pairs; "
                          f"need at least {2 * NUM_FOLDS} (raise --holdout-identity-frac or use a larger store)")
    if n_pairs < num_pairs:
        log.warning("test split allows only %d balanced pairs; using %d instead of %d", possible, n_pairs, num_pairs)
    row_a, row_b, same = make_verification_pairs(index, n_pairs, seed)
    needed = np.unique(np.r_[row_a, row_b])
    dataset = loaded.reader(fset, needed)      # the one dataset: only the rows the pairs need
    rows, emb = embed_dataset(loaded.model, dataset, loaded.device, batch_size=batch_size, amp_dtype=loaded.amp_dtype)
    scores = score_pairs(rows, emb, row_a, row_b)
    yaw = fset.pose[:, 0]
    folds = np.arange(len(scores)) % NUM_FOLDS
    report, roc = pair_report(scores, same, yaw[row_a], yaw[row_b], folds)
    save_pairs(run.path / PAIRS_FILE, row_a, row_b, same, folds, scores)
    report.update({
        "checkpoint": checkpoint, "step": loaded.step, "store": str(fset.location),
        "num_pairs_requested": num_pairs, "num_test_identities": int(index["identity"].nunique()),
        "num_test_images": len(needed), "mirror": True, "pair_seed": seed, "pairs_file": PAIRS_FILE,
        "training_data": {"images": len(train_ids), "identities": int(train_ids.nunique())},
        "head": head_summary(loaded.model),
    })
    label = Path(run_dir).name
    report["plots"] = [str(p.relative_to(run.path)) for p in write_pair_plots(run, label, report, roc)]
    write_json_atomic(report, resolve(str(run.path / EVAL_FILE)), default=float)
    v = report["verification"]
    log.info("%s: %d pairs, AUC %.4f, best accuracy %.4f, 10-fold %.4f +- %.4f", label, v["num_pairs"], v["auc"],
             v["best_accuracy"], report["ten_fold"]["mean"], report["ten_fold"]["std"])
    run.close()
    return report
