"""A deterministic spread of real LFW faces and their landmarks, cached for the whole test session.

The extractor, pose and landmark-set tests all look at the same faces; extracting each (image,
extractor, mirrored) once keeps their combined runtime small.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

from facerec.pipeline.extractors.base import FaceLandmarks, get_extractor


@functools.lru_cache(maxsize=None)
def spread_paths(lfw: Path, n: int) -> tuple[Path, ...]:
    """The first image of ``n`` identities taken evenly over the sorted LFW identities."""
    people = sorted(p for p in (lfw / "lfw-deepfunneled").iterdir() if p.is_dir())
    step = max(1, len(people) // n)
    return tuple(sorted(person.glob("*.jpg"))[0] for person in people[::step][:n])


@functools.lru_cache(maxsize=None)
def load_rgb(path: Path, mirrored: bool = False) -> np.ndarray:
    """[H, W, 3] uint8 RGB of an LFW image, horizontally mirrored if asked."""
    rgb = np.asarray(Image.open(path).convert("RGB"))
    return np.ascontiguousarray(rgb[:, ::-1]) if mirrored else rgb


@functools.lru_cache(maxsize=None)
def landmarks(extractor: str, path: Path, mirrored: bool = False) -> FaceLandmarks | None:
    """The extractor's result on the (mirrored) image, computed once per session."""
    return get_extractor(extractor).extract(load_rgb(path, mirrored))


def mirror_points(points: np.ndarray, width: int) -> np.ndarray:
    """Pixel-centre points of an image -> the same physical points in its horizontal mirror."""
    out = np.array(points, dtype=np.float64, copy=True)
    out[..., 0] = width - 1 - out[..., 0]
    return out
