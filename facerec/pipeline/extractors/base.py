"""The one small interface every landmark extractor implements, and the registry that creates them.

An extractor takes an RGB uint8 image ``[H, W, 3]`` and returns the landmarks of one face in source
pixel coordinates, or ``None`` when it finds no face. ``detector`` says which of its detection paths
found the face (recorded in the landmarks table); ``depth`` is the per-point z of models that give one
(MediaPipe's mesh), used for head pose. Where several faces are found it keeps the
largest one nearest the image centre (``pick_primary_face``) and reports how many it saw.
Extractors are created once per worker process (``get_extractor`` caches them), never per row.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facerec.errors import choice_error


@dataclass(frozen=True)
class FaceLandmarks:
    points: np.ndarray                              # [P, 2] float32, (x, y) source pixels
    bbox: tuple[float, float, float, float]         # x0, y0, x1, y1 source pixels
    score: float                                    # detector confidence, extractor-specific scale
    num_faces: int                                  # faces seen in the image (the primary one is returned)
    detector: str = "primary"                       # which detection path found it (DETECTORS of the extractor)
    depth: np.ndarray | None = None                 # [P] float32 z in source px (camera axes), where the model has it


class LandmarkExtractor(Protocol):
    name: str
    num_points: int
    placeholder: bool       # True only for the template pattern: its rows say so in the table

    def extract(self, rgb: np.ndarray) -> FaceLandmarks | None: ...

    def close(self) -> None: ...


# name -> "module:Class"; modules import their heavy dependency lazily.
EXTRACTORS: dict[str, str] = {
    "mediapipe": "facerec.pipeline.extractors.mediapipe_mesh:MediaPipeExtractor",
    "dlib": "facerec.pipeline.extractors.dlib68:DlibExtractor",
    "template": "facerec.pipeline.extractors.template:TemplateExtractor",
}


def create_extractor(name: str) -> LandmarkExtractor:
    """A fresh extractor; unknown names fail with the allowed ones."""
    if name not in EXTRACTORS:
        raise choice_error("extractor", name, tuple(EXTRACTORS))
    module_name, _, cls_name = EXTRACTORS[name].partition(":")
    return getattr(importlib.import_module(module_name), cls_name)()


@functools.lru_cache(maxsize=None)
def get_extractor(name: str) -> LandmarkExtractor:
    """The extractor of this process, created on first use (one per Spark Python worker)."""
    return create_extractor(name)


def pick_primary_face(boxes: np.ndarray, width: int, height: int) -> int:
    """Index of the largest face nearest the centre: area discounted by distance to the centre.

    boxes: [F, 4] (x0, y0, x1, y1) pixels. Score = area * (1 - d / diag), d = centre distance.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    area = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 - width / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 - height / 2
    diag = float(np.hypot(width, height)) or 1.0
    return int(np.argmax(area * (1.0 - np.hypot(cx, cy) / diag)))
