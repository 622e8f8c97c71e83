"""Train the recogniser (ResNet + ArcFace/CosFace head) on a feature store: ``main(TrainConfig)``.

Shaped like torchvision's references: ``train_one_epoch``, ``evaluate``, ``main``; nothing runs at
import. The data come from ``facerec.recognition.data`` (``FaceStoreDataset`` over the ``train``/``val``
splits of ``facerec.store.splits``, batches from ``ChunkShuffleSampler``); labels are the dense training
classes. Inputs stay uint8 until the device. With ``input_path="device"`` (default) the loader ships the
crop and the landmarks and ``DeviceInputs`` augments and renders the heatmaps there; with ``"cpu"`` the
workers augment the stored stack and ``normalize_batch`` converts it inside the step.

Optimisation: AdamW, linear warm-up then cosine decay stepped per optimiser step; on CUDA mixed
precision (bf16 where supported, else fp16 with a GradScaler) and channels_last; gradient-norm clipping.

The run folder (``facerec.training.runs.RunFolder``) gets the resolved config, metrics every
``log_every`` steps and per epoch, ``checkpoints/last.pt`` after every epoch, every ``checkpoint_every``
steps when set (a crash then loses at most that many steps), when ``max_steps`` stops the run, and on
Ctrl-C (mid-epoch: the sampler's order is replayed and the done batches skipped, so a resumed run
continues at the same step with the same data), ``best.pt`` at the best validation accuracy and training
curves. ``main`` only trains: building the store first and the verification afterwards are composed
around it by ``facerec.recognition.workflow.build_train_evaluate`` (the ``train`` command, the demo).
A NaN or infinite loss stops training with a ``TrainingError``; the last checkpoint is left untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from facerec import faults
from facerec.errors import TrainingError
from facerec.evaluation.plots import plot_training_curves
from facerec.recognition.config import RESUME_MAY_DIFFER, TrainConfig
from facerec.recognition.data import build_data
from facerec.recognition.inputs import InputSpec
from facerec.recognition.model import ModelSpec, Recognizer, build_recognizer
from facerec.store.dataset import normalize_batch
from facerec.store.open_store import open_feature_set
from facerec.training import distributed
from facerec.training.collapse import CollapseGuard
from facerec.training.checkpoint import CHECKPOINT_VERSION, check_resume, rng_state, set_rng_state
from facerec.training.devices import resolve_amp, use_channels_last
from facerec.training.distributed import DistInfo
from facerec.training.progress import Meter, log_every
from facerec.training.runs import RunFolder
from facerec.training.schedule import warmup_cosine

log = logging.getLogger(__name__)


@dataclass
class LoopState:
    """What a resumed run needs besides the modules: where it stands."""

    epoch: int = 0              # epoch in progress (or next to start)
    batch_in_epoch: int = 0     # batches of that epoch already done
    step: int = 0               # optimiser steps done
    best_val_accuracy: float = -1.0


def device_inputs(batch: dict, device: torch.device, channels_last: bool, inputs: Callable | None = None,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A reader batch -> (normalised float images [B, C, S, S] on ``device``, labels [B]); uint8 on the wire.

    ``inputs``: the device path's ``DeviceInputs`` (augments, renders heatmaps; ``generator`` draws its
    randomness), else the batch already holds every channel and is only normalised.
    """
    images = normalize_batch(batch["image"], device) if inputs is None else inputs(batch, generator)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, batch["label"].to(device, non_blocking=True)


def train_step(model: Recognizer, optimizer, scheduler, scaler, images: torch.Tensor, labels: torch.Tensor, *,
               amp_dtype: torch.dtype | None, grad_clip: float | None,
               forward: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a normalised batch; returns (loss, number correct), both still on the device.

    ``forward(images, labels)`` is ``model.classify`` unless given (under torchrun: the DDP module from
    ``facerec.training.distributed.wrap_for_training``, which averages gradients across ranks).
    Raises ``TrainingError`` on a NaN or infinite loss before any weight changes.
    """
    with torch.autocast(images.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        logits, cosine = (forward or model.classify)(images, labels)
        loss = F.cross_entropy(logits, labels)
    if not torch.isfinite(loss):
        raise TrainingError(f"loss is {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return loss.detach(), (cosine.argmax(1) == labels).sum()


def train_one_epoch(model: Recognizer, optimizer, scheduler, scaler, loader, device: torch.device, *,
                    state: LoopState, cfg: TrainConfig, run: RunFolder | None, amp_dtype: torch.dtype | None,
                    channels_last: bool, total_batches: int, forward: Callable | None = None,
                    after_step: Callable[[], None] | None = None, inputs: Callable | None = None,
                    margin_warmup_steps: int = 0) -> dict[str, float]:
    """One pass over ``loader``; advances ``state`` after every step, then calls ``after_step`` (mid-epoch
    checkpoints). Stops early at ``cfg.max_steps``. ``inputs``: the device path (``TrainData.inputs``),
    its augmentation seeded by (seed, step), so a resumed run draws what the uninterrupted one drew.
    The head's margin ramps linearly from 0 to m over the first ``margin_warmup_steps`` steps (a function
    of the step alone, so a resumed run continues the ramp)."""
    model.train()
    meter = Meter()

    def on_log(i: int, summary: dict) -> None:
        if run is not None:
            run.log(state.step, "train", lr=optimizer.param_groups[0]["lr"], margin=model.head.active_m, **summary)

    batches = log_every(loader, meter, every=cfg.log_every, total=total_batches,
                        desc=f"epoch {state.epoch + 1}/{cfg.epochs}", on_log=on_log)
    with contextlib.closing(batches):
        for batch in batches:
            faults.at_train_step(state.step)          # recovery tests: die here as a crash would
            distributed.trace_rows(batch["row"])      # DDP tests: which store rows this rank trained on
            gen = None if inputs is None else torch.Generator().manual_seed(cfg.seed * 1_000_003 + state.step)
            images, labels = device_inputs(batch, device, channels_last, inputs, gen)
            model.head.set_margin_fraction(min(1.0, state.step / margin_warmup_steps) if margin_warmup_steps else 1.0)
            try:
                loss, correct = train_step(model, optimizer, scheduler, scaler, images, labels, amp_dtype=amp_dtype,
                                           grad_clip=cfg.grad_clip, forward=forward)
            except TrainingError as exc:
                raise TrainingError(
                    f"{exc} at step {state.step} (epoch {state.epoch + 1}); training stopped. The last good checkpoint "
                    "is kept; try a lower --lr, --amp off or a smaller --grad-clip"
                ) from None
            state.step += 1
            state.batch_in_epoch += 1
            meter.update(loss.item(), float(correct), labels.shape[0])
            if after_step is not None:
                after_step()
            if cfg.max_steps is not None and state.step >= cfg.max_steps:
                break
    return meter.epoch_summary()


@torch.no_grad()
def evaluate(model: Recognizer, loader, device: torch.device, *, amp_dtype: torch.dtype | None,
             channels_last: bool) -> dict[str, float]:
    """Closed-set validation: margin loss and top-1 accuracy (cosine arg-max) on held-out images."""
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for batch in loader:
        images, labels = device_inputs(batch, device, channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits, cosine = model.classify(images, labels)
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        correct += int((cosine.argmax(1) == labels).sum())
        n += labels.shape[0]
    return {"loss": loss_sum / max(n, 1), "accuracy": correct / max(n, 1), "num_samples": n}

# ------------------------------------------------------------------------------------------- checkpoints
def checkpoint_state(model, optimizer, scheduler, scaler, state: LoopState, cfg: TrainConfig,
                     spec: ModelSpec, class_names: list[str]) -> dict:
    """A plain dict (tensors, numbers, strings, lists, dicts): loads with ``weights_only=True``."""
    return {
        "version": CHECKPOINT_VERSION,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "loop": dataclasses.asdict(state),
        "rng": rng_state(),
        "config": dataclasses.asdict(cfg),
        "model_spec": spec.to_dict(),
        "input_spec": InputSpec.from_config(cfg, spec.in_chans).to_dict(),   # what every reader of the run feeds it
        "class_names": list(class_names),
    }


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    steps: int
    epochs_done: int
    last_epoch_metrics: dict
    evaluation: dict | None = None    # set by build_train_evaluate, not by main


def main(cfg: TrainConfig) -> TrainResult:
    """Train (or resume) a run; returns where it is and what it reached.

    Under torchrun (``RANK``/``WORLD_SIZE`` set) every rank runs this: DDP, a disjoint part of each epoch
    per rank, rank 0 alone writes config, metrics, checkpoints and plots.
    """
    info, device = distributed.setup(cfg.device)
    try:
        return _train(cfg, info, device)
    finally:
        distributed.teardown()


def _train(cfg: TrainConfig, info: DistInfo, device: torch.device) -> TrainResult:
    amp_dtype = resolve_amp(cfg.amp, device)
    channels_last = use_channels_last(cfg.channels_last, device)
    feature_set = open_feature_set(cfg.store, cfg.extractor, cfg.img_size)
    # Resolved: the run names the feature set it read, whatever path or defaults it was given.
    cfg = dataclasses.replace(cfg, extractor=feature_set.layout.extractor, img_size=feature_set.layout.img_size)
    run = RunFolder(Path(cfg.out), resume=cfg.resume, replica=not info.is_main)
    checkpoint = None
    if cfg.resume:
        check_resume(dataclasses.asdict(cfg), run.load_config(), RESUME_MAY_DIFFER, run=str(run.path))
        checkpoint = run.load_checkpoint("last.pt") if run.has_checkpoint("last.pt") else None
    run.save_config(cfg)
    torch.manual_seed(cfg.seed)
    data = build_data(cfg, feature_set, info, device)
    spec = ModelSpec(backbone=cfg.backbone, in_chans=data.num_channels, num_classes=data.num_classes,
                     img_size=feature_set.layout.img_size, stem=cfg.stem, embedding_size=cfg.embedding_size,
                     dropout=cfg.dropout, margin_type=cfg.margin_type, scale=cfg.scale, margin=cfg.margin)
    model = build_recognizer(spec).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    steps_per_epoch = len(data.sampler.sampler)
    total_steps = cfg.epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = warmup_cosine(optimizer, total_steps, min(total_steps, round(cfg.warmup_epochs * steps_per_epoch)),
                              cfg.min_lr_ratio)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    state = LoopState()
    if checkpoint is not None:
        if checkpoint.get("class_names") != data.class_names:
            raise TrainingError("cannot resume: the store's training identities differ from the run's")
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        state = LoopState(**checkpoint["loop"])
        set_rng_state(checkpoint["rng"])
        if checkpoint.get("world_size", 1) != info.world_size:
            raise TrainingError(f"cannot resume: the run trained with {checkpoint.get('world_size', 1)} processes, "
                                f"now {info.world_size}; each rank's share of an epoch would change")
        log.info("resumed %s at step %d (epoch %d, batch %d)", run.path, state.step, state.epoch + 1, state.batch_in_epoch)
    if cfg.resume:
        run.drop_metrics_after(state.step)   # records a killed run logged after its last checkpoint
    forward = distributed.wrap_for_training(model, info, device)
    if info.distributed:
        log.info("DDP over %(world_size)d processes: batch %(batch_per_rank)d per rank, effective batch "
                 "%(effective_batch)d, learning rate %(lr)g (not scaled with the batch)",
                 distributed.training_summary(info, cfg.batch_size, cfg.lr))
    log.info("training %s/%s on %s: %d classes, %d train rows, %d channels, %d steps/epoch, amp=%s",
             cfg.backbone, cfg.margin_type, device, data.num_classes, len(data.train), spec.in_chans,
             steps_per_epoch, amp_dtype, )

    def save(best: bool = False) -> None:
        if not info.is_main:
            return
        ckpt = checkpoint_state(model, optimizer, scheduler, scaler, state, cfg, spec, data.class_names)
        run.save_checkpoint({**ckpt, "world_size": info.world_size}, best=best)

    def save_every_n_steps() -> None:
        every = cfg.checkpoint_every
        if every and state.step % every == 0 and state.batch_in_epoch < steps_per_epoch:   # epoch ends save anyway
            save()

    margin_warmup_steps = round(cfg.margin_warmup_epochs * steps_per_epoch)
    guard = CollapseGuard.for_run(data.num_classes, margin_type=cfg.margin_type, s=model.head.s, m=model.head.m,
                                  margin_warmup_epochs=cfg.margin_warmup_epochs, warmup_epochs=cfg.warmup_epochs)
    collapse_warned = False
    epoch_metrics: dict = {}
    try:
        while state.epoch < cfg.epochs and not _budget_spent(cfg, state):
            data.sampler.set_epoch(state.epoch, skip=state.batch_in_epoch)
            train_metrics = train_one_epoch(
                model, optimizer, scheduler, scaler, data.train_loader, device, state=state, cfg=cfg, run=run,
                amp_dtype=amp_dtype, channels_last=channels_last, total_batches=len(data.sampler), forward=forward,
                after_step=save_every_n_steps, inputs=data.inputs, margin_warmup_steps=margin_warmup_steps)
            if state.batch_in_epoch < steps_per_epoch:      # stopped by max_steps inside the epoch
                save()
                break
            state.epoch += 1
            state.batch_in_epoch = 0
            run.log(state.step, "train_epoch", epoch=state.epoch, **train_metrics)
            epoch_metrics = {f"train_{k}": v for k, v in train_metrics.items()}
            best = False
            if data.val_loader is not None:
                val = evaluate(model, data.val_loader, device, amp_dtype=amp_dtype, channels_last=channels_last)
                run.log(state.step, "val", epoch=state.epoch, **val)
                epoch_metrics.update({f"val_{k}": v for k, v in val.items()})
                best = val["accuracy"] > state.best_val_accuracy
                state.best_val_accuracy = max(state.best_val_accuracy, val["accuracy"])
            log.info("epoch %d/%d: %s", state.epoch, cfg.epochs,
                     ", ".join(f"{k} {v:.4f}" for k, v in epoch_metrics.items() if isinstance(v, float)))
            save(best=best)
            evidence = None if collapse_warned else guard.check(state.epoch, train_metrics["loss"],
                                                                train_metrics["accuracy"])
            if evidence is not None:
                collapse_warned = True
                log.warning(guard.message(evidence))
                run.log(state.step, "collapse_warning", **evidence)
                if cfg.stop_on_collapse:
                    run.close()
                    raise TrainingError(guard.message(evidence) + "; stopped (--stop-on-collapse)")
    except KeyboardInterrupt:
        save()
        log.warning("interrupted at step %d; checkpoint saved, continue with --resume", state.step)
        run.close()
        raise
    distributed.trace_weights(model, info)     # DDP tests: every rank's final weights
    if info.is_main:
        _plot_curves(run)
    run.close()
    return TrainResult(run.path, state.step, state.epoch, epoch_metrics)


def _budget_spent(cfg: TrainConfig, state: LoopState) -> bool:
    return cfg.max_steps is not None and state.step >= cfg.max_steps


def _plot_curves(run: RunFolder) -> None:
    metrics = run.read_metrics()
    if metrics:
        plot_training_curves(metrics, run.plot_path("training_curves"))
