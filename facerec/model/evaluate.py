"""Evaluate a trained run: verification on pairs of held-out identities, overall and by head yaw.

Embedding of a face (the verification convention of insightface and LFW papers):
``normalize(f(x) + f(mirror(x)))``, where the mirror flips every channel and swaps the left/right
heatmap channels (``facerec.store.transforms.RandomHorizontalFlip`` with p = 1), and pairs are scored by
cosine similarity.

``evaluate_run(run_dir, store)`` draws balanced pairs among the test split's rows (identities never
trained on; ``facerec.store.splits.make_verification_pairs``), and writes ``RUN/eval.json`` (AUC, best
accuracy, TAR at FAR 1e-2 / 1e-3, a 10-fold accuracy over the pairs, yaw-binned AUC and accuracy) and
``RUN/plots/roc.png``, ``RUN/plots/yaw_auc.png``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facerec.errors import ConfigError, TrainingError
from facerec.model.metrics import verification_metrics
from facerec.model.recognizer import ModelSpec, Recognizer, build_recognizer
from facerec.model.runs import RunFolder
from facerec.model.verification import cosine_scores, ten_fold_accuracy, yaw_binned_metrics

log = logging.getLogger(__name__)

EVAL_FILE = "eval.json"
NUM_FOLDS = 10


def load_recognizer(run: RunFolder, checkpoint: str = "last.pt", device: torch.device | str = "cpu") -> tuple[Recognizer, dict]:
    """The run's model with its trained weights, in eval mode, and the checkpoint dict."""
    state = run.load_checkpoint(checkpoint, map_location="cpu")
    if "model_spec" not in state:
        raise TrainingError(f"{run.checkpoint_path(checkpoint)} is not a recogniser checkpoint (no model_spec)")
    model = build_recognizer(ModelSpec.from_dict(state["model_spec"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state


@torch.no_grad()
def embed_batch(model: Recognizer, images_uint8: torch.Tensor, layout: Any, device: torch.device, *,
                mirror: bool = True, amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """uint8 [B, C, S, S] -> L2-normalised float32 embeddings [B, E] on the CPU.

    ``layout``: the dataset's ``ChannelLayout`` (which channels swap under the mirror).
    """
    from facerec.store.dataset import normalize_batch
    from facerec.store.transforms import RandomHorizontalFlip

    model.eval()
    batches = [images_uint8]
    if mirror:
        batches.append(RandomHorizontalFlip(1.0)(images_uint8, layout)[0])
    total = None
    for imgs in batches:
        x = normalize_batch(imgs, device)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            emb = model(x).float()
        total = emb if total is None else total + emb
    return torch.nn.functional.normalize(total, dim=1).cpu()


def embed_dataset(model: Recognizer, dataset: Any, device: torch.device, *, batch_size: int = 64,
                  num_workers: int = 0, mirror: bool = True, amp_dtype: torch.dtype | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of every row of a ``FaceStoreDataset``: (store rows [N] int64, embeddings [N, E] float32),
    read in chunk order (``ChunkShuffleSampler`` without shuffling)."""
    from facerec.store.sampler import ChunkShuffleSampler, make_loader

    sampler = ChunkShuffleSampler.for_dataset(dataset, batch_size=batch_size, shuffle=False)
    loader = make_loader(dataset, sampler, num_workers, persistent_workers=False)
    rows, embs = [], []
    for batch in loader:
        embs.append(embed_batch(model, batch["image"], dataset.channel_layout, device, mirror=mirror, amp_dtype=amp_dtype))
        rows.append(batch["row"].numpy())
    return np.concatenate(rows), torch.cat(embs).numpy()


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
    from facerec.model.plots import plot_roc, plot_yaw_bins

    paths = [plot_roc({label: (roc[0], roc[1], report["verification"]["auc"])}, run.plot_path("roc"))]
    yaw = report["yaw_bins"]
    if yaw["note"] is None:
        for metric in ("auc", "accuracy"):
            table = {label: {name: entry[metric] for name, entry in yaw["bins"].items()}}
            paths.append(plot_yaw_bins(table, run.plot_path(f"yaw_{metric}"), metric))
    return paths


def evaluate_run(run_dir: Path | str, store: Any = None, *, device: str = "auto", num_pairs: int = 3000,
                 checkpoint: str = "last.pt", batch_size: int = 64, seed: int = 0) -> dict:
    """Verification of a run on its store's test identities; writes eval.json and plots; returns the report.

    ``store``: a store path or an open ``FeatureSet``; None uses the run's own ``store``.
    """
    from facerec.devices import resolve_device
    from facerec.model.train_recognizer import TrainConfig, open_split, resolve_amp
    from facerec.store.dataset import FaceStoreDataset
    from facerec.store.open_store import open_feature_set
    from facerec.store.splits import make_verification_pairs

    run = RunFolder(Path(run_dir), resume=True)
    cfg = TrainConfig.from_dict(run.load_config())
    dev = resolve_device(device)
    model, state = load_recognizer(run, checkpoint, dev)
    fset = open_feature_set(store if store is not None else cfg.store, cfg.extractor, cfg.img_size)
    test = open_split(cfg, fset, "test")
    index = fset.index.set_index("row").loc[test.rows].reset_index()
    possible = possible_pair_count(index["identity"].to_numpy())
    n_pairs = min(num_pairs, possible)
    if n_pairs < 2 * NUM_FOLDS:
        raise ConfigError(f"the test split of {fset.location} allows only {possible} balanced pairs; "
                          f"need at least {2 * NUM_FOLDS} (raise --holdout-identity-frac or use a larger store)")
    if n_pairs < num_pairs:
        log.warning("test split allows only %d balanced pairs; using %d instead of %d", possible, n_pairs, num_pairs)
    row_a, row_b, same = make_verification_pairs(index, n_pairs, seed)
    needed = np.unique(np.r_[row_a, row_b])
    dataset = FaceStoreDataset(fset, rows=needed, use_heatmaps=cfg.use_heatmaps, add_mask_channel=cfg.add_mask_channel,
                               group_all_landmarks=cfg.group_all_landmarks)
    rows, emb = embed_dataset(model, dataset, dev, batch_size=batch_size, amp_dtype=resolve_amp(cfg.amp, dev))
    scores = score_pairs(rows, emb, row_a, row_b)
    yaw = fset.pose[:, 0]
    report, roc = pair_report(scores, same, yaw[row_a], yaw[row_b], np.arange(len(scores)) % NUM_FOLDS)
    report.update({
        "checkpoint": checkpoint, "step": state["loop"]["step"], "store": str(fset.location),
        "num_pairs_requested": num_pairs, "num_test_identities": int(index["identity"].nunique()),
        "num_test_images": len(needed), "mirror": True, "pair_seed": seed,
    })
    label = Path(run_dir).name
    report["plots"] = [str(p.relative_to(run.path)) for p in write_pair_plots(run, label, report, roc)]
    _write_json(run.path / EVAL_FILE, report)
    v = report["verification"]
    log.info("%s: %d pairs, AUC %.4f, best accuracy %.4f, 10-fold %.4f +- %.4f", label, v["num_pairs"], v["auc"],
             v["best_accuracy"], report["ten_fold"]["mean"], report["ten_fold"]["std"])
    run.close()
    return report


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    tmp.write_text(json.dumps(obj, indent=2, default=float))
    os.replace(tmp, path)
