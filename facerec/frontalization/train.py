"""Train the landmark autoencoder on a feature store, then evaluate it on held-out identities.

``main(config)`` writes a run folder (``facerec.training.runs.RunFolder``): the resolved config, the data
summary (``data.json``: identities and rows used, rows left out by reason), metrics (JSON lines and
TensorBoard), ``checkpoints/last.pt`` after every epoch (``--resume`` continues from it), and at the end
``eval.json`` plus plots (training curves, NME by |yaw| bin against the baselines, large-yaw examples).

The loss is the NME itself (mean point-to-point distance over the target's inter-ocular distance), so
training optimises exactly what is reported. Mirror augmentation (on by default) flips half of each
batch: x -> -x in the normalised frame, points re-indexed with the landmark set's flip permutation,
yaw and roll negated; the target is the mirrored canonical shape.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facerec.errors import ConfigError, TrainingError
from facerec.evaluation.nme import nme_per_sample
from facerec.evaluation.plots import plot_training_curves, plot_yaw_bins
from facerec.frontalization.data import HOLDOUT, LandmarkReader, TRAIN, describe, open_source, pose_input
from facerec.frontalization.evaluate import evaluate, plot_examples, yaw_bin_table
from facerec.frontalization.predict import load_autoencoder
from facerec.geometry.landmark_sets import flip_permutation
from facerec.schemas.tables import LAYOUT_VERSION
from facerec.store.fs import resolve, write_json_atomic
from facerec.training.checkpoint import CHECKPOINT_VERSION, check_resume
from facerec.training.devices import resolve_device
from facerec.training.runs import EVAL_FILE, RunFolder, config_to_dict
from facerec.training.schedule import warmup_cosine

if TYPE_CHECKING:
    import torch

    from facerec.frontalization.model import LandmarkAutoencoder
    from facerec.frontalization.data import InMemoryLandmarks, LandmarkBatch, StreamingLandmarks

log = logging.getLogger(__name__)

DATA_FILE = "data.json"
# Fields that may differ when a run is resumed; every other one must match the saved config.
_RESUME_MAY_DIFFER = ("device", "threads", "resume", "out", "store", "plots")


@dataclass(frozen=True)
class AutoencoderConfig:
    """Everything one training run depends on; saved resolved as RUN/config.json."""

    store: str
    extractor: str
    out: str
    img_size: int = 112
    epochs: int = 40
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_frac: float = 0.05          # of all optimiser steps
    width: int = 256
    depth: int = 2
    code_size: int = 32
    dropout: float = 0.1
    residual: bool = True              # predict a correction to the input shape (measured better on LFW, docs/autoencoder.md)
    mirror: bool = True                # mirror augmentation of half of every batch
    holdout_identity_frac: float = 0.1  # same default and hash as facerec.store.splits: same test people
    min_valid_per_identity: int = 2    # identities with fewer valid samples have a trivial target
    max_ram_mb: float = 2048.0         # above this the landmarks are streamed from the store
    device: str = "auto"
    threads: int = 0                   # CPU threads for torch; 0 keeps torch's default (one per core)
    resume: bool = False
    seed: int = 0
    num_examples: int = 6              # large-yaw held-out faces drawn in the examples plot
    plots: bool = True                 # draw the PNG figures at the end (eval.json is written either way)

    def __post_init__(self) -> None:
        positive = ("img_size", "epochs", "batch_size", "width", "depth", "code_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"autoencoder config: {name} must be >= 1, found {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"autoencoder config: lr must be > 0, found {self.lr}")
        if self.threads < 0:
            raise ConfigError(f"autoencoder config: threads must be >= 0 (0 = torch default), found {self.threads}")
        if not 0.0 <= self.warmup_frac < 1.0:
            raise ConfigError(f"autoencoder config: warmup_frac must be in [0, 1), found {self.warmup_frac}")


# ---------------------------------------------------------------------------------------------------
def mirror_batch(points: "torch.Tensor", pose: "torch.Tensor", target: "torch.Tensor", perm: "torch.Tensor",
                 flip: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """Mirror the rows where ``flip`` [B] is True: x -> -x, points re-indexed by ``perm`` [P], yaw and roll negated.

    points, target: [B, P, 2] normalised (centred, so the mirror axis is x = 0); pose: [B, 3] (yaw, pitch, roll).
    """
    import torch

    sign = torch.tensor([-1.0, 1.0], device=points.device, dtype=points.dtype)
    pose_sign = torch.tensor([-1.0, 1.0, -1.0], device=pose.device, dtype=pose.dtype)
    m = flip.view(-1, 1, 1)
    points = torch.where(m, points[:, perm] * sign, points)
    target = torch.where(m, target[:, perm] * sign, target)
    pose = torch.where(flip.view(-1, 1), pose * pose_sign, pose)
    return points, pose, target


def _tensors(batch: "LandmarkBatch", device: "torch.device") -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    import torch

    return (torch.from_numpy(np.ascontiguousarray(batch.points)).to(device),
            torch.from_numpy(pose_input(batch.pose_deg)).to(device),
            torch.from_numpy(np.ascontiguousarray(batch.target)).to(device))


def train_one_epoch(model: "LandmarkAutoencoder", source: "InMemoryLandmarks | StreamingLandmarks", optimizer, scheduler,
                    cfg: AutoencoderConfig, epoch: int, step: int, lset, device: "torch.device", run) -> tuple[int, float]:
    """One pass over the training part; returns (global step after it, mean loss)."""
    import torch
    from tqdm import tqdm

    model.train()
    perm = torch.as_tensor(np.array(flip_permutation(lset.name)), device=device)
    gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
    total, count = 0.0, 0
    batches = source.batches(cfg.batch_size, epoch=epoch, seed=cfg.seed)
    n_batches = math.ceil(source.num_rows / cfg.batch_size)
    for batch in tqdm(batches, total=n_batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=None):
        points, pose, target = _tensors(batch, device)
        if cfg.mirror:
            flip = (torch.rand(len(batch), generator=gen) < 0.5).to(device)
            points, pose, target = mirror_batch(points, pose, target, perm, flip)
        loss = nme_per_sample(model(points, pose), target, lset, smooth=1e-12).mean()
        if not torch.isfinite(loss):
            raise TrainingError(f"loss is {loss.item()} at step {step} (epoch {epoch + 1}); lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        total += loss.item() * len(batch)
        count += len(batch)
        if step % 50 == 0:
            run.log(step, "train", loss=loss.item(), lr=optimizer.param_groups[0]["lr"])
    return step, total / max(1, count)


# ---------------------------------------------------------------------------------------------------
def _check_resume(run: RunFolder, cfg: AutoencoderConfig) -> None:
    check_resume(config_to_dict(cfg), run.load_config(), _RESUME_MAY_DIFFER, run=cfg.out)


def build_model(cfg: AutoencoderConfig, num_points: int) -> "LandmarkAutoencoder":
    from facerec.frontalization.model import LandmarkAutoencoder

    return LandmarkAutoencoder(num_points, width=cfg.width, depth=cfg.depth, code_size=cfg.code_size,
                               dropout=cfg.dropout, residual=cfg.residual)


def checkpoint_state(model, optimizer, scheduler, epoch: int, step: int, cfg: AutoencoderConfig, mean_shape: np.ndarray,
                     frame: tuple[np.ndarray, float]) -> dict[str, Any]:
    """A plain dict (loads with weights_only=True): weights, optimiser, schedule, progress, and what
    ``predict_canonical`` needs to use the model alone (config, mean shape, canonical pixel frame)."""
    import torch

    return {
        "version": CHECKPOINT_VERSION,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "epoch": epoch, "step": step, "config": config_to_dict(cfg), "num_points": model.num_points,
        "mean_shape": torch.from_numpy(np.asarray(mean_shape, np.float32)),
        "frame_centre": torch.from_numpy(np.asarray(frame[0], np.float32)), "frame_scale": float(frame[1]),
        "rng": torch.get_rng_state(), "layout_version": LAYOUT_VERSION,
    }


def main(cfg: AutoencoderConfig) -> dict[str, Any]:
    """Train, evaluate on held-out identities, write the run folder; returns the eval summary."""
    import torch

    device = resolve_device(cfg.device)
    threads_before = torch.get_num_threads()
    if cfg.threads:
        # A tiny MLP gains nothing from many threads, and on a busy machine their spin-waits cost ~10x.
        torch.set_num_threads(cfg.threads)
    try:
        with RunFolder(Path(cfg.out), resume=cfg.resume) as run:
            return _train(cfg, run, device)
    finally:
        torch.set_num_threads(threads_before)


def _train(cfg: AutoencoderConfig, run, device: "torch.device") -> dict[str, Any]:
    import torch

    if cfg.resume:
        _check_resume(run, cfg)
    run.save_config(cfg)
    torch.manual_seed(cfg.seed)

    reader = LandmarkReader(cfg.store, cfg.extractor, cfg.img_size, holdout_frac=cfg.holdout_identity_frac,
                            seed=cfg.seed, min_valid_per_identity=cfg.min_valid_per_identity)
    train_src = open_source(reader, TRAIN, cfg.max_ram_mb)
    holdout_src = open_source(reader, HOLDOUT, cfg.max_ram_mb)
    if train_src.num_rows == 0:
        raise TrainingError(f"no usable training rows in {cfg.store} ({cfg.extractor}-{cfg.img_size}); see the log for exclusions")
    data = describe(reader, {TRAIN: train_src.num_rows, HOLDOUT: holdout_src.num_rows})
    write_json_atomic(data, resolve(str(run.path / DATA_FILE)))
    log.info("autoencoder data: %s", data)

    mean_shape = reader.targets.mean_shape(TRAIN)
    frame = reader.targets.mean_frame(TRAIN)
    model = build_model(cfg, reader.num_points).to(device)
    model.set_output_bias(torch.from_numpy(mean_shape))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(train_src.num_rows / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    scheduler = warmup_cosine(optimizer, total_steps, int(cfg.warmup_frac * total_steps))

    start_epoch, step = 0, 0
    if cfg.resume and run.has_checkpoint():
        state = run.load_checkpoint(map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        start_epoch, step = int(state["epoch"]) + 1, int(state["step"])
        log.info("resumed %s at epoch %d (step %d)", run.path, start_epoch, step)

    for epoch in range(start_epoch, cfg.epochs):
        step, loss = train_one_epoch(model, train_src, optimizer, scheduler, cfg, epoch, step, reader.lset, device, run)
        holdout_nme = float(evaluate(model, holdout_src, mean_shape, reader.lset, device, num_examples=0).errors["model"].mean())
        run.log(step, "epoch", epoch=epoch + 1, loss=loss)
        run.log(step, "holdout", nme=holdout_nme)
        log.info("epoch %d/%d: train NME %.4f, held-out NME %.4f", epoch + 1, cfg.epochs, loss, holdout_nme)
        run.save_checkpoint(checkpoint_state(model, optimizer, scheduler, epoch, step, cfg, mean_shape, frame))

    return write_evaluation(run, model, holdout_src, mean_shape, reader.lset, device, cfg.num_examples, cfg.plots)


def write_evaluation(run, model, source, mean_shape: np.ndarray, lset, device, num_examples: int,
                     plots: bool = True) -> dict[str, Any]:
    """Final held-out evaluation: RUN/eval.json and (with ``plots``) the figures; returns the summary."""

    result = evaluate(model, source, mean_shape, lset, device, num_examples=num_examples)
    summary = {"split": "held-out identities", "frame": "normalised (centre = mean, scale = RMS radius)",
               "normaliser": "target inter-ocular distance", **result.summary}
    write_json_atomic(summary, resolve(str(run.path / EVAL_FILE)))
    if plots:
        metrics = run.read_metrics()
        if metrics:
            plot_training_curves(metrics, run.plot_path("training_curves"))
        plot_yaw_bins(yaw_bin_table(result.summary), run.plot_path("nme_by_yaw"), "NME (held-out identities)",
                      binned_by="the face's |yaw|")
        if num_examples:
            plot_examples(result.examples, run.plot_path("large_yaw_examples"))
    nme = result.summary["nme"]
    log.info("held-out NME: model %.4f, input %.4f, mean shape %.4f (%d faces)", nme["model"]["all"],
             nme["input"]["all"], nme["mean"]["all"], result.summary["count"]["all"])
    return summary


def evaluate_run(run_dir: str | Path, store: str | None = None, device: str = "auto", checkpoint: str = "last.pt") -> dict[str, Any]:
    """Re-evaluate a finished run on its held-out identities (same extractor, size, seed and fraction as
    training; ``store`` defaults to the one it trained on). Rewrites RUN/eval.json and the plots."""

    ae = load_autoencoder(run_dir, device, checkpoint)
    cfg = ae.config
    reader = LandmarkReader(store or cfg["store"], cfg["extractor"], int(cfg["img_size"]),
                            holdout_frac=float(cfg["holdout_identity_frac"]), seed=int(cfg["seed"]),
                            min_valid_per_identity=int(cfg["min_valid_per_identity"]))
    if reader.num_points != ae.model.num_points:
        raise TrainingError(f"run {run_dir} has a {ae.model.num_points}-point model; the store gives {reader.num_points} points")
    run = RunFolder(Path(run_dir), resume=True)
    try:
        return write_evaluation(run, ae.model, open_source(reader, HOLDOUT, float(cfg["max_ram_mb"])), ae.mean_shape,
                                reader.lset, ae.device, int(cfg["num_examples"]))
    finally:
        run.close()
