"""Detection and |yaw| on CFP frontal / profile photos, LFW, and aligned 112 px crops, before and after.

    python -m benchmarks.bench_pose [--extractors mediapipe dlib] [--profile-step 4] [--frontal-step 10]
                                    [--lfw-images 300] [--crops 200]

Per extractor, on every image of each set, the extractor of this branch runs once:
- "before" is the path main had: the first detection pass only (MediaPipe's own graph; dlib's HOG) and
  the six-point ``solvePnP`` pose; it is read off the same run, because the first pass is unchanged and
  the retries run only where it found nothing (``FaceLandmarks.detector`` says which path found a face);
- "rigid" is every found face (retries included) with the rigid fit alone (``raw_face_pose``: MediaPipe's
  3-D mesh fit, dlib's six-point fit), the pose main recorded before the yaw gain;
- "after" adds the retries (MediaPipe's crop retries, dlib's CNN) and the pipeline's pose
  (``estimate_face_pose``: the rigid fit with the yaw gain measured on rendered LFW faces).
Sets: CFP frontal and profile photos (every ``--*-step``-th, in sorted order), ``--lfw-images`` LFW
images (first image of identities spread evenly), and ``--crops`` 112 px crops made from further LFW
images by the pipeline's own alignment (MediaPipe points -> 5-point ArcFace template), the kind of
image an insightface ``.bin`` holds, plus the real ``small_lfw.bin``'s 20 crops.
Writes ``benchmarks/results/pose_<extractor>.json``: found counts by detector, |yaw| percentiles
(before, rigid, after) and
bin counts (0-15, ..., 60-75, 75+), seconds per image of each pass, and the machine with its load.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.common import machine_info, print_table, write_result
from facerec.geometry.landmark_sets import landmark_set
from facerec.geometry.face_pose import estimate_face_pose, raw_face_pose
from facerec.geometry.pose import estimate_head_pose
from facerec.geometry.yaw_bins import YAW_BIN_EDGES, bin_name
from facerec.pipeline.decode import decode_rgb

log = logging.getLogger("bench_pose")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PRIMARY = {"mediapipe": "blazeface", "dlib": "hog"}


def cfp_files(cfp: Path, kind: str, step: int) -> list[Path]:
    return sorted((cfp / "cfp-dataset" / "Data" / "Images").glob(f"*/{kind}/*.jpg"))[::step]


def lfw_files(lfw: Path, n: int, offset: int = 0) -> list[Path]:
    people = sorted(p for p in (lfw / "lfw-deepfunneled").iterdir() if p.is_dir())
    step = max(1, len(people) // n)
    return [sorted(p.glob("*.jpg"))[0] for p in people[offset::step][:n]]


def aligned_crops(lfw: Path, n: int, small_bin: Path) -> list[np.ndarray]:
    """112 px crops aligned by the pipeline (MediaPipe, first pass) from LFW, plus small_lfw.bin's."""
    from facerec.evaluation.insightface_bin import read_bin
    from facerec.geometry.alignment import align_face
    from facerec.pipeline.extractors.mediapipe_mesh import MediaPipeExtractor

    extractor, crops = MediaPipeExtractor(retry=False), []
    for path in lfw_files(lfw, n, offset=1):
        rgb = decode_rgb(path.read_bytes())
        face = extractor.extract(rgb)
        if face is not None:
            crops.append(np.ascontiguousarray(align_face(rgb, face.points, landmark_set("mediapipe"), 112)[0].transpose(1, 2, 0)))
    extractor.close()
    if small_bin.is_file():
        crops += [decode_rgb(b) for b in read_bin(small_bin).images]
    return crops


def yaw_summary(yaws: list[float]) -> dict:
    a = np.abs(np.asarray([y for y in yaws if np.isfinite(y)], dtype=np.float64))
    if not len(a):
        return {"n": 0}
    return {"n": int(len(a)), "p10": round(float(np.percentile(a, 10)), 1), "median": round(float(np.median(a)), 1),
            "p90": round(float(np.percentile(a, 90)), 1), "max": round(float(a.max()), 1),
            "bins": {bin_name(lo, hi): int(((a >= lo) & (a < hi)).sum()) for lo, hi in YAW_BIN_EDGES}}


def run_set(name: str, images, extractor) -> dict:
    """One set through one extractor: counts, |yaw| before/after, seconds per pass."""
    lset = landmark_set(extractor.name)
    found, yaw_before, yaw_rigid, yaw_after = Counter(), [], [], []
    seconds = Counter()
    for item in images:
        rgb = decode_rgb(item.read_bytes()) if isinstance(item, Path) else item
        h, w = rgb.shape[:2]
        t0 = time.perf_counter()
        face = extractor.extract(rgb)
        dt = time.perf_counter() - t0
        kind = "none" if face is None else face.detector
        found[kind] += 1
        seconds["primary" if kind == PRIMARY[extractor.name] else "retried"] += dt
        if face is None:
            continue
        yaw_after.append(estimate_face_pose(face.points, lset, w, h, face.depth)[0])
        yaw_rigid.append(raw_face_pose(face.points, lset, w, h, face.depth)[0])
        if face.detector == PRIMARY[extractor.name]:
            yaw_before.append(estimate_head_pose(face.points, lset, w, h)[0])
    n = len(images)
    primary = found[PRIMARY[extractor.name]]
    n_retried = n - primary
    return {
        "set": name, "images": n, "found_by": dict(found),
        "found_before": primary, "found_after": n - found["none"],
        "rate_before": round(primary / n, 4) if n else None, "rate_after": round((n - found["none"]) / n, 4) if n else None,
        "abs_yaw_before": yaw_summary(yaw_before),
        "abs_yaw_rigid": yaw_summary(yaw_rigid), "abs_yaw_after": yaw_summary(yaw_after),
        "s_per_image_first_pass_found": round(seconds["primary"] / primary, 4) if primary else None,
        "s_per_image_retried": round(seconds["retried"] / n_retried, 4) if n_retried else None,
    }


def make_extractor(name: str):
    from facerec.pipeline.extractors.base import create_extractor

    return create_extractor(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--extractors", nargs="+", default=["mediapipe", "dlib"], choices=["mediapipe", "dlib"])
    ap.add_argument("--cfp", type=Path, default=DATA / "cfp")
    ap.add_argument("--lfw", type=Path, default=DATA / "lfw")
    ap.add_argument("--bin", type=Path, default=DATA / "insightface-bin" / "small_lfw.bin")
    ap.add_argument("--profile-step", type=int, default=4, help="every N-th CFP profile photo (1: all 2,000)")
    ap.add_argument("--frontal-step", type=int, default=10, help="every N-th CFP frontal photo (1: all 5,000)")
    ap.add_argument("--lfw-images", type=int, default=300)
    ap.add_argument("--crops", type=int, default=200, help="aligned 112 px LFW crops (plus small_lfw.bin's 20)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    crops = aligned_crops(args.lfw, args.crops, args.bin)
    sets = [("cfp_frontal", cfp_files(args.cfp, "frontal", args.frontal_step)),
            ("cfp_profile", cfp_files(args.cfp, "profile", args.profile_step)),
            ("lfw", lfw_files(args.lfw, args.lfw_images)), ("aligned_112_crops", crops)]
    for name in args.extractors:
        machine_before = machine_info()
        extractor = make_extractor(name)
        rows = []
        for set_name, images in sets:
            log.info("%s on %s (%d images)", name, set_name, len(images))
            rows.append(run_set(set_name, images, extractor))
        extractor.close()
        result = {"extractor": name, "args": {k: str(v) for k, v in vars(args).items()}, "sets": rows,
                  "machine_at_start": machine_before, "machine": machine_info(),
                  "note": "shared 2-core machine; seconds are noisy, counts and angles are not"}
        write_result(f"pose_{name}", result)
        print_table(f"{name}: detection and |yaw| (before -> after)", [
            {"set": r["set"], "images": r["images"], "found before": r["found_before"], "found after": r["found_after"],
             "|yaw| median before": r["abs_yaw_before"].get("median"), "rigid": r["abs_yaw_rigid"].get("median"),
             "|yaw| median after": r["abs_yaw_after"].get("median"), "p90 after": r["abs_yaw_after"].get("p90")}
            for r in rows])


if __name__ == "__main__":
    main()
