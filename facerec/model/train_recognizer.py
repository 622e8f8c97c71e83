"""Train the recogniser (ResNet + ArcFace/CosFace head) on a feature store: ``main(TrainConfig)``.

Shaped like torchvision's references: ``train_one_epoch``, ``evaluate``, ``main``; nothing runs at
import. The data come from the store readers (``FaceStoreDataset`` over the ``train``/``val`` splits of
``facerec.store.splits``, batches from ``ChunkShuffleSampler``); labels are the dense training classes.
Inputs stay uint8 until the device, where ``normalize_batch`` converts them inside the step.

Optimisation: AdamW, linear warm-up then cosine decay stepped per optimiser step; on CUDA mixed
precision (bf16 where supported, else fp16 with a GradScaler) and channels_last; gradient-norm clipping.

The run folder (``facerec.model.runs.RunFolder``) gets the resolved config, metrics every
``log_every`` steps and per epoch, ``checkpoints/last.pt`` after every epoch, every ``checkpoint_every``
steps when set (a crash then loses at most that many steps), when ``max_steps`` stops the run, and on
Ctrl-C (mid-epoch: the sampler's order is replayed and the done batches skipped, so a resumed run
continues at the same step with the same data), ``best.pt`` at the best validation accuracy, training
curves, and after training the verification evaluation (``evaluate.evaluate_run``).
A NaN or infinite loss stops training with a ``TrainingError``; the last checkpoint is left untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from facerec.errors import ConfigError, TrainingError, choice_error
from facerec.model.backbone import STEMS, list_backbones
from facerec.model.recognizer import ModelSpec, Recognizer, build_recognizer
from facerec.model.runs import RunFolder
from facerec.model.schedule import warmup_cosine

if TYPE_CHECKING:
    from facerec.distributed import DistInfo

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
AMP_CHOICES = ("auto", "bf16", "fp16", "off")
SWITCH_CHOICES = ("auto", "on", "off")
# Fields that may differ when a run is resumed; every other one must match the saved config.
RESUME_MAY_DIFFER = ("store", "data_root", "out", "resume", "device", "num_workers", "max_steps", "log_every",
                     "checkpoint_every", "evaluate_after", "eval_pairs")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved resolved as RUN/config.json."""

    store: str
    out: str
    extractor: str | None = None        # None: the store's only feature set
    img_size: int = 112
    use_heatmaps: bool = True
    add_mask_channel: bool = False
    use_cosface: bool = False
    group_all_landmarks: bool = False
    backbone: str = "resnet50"
    stem: str = "face"
    embedding_size: int = 512
    dropout: float = 0.0
    margin: float | None = None         # None: 0.5 (ArcFace) / 0.35 (CosFace)
    scale: float | None = None          # None: 64
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 5.0       # max global gradient norm; None: no clipping
    amp: str = "auto"                   # auto: bf16 (or fp16 + GradScaler) on CUDA, off elsewhere
    channels_last: str = "auto"         # auto: on for CUDA
    augment: bool = True                # joint flip + small zoom/shift (facerec.store.transforms)
    include_invalid: bool = False       # also train on rows where no face was found (centre crops)
    holdout_identity_frac: float = 0.1
    holdout_image_frac: float = 0.1
    min_images_for_holdout: int = 2
    split_seed: int = 0                 # the split stays put when only the training seed changes
    seed: int = 0
    device: str = "auto"
    num_workers: int = 4
    max_steps: int | None = None        # stop early after this many optimiser steps (tests, benchmarks)
    log_every: int = 20
    checkpoint_every: int | None = None  # also write last.pt every N steps inside an epoch (preemptible machines)
    evaluate_after: bool = True         # verification on the test identities once training ends
    eval_pairs: int = 3000
    resume: bool = False
    data_root: str | None = None        # an ImageFolder to build (or reuse) the store from first

    def __post_init__(self) -> None:
        for name in ("img_size", "epochs", "batch_size", "embedding_size", "log_every", "eval_pairs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train config: {name} must be >= 1, found {getattr(self, name)}")
        if self.backbone not in list_backbones():
            raise choice_error("backbone", self.backbone, list_backbones())
        if self.stem not in STEMS:
            raise choice_error("stem", self.stem, STEMS)
        if self.amp not in AMP_CHOICES:
            raise choice_error("amp mode", self.amp, AMP_CHOICES)
        if self.channels_last not in SWITCH_CHOICES:
            raise choice_error("channels_last", self.channels_last, SWITCH_CHOICES)
        if not self.lr > 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ConfigError(f"train config: need lr > 0, weight_decay >= 0, warmup_epochs >= 0; found "
                              f"{self.lr}, {self.weight_decay}, {self.warmup_epochs}")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ConfigError(f"train config: checkpoint_every must be >= 1 or None, found {self.checkpoint_every}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"train config: max_steps must be >= 1 or None, found {self.max_steps}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"train config: grad_clip must be > 0 or None, found {self.grad_clip}")
        if self.num_workers < 0:
            raise ConfigError(f"train config: num_workers must be >= 0, found {self.num_workers}")

    @property
    def margin_type(self) -> str:
        return "cosface" if self.use_cosface else "arcface"

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """A config as saved in RUN/config.json; fields this facerec does not know are refused by name."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"run config has unknown fields {unknown}; was it written by another facerec version?")
        return cls(**data)


# ------------------------------------------------------------------------------------------- devices
def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``; None = full float32."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError(f"amp fp16 needs a CUDA device, found {device}; use bf16 or off")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def use_channels_last(mode: str, device: torch.device) -> bool:
    return mode == "on" or (mode == "auto" and device.type == "cuda")


# ------------------------------------------------------------------------------------------- data
@dataclass
class TrainData:
    train: Any                      # FaceStoreDataset over the train split
    val: Any | None                 # FaceStoreDataset over the val split, None when it is empty
    train_loader: Any
    val_loader: Any | None
    sampler: "ResumableBatches"
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class ResumableBatches:
    """A batch sampler around ``ChunkShuffleSampler`` that can skip the first batches of one epoch,
    so a run interrupted mid-epoch resumes on exactly the batches it had not seen."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler
        self._skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.sampler.set_epoch(epoch)
        self._skip = skip

    def __len__(self) -> int:
        return len(self.sampler) - self._skip

    def __iter__(self) -> Iterator[list[int]]:
        skip, self._skip = self._skip, 0
        for i, batch in enumerate(self.sampler):
            if i >= skip:
                yield batch


def split_config(cfg: TrainConfig):
    from facerec.store.splits import SplitConfig

    return SplitConfig(cfg.holdout_identity_frac, cfg.holdout_image_frac, cfg.min_images_for_holdout, cfg.split_seed)


def open_split(cfg: TrainConfig, feature_set: Any, split: str, *, augment: bool = False):
    """A ``FaceStoreDataset`` over one split with the run's input channels."""
    from facerec.store.dataset import FaceStoreDataset
    from facerec.store.transforms import default_train_transform

    return FaceStoreDataset(
        feature_set, split=split, split_config=split_config(cfg), use_heatmaps=cfg.use_heatmaps,
        add_mask_channel=cfg.add_mask_channel, group_all_landmarks=cfg.group_all_landmarks,
        transform=default_train_transform() if augment else None, include_invalid=cfg.include_invalid,
    )


def build_data(cfg: TrainConfig, feature_set: Any, info: "DistInfo | None" = None) -> TrainData:
    """Train and val readers; under DDP (``info``) each rank's sampler takes its own disjoint part."""
    from facerec.distributed import DistInfo
    from facerec.store.sampler import ChunkShuffleSampler, make_loader

    info = info or DistInfo()
    train = open_split(cfg, feature_set, "train", augment=cfg.augment)
    if len(train) < cfg.batch_size * info.world_size:
        raise ConfigError(f"the train split has {len(train)} rows, fewer than one batch of {cfg.batch_size} for each "
                          f"of {info.world_size} processes; lower --batch-size or use a larger store")
    try:
        val = open_split(cfg, feature_set, "val") if cfg.holdout_image_frac > 0 else None
    except ConfigError as exc:   # no held-out images (tiny store): train without closed-set validation
        log.warning("no validation rows: %s", exc)
        val = None
    sampler = ResumableBatches(ChunkShuffleSampler.for_dataset(train, batch_size=cfg.batch_size, seed=cfg.seed,
                                                               drop_last=True, rank=info.rank,
                                                               world_size=info.world_size))
    train_loader = make_loader(train, sampler, cfg.num_workers)
    val_loader = None
    if val is not None:
        val_sampler = ChunkShuffleSampler.for_dataset(val, batch_size=cfg.batch_size, shuffle=False)
        val_loader = make_loader(val, val_sampler, min(cfg.num_workers, 2))
    return TrainData(train, val, train_loader, val_loader, sampler, list(train.class_map.names))


# ------------------------------------------------------------------------------------------- progress
class Meter:
    """Running sums over a window of steps and over the epoch: loss, accuracy, samples/s."""

    def __init__(self) -> None:
        self.epoch = {"loss": 0.0, "correct": 0.0, "n": 0}
        self.window = {"loss": 0.0, "correct": 0.0, "n": 0}
        self.t_epoch = self.t_window = time.perf_counter()

    def update(self, loss: float, correct: float, n: int) -> None:
        for acc in (self.epoch, self.window):
            acc["loss"] += loss * n
            acc["correct"] += correct
            acc["n"] += n

    @staticmethod
    def _summary(acc: dict, seconds: float) -> dict[str, float]:
        n = max(acc["n"], 1)
        return {"loss": acc["loss"] / n, "accuracy": acc["correct"] / n, "samples_per_s": acc["n"] / max(seconds, 1e-9)}

    def pop_window(self) -> dict[str, float]:
        now = time.perf_counter()
        out = self._summary(self.window, now - self.t_window)
        self.window = {"loss": 0.0, "correct": 0.0, "n": 0}
        self.t_window = now
        return out

    def epoch_summary(self) -> dict[str, float]:
        return self._summary(self.epoch, time.perf_counter() - self.t_epoch)


def log_every(iterable: Iterable, meter: Meter, *, every: int, total: int, desc: str,
              on_log=None) -> Iterator:
    """Yield from ``iterable`` behind a tqdm bar; every ``every`` items show and hand on the window's
    loss, accuracy and samples/s (``on_log(i, summary)``), keeping the training loop free of it."""
    from tqdm.auto import tqdm

    bar = tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, disable=None)

    def flush(i: int) -> None:
        summary = meter.pop_window()
        bar.set_postfix(loss=f"{summary['loss']:.3f}", acc=f"{summary['accuracy']:.3f}",
                        sps=f"{summary['samples_per_s']:.0f}")
        if on_log is not None:
            on_log(i, summary)

    i = 0
    try:
        for i, item in enumerate(bar, start=1):
            yield item
            if i % every == 0 or i == total:
                flush(i)
    finally:   # closed early (max_steps): the steps since the last flush are still logged
        if meter.window["n"]:
            flush(i)
        bar.close()


# ------------------------------------------------------------------------------------------- loop
@dataclass
class LoopState:
    """What a resumed run needs besides the modules: where it stands."""

    epoch: int = 0              # epoch in progress (or next to start)
    batch_in_epoch: int = 0     # batches of that epoch already done
    step: int = 0               # optimiser steps done
    best_val_accuracy: float = -1.0


def device_inputs(batch: dict, device: torch.device, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A reader batch -> (normalised float images [B, C, S, S] on ``device``, labels [B]); uint8 on the wire."""
    from facerec.store.dataset import normalize_batch

    images = normalize_batch(batch["image"], device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, batch["label"].to(device, non_blocking=True)


def train_step(model: Recognizer, optimizer, scheduler, scaler, images: torch.Tensor, labels: torch.Tensor, *,
               amp_dtype: torch.dtype | None, grad_clip: float | None,
               forward: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a normalised batch; returns (loss, number correct), both still on the device.

    ``forward(images, labels)`` is ``model.classify`` unless given (under torchrun: the DDP module from
    ``facerec.distributed.wrap_for_training``, which averages gradients across ranks).
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
                    after_step: Callable[[], None] | None = None) -> dict[str, float]:
    """One pass over ``loader``; advances ``state`` after every step, then calls ``after_step`` (mid-epoch
    checkpoints). Stops early at ``cfg.max_steps``."""
    from facerec import distributed, faults

    model.train()
    meter = Meter()

    def on_log(i: int, summary: dict) -> None:
        if run is not None:
            run.log(state.step, "train", lr=optimizer.param_groups[0]["lr"], **summary)

    batches = log_every(loader, meter, every=cfg.log_every, total=total_batches,
                        desc=f"epoch {state.epoch + 1}/{cfg.epochs}", on_log=on_log)
    with contextlib.closing(batches):
        for batch in batches:
            faults.at_train_step(state.step)          # recovery tests: die here as a crash would
            distributed.trace_rows(batch["row"])      # DDP tests: which store rows this rank trained on
            images, labels = device_inputs(batch, device, channels_last)
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
def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
        "rng": _rng_state(),
        "config": dataclasses.asdict(cfg),
        "model_spec": spec.to_dict(),
        "class_names": list(class_names),
    }


def _check_resume(cfg: TrainConfig, saved: dict) -> None:
    current = dataclasses.asdict(cfg)
    differ = {k: (saved.get(k), v) for k, v in current.items() if k not in RESUME_MAY_DIFFER and saved.get(k) != v}
    if differ:
        detail = ", ".join(f"{k}: run has {a!r}, now {b!r}" for k, (a, b) in sorted(differ.items()))
        raise TrainingError(f"cannot resume with a different config ({detail}); only {', '.join(RESUME_MAY_DIFFER)} may change")


# ------------------------------------------------------------------------------------------- main
@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    steps: int
    epochs_done: int
    last_epoch_metrics: dict
    evaluation: dict | None


def _prepare_store(cfg: TrainConfig) -> TrainConfig:
    """With ``data_root``, build (or reuse) the store from that ImageFolder first."""
    if cfg.data_root is None:
        return cfg
    from facerec.pipeline.build import build_store

    log.info("building or reusing store %s from %s", cfg.store, cfg.data_root)
    build_store(cfg.data_root, cfg.store, extractor=cfg.extractor or "mediapipe", img_size=cfg.img_size)
    return cfg


def main(cfg: TrainConfig) -> TrainResult:
    """Train (or resume) a run; returns where it is and what it reached.

    Under torchrun (``RANK``/``WORLD_SIZE`` set) every rank runs this: DDP, a disjoint part of each epoch
    per rank, rank 0 alone writes config, metrics, checkpoints, plots and the evaluation.
    """
    from facerec import distributed

    info, device = distributed.setup(cfg.device)
    try:
        return _train(cfg, info, device)
    finally:
        distributed.teardown()


def _train(cfg: TrainConfig, info: "DistInfo", device: torch.device) -> TrainResult:
    from facerec import distributed
    from facerec.store.open_store import open_feature_set

    if info.is_main:
        cfg = _prepare_store(cfg)      # one rank builds (or reuses) the store, the others wait for it
    distributed.barrier()
    amp_dtype = resolve_amp(cfg.amp, device)
    channels_last = use_channels_last(cfg.channels_last, device)
    feature_set = open_feature_set(cfg.store, cfg.extractor, cfg.img_size)
    # Resolved: the run names the feature set it read, whatever path or defaults it was given.
    cfg = dataclasses.replace(cfg, extractor=feature_set.layout.extractor, img_size=feature_set.layout.img_size)
    run = RunFolder(Path(cfg.out), resume=cfg.resume, replica=not info.is_main)
    checkpoint = None
    if cfg.resume:
        _check_resume(cfg, run.load_config())
        checkpoint = run.load_checkpoint("last.pt") if run.has_checkpoint("last.pt") else None
    run.save_config(cfg)
    torch.manual_seed(cfg.seed)
    data = build_data(cfg, feature_set, info)
    spec = ModelSpec(backbone=cfg.backbone, in_chans=data.train.num_channels, num_classes=data.num_classes,
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
        _set_rng_state(checkpoint["rng"])
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

    epoch_metrics: dict = {}
    try:
        while state.epoch < cfg.epochs and not _budget_spent(cfg, state):
            data.sampler.set_epoch(state.epoch, skip=state.batch_in_epoch)
            train_metrics = train_one_epoch(
                model, optimizer, scheduler, scaler, data.train_loader, device, state=state, cfg=cfg, run=run,
                amp_dtype=amp_dtype, channels_last=channels_last, total_batches=len(data.sampler), forward=forward,
                after_step=save_every_n_steps)
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
    except KeyboardInterrupt:
        save()
        log.warning("interrupted at step %d; checkpoint saved, continue with --resume", state.step)
        run.close()
        raise
    distributed.trace_weights(model, info)     # DDP tests: every rank's final weights
    if info.is_main:
        _plot_curves(run)
    evaluation = None
    if cfg.evaluate_after and state.epoch >= cfg.epochs and info.is_main:
        from facerec.model.evaluate import evaluate_run

        evaluation = evaluate_run(run.path, feature_set, device=cfg.device, num_pairs=cfg.eval_pairs)
    run.close()
    return TrainResult(run.path, state.step, state.epoch, epoch_metrics, evaluation)


def _budget_spent(cfg: TrainConfig, state: LoopState) -> bool:
    return cfg.max_steps is not None and state.step >= cfg.max_steps


def _plot_curves(run: RunFolder) -> None:
    from facerec.model.plots import plot_training_curves

    metrics = run.read_metrics()
    if metrics:
        plot_training_curves(metrics, run.plot_path("training_curves"))
