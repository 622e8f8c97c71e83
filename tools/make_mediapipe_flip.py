"""Measure the MediaPipe-478 horizontal-flip permutation and write facerec/geometry/data/mediapipe_flip.json.

The mediapipe wheel ships no canonical mesh to read left/right pairs from, so we measure them: run the
Face Mesh on near-frontal LFW faces and on their horizontal mirrors, mirror the second set of points
back (x -> W - 1 - x), and match every point of the mirrored image to the point of the original it
coincides with. Distances are divided by each face's eye span and summed over images; the pairing is
the optimal assignment on that cost (scipy's linear_sum_assignment), made symmetric so that it is an
involution (a flip applied twice is the identity).

    .venv/bin/python tools/make_mediapipe_flip.py --lfw ../shared/data/lfw --images 40

The result is checked before it is written: the eye groups of facerec.geometry.landmark_sets map onto
each other, the nose tip (1) and chin (152) onto themselves, 61<->291, 33<->263, 468<->473, and the
mesh's own tessellation (from mediapipe's face_mesh_connections) maps onto itself.
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

from facerec.errors import FacerecError  # noqa: E402
from facerec.pipeline.extractors.mediapipe_mesh import MediaPipeExtractor  # noqa: E402
from facerec.geometry.landmark_sets import HEATMAP_GROUP_FLIP, MEDIAPIPE_478  # noqa: E402
from facerec.geometry.pose import estimate_head_pose  # noqa: E402

log = logging.getLogger("make_mediapipe_flip")
OUT = REPO / "facerec" / "geometry" / "data" / "mediapipe_flip.json"
MIN_EDGE_AGREEMENT = 0.99
MAX_ABS_YAW = 10.0    # degrees: near-frontal faces only, where the mirror is a plausible face too


def mirror_points(points: np.ndarray, width: int) -> np.ndarray:
    """[..., 2] pixel-centre points of an image -> their place in its horizontal mirror."""
    out = np.array(points, dtype=np.float64, copy=True)
    out[..., 0] = width - 1 - out[..., 0]
    return out


def frontal_pairs(lfw: Path, wanted: int, extractor: MediaPipeExtractor) -> list[tuple[np.ndarray, np.ndarray]]:
    """(points of the image, points of its mirror mapped back) for ``wanted`` near-frontal LFW faces.

    Images are taken one per identity, spread evenly over the sorted identities (deterministic).
    """
    people = sorted(p for p in (lfw / "lfw-deepfunneled").iterdir() if p.is_dir())
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for person in people[:: max(1, len(people) // (wanted * 8))]:
        rgb = np.asarray(Image.open(sorted(person.glob("*.jpg"))[0]).convert("RGB"))
        h, w = rgb.shape[:2]
        face = extractor.extract(rgb)
        mirrored = extractor.extract(np.ascontiguousarray(rgb[:, ::-1]))
        if face is None or mirrored is None or face.num_faces != 1 or mirrored.num_faces != 1:
            continue
        yaw, _, _ = estimate_head_pose(face.points, MEDIAPIPE_478, w, h)
        if abs(yaw) > MAX_ABS_YAW:
            continue
        pairs.append((face.points.astype(np.float64), mirror_points(mirrored.points, w)))
        if len(pairs) == wanted:
            break
    if len(pairs) < wanted:
        raise FacerecError(f"found {len(pairs)} near-frontal LFW faces under {lfw}; wanted {wanted}")
    return pairs


def match_cost(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """[P, P] cost: cost[i, j] = mean over images of |mirror-image point i - original point j| / eye span.

    Point i of the mirrored image (brought back into the original frame) lies on the original's point
    j when j is i's mirror partner: the permutation entry perm[i] = j.
    """
    eyes = MEDIAPIPE_478.pose_points[2:4]
    cost = np.zeros((MEDIAPIPE_478.num_points,) * 2)
    for orig, back in pairs:
        span = np.linalg.norm(orig[eyes[1]] - orig[eyes[0]])
        cost += np.linalg.norm(back[:, None, :] - orig[None, :, :], axis=-1) / span
    return cost / len(pairs)


def involution(cost: np.ndarray) -> np.ndarray:
    """The assignment minimising the symmetrised cost, forced to pair i<->j both ways.

    Assignment on ``cost + cost.T`` is an involution whenever the data are clean; a cycle longer than 2
    (ambiguous points) is broken greedily by the cheapest pairs and reported.
    """
    from scipy.optimize import linear_sum_assignment

    sym = cost + cost.T
    _, perm = linear_sum_assignment(sym)
    if np.array_equal(perm[perm], np.arange(len(perm))):
        return perm
    bad = np.flatnonzero(perm[perm] != np.arange(len(perm)))
    log.warning("assignment not an involution at %d points; pairing those greedily", len(bad))
    free = set(bad.tolist())
    order = sorted(((sym[i, j], i, j) for i in bad for j in bad if i <= j))
    for _, i, j in order:
        if i in free and j in free:
            perm[i], perm[j] = j, i
            free -= {i, j}
    return perm


def mesh_edge_agreement(perm: np.ndarray) -> float:
    """Share of Face Mesh tessellation edges (i, j) whose image (perm[i], perm[j]) is an edge too.

    An independent check from mediapipe's own topology: a mirror maps the mesh onto itself. A few
    quads are split along opposite diagonals on the two sides, so 1316 of 1322 is the exact value.
    """
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    edges = {frozenset(e) for e in FACEMESH_TESSELATION}
    return sum(frozenset((int(perm[a]), int(perm[b]))) in edges for a, b in edges) / len(edges)


def check(perm: np.ndarray) -> None:
    """Refuse a permutation that breaks the facts every later stage relies on."""
    n = MEDIAPIPE_478.num_points
    problems = []
    if sorted(perm.tolist()) != list(range(n)):
        problems.append("not a permutation")
    if not np.array_equal(perm[perm], np.arange(n)):
        problems.append("not an involution")
    for a, b in ((1, 1), (152, 152), (61, 291), (33, 263), (468, 473)):
        if perm[a] != b:
            problems.append(f"perm[{a}] = {perm[a]}, expected {b}")
    groups = MEDIAPIPE_478.groups
    for g, target in enumerate(HEATMAP_GROUP_FLIP):
        if set(perm[list(groups[g])].tolist()) != set(groups[target]):
            problems.append(f"group {g} does not map onto group {target}")
    agreement = mesh_edge_agreement(perm)
    if agreement < MIN_EDGE_AGREEMENT:
        problems.append(f"only {agreement:.1%} of the mesh's edges map onto edges; expected "
                        f">= {MIN_EDGE_AGREEMENT:.0%}")
    if problems:
        raise FacerecError("measured MediaPipe flip permutation fails its checks: " + "; ".join(problems))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "data" / "lfw")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    extractor = MediaPipeExtractor(max_num_faces=2)
    try:
        pairs = frontal_pairs(args.lfw, args.images, extractor)
    finally:
        extractor.close()
    cost = match_cost(pairs)
    perm = involution(cost)
    check(perm)
    matched = cost[np.arange(len(perm)), perm]
    log.info("matched %d points over %d images: residual / eye span median %.4f, max %.4f; "
             "%d self-paired (midline)", len(perm), len(pairs), np.median(matched), matched.max(),
             int((perm == np.arange(len(perm))).sum()))
    record = {
        "permutation": perm.tolist(),
        "method": ("Face Mesh (refine_landmarks) on near-frontal LFW faces (|yaw| <= 10 deg) and their "
                   "horizontal mirrors; mirrored points mapped back (x -> W-1-x) and matched to the "
                   "original's points by linear_sum_assignment on the symmetrised mean distance / eye "
                   "span; tools/make_mediapipe_flip.py"),
        "images": len(pairs),
        "median_residual_eye_span": round(float(np.median(matched)), 5),
        "max_residual_eye_span": round(float(matched.max()), 5),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record) + "\n")
    log.info("mesh edges mapped onto edges: %.2f%%; wrote %s", 100 * mesh_edge_agreement(perm), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
