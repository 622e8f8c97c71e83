"""PNG figures the report draws from the store itself: the head-pose histogram and a grid of aligned
crops with their grouped heatmaps overlaid.

The crop grid is composed with numpy and written with PIL (pixel-exact, no axes); the pose histogram
uses matplotlib's Agg backend like ``facerec.evaluation.plots``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from facerec.errors import ConfigError
from facerec.evaluation.plots import _pyplot, _save

# One colour per heatmap group (HEATMAP_GROUP_NAMES order: left eye, right eye, nose, left mouth,
# right mouth, chin), RGB 0..255.
GROUP_COLOURS = np.array(
    [[255, 64, 64], [64, 160, 255], [255, 220, 0], [255, 64, 255], [0, 230, 120], [255, 140, 0]], dtype=np.float32
)


def save_png(rgb: np.ndarray, path: Path) -> Path:
    """[H, W, 3] uint8 -> a PNG file (parent folders created)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb), mode="RGB").save(path, format="PNG", optimize=True)
    return path


def overlay_heatmaps(crop: np.ndarray, heatmaps: np.ndarray, alpha: float = 0.85) -> np.ndarray:
    """Blend each group's heatmap onto the crop in its own colour.

    crop: [3, S, S] uint8 channel-first; heatmaps: [G, S, S] float in [0, 1] (G <= 6).
    Returns [S, S, 3] uint8: the crop darkened a little so the colours read, each group painted where
    its map is strongest (per pixel the strongest group wins).
    """
    if crop.ndim != 3 or crop.shape[0] != 3:
        raise ConfigError(f"crop must be [3, S, S], got {crop.shape}")
    if heatmaps.ndim != 3 or heatmaps.shape[1:] != crop.shape[1:] or heatmaps.shape[0] > len(GROUP_COLOURS):
        raise ConfigError(f"heatmaps must be [G<=6, S, S] matching the crop {crop.shape[1:]}, got {heatmaps.shape}")
    base = crop.transpose(1, 2, 0).astype(np.float32) * 0.75
    hm = np.clip(heatmaps.astype(np.float32), 0.0, 1.0)
    strongest = hm.argmax(axis=0)                               # [S, S]
    weight = (hm.max(axis=0) * alpha)[..., None]                # [S, S, 1]
    colour = GROUP_COLOURS[: hm.shape[0]][strongest]            # [S, S, 3]
    return np.clip(base * (1.0 - weight) + colour * weight, 0, 255).astype(np.uint8)


def crops_grid(
    crops: np.ndarray, heatmaps: np.ndarray, valid: np.ndarray | None = None, cols: int = 4, scale: int = 2,
    gap: int = 6,
) -> np.ndarray:
    """A grid of (crop | crop with heatmaps) pairs, ``cols`` pairs per row, each tile upscaled by ``scale``.

    crops: [N, 3, S, S] uint8; heatmaps: [N, G, S, S] float in [0, 1]; valid: [N] bool, an invalid
    sample (no face found) gets a grey frame. Returns [H, W, 3] uint8 on a white background.
    """
    n = len(crops)
    if n == 0:
        raise ConfigError("crops_grid needs at least one crop")
    if len(heatmaps) != n:
        raise ConfigError(f"crops_grid: {n} crops but {len(heatmaps)} heatmap stacks")
    s = crops.shape[-1] * scale
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    pair_w = 2 * s + gap
    width = cols * pair_w + (cols + 1) * 2 * gap
    height = rows * s + (rows + 1) * 2 * gap
    out = np.full((height, width, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y = 2 * gap + r * (s + 2 * gap)
        x = 2 * gap + c * (pair_w + 2 * gap)
        plain = crops[i].transpose(1, 2, 0)
        over = overlay_heatmaps(crops[i], heatmaps[i])
        for j, tile in enumerate((plain, over)):
            big = np.repeat(np.repeat(tile, scale, axis=0), scale, axis=1)
            out[y : y + s, x + j * (s + gap) : x + j * (s + gap) + s] = big
        if valid is not None and not bool(valid[i]):
            out[y - 2 : y, x - 2 : x + pair_w + 2] = 160
            out[y + s : y + s + 2, x - 2 : x + pair_w + 2] = 160
    return out


def plot_pose_histograms(angles: Mapping[str, np.ndarray], path: Path, bins: int = 36) -> Path:
    """One histogram panel per angle (degrees) over the faces with a finite pose.

    angles: {"yaw": [N], "pitch": [N], "roll": [N]} degrees.
    """

    if not angles:
        raise ConfigError(f"no pose angles to plot for {path}")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(angles), figsize=(3.6 * len(angles), 3.0), squeeze=False)
    for ax, (name, values) in zip(axes.flat, angles.items()):
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        ax.hist(v, bins=bins, range=(-90, 90), color="#4c72b0", edgecolor="white", linewidth=0.4)
        ax.set_title(f"{name} (n={len(v)})")
        ax.set_xlabel("degrees")
        ax.set_xlim(-90, 90)
        ax.grid(alpha=0.3, axis="y")
    axes.flat[0].set_ylabel("faces")
    return _save(fig, path)
