"""Joint augmentation of the stacked input ``[RGB | heatmaps | mask]``: every channel moves together.

Transforms act on uint8 batches ``[B, C, S, S]`` (a single sample ``[C, S, S]`` is treated as B = 1)
on any device, so they can run in DataLoader workers or on the GPU after the transfer. Landmarks, when
given, are ``[B, K, 2]`` (x, y) crop pixels with pixel ``i`` centred on ``i`` (the convention of
``facerec.geometry.alignment`` and ``facerec.geometry.heatmaps``) and are transformed the same way.
Randomness comes only from the ``generator`` argument (or torch's global RNG when it is None), one
draw per sample, so a fixed seed replays the same augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from facerec.errors import ConfigError
from facerec.geometry.landmark_sets import HEATMAP_GROUP_FLIP, flip_permutation
from facerec.schemas.zarr_layout import NUM_HEATMAP_GROUPS

if TYPE_CHECKING:
    import torch

GROUPS = "groups"          # 6 grouped heatmap channels (HEATMAP_GROUP_NAMES order)
LANDMARKS = "landmarks"    # one heatmap channel per landmark, in landmark-set order


@dataclass(frozen=True)
class ChannelLayout:
    """What each channel of a stacked input holds: 3 RGB, then ``num_heatmaps`` maps, then the mask.

    ``heatmap_kind`` says how heatmap channels swap under a horizontal flip: by ``HEATMAP_GROUP_FLIP``
    (groups) or by ``flip_permutation(landmark_set)`` (one channel per landmark).
    """

    num_heatmaps: int
    heatmap_kind: str
    landmark_set: str
    has_mask: bool

    @classmethod
    def for_inputs(cls, num_points: int, landmark_set: str, *, use_heatmaps: bool, group_all_landmarks: bool,
                   has_mask: bool) -> "ChannelLayout":
        """RGB, then 6 group maps or one per landmark (``group_all_landmarks``) when ``use_heatmaps``, then
        the mask when ``has_mask``: the channels of every reader and of the device path."""
        return cls(num_heatmaps=0 if not use_heatmaps else (num_points if group_all_landmarks else NUM_HEATMAP_GROUPS),
                   heatmap_kind=LANDMARKS if group_all_landmarks else GROUPS, landmark_set=landmark_set,
                   has_mask=has_mask)

    @property
    def num_channels(self) -> int:
        return 3 + self.num_heatmaps + int(self.has_mask)

    @property
    def heatmap_slice(self) -> slice:
        return slice(3, 3 + self.num_heatmaps)

    def channel_flip_permutation(self) -> np.ndarray:
        """[C] source channel of each output channel after a horizontal flip."""
        perm = np.arange(self.num_channels)
        if self.num_heatmaps:
            if self.heatmap_kind == GROUPS:
                inner = np.asarray(HEATMAP_GROUP_FLIP)
            elif self.heatmap_kind == LANDMARKS:
                inner = flip_permutation(self.landmark_set)
            else:
                raise ConfigError(f"unknown heatmap kind {self.heatmap_kind!r}; expected {GROUPS} or {LANDMARKS}")
            if len(inner) != self.num_heatmaps:
                raise ConfigError(f"{self.heatmap_kind} flip permutation has {len(inner)} entries for {self.num_heatmaps} heatmap channels")
            perm[self.heatmap_slice] = 3 + inner
        return perm


class JointTransform(Protocol):
    def __call__(
        self, image: "torch.Tensor", layout: ChannelLayout, *, landmarks: "torch.Tensor | None" = None,
        landmark_set: str | None = None, generator: "torch.Generator | None" = None,
    ) -> tuple["torch.Tensor", "torch.Tensor | None"]: ...


def _as_batch(image: "torch.Tensor", landmarks: "torch.Tensor | None"):
    single = image.dim() == 3
    if single:
        image = image.unsqueeze(0)
        landmarks = None if landmarks is None else landmarks.unsqueeze(0)
    if image.dim() != 4:
        raise ConfigError(f"joint transforms take [C, S, S] or [B, C, S, S] images, got shape {tuple(image.shape)}")
    return single, image, landmarks


def _rand(n: int, generator, device) -> "torch.Tensor":
    import torch

    gen_device = generator.device if generator is not None else "cpu"
    return torch.rand(n, generator=generator, device=gen_device).to(device)


class RandomHorizontalFlip:
    """Mirror every channel with probability ``p`` and swap heatmap channels left <-> right.

    Landmarks: x -> (S - 1) - x, then reordered by ``flip_permutation(landmark_set)`` so index i keeps
    its meaning (``landmark_set`` defaults to the layout's; pass ``"groups"`` for 6 group points).
    """

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"flip probability must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, image, layout, *, landmarks=None, landmark_set=None, generator=None):
        import torch

        single, image, landmarks = _as_batch(image, landmarks)
        flip = _rand(image.shape[0], generator, image.device) < self.p
        if flip.any():
            perm = torch.as_tensor(layout.channel_flip_permutation(), device=image.device)
            image = image.clone()
            image[flip] = image[flip][:, perm].flip(-1)
            if landmarks is not None:
                landmarks = landmarks.clone()
                size = image.shape[-1]
                name = landmark_set or layout.landmark_set
                point_perm = np.asarray(HEATMAP_GROUP_FLIP) if name == GROUPS else flip_permutation(name)
                if len(point_perm) != landmarks.shape[1]:
                    raise ConfigError(f"landmark set {name!r} has {len(point_perm)} points, landmarks have {landmarks.shape[1]}")
                moved = landmarks[flip][:, torch.as_tensor(np.array(point_perm), device=landmarks.device)]
                moved[..., 0] = (size - 1) - moved[..., 0]
                landmarks[flip] = moved
        if single:
            return image[0], None if landmarks is None else landmarks[0]
        return image, landmarks


class RandomResizedCropSmall:
    """A small random zoom and shift, one affine per sample applied to the whole stack.

    Points move as ``p' = s * (p - c) + c + t`` with ``c = (S - 1) / 2``, ``s`` uniform in ``scale``
    and ``t`` uniform in ``[-max_shift, max_shift]`` px per axis. Pixels are resampled bilinearly
    (``grid_sample``, zeros outside); the mask channel is re-binarised at half its peak.
    """

    def __init__(self, scale: tuple[float, float] = (0.9, 1.1), max_shift: float = 4.0) -> None:
        if not 0 < scale[0] <= scale[1]:
            raise ConfigError(f"scale range must be 0 < low <= high, got {scale}")
        if max_shift < 0:
            raise ConfigError(f"max_shift must be >= 0 px, got {max_shift}")
        self.scale = scale
        self.max_shift = max_shift

    def __call__(self, image, layout, *, landmarks=None, landmark_set=None, generator=None):
        import torch
        import torch.nn.functional as F

        single, image, landmarks = _as_batch(image, landmarks)
        b, _, size, _ = image.shape
        lo, hi = self.scale
        s = (lo + (hi - lo) * _rand(b, generator, image.device)).float()
        t = ((_rand(2 * b, generator, image.device).view(b, 2) * 2 - 1) * self.max_shift).float()
        c = (size - 1) / 2.0
        # Output pixel p' samples input p = (p' - c - t) / s + c; in align_corners=True units u = (p - c) / c.
        theta = torch.zeros(b, 2, 3, device=image.device)
        theta[:, 0, 0] = 1 / s
        theta[:, 1, 1] = 1 / s
        theta[:, :, 2] = -t / (s[:, None] * c)
        grid = F.affine_grid(theta, list(image.shape), align_corners=True)
        out = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        if layout.has_mask:
            out[:, -1] = torch.where(out[:, -1] >= 127.5, 255.0, 0.0)
        out = out.round_().clamp_(0, 255).to(torch.uint8)
        if landmarks is not None:
            landmarks = s[:, None, None] * (landmarks.float() - c) + c + t[:, None, :]
        if single:
            return out[0], None if landmarks is None else landmarks[0]
        return out, landmarks


class Compose:
    """Apply joint transforms in order, threading the same generator through."""

    def __init__(self, transforms: list[JointTransform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image, layout, *, landmarks=None, landmark_set=None, generator=None):
        for t in self.transforms:
            image, landmarks = t(image, layout, landmarks=landmarks, landmark_set=landmark_set, generator=generator)
        return image, landmarks


def default_train_transform() -> Compose:
    """Flip (p = 0.5) then a small zoom/shift: the augmentation the recogniser trains with."""
    return Compose([RandomHorizontalFlip(0.5), RandomResizedCropSmall()])
