"""The Zarr v3 layout of a feature store: array names, dtypes, shapes and chunking, one place.

A features group lives at ``STORE/features/<extractor>-<size>.zarr`` beside its index table
``STORE/features/<extractor>-<size>.index/`` (``tables.FEATURE_INDEX``). Arrays are sample-major:
row ``r`` of every array is the sample at shard ``r // shard_size``, position ``r % shard_size``,
so a shard writes one disjoint, chunk-aligned region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facerec.schemas.tables import LAYOUT_VERSION

NUM_HEATMAP_GROUPS = 6

# Attribute keys in the group's zarr.json attributes.
ATTR_LAYOUT_VERSION = "facerec_layout_version"
ATTR_CONFIG = "facerec_features"     # the resolved FeatureLayout as a dict

IMAGE = "image"          # uint8  [N, 3, S, S]  aligned RGB crop
LANDMARKS = "landmarks"  # float32 [N, P, 2]   aligned landmarks, crop pixels (x, y)
HEATMAPS = "heatmaps"    # uint8 or float16 [N, G, S, S] grouped Gaussian heatmaps, peak 255 or 1.0
MASK = "mask"            # uint8  [N, 1, S, S]  1 inside the convex hull of the landmarks
VALID = "valid"          # bool   [N]

ARRAY_NAMES = (IMAGE, LANDMARKS, HEATMAPS, MASK, VALID)
HEATMAP_DTYPES = ("uint8", "float16")


@dataclass(frozen=True)
class FeatureLayout:
    """Everything needed to create or check the arrays of one features group."""

    extractor: str
    img_size: int
    num_points: int
    num_rows: int
    shard_size: int
    chunk_rows: int
    sigma: float
    heatmap_dtype: str = "uint8"
    compressor: str = "lz4"
    compression_level: int = 5
    crop_codec: str = "lossless"          # the image array: lossless (the compressor) | jpeg | webp | jxl
    crop_quality: int = 95                # the image codec's quality (facerec.store.image_codec)
    layout_version: int = LAYOUT_VERSION

    @property
    def name(self) -> str:
        return feature_set_name(self.extractor, self.img_size)

    def shapes(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], np.dtype]]:
        """name -> (shape, chunks, dtype)."""
        n, s, c, p = self.num_rows, self.img_size, self.chunk_rows, self.num_points
        return {
            IMAGE: ((n, 3, s, s), (c, 3, s, s), np.dtype("uint8")),
            LANDMARKS: ((n, p, 2), (self.shard_size, p, 2), np.dtype("float32")),
            HEATMAPS: ((n, NUM_HEATMAP_GROUPS, s, s), (c, NUM_HEATMAP_GROUPS, s, s), np.dtype(self.heatmap_dtype)),
            MASK: ((n, 1, s, s), (c, 1, s, s), np.dtype("uint8")),
            VALID: ((n,), (self.shard_size,), np.dtype("bool")),
        }


def feature_set_name(extractor: str, img_size: int) -> str:
    return f"{extractor}-{img_size}"


def default_chunk_rows(img_size: int, shard_size: int, target_bytes: int = 1 << 20) -> int:
    """Rows per chunk so an image chunk holds about ``target_bytes`` and divides the shard size."""
    per_row = 3 * img_size * img_size
    rows = max(1, min(shard_size, int(np.ceil(target_bytes / per_row))))
    while shard_size % rows:
        rows += 1
    return rows
