"""Augment and render on the training device: the loader ships only what the store holds per face.

A batch from ``FaceStoreDataset(use_heatmaps=False, return_landmarks=True[, add_mask_channel=True])``
carries the uint8 RGB crop (+ the mask as a 4th channel) and the aligned landmarks: 3-4 channels and a
few KB of points instead of 9-10 channels (or 3 + 478) per face, and no augmentation work in the
workers. ``DeviceInputs`` then does, on the device, batched:

1. moves the batch (uint8 on the wire) and draws, per sample, a flip (p = ``flip_p``) and a zoom/shift
   (scale uniform in ``scale``, shift uniform in ``[-max_shift, max_shift]`` px per axis): the same
   distribution as the CPU path ``default_train_transform()`` (flip, then zoom/shift);
2. warps RGB and mask with ONE affine per sample (``affine_grid`` + bilinear ``grid_sample``, zeros
   outside, the flip folded into the affine), and moves the points the same way (x -> S - 1 - x with the
   landmark flip permutation, then ``s (p - c) + c + t``);
3. renders the 6 group heatmaps (from the group points, flipped with ``HEATMAP_GROUP_FLIP``) or all P
   per-landmark maps (flipped with ``flip_permutation``) from the moved points, straight into the
   heatmap channels of the input batch (``facerec.geometry.render_torch``). The maps therefore sit on
   their landmarks by construction, rather than being resampled images of maps.

The output is the float input of ``normalize_batch``'s convention: RGB in [-1, 1], heatmaps and mask in
[0, 1], channels ``[RGB | heatmaps | mask]`` as ``ChannelLayout`` says. Without augmentation the
heatmap channels equal the stored maps within uint8 rounding (tested, flips included). Rows without a
face (``valid`` false) get empty maps, as in the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from facerec.errors import ConfigError
from facerec.geometry.landmark_sets import HEATMAP_GROUP_FLIP, flip_permutation, landmark_set
from facerec.geometry.render_torch import group_points_torch, render_heatmaps_torch
from facerec.store.dataset import RGB_MEAN, RGB_STD
from facerec.store.transforms import GROUPS, LANDMARKS, ChannelLayout

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class DeviceAugment:
    """The joint augmentation's parameters (defaults: those of ``default_train_transform``)."""

    flip_p: float = 0.5
    scale: tuple[float, float] = (0.9, 1.1)
    max_shift: float = 4.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip_p <= 1.0:
            raise ConfigError(f"flip probability must be in [0, 1], got {self.flip_p}")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError(f"scale range must be 0 < low <= high, got {self.scale}")
        if self.max_shift < 0:
            raise ConfigError(f"max_shift must be >= 0 px, got {self.max_shift}")


class DeviceInputs:
    """Loader batch (uint8 RGB [+ mask], landmarks, valid) -> float model input on ``device``.

    ``layout``: the channels to produce (``FaceStoreDataset(...).channel_layout`` of the equivalent CPU
    path); ``augment``: a ``DeviceAugment`` or None (evaluation: no flip, no warp).
    """

    def __init__(self, layout: ChannelLayout, img_size: int, sigma: float, *, augment: DeviceAugment | None = None,
                 device: "torch.device | str" = "cpu", dtype: "torch.dtype | None" = None) -> None:
        import torch

        self.layout = layout
        self.size = img_size
        self.sigma = float(sigma)
        self.augment = augment
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        self.lset = landmark_set(layout.landmark_set)
        if layout.num_heatmaps and layout.heatmap_kind == GROUPS:
            perm = np.asarray(HEATMAP_GROUP_FLIP)
        elif layout.num_heatmaps and layout.heatmap_kind == LANDMARKS:
            perm = flip_permutation(layout.landmark_set)
        elif layout.num_heatmaps:
            raise ConfigError(f"unknown heatmap kind {layout.heatmap_kind!r}; expected {GROUPS} or {LANDMARKS}")
        else:
            perm = np.arange(0)
        self.point_flip = torch.as_tensor(np.array(perm), dtype=torch.int64, device=self.device)

    @classmethod
    def for_dataset(cls, dataset, *, use_heatmaps: bool = True, group_all_landmarks: bool = False,
                    **kwargs) -> "DeviceInputs":
        """Inputs for a dataset that ships RGB (+ mask) and landmarks: its channels plus the heatmaps asked for
        (6 groups, or one per landmark), at the dataset's sigma."""
        layout = ChannelLayout.for_inputs(
            dataset.layout.num_points, dataset.landmark_set.name, use_heatmaps=use_heatmaps,
            group_all_landmarks=group_all_landmarks, has_mask=dataset.channel_layout.has_mask)
        return cls(layout, dataset.layout.img_size, dataset.sigma, **kwargs)

    def _draw(self, b: int, generator: "torch.Generator | None"):
        """Per-sample flip [B] bool, scale [B] and shift [B, 2] px (identity without augmentation)."""
        import torch

        dev = self.device
        if self.augment is None:
            return torch.zeros(b, dtype=torch.bool, device=dev), torch.ones(b, device=dev), torch.zeros(b, 2, device=dev)
        a = self.augment
        gen_dev = generator.device if generator is not None else dev
        u = torch.rand(b, 4, generator=generator, device=gen_dev).to(dev)
        flip = u[:, 0] < a.flip_p
        scale = a.scale[0] + (a.scale[1] - a.scale[0]) * u[:, 1]
        shift = (u[:, 2:] * 2 - 1) * a.max_shift
        return flip, scale, shift

    def __call__(self, batch: dict, generator: "torch.Generator | None" = None) -> "torch.Tensor":
        """The model input [B, C, S, S] (``self.dtype``) for a loader batch."""
        import torch
        import torch.nn.functional as F

        layout, s = self.layout, self.size
        pixels = batch["image"].to(self.device, non_blocking=True)
        expect = 3 + int(layout.has_mask)
        if pixels.dtype != torch.uint8 or pixels.dim() != 4 or pixels.shape[1] != expect or pixels.shape[-1] != s:
            raise ConfigError(f"device inputs expect uint8 [B, {expect}, {s}, {s}] (RGB{' + mask' if layout.has_mask else ''}), "
                              f"got {pixels.dtype} {tuple(pixels.shape)}; open the dataset with use_heatmaps=False")
        b = pixels.shape[0]
        flip, scale, shift = self._draw(b, generator)
        x = torch.empty((b, layout.num_channels, s, s), dtype=self.dtype, device=self.device)
        src = pixels                                          # uint8, or float32 once warped
        if self.augment is not None:
            c = (s - 1) / 2.0
            sign = 1.0 - 2.0 * flip.float()                  # output pixel p' samples input p: see module doc
            theta = torch.zeros(b, 2, 3, device=self.device)
            theta[:, 0, 0] = sign / scale
            theta[:, 1, 1] = 1.0 / scale
            theta[:, 0, 2] = -sign * shift[:, 0] / (scale * c)
            theta[:, 1, 2] = -shift[:, 1] / (scale * c)
            grid = F.affine_grid(theta, [b, src.shape[1], s, s], align_corners=True)
            src = F.grid_sample(src.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        # (x / 255 - mean) / std in one conversion pass and two in-place ones, as normalize_batch does
        x[:, :3].copy_(src[:, :3]).mul_(1.0 / (255.0 * RGB_STD)).sub_(RGB_MEAN / RGB_STD)
        if layout.has_mask:
            x[:, -1] = src[:, 3] >= 127.5
        if layout.num_heatmaps:
            points = self._points(batch, flip, scale, shift)
            render_heatmaps_torch(points, s, self.sigma, out=x[:, layout.heatmap_slice])
        return x

    def _points(self, batch: dict, flip, scale, shift) -> "torch.Tensor":
        """The heatmap points [B, K, 2] after the same flip and affine as the pixels; NaN where not valid."""
        import torch

        if "landmarks" not in batch or batch["landmarks"] is None:
            raise ConfigError("device-side heatmaps need the landmarks: open the dataset with return_landmarks=True")
        pts = batch["landmarks"].to(self.device, non_blocking=True).float()
        if self.layout.heatmap_kind == GROUPS:
            pts = group_points_torch(pts, self.lset)
        valid = batch["valid"].to(self.device, non_blocking=True)
        pts = torch.where(valid[:, None, None], pts, torch.full_like(pts, float("nan")))
        if self.augment is None:
            return pts
        s = self.size
        flipped = pts[:, self.point_flip]
        flipped[..., 0] = (s - 1) - flipped[..., 0]
        pts = torch.where(flip[:, None, None], flipped, pts)
        c = (s - 1) / 2.0
        return scale[:, None, None] * (pts - c) + c + shift[:, None, :]
