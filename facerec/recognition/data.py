"""The recogniser's readers: ``open_split`` (one split of a feature set with the run's input channels),
``build_data`` (train and val loaders, a disjoint part per DDP rank) and ``ResumableBatches``.

Store imports stay inside the functions that use them: ``facerec.store.dataset`` pulls in torch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from facerec.errors import ConfigError
from facerec.recognition.config import TrainConfig
from facerec.store.dataset import FaceStoreDataset
from facerec.store.device_augment import DeviceAugment, DeviceInputs
from facerec.store.sampler import ChunkShuffleSampler, make_loader
from facerec.store.splits import SplitConfig, assign_splits
from facerec.store.transforms import default_train_transform
from facerec.training.distributed import DistInfo

log = logging.getLogger(__name__)


@dataclass
class TrainData:
    train: Any                      # FaceStoreDataset over the train split
    val: Any | None                 # FaceStoreDataset over the val split, None when it is empty
    train_loader: Any
    val_loader: Any | None
    sampler: "ResumableBatches"
    class_names: list[str]
    inputs: Any = None              # DeviceInputs on the training device (input_path "device"), else None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_channels(self) -> int:
        """Channels of the model input: the device path adds its heatmaps to what the loader ships."""
        return self.inputs.layout.num_channels if self.inputs is not None else self.train.num_channels


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


def split_config(cfg: TrainConfig) -> SplitConfig:
    return SplitConfig(cfg.holdout_identity_frac, cfg.holdout_image_frac, cfg.min_images_for_holdout, cfg.split_seed)


def split_rows(cfg: TrainConfig, feature_set: Any, split: str) -> np.ndarray:
    """The store rows of one split, as ``open_split``'s dataset would hold them, without building one."""
    index = feature_set.index
    column = assign_splits(index, holdout_identity_frac=cfg.holdout_identity_frac,
                           holdout_image_frac=cfg.holdout_image_frac,
                           min_images_for_holdout=cfg.min_images_for_holdout, seed=cfg.split_seed)
    rows = index["row"].to_numpy(np.int64)[column.to_numpy() == split]
    if not cfg.include_invalid:
        rows = rows[feature_set.valid[rows]]
    if len(rows) == 0:
        raise ConfigError(f"{feature_set.location}: no rows selected (split={split}, "
                          f"include_invalid={cfg.include_invalid})")
    return rows


def open_split(cfg: TrainConfig, feature_set: Any, split: str, *, augment: bool = False):
    """A ``FaceStoreDataset`` over one split with the run's input channels."""

    return FaceStoreDataset(
        feature_set, split=split, split_config=split_config(cfg), use_heatmaps=cfg.use_heatmaps,
        add_mask_channel=cfg.add_mask_channel, group_all_landmarks=cfg.group_all_landmarks,
        transform=default_train_transform() if augment else None, include_invalid=cfg.include_invalid,
    )


def open_device_split(cfg: TrainConfig, feature_set: Any, device: Any = "cpu"):
    """The train split for the device path: a dataset that ships RGB (+ mask) and the landmarks, and the
    ``DeviceInputs`` that augments them and renders the run's heatmaps on ``device``."""
    train = FaceStoreDataset(
        feature_set, split="train", split_config=split_config(cfg), use_heatmaps=False,
        add_mask_channel=cfg.add_mask_channel, return_landmarks=cfg.use_heatmaps, include_invalid=cfg.include_invalid,
    )
    inputs = DeviceInputs.for_dataset(train, use_heatmaps=cfg.use_heatmaps, group_all_landmarks=cfg.group_all_landmarks,
                                      augment=DeviceAugment() if cfg.augment else None, device=device)
    return train, inputs


def build_data(cfg: TrainConfig, feature_set: Any, info: DistInfo | None = None, device: Any = "cpu") -> TrainData:
    """Train and val readers; under DDP (``info``) each rank's sampler takes its own disjoint part. With
    ``cfg.input_path == "device"`` the train loader ships RGB + landmarks and ``TrainData.inputs`` finishes
    the batch on ``device``; validation always reads the stored maps (no augmentation to do)."""

    info = info or DistInfo()
    inputs = None
    if cfg.input_path == "device":
        train, inputs = open_device_split(cfg, feature_set, device)
    else:
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
    return TrainData(train, val, train_loader, val_loader, sampler, list(train.class_map.names), inputs)

