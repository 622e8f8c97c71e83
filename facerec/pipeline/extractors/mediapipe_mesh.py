"""MediaPipe Face Mesh (478 points: the 468-point mesh plus 10 iris points), weights from the wheel.

The mesh graph runs the BlazeFace short-range detector, then the landmark model on each face crop.
We ask the graph for two of its output streams: the landmarks and the detections that seeded them.
The mesh itself has no per-face confidence, so ``score`` is the BlazeFace detection score (0..1) of
the detection whose box overlaps the chosen mesh best; NaN if no detection overlaps it at all.

Coordinates: MediaPipe returns x, y normalised to the image width/height with 0 and 1 at the outer
pixel edges; we convert to pixel-centre source coordinates (``x * W - 0.5``), the convention dlib and
OpenCV use, so a horizontal mirror is exactly ``x -> W - 1 - x``. Because the coordinates are
normalised, a point found on the downscaled detection image maps to source pixels without loss of
frame (only of precision).
"""

from __future__ import annotations

import logging

import numpy as np

from facerec.errors import FacerecError
from facerec.pipeline.extractors._image import check_rgb, downscale
from facerec.pipeline.extractors.base import FaceLandmarks, pick_primary_face

log = logging.getLogger(__name__)

_MESH_GRAPH = "mediapipe/modules/face_landmark/face_landmark_front_cpu.binarypb"
_DETECTION_THRESHOLD = (
    "facedetectionshortrangecpu__facedetectionshortrange__facedetection__"
    "TensorsToDetectionsCalculator.min_score_thresh"
)
_PRESENCE_THRESHOLD = "facelandmarkcpu__ThresholdingCalculator.threshold"


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[..., 2] - boxes[..., 0]).clip(0) * (boxes[..., 3] - boxes[..., 1]).clip(0)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """[D] IoU of one box [4] against boxes [D, 4], all (x0, y0, x1, y1)."""
    inter = _area(np.concatenate([np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])], axis=1))
    union = _area(box) + _area(boxes) - inter
    return inter / np.maximum(union, 1e-12)


class MediaPipeExtractor:
    """Face Mesh with refined (iris) landmarks: ``extract(rgb) -> FaceLandmarks [478, 2] | None``.

    One graph per extractor, reused for every image (``static_image_mode``: no tracking between
    images). Images larger than ``max_side`` are downscaled for the graph; the landmark model works on
    a 192x192 face crop, so this loses nothing unless the face is tiny in a huge image.
    """

    name = "mediapipe"
    num_points = 478
    placeholder = False

    def __init__(self, max_num_faces: int = 4, min_detection_confidence: float = 0.5,
                 max_side: int = 1280) -> None:
        self.max_num_faces = max_num_faces
        self.min_detection_confidence = min_detection_confidence
        self.max_side = max_side
        self._graph = None

    def _solution(self):
        if self._graph is None:
            from mediapipe.python.solution_base import SolutionBase

            # FaceMesh(static_image_mode=True, refine_landmarks=True, ...) with the detections stream
            # exposed too: same graph, same side inputs, one more output.
            self._graph = SolutionBase(
                binary_graph_path=_MESH_GRAPH,
                side_inputs={"num_faces": self.max_num_faces, "with_attention": True,
                             "use_prev_landmarks": False},
                calculator_params={_DETECTION_THRESHOLD: self.min_detection_confidence,
                                   _PRESENCE_THRESHOLD: 0.5},
                outputs=["multi_face_landmarks", "face_detections"],
            )
        return self._graph

    def extract(self, rgb: np.ndarray) -> FaceLandmarks | None:
        rgb = check_rgb(rgb, self.name)
        height, width = rgb.shape[:2]
        small, _ = downscale(rgb, self.max_side)
        try:
            result = self._solution().process({"image": small})
        except (RuntimeError, ValueError) as exc:
            self.close()  # a failed graph is not reused
            raise FacerecError(f"mediapipe failed on a {width}x{height} image: {exc}") from exc
        faces = result.multi_face_landmarks or []
        if not faces:
            return None
        size = np.array([width, height], dtype=np.float64)
        meshes = [np.array([(p.x, p.y) for p in face.landmark], dtype=np.float64) * size - 0.5
                  for face in faces]
        boxes = np.array([[*m.min(axis=0), *m.max(axis=0)] for m in meshes])
        best = pick_primary_face(boxes, width, height) if len(meshes) > 1 else 0
        points = meshes[best]
        if points.shape != (self.num_points, 2):
            raise FacerecError(f"mediapipe returned {points.shape[0]} points; expected {self.num_points}")
        return FaceLandmarks(
            points=points.astype(np.float32),
            bbox=tuple(float(v) for v in boxes[best]),
            score=self._detection_score(result.face_detections, boxes[best], size),
            num_faces=len(meshes),
        )

    @staticmethod
    def _detection_score(detections, box: np.ndarray, size: np.ndarray) -> float:
        """BlazeFace score of the detection overlapping ``box`` (source px) best; NaN if none does."""
        if not detections:
            return float("nan")
        rects = []
        for det in detections:
            r = det.location_data.relative_bounding_box
            rects.append([r.xmin, r.ymin, r.xmin + r.width, r.ymin + r.height])
        rects = np.array(rects) * np.tile(size, 2) - 0.5
        overlap = _iou(box, rects)
        best = int(np.argmax(overlap))
        return float(detections[best].score[0]) if overlap[best] > 0 else float("nan")

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None
