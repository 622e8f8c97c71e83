"""Write facerec/geometry/data/mediapipe_reference.json: the frontal reference mesh for 3-D head pose.

The mediapipe wheel ships no canonical face model, so the reference is measured (see
``facerec.geometry.pose3d``): MediaPipe meshes (points + depth) of ``--images`` LFW faces, one per
identity spread over the sorted identities, brought together by generalised Procrustes (rotation and
scale, 5 rounds); the mean is made left-right symmetric with the measured flip permutation, turned
and scaled so that its six pose points fit ``pose.FACE_MODEL_3D`` best, and symmetrised once more in
that frame (exactly symmetric about x = 0, so a mirrored mesh reads the negated yaw and roll).

    .venv/bin/python tools/make_pose_references.py --lfw ../shared/data/lfw --images 300
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facerec.geometry.landmark_sets import MEDIAPIPE_478, flip_permutation  # noqa: E402
from facerec.geometry.pose import FACE_MODEL_3D  # noqa: E402
from facerec.geometry.pose3d import MESH_POINTS, REFERENCE_FILE, kabsch_rotation  # noqa: E402
from facerec.pipeline.extractors.mediapipe_mesh import MediaPipeExtractor  # noqa: E402

log = logging.getLogger("make_pose_references")


def collect(lfw: Path, wanted: int) -> list[np.ndarray]:
    """[478, 3] meshes (points and depth, source px) of single faces, one image per identity."""
    people = sorted(p for p in (lfw / "lfw-deepfunneled").iterdir() if p.is_dir())
    mp = MediaPipeExtractor(retry=False)
    meshes = []
    for person in people[:: max(1, len(people) // wanted)][:wanted]:
        rgb = np.asarray(Image.open(sorted(person.glob("*.jpg"))[0]).convert("RGB"))
        face = mp.extract(rgb)
        if face is None or face.num_faces != 1:
            continue
        meshes.append(np.column_stack([face.points, face.depth]).astype(np.float64))
    return meshes


def normalised(mesh: np.ndarray) -> np.ndarray:
    m = mesh - mesh[:MESH_POINTS].mean(axis=0)
    return m / np.linalg.norm(m[:MESH_POINTS])


def procrustes_mean(meshes: list[np.ndarray], rounds: int = 5) -> np.ndarray:
    shapes = [normalised(m) for m in meshes]
    mean = shapes[0]
    for _ in range(rounds):
        aligned = [s @ kabsch_rotation(s[:MESH_POINTS], mean[:MESH_POINTS]).T for s in shapes]
        mean = normalised(np.mean(aligned, axis=0))
    return mean


def mirrored(mesh: np.ndarray) -> np.ndarray:
    return mesh[flip_permutation("mediapipe")] * [-1.0, 1.0, 1.0]


def symmetric_frontal(mean: np.ndarray) -> np.ndarray:
    mirror = mirrored(mean)
    sym = (mean + mirror @ kabsch_rotation(mirror[:MESH_POINTS], mean[:MESH_POINTS]).T) / 2
    six = sym[list(MEDIAPIPE_478.pose_points)]
    rot = kabsch_rotation(six, FACE_MODEL_3D)
    turned = (sym - six.mean(axis=0)) @ rot.T
    scale = np.linalg.norm(FACE_MODEL_3D - FACE_MODEL_3D.mean(axis=0)) / np.linalg.norm(turned[list(MEDIAPIPE_478.pose_points)])
    frontal = turned * scale + FACE_MODEL_3D.mean(axis=0)
    return (frontal + mirrored(frontal)) / 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "data" / "lfw")
    ap.add_argument("--images", type=int, default=300)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    meshes = collect(args.lfw, args.images)
    reference = symmetric_frontal(procrustes_mean(meshes))
    out = {"source": f"{len(meshes)} LFW faces (tools/make_pose_references.py --images {args.images})",
           "axes": "camera: x right, y down, z away; units of pose.FACE_MODEL_3D",
           "mesh": np.round(reference, 2).tolist()}
    REFERENCE_FILE.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    log.info("wrote %s from %d meshes", REFERENCE_FILE, len(meshes))


if __name__ == "__main__":
    main()
