"""Held-out evaluation of the landmark autoencoder against two baselines, with its figures.

All three methods are scored with the same NME (``facerec.evaluation.nme``), in the normalised frame of
``facerec.frontalization.data`` (prediction and target both there, so the NME equals the pixel NME
of the prediction placed in the target's own centre and scale), on faces of identities never seen in
training:
- ``model``: the autoencoder's prediction;
- ``input``: the input landmarks unchanged (what a pipeline without the autoencoder would use);
- ``mean``: the mean canonical shape of the training identities, the same for every face (what a
  pose-blind model that ignores its input could at best do).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facerec.errors import StoreError
from facerec.evaluation.nme import nme_per_sample, summarise_by_yaw, yaw_bin_names
from facerec.evaluation.plots import _pyplot, _save
from facerec.frontalization.data import pose_input
from facerec.geometry.landmark_sets import LandmarkSet

if TYPE_CHECKING:
    import torch

    from facerec.frontalization.model import LandmarkAutoencoder
    from facerec.frontalization.data import InMemoryLandmarks, StreamingLandmarks

METHODS = ("model", "input", "mean")
METHOD_LABELS = {"model": "autoencoder", "input": "input unchanged", "mean": "mean canonical shape"}


@dataclass
class Examples:
    """The held-out faces of largest |yaw|: input, prediction, target [K, P, 2] normalised; yaw [K] degrees;
    nme: method -> [K]."""

    points: np.ndarray
    pred: np.ndarray
    target: np.ndarray
    yaw: np.ndarray
    nme: dict[str, np.ndarray]


@dataclass
class AutoencoderEval:
    """Per-face NME of every method over the held-out part, its summary by |yaw| bin, a few examples."""

    errors: dict[str, np.ndarray]   # method -> [N]
    yaw: np.ndarray                 # [N] degrees
    summary: dict[str, Any]         # facerec.evaluation.nme.summarise_by_yaw
    examples: Examples


def predict_normalised(model: "LandmarkAutoencoder", points: np.ndarray, pose_deg: np.ndarray,
                       device: "torch.device", batch_size: int = 4096) -> np.ndarray:
    """Normalised points [N, P, 2] + pose [N, 3] degrees -> predicted normalised canonical points [N, P, 2]."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, points.shape[0], batch_size):
            p = torch.from_numpy(np.ascontiguousarray(points[start:start + batch_size])).to(device)
            q = torch.from_numpy(pose_input(pose_deg[start:start + batch_size])).to(device)
            out.append(model(p, q).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros_like(points)


def baseline_predictions(points: np.ndarray, mean_shape: np.ndarray) -> dict[str, np.ndarray]:
    """The two baselines for normalised input points [N, P, 2]: ``input`` returns them unchanged,
    ``mean`` returns the training identities' mean canonical shape [P, 2] for every face."""
    return {"input": points, "mean": np.broadcast_to(mean_shape, points.shape)}


def evaluate(model: "LandmarkAutoencoder", source: "InMemoryLandmarks | StreamingLandmarks", mean_shape: np.ndarray,
             lset: LandmarkSet, device: "torch.device", batch_size: int = 4096, num_examples: int = 6) -> AutoencoderEval:
    """Score model and baselines on every row of ``source`` (streamed batch by batch, only [N] errors kept)."""
    errors: dict[str, list[np.ndarray]] = {m: [] for m in METHODS}
    yaws: list[np.ndarray] = []
    best: Examples | None = None
    for batch in source.batches(batch_size, shuffle=False):
        pred = predict_normalised(model, batch.points, batch.pose_deg, device, batch_size)
        preds = {"model": pred, **baseline_predictions(batch.points, mean_shape)}
        batch_err = {m: np.asarray(nme_per_sample(preds[m], batch.target, lset)) for m in METHODS}
        for m in METHODS:
            errors[m].append(batch_err[m])
        yaws.append(batch.pose_deg[:, 0])
        best = _keep_largest_yaw(best, batch.points, pred, batch.target, batch.pose_deg[:, 0], batch_err, num_examples)
    if not yaws:
        raise StoreError("the held-out part has no usable rows: nothing to evaluate (more identities or a larger holdout fraction)")
    err = {m: np.concatenate(v) for m, v in errors.items()}
    yaw = np.concatenate(yaws)
    return AutoencoderEval(errors=err, yaw=yaw, summary=summarise_by_yaw(err, yaw), examples=best)


def _keep_largest_yaw(best: Examples | None, points: np.ndarray, pred: np.ndarray, target: np.ndarray, yaw: np.ndarray,
                      err: dict[str, np.ndarray], k: int) -> Examples:
    """Merge a batch into the running top-k faces by |yaw|."""
    cand = Examples(points, pred, target, yaw, err)
    if best is not None:
        cand = Examples(*(np.concatenate([getattr(best, f), getattr(cand, f)]) for f in ("points", "pred", "target", "yaw")),
                        nme={m: np.concatenate([best.nme[m], err[m]]) for m in err})
    top = np.argsort(-np.abs(cand.yaw), kind="stable")[:k]
    return Examples(cand.points[top], cand.pred[top], cand.target[top], cand.yaw[top], {m: v[top] for m, v in cand.nme.items()})


def yaw_bin_table(summary: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """summary -> {method label: {bin: mean NME}} for ``plot_yaw_bins`` (overall first, then the bins)."""
    bins = ["all", *yaw_bin_names()]
    return {METHOD_LABELS[m]: {b: summary["nme"][m][b] for b in bins} for m in METHODS}


def plot_examples(examples: Examples, path: Path) -> Path:
    """Input (grey), prediction (red) and canonical target (green) of the largest-|yaw| held-out faces."""

    plt = _pyplot()
    k = max(1, len(examples.yaw))
    cols = min(3, k)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.8 * rows), squeeze=False)
    size = 2 if examples.points.shape[1] > 100 else 8
    for i, ax in enumerate(axes.flat):
        if i >= len(examples.yaw):
            ax.set_visible(False)
            continue
        for pts, colour, label in ((examples.points[i], "0.6", "input"), (examples.target[i], "tab:green", "canonical target"),
                                   (examples.pred[i], "tab:red", "prediction")):
            ax.scatter(pts[:, 0], pts[:, 1], s=size, c=colour, label=label)
        ax.set_aspect("equal")
        ax.invert_yaxis()   # image y grows downwards
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"yaw {examples.yaw[i]:+.0f} deg | NME model {examples.nme['model'][i]:.3f}\n"
                     f"input {examples.nme['input'][i]:.3f}, mean {examples.nme['mean'][i]:.3f}", fontsize=8)
        if i == 0:
            ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)
