"""The recogniser's run config: ``TrainConfig``, validated on construction and saved as RUN/config.json.

The one source of defaults: the ``train`` command takes its option defaults from these fields. Torch-free
at import (the CLI reads the defaults for ``--help``); the backbone registry is loaded to validate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from facerec.errors import ConfigError, choice_error
from facerec.training.devices import AMP_CHOICES, SWITCH_CHOICES

INPUT_PATHS = ("device", "cpu")     # where augmentation and heatmap rendering happen (see TrainConfig.input_path)

# Fields that may differ when a run is resumed; every other one must match the saved config.
RESUME_MAY_DIFFER = ("store", "data_root", "out", "resume", "device", "num_workers", "max_steps", "log_every",
                     "checkpoint_every", "evaluate_after", "eval_pairs", "stop_on_collapse")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved resolved as RUN/config.json."""

    store: str
    out: str
    extractor: str | None = None        # None: the store's only feature set
    img_size: int = 112
    use_heatmaps: bool = True
    add_mask_channel: bool = False
    use_cosface: bool = True            # CosFace s=30 m=0.35: no collapse basin on small data (docs/training.md);
                                        # ArcFace s=64 m=0.5: --use-cosface false
    group_all_landmarks: bool = False
    backbone: str = "resnet50"
    stem: str = "face"
    embedding_size: int = 512
    dropout: float = 0.0
    margin: float | None = None         # None: 0.5 (ArcFace) / 0.35 (CosFace)
    scale: float | None = None          # None: 30 (CosFace) / 64 (ArcFace)
    margin_warmup_epochs: float = 0.0   # margin ramps 0 -> m over these epochs (0: full margin from step 0);
                                        # not the default: it did not prevent the collapse (docs/training.md)
    stop_on_collapse: bool = False      # stop (TrainingError) when the collapse guard fires, not only warn
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
    input_path: str = "device"          # device: ship RGB + landmarks, augment and render heatmaps on the
                                        # training device (facerec.store.device_augment; 18x the CPU path's
                                        # loader rate, make bench-reader); cpu: stored maps, augmented in workers
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
        from facerec.recognition.backbones import STEMS, list_backbones   # torch: only when a config is built

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
        if not self.lr > 0 or self.weight_decay < 0 or self.warmup_epochs < 0 or self.margin_warmup_epochs < 0:
            raise ConfigError(f"train config: need lr > 0, weight_decay >= 0, warmup_epochs >= 0, "
                              f"margin_warmup_epochs >= 0; found {self.lr}, {self.weight_decay}, "
                              f"{self.warmup_epochs}, {self.margin_warmup_epochs}")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ConfigError(f"train config: checkpoint_every must be >= 1 or None, found {self.checkpoint_every}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"train config: max_steps must be >= 1 or None, found {self.max_steps}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"train config: grad_clip must be > 0 or None, found {self.grad_clip}")
        if self.input_path not in INPUT_PATHS:
            raise choice_error("input path", self.input_path, INPUT_PATHS)
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

