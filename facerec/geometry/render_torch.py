"""Gaussian landmark heatmaps in torch, batched, on any device: the training-time twin of ``heatmaps``.

Same maps as ``facerec.geometry.heatmaps.render_heatmaps`` (same pixel convention, same truncation at
``TRUNCATE`` sigma, NaN points give empty maps), built the same separable way, but only where a map can
be non-zero: each point's two 1-D profiles are evaluated on the ``W = floor(2 * TRUNCATE * sigma) + 1``
pixels around it (17 at sigma 2), their outer product is a ``W x W`` patch, and all patches of the batch
are written into a zeroed output with one index assignment. That costs O(K W^2) instead of the dense
O(K S^2) multiply, which is what makes all 478 per-landmark maps affordable on a CPU (a 478-map batch is
mostly zeros), and runs unchanged on a GPU. Values are float in [0, 1]; ``dtype=torch.uint8`` gives the
stored quantization, ``round(value * 255)``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from facerec.errors import ConfigError
from facerec.geometry.heatmaps import TRUNCATE
from facerec.geometry.landmark_sets import LandmarkSet

if TYPE_CHECKING:
    import torch

FAR = -1.0e6     # where NaN points are moved: every profile value there is cut to zero


def window_size(sigma: float) -> int:
    """Pixels per axis that can be non-zero around one point: |d| <= TRUNCATE * sigma."""
    return int(math.floor(2 * TRUNCATE * sigma)) + 1


def _window_profiles(coord: "torch.Tensor", size: int, sigma: float, w: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """[N] coordinates -> (first pixel [N] int64, [N, W] float32 profile values, 0 off the image or past the cut)."""
    import torch

    start = torch.ceil(coord - TRUNCATE * sigma)
    pix = start[:, None] + torch.arange(w, device=coord.device, dtype=torch.float32)
    d = pix - coord[:, None]
    prof = torch.exp(-(d * d) / (2.0 * sigma * sigma))
    keep = (d.abs() <= TRUNCATE * sigma) & (pix >= 0) & (pix <= size - 1)
    return start.to(torch.int64), torch.where(keep, prof, torch.zeros((), device=coord.device))


def render_heatmaps_torch(
    points: "torch.Tensor", size: int, sigma: float, *, dtype: "torch.dtype | None" = None,
    out: "torch.Tensor | None" = None,
) -> "torch.Tensor":
    """One Gaussian map per point: [..., K, 2] (x, y) crop pixels -> [..., K, S, S] on the points' device.

    ``dtype``: float32 (default), float16/bfloat16 (values in [0, 1]) or uint8 (``round(255 * value)``,
    the stored form). ``out``: a [..., K, S, S] tensor to fill instead (it is zeroed first), which may
    be a strided view such as the heatmap channels of a whole input batch ``x[:, 3:9]``: the maps are
    then written in place, with no extra buffer and no concatenation.
    """
    import torch

    if points.dim() < 2 or points.shape[-1] != 2:
        raise ConfigError(f"heatmap points must be [..., K, 2], got shape {tuple(points.shape)}")
    if size <= 0 or not sigma > 0:
        raise ConfigError(f"heatmap size and sigma must be positive, got size={size}, sigma={sigma}")
    lead = tuple(points.shape[:-1])
    if out is None:
        out = torch.zeros((*lead, size, size), dtype=dtype or torch.float32, device=points.device)
    elif tuple(out.shape) != (*lead, size, size) or out.stride()[-2:] != (size, 1):
        raise ConfigError(f"out must be [..., K, S, S] = {(*lead, size, size)} with contiguous rows, "
                          f"got {tuple(out.shape)} strides {out.stride()}")
    else:
        out.zero_()
    flat = points.reshape(-1, 2).float()
    flat = torch.where(torch.isfinite(flat), flat, torch.full_like(flat, FAR))
    n, w, dev = flat.shape[0], window_size(sigma), points.device
    if n == 0:
        return out
    x0, gx = _window_profiles(flat[:, 0], size, sigma, w)
    y0, gy = _window_profiles(flat[:, 1], size, sigma, w)
    patch = gy[:, :, None] * gx[:, None, :]                                   # [N, W, W]: separable
    if out.dtype == torch.uint8:
        patch = patch.mul_(255.0).round_()
    # Element offset of each map in out's storage, whatever its strides (a view into a batch works).
    base = torch.full(lead, out.storage_offset(), dtype=torch.int64, device=dev)
    for axis, (extent, stride) in enumerate(zip(lead, out.stride()[:-2])):
        shape = [1] * len(lead)
        shape[axis] = extent
        base += torch.arange(extent, device=dev).view(shape) * stride
    steps = torch.arange(w, device=dev)
    rows = (y0[:, None] + steps).clamp_(0, size - 1).mul_(size).add_(base.reshape(-1, 1))
    cols = (x0[:, None] + steps).clamp_(0, size - 1)
    index = rows[:, :, None] + cols[:, None, :]
    # Cells off the image were clamped onto the edge with value 0: amax keeps the real value there.
    storage = torch.as_strided(out, (out.untyped_storage().nbytes() // out.element_size(),), (1,), 0)
    storage.scatter_reduce_(0, index.view(-1), patch.view(-1).to(out.dtype), reduce="amax")
    return out


def group_matrix(lset: LandmarkSet, device: "torch.device | str | None" = None) -> "torch.Tensor":
    """[6, P] float32: row g averages the points of heatmap group g (``LandmarkSet.group_points``)."""
    import torch

    m = np.zeros((len(lset.groups), lset.num_points), dtype=np.float32)
    for g, members in enumerate(lset.groups):
        m[g, list(members)] = 1.0 / len(members)
    return torch.from_numpy(m).to(device)


def group_points_torch(points: "torch.Tensor", lset: LandmarkSet) -> "torch.Tensor":
    """[..., P, 2] -> [..., 6, 2]: each group's mean point, as ``LandmarkSet.group_points``."""
    if points.shape[-2] != lset.num_points:
        raise ConfigError(f"landmark set {lset.name!r} has {lset.num_points} points, got {points.shape[-2]}")
    return group_matrix(lset, points.device) @ points.float()
