"""The torch reader of a feature store: stacked uint8 inputs ``[RGB | heatmaps | mask]`` with labels.

Everything stays uint8 until the device (4x fewer bytes through worker pipes and pinned memory);
``normalize_batch`` moves a batch first and converts it there. Speed comes from the batched path:
``__getitems__`` (what ``DataLoader`` calls with a batch sampler) reads each chunk a batch touches once
(``facerec.store.chunk_reader``) and copies its rows straight into the batch tensor. Pair it with
``ChunkShuffleSampler`` so a batch touches few chunks. In a DataLoader worker the batch tensor is
allocated in shared memory, so handing it to the main process copies nothing.

A batch is a dict of tensors (``image`` uint8 [B, C, S, S], ``label``/``identity``/``row`` int64 [B],
``yaw``/``pitch``/``roll`` float32 [B] in degrees (NaN when unknown), ``valid`` bool [B], and with
``return_landmarks`` ``landmarks`` float32 [B, P, 2] aligned-crop pixels); ``__getitem__`` returns the
same keys for one sample without the batch dimension. Channels are C = 3 RGB + heatmaps (6 groups, or
P per-landmark maps rendered at read time from the stored landmarks) + 1 mask (0 or 255).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from facerec.errors import ConfigError
from facerec.geometry.heatmaps import group_heatmaps, quantize, render_heatmaps
from facerec.geometry.landmark_sets import landmark_set
from facerec.schemas.zarr_layout import HEATMAPS, IMAGE, LANDMARKS, MASK
from facerec.store.open_store import FeatureSet, open_feature_set
from facerec.store.splits import SPLITS, ClassMap, SplitConfig, assign_splits, training_class_map
from facerec.store.transforms import ChannelLayout, JointTransform

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

RENDER_BATCH = 16   # samples rendered at a time: bounds the float32 scratch of per-landmark maps
RGB_MEAN = 0.5
RGB_STD = 0.5


class FaceStoreDataset:
    """A map-style dataset over rows of a feature set (see the module docstring for what it returns).

    Rows: ``rows`` (store rows) or ``split`` ("train" | "val" | "test" from ``assign_splits`` with
    ``split_config``) or, with neither, every row of the index. With a split, ``label`` is the dense
    training class (``class_map``; -1 for identities outside training: the test split, and identities
    without a single valid training image) and
    ``num_classes`` counts training identities; otherwise ``label`` is the store label. ``identity``
    is always the store label. ``sigma`` other than the stored one, or ``render_heatmaps``, renders the
    6 group maps at read time from the stored landmarks instead of reading them.
    """

    def __init__(
        self,
        feature_set_or_path: "FeatureSet | str",
        *,
        rows: Sequence[int] | np.ndarray | None = None,
        split: str | None = None,
        split_config: SplitConfig | None = None,
        use_heatmaps: bool = True,
        add_mask_channel: bool = False,
        group_all_landmarks: bool = False,
        render_heatmaps: bool = False,
        sigma: float | None = None,
        transform: JointTransform | None = None,
        include_invalid: bool = True,
        return_landmarks: bool = False,
    ) -> None:
        fs = open_feature_set(feature_set_or_path)
        self.feature_set = fs
        self.layout = fs.layout
        self.sigma = float(fs.layout.sigma if sigma is None else sigma)
        if not self.sigma > 0:
            raise ConfigError(f"heatmap sigma must be > 0 px, got {self.sigma}")
        self.use_heatmaps = use_heatmaps
        self.group_all_landmarks = group_all_landmarks and use_heatmaps
        self.render_groups = use_heatmaps and not group_all_landmarks and (render_heatmaps or self.sigma != fs.layout.sigma)
        self.add_mask_channel = add_mask_channel
        self.transform = transform
        self.return_landmarks = return_landmarks
        self.landmark_set = landmark_set(fs.layout.extractor)
        if self.landmark_set.num_points != fs.layout.num_points:
            raise ConfigError(
                f"{fs.location}: extractor {fs.layout.extractor!r} has {self.landmark_set.num_points} points "
                f"but the store holds {fs.layout.num_points}"
            )
        self.channel_layout = ChannelLayout.for_inputs(
            fs.layout.num_points, self.landmark_set.name, use_heatmaps=use_heatmaps,
            group_all_landmarks=group_all_landmarks, has_mask=add_mask_channel,
        )
        self.split = split
        self.class_map: ClassMap | None = None
        self.rows, self._label_of_row = self._select_rows(rows, split, split_config or SplitConfig())
        if not include_invalid:
            self.rows = self.rows[fs.valid[self.rows]]
        if len(self.rows) == 0:
            raise ConfigError(f"{fs.location}: no rows selected (split={split}, include_invalid={include_invalid})")

    def _select_rows(self, rows, split, config: SplitConfig) -> tuple[np.ndarray, np.ndarray]:
        fs = self.feature_set
        if rows is not None and split is not None:
            raise ConfigError("pass either rows or split to FaceStoreDataset, not both")
        if split is None:
            selected = np.flatnonzero(fs.in_index) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
            if len(selected) and (selected.min() < 0 or selected.max() >= fs.num_rows or not fs.in_index[selected].all()):
                raise ConfigError(f"{fs.location}: rows must be rows of the feature index (0..{fs.num_rows - 1})")
            return selected, fs.labels
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; expected one of: {', '.join(SPLITS)}")
        index = fs.index
        column = assign_splits(
            index, holdout_identity_frac=config.holdout_identity_frac, holdout_image_frac=config.holdout_image_frac,
            min_images_for_holdout=config.min_images_for_holdout, seed=config.seed,
        )
        self.class_map = training_class_map(index, column)
        index_rows = index["row"].to_numpy(np.int64)
        label_of_row = np.full(fs.num_rows, -1, dtype=np.int64)
        label_of_row[index_rows] = self.class_map.str2int(index["identity"].to_numpy())
        return index_rows[column.to_numpy() == split], label_of_row

    # --- sizes -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rows)

    @property
    def num_channels(self) -> int:
        return self.channel_layout.num_channels

    @property
    def num_classes(self) -> int:
        return self.class_map.num_classes if self.class_map is not None else self.feature_set.num_classes

    @property
    def chunk_rows(self) -> int:
        """Rows per image chunk: the unit ``ChunkShuffleSampler`` keeps together."""
        return self.layout.chunk_rows

    # --- reading ---------------------------------------------------------------------------------
    def __getitem__(self, i: int) -> dict[str, "torch.Tensor"]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for a dataset of {len(self)} rows")
        batch = self.read_rows(self.rows[[i]])
        return {key: value[0] for key, value in batch.items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, "torch.Tensor"]:
        """A whole batch for dataset positions ``indices`` (what DataLoader calls with a batch sampler).

        Returns one batched dict, so the DataLoader needs ``collate_fn=collate_batch`` (``make_loader``
        sets it). An ``aug_seed`` attribute on ``indices`` (``ChunkShuffleSampler`` batches carry one)
        seeds the augmentation, so a batch is augmented the same whichever worker reads it.
        """
        positions = np.asarray(indices, dtype=np.int64)
        return self.read_rows(self.rows[positions], aug_seed=getattr(indices, "aug_seed", None))

    def read_rows(self, rows: Sequence[int] | np.ndarray, aug_seed: int | None = None) -> dict[str, "torch.Tensor"]:
        """A batch for store ``rows`` (any order, repeats allowed), in that order."""
        import torch

        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        fs = self.feature_set
        s = self.layout.img_size
        cl = self.channel_layout
        image = batch_buffer((len(rows), cl.num_channels, s, s))
        pixels = image.numpy()
        fs.reader(IMAGE).read_rows(rows, out=pixels[:, :3])
        need_points = self.group_all_landmarks or self.render_groups or self.return_landmarks
        points = fs.reader(LANDMARKS).read_rows(rows) if need_points else None
        if cl.num_heatmaps:
            self._fill_heatmaps(pixels[:, cl.heatmap_slice], rows, points)
        if cl.has_mask:
            mask = fs.reader(MASK).read_rows(rows)
            np.multiply(mask[:, 0] != 0, 255, out=pixels[:, -1], casting="unsafe")
        out = {
            "image": image,
            "label": torch.from_numpy(self._label_of_row[rows]),
            "identity": torch.from_numpy(fs.labels[rows]),
            "yaw": torch.from_numpy(fs.pose[rows, 0].copy()),
            "pitch": torch.from_numpy(fs.pose[rows, 1].copy()),
            "roll": torch.from_numpy(fs.pose[rows, 2].copy()),
            "valid": torch.from_numpy(fs.valid[rows]),
            "row": torch.from_numpy(rows.copy()),
        }
        lm = None if points is None else torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
        if self.transform is not None:
            gen = None if aug_seed is None else torch.Generator().manual_seed(int(aug_seed))
            out["image"], lm = self.transform(out["image"], cl, landmarks=lm, generator=gen)
        if self.return_landmarks:
            out["landmarks"] = lm
        return out

    def _fill_heatmaps(self, dest: np.ndarray, rows: np.ndarray, points: np.ndarray | None) -> None:
        """Heatmap channels of ``rows`` into ``dest`` uint8 [B, H, S, S] (peak 255)."""
        fs = self.feature_set
        if not (self.group_all_landmarks or self.render_groups):
            reader = fs.reader(HEATMAPS)
            if reader.array.dtype == np.uint8:
                reader.read_rows(rows, out=dest)
            else:
                dest[:] = quantize(reader.read_rows(rows), "uint8")
            return
        valid = fs.valid[rows]
        dest[~valid] = 0
        s = self.layout.img_size
        for start in range(0, len(rows), RENDER_BATCH):
            sel = np.flatnonzero(valid[start : start + RENDER_BATCH]) + start
            if len(sel) == 0:
                continue
            if self.group_all_landmarks:
                maps = render_heatmaps(points[sel], s, self.sigma)
            else:
                maps = group_heatmaps(points[sel], self.landmark_set, s, self.sigma)
            dest[sel] = quantize(maps, "uint8")


def batch_buffer(shape: tuple[int, ...]) -> "torch.Tensor":
    """An uninitialised uint8 tensor; in a DataLoader worker it lives in shared memory from the start,
    so sending the batch to the main process passes a handle instead of copying it (as
    ``default_collate`` does for the tensors it stacks). Fresh shared pages still cost their page
    faults: about 54 ms of CPU per 32 MB batch measured here, the price of any worker-based loader."""
    import torch
    from torch.utils.data import get_worker_info

    if get_worker_info() is None:
        return torch.empty(shape, dtype=torch.uint8)
    numel = int(np.prod(shape))
    storage = torch.UntypedStorage._new_shared(numel)
    return torch.empty(0, dtype=torch.uint8).set_(storage, 0, shape)


def collate_batch(data: "dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]") -> dict[str, "torch.Tensor"]:
    """DataLoader collate: a batch from ``__getitems__`` passes through; a list of samples is stacked."""
    if isinstance(data, dict):
        return data
    from torch.utils.data import default_collate

    return default_collate(data)


def normalize_batch(images: "torch.Tensor", device: "torch.device | str", *, dtype: "torch.dtype | None" = None, non_blocking: bool = True) -> "torch.Tensor":
    """uint8 [B, C, S, S] -> float on ``device``: moved first (uint8 on the wire), converted there.

    RGB channels 0..2 become (x / 255 - 0.5) / 0.5 in [-1, 1]; heatmap and mask channels x / 255 in [0, 1].
    """
    import torch

    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] < 3:
        raise ConfigError(f"normalize_batch expects uint8 [B, C>=3, S, S], got {images.dtype} {tuple(images.shape)}")
    x = images.to(device, non_blocking=non_blocking).to(dtype or torch.float32).div_(255.0)
    x[:, :3].sub_(RGB_MEAN).div_(RGB_STD)
    return x
