"""The placeholder "extractor": a fixed mean face in the dlib-68 layout over the image centre.

It detects nothing. It exists so the later stages can run on images without any real detector (a
smoke test, a demo on a machine without dlib/mediapipe), and only when asked for by name; every row
it produces says ``placeholder=True``. score is NaN and num_faces 0 because no face was seen.

The mean face is OpenFace's dlib-68 template (``openface/align_dlib.py``, Apache-2.0, CMU 2015-16):
the mean of dlib landmarks over aligned faces, min-max normalised to [0, 1] on both axes.
"""

from __future__ import annotations

import numpy as np

from facerec.pipeline.extractors._image import check_rgb
from facerec.pipeline.extractors.base import FaceLandmarks
from facerec.geometry.landmark_sets import TEMPLATE_68

# Share of the shorter image side the template's box spans: the face of a loosely cropped photo.
FACE_FRACTION = 0.5

_OPENFACE_TEMPLATE = np.array([
    (0.0792396913815, 0.339223741112), (0.0829219487236, 0.456955367943),
    (0.0967927109165, 0.575648016728), (0.122141515615, 0.691921601066),
    (0.168687863544, 0.800341263616), (0.239789390707, 0.895732504778),
    (0.325662452515, 0.977068762493), (0.422318282013, 1.04329000149),
    (0.531777802068, 1.06080371126), (0.641296298053, 1.03981924107),
    (0.738105872266, 0.972268833998), (0.824444363295, 0.889624082279),
    (0.894792677532, 0.792494155836), (0.939395486253, 0.681546643421),
    (0.96111933829, 0.562238253072), (0.970579841181, 0.441758925744),
    (0.971193274221, 0.322118743967), (0.163846223133, 0.249151738053),
    (0.21780354657, 0.204255863861), (0.291299351124, 0.192367318323),
    (0.367460241458, 0.203582210627), (0.4392945113, 0.233135599851),
    (0.586445962425, 0.228141644834), (0.660152671635, 0.195923841854),
    (0.737466449096, 0.182360984545), (0.813236546239, 0.192828009114),
    (0.8707571886, 0.235293377042), (0.51534533827, 0.31863546193),
    (0.516221448289, 0.396200446263), (0.517118861835, 0.473797687758),
    (0.51816430343, 0.553157797772), (0.433701156035, 0.604054457668),
    (0.475501237769, 0.62076344024), (0.520712933176, 0.634268222208),
    (0.565874114041, 0.618796581487), (0.607054002672, 0.60157671656),
    (0.252418718401, 0.331052263829), (0.298663015648, 0.302646354002),
    (0.355749724218, 0.303020650651), (0.403718978315, 0.33867711083),
    (0.352507175597, 0.349987615384), (0.296791759886, 0.350478978225),
    (0.631326076346, 0.334136672344), (0.679073381078, 0.29645404267),
    (0.73597236153, 0.294721285802), (0.782865376271, 0.321305281656),
    (0.740312274764, 0.341849376713), (0.68499850091, 0.343734332172),
    (0.353167761422, 0.746189164237), (0.414587777921, 0.719053835073),
    (0.477677654595, 0.706835892494), (0.522732900812, 0.717092275768),
    (0.569832064287, 0.705414478982), (0.635195811927, 0.71565572516),
    (0.69951672331, 0.739419187253), (0.639447159575, 0.805236879972),
    (0.576410514055, 0.835436670169), (0.525398405766, 0.841706377792),
    (0.47641545769, 0.837505914975), (0.41379548902, 0.810045601727),
    (0.380084785646, 0.749979603086), (0.477955996282, 0.74513234612),
    (0.523389793327, 0.748924302636), (0.571057789237, 0.74332894691),
    (0.672409137852, 0.744177032192), (0.572539621444, 0.776609286626),
    (0.5240106503, 0.783370783245), (0.477561227414, 0.778476346951),
])
# Min-max normalised and centred on 0: a [68, 2] face spanning [-0.5, 0.5] on both axes.
MEAN_FACE_68 = (_OPENFACE_TEMPLATE - _OPENFACE_TEMPLATE.min(0)) / np.ptp(_OPENFACE_TEMPLATE, axis=0) - 0.5


def template_points(width: int, height: int) -> np.ndarray:
    """[68, 2] float32 mean face centred in a width x height image (pixel-centre coordinates)."""
    side = FACE_FRACTION * min(width, height)
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    return (MEAN_FACE_68 * side + centre).astype(np.float32)


class TemplateExtractor:
    """``extract(rgb)`` -> the mean face placed over the image centre; never None."""

    name = "template"
    num_points = TEMPLATE_68.num_points
    placeholder = True

    def extract(self, rgb: np.ndarray) -> FaceLandmarks:
        height, width = check_rgb(rgb, self.name).shape[:2]
        points = template_points(width, height)
        return FaceLandmarks(
            points=points,
            bbox=(*map(float, points.min(axis=0)), *map(float, points.max(axis=0))),
            score=float("nan"),
            num_faces=0,
            detector="template",
        )

    def close(self) -> None:
        """Nothing to release."""
