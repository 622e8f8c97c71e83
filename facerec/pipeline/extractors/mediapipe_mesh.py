"""MediaPipe Face Mesh (478 points: the 468-point mesh plus 10 iris points), weights from the wheel.

The mesh graph runs the BlazeFace short-range detector, then the landmark model on each face crop.
We ask the graph for two of its output streams: the landmarks and the detections that seeded them.
The mesh itself has no per-face confidence, so ``score`` is the BlazeFace detection score (0..1) of
the detection whose box overlaps the chosen mesh best; NaN if no detection overlaps it at all.

Profiles. On CFP the graph alone finds 85% of profile photos (1,698 of 2,000): BlazeFace usually
finds the face, but the mesh seeded from its box (rotated by the eye keypoints, which a profile
hides) fails the face-presence check. Where the whole image gives nothing, ``retry`` runs the
detection paths of ``RETRY_DETECTORS`` in order (``extract(...).detector`` names the one that
found the face):

- ``blazeface_short_crop`` / ``blazeface_full_crop``: the wheel's standalone BlazeFace short-range,
  then full-range detector (threshold 0.2) gives a box; the mesh graph (detection 0.3, presence 0.1)
  runs on square 256 px crops of 1, 1.5, 2 and 2.5 box sides, each turned by 0, +20 and -20 degrees,
  each as it is and mirrored (the mesh accepts many profiles facing one way that it rejects facing the
  other; a mirrored crop's points are mirrored back and re-ordered with the flip permutation);
- ``whole_image_crop``: the same crops of the image's own box at 0.8, 1 and 1.3 (a face filling the
  photo), with the stricter detection 0.5 and presence 0.3: no box vouches for a face here, and at 0.3 the
  graph found a "face" in smoothed noise (``tests/test_bad_inputs.py``); at 0.5 it finds none there.
The first crop with a mesh wins; its points are mapped back to the source frame. A retry costs two
BlazeFace runs and up to 42 mesh runs (0.36 s an image on CFP); a face found by the first pass, one.

Coordinates: MediaPipe returns x, y normalised to the image width/height with 0 and 1 at the outer
pixel edges; we convert to pixel-centre source coordinates (``x * W - 0.5``), the convention dlib and
OpenCV use, so a horizontal mirror is exactly ``x -> W - 1 - x``. ``z`` (same scale as x, camera
axes: larger is farther) becomes ``depth`` in source pixels, for the head pose fit
(``facerec.geometry.pose3d.estimate_head_pose_3d``).
"""

from __future__ import annotations

import logging

import numpy as np

from facerec.errors import FacerecError
from facerec.geometry.landmark_sets import flip_permutation
from facerec.pipeline.extractors._image import check_rgb, downscale
from facerec.pipeline.extractors.base import FaceLandmarks, pick_primary_face
from facerec.pipeline.extractors.face_crops import crop_around, crop_scale, uncrop_points

log = logging.getLogger(__name__)

_MESH_GRAPH = "mediapipe/modules/face_landmark/face_landmark_front_cpu.binarypb"
_DETECTION_THRESHOLD = (
    "facedetectionshortrangecpu__facedetectionshortrange__facedetection__"
    "TensorsToDetectionsCalculator.min_score_thresh"
)
_PRESENCE_THRESHOLD = "facelandmarkcpu__ThresholdingCalculator.threshold"

PRIMARY = "blazeface"
RETRY_DETECTORS = ("blazeface_short_crop", "blazeface_full_crop", "whole_image_crop")
DETECTORS = (PRIMARY, *RETRY_DETECTORS)
_BOX_SCALES = (1.0, 1.5, 2.0, 2.5)
_IMAGE_SCALES = (0.8, 1.0, 1.3)
_ANGLES = (0.0, 20.0, -20.0)
_CROP = 256


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[..., 2] - boxes[..., 0]).clip(0) * (boxes[..., 3] - boxes[..., 1]).clip(0)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """[D] IoU of one box [4] against boxes [D, 4], all (x0, y0, x1, y1)."""
    inter = _area(np.concatenate([np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])], axis=1))
    union = _area(box) + _area(boxes) - inter
    return inter / np.maximum(union, 1e-12)


def _mesh_graph(num_faces: int, detection: float, presence: float):
    """FaceMesh(static_image_mode=True, refine_landmarks=True) with the detections stream exposed too."""
    from mediapipe.python.solution_base import SolutionBase

    return SolutionBase(
        binary_graph_path=_MESH_GRAPH,
        side_inputs={"num_faces": num_faces, "with_attention": True, "use_prev_landmarks": False},
        calculator_params={_DETECTION_THRESHOLD: detection, _PRESENCE_THRESHOLD: presence},
        outputs=["multi_face_landmarks", "face_detections"],
    )


def _relative_boxes(detections, width: int, height: int) -> np.ndarray:
    """[D, 4] source-pixel boxes of BlazeFace detections (relative boxes, edges at 0 and 1)."""
    rects = [[r.xmin, r.ymin, r.xmin + r.width, r.ymin + r.height]
             for r in (d.location_data.relative_bounding_box for d in detections)]
    return np.array(rects, dtype=np.float64).reshape(-1, 4) * [width, height, width, height] - 0.5


class MediaPipeExtractor:
    """Face Mesh with refined (iris) landmarks: ``extract(rgb) -> FaceLandmarks [478, 2] | None``.

    One graph per extractor, reused for every image (``static_image_mode``: no tracking between
    images). Images larger than ``max_side`` are downscaled for the graph; the landmark model works on
    a 192x192 face crop, so this loses nothing unless the face is tiny in a huge image.
    ``retry=False`` keeps only the whole-image pass (the behaviour before the profile retries).
    """

    name = "mediapipe"
    num_points = 478
    placeholder = False

    def __init__(self, max_num_faces: int = 4, min_detection_confidence: float = 0.5,
                 max_side: int = 1280, retry: bool = True) -> None:
        self.max_num_faces = max_num_faces
        self.min_detection_confidence = min_detection_confidence
        self.max_side = max_side
        self.retry = retry
        self._graph = None
        self._retry_graphs: dict[str, object] = {}

    def _solution(self):
        if self._graph is None:
            self._graph = _mesh_graph(self.max_num_faces, self.min_detection_confidence, 0.5)
        return self._graph

    def _retry_graph(self, name: str):
        if name not in self._retry_graphs:
            from mediapipe.python.solutions.face_detection import FaceDetection

            if name == "mesh_box":
                self._retry_graphs[name] = _mesh_graph(1, 0.3, 0.1)
            elif name == "mesh_image":
                self._retry_graphs[name] = _mesh_graph(1, 0.5, 0.3)
            else:
                self._retry_graphs[name] = FaceDetection(model_selection=int(name == "full"), min_detection_confidence=0.2)
        return self._retry_graphs[name]

    def _process(self, graph, image: np.ndarray, width: int, height: int):
        try:
            return graph.process(image)   # one input stream ("image"): a bare array is accepted
        except (RuntimeError, ValueError) as exc:
            self.close()  # a failed graph is not reused
            raise FacerecError(f"mediapipe failed on a {width}x{height} image: {exc}") from exc

    def extract(self, rgb: np.ndarray) -> FaceLandmarks | None:
        rgb = check_rgb(rgb, self.name)
        height, width = rgb.shape[:2]
        small, _ = downscale(rgb, self.max_side)
        result = self._process(self._solution(), small, width, height)
        faces = result.multi_face_landmarks or []
        if faces:
            size = np.array([width, height, width], dtype=np.float64)
            meshes = [np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float64) * size - [0.5, 0.5, 0.0]
                      for face in faces]
            boxes = np.array([[*m[:, :2].min(axis=0), *m[:, :2].max(axis=0)] for m in meshes])
            best = pick_primary_face(boxes, width, height) if len(meshes) > 1 else 0
            score = self._detection_score(result.face_detections, boxes[best], width, height)
            return self._landmarks(meshes[best], score, len(meshes), PRIMARY)
        return self._retry_crops(rgb) if self.retry else None

    def _retry_crops(self, rgb: np.ndarray) -> FaceLandmarks | None:
        """The retry paths of the module docstring, in order; None when none finds a mesh."""
        height, width = rgb.shape[:2]
        small, scale = downscale(rgb, self.max_side)
        tries: list[tuple[str, np.ndarray, float, tuple[float, ...]]] = []
        for kind, detector in (("short", RETRY_DETECTORS[0]), ("full", RETRY_DETECTORS[1])):
            dets = self._process(self._retry_graph(kind), small, width, height).detections or []
            if dets:
                boxes = _relative_boxes(dets, width, height)
                best = pick_primary_face(boxes, width, height) if len(boxes) > 1 else 0
                tries.append((detector, boxes[best], float(dets[best].score[0]), _BOX_SCALES))
                break   # the full-range detector only where the short-range one found nothing
        tries.append((RETRY_DETECTORS[2], np.array([-0.5, -0.5, width - 0.5, height - 0.5]), float("nan"), _IMAGE_SCALES))
        for detector, box, score, scales in tries:
            mesh_graph = self._retry_graph("mesh_image" if detector == RETRY_DETECTORS[2] else "mesh_box")
            for s, angle, mirror in ((s, a, f) for s in scales for a in _ANGLES for f in (False, True)):
                crop, m = crop_around(rgb, box, s, angle, _CROP)
                if mirror:
                    crop = np.ascontiguousarray(crop[:, ::-1])
                faces = self._process(mesh_graph, crop, width, height).multi_face_landmarks
                if faces:
                    pts = np.array([(p.x, p.y, p.z) for p in faces[0].landmark], dtype=np.float64) * _CROP
                    pts[:, :2] -= 0.5
                    if mirror:   # back to the unmirrored crop, points in semantic order again
                        pts[:, 0] = _CROP - 1 - pts[:, 0]
                        pts = pts[flip_permutation(self.name)]
                    mesh = np.column_stack([uncrop_points(pts[:, :2], m), pts[:, 2] / crop_scale(m)])
                    return self._landmarks(mesh, score, 1, detector)
        return None

    def _landmarks(self, mesh: np.ndarray, score: float, num_faces: int, detector: str) -> FaceLandmarks:
        if mesh.shape != (self.num_points, 3):
            raise FacerecError(f"mediapipe returned {mesh.shape[0]} points; expected {self.num_points}")
        xy = mesh[:, :2]
        return FaceLandmarks(
            points=xy.astype(np.float32),
            bbox=(*(float(v) for v in xy.min(axis=0)), *(float(v) for v in xy.max(axis=0))),
            score=score, num_faces=num_faces, detector=detector, depth=mesh[:, 2].astype(np.float32),
        )

    @staticmethod
    def _detection_score(detections, box: np.ndarray, width: int, height: int) -> float:
        """BlazeFace score of the detection overlapping ``box`` (source px) best; NaN if none does."""
        if not detections:
            return float("nan")
        overlap = _iou(box, _relative_boxes(detections, width, height))
        best = int(np.argmax(overlap))
        return float(detections[best].score[0]) if overlap[best] > 0 else float("nan")

    def close(self) -> None:
        for graph in [self._graph, *self._retry_graphs.values()]:
            if graph is not None:
                graph.close()
        self._graph = None
        self._retry_graphs = {}
