"""Write facerec/geometry/data/pose_calibration.json: each extractor's yaw response to known yaw.

Near-frontal LFW faces (pipeline |yaw| under ``--max-start`` degrees, one image per identity, spread over
the sorted identities) are re-rendered at known yaws by ``facerec.geometry.face_render`` (their own
MediaPipe mesh, textured with the photo), each extractor finds landmarks on the renders, and the
pipeline's raw pose (``face_pose.raw_face_pose``) is read. Per extractor the file holds the median
measured yaw per true yaw, the knots of the response curve up to ``--fit-max`` degrees (where a render
still looks like a head; see ``face_render``): (0, 0) and (median measured, true) at each true yaw,
kept where the measured median rises, and the gain: the least-squares slope through the origin of
true on measured yaw over those renders, the slope the inverse continues at past the last knot.
No CFP photo is used: CFP is the benchmark the pose is checked on.

    .venv/bin/python tools/make_pose_calibration.py --faces 30 --dlib-faces 10
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facerec.geometry.face_pose import CALIBRATION_FILE, raw_face_pose  # noqa: E402
from facerec.geometry.face_render import render_at_yaw  # noqa: E402
from facerec.geometry.landmark_sets import landmark_set  # noqa: E402
from facerec.pipeline.decode import decode_rgb  # noqa: E402
from facerec.pipeline.extractors.base import create_extractor  # noqa: E402

log = logging.getLogger("make_pose_calibration")


def frontal_faces(lfw: Path, wanted: int, max_start: float, skip: int = 0):
    """(rgb, MediaPipe face) of near-frontal LFW photos, one per identity, up to ``wanted``."""
    mp, lset, found = create_extractor("mediapipe"), landmark_set("mediapipe"), []
    people = sorted(p for p in (lfw / "lfw-deepfunneled").iterdir() if p.is_dir())
    for person in people[skip::7]:
        rgb = decode_rgb(sorted(person.glob("*.jpg"))[0].read_bytes())
        face = mp.extract(rgb)
        if face is not None and abs(raw_face_pose(face.points, lset, rgb.shape[1], rgb.shape[0], face.depth)[0]) < max_start:
            found.append((rgb, face))
            if len(found) == wanted:
                break
    mp.close()
    return found


def response(name: str, faces, yaws) -> np.ndarray:
    """[N, 2] (true yaw, measured yaw; NaN where no face was found) over faces x yaws x both sides."""
    extractor, lset, rows = create_extractor(name), landmark_set(name), []
    for rgb, face in faces:
        for yaw in yaws:
            for sign in (1.0, -1.0) if yaw else (1.0,):
                image = render_at_yaw(rgb, face.points, face.depth, sign * yaw)
                got = extractor.extract(image)
                measured = np.nan if got is None else raw_face_pose(got.points, lset, image.shape[1], image.shape[0], got.depth)[0]
                rows.append((sign * yaw, measured))
        log.info("%s: %d renders", name, len(rows))
    extractor.close()
    return np.asarray(rows, dtype=np.float64)


def knots(table: dict, fit_max: float) -> list[list[float]]:
    """[[measured, true], ...]: (0, 0), then each true yaw up to fit_max whose median measured yaw rises."""
    out = [[0.0, 0.0]]
    for key, entry in table.items():
        true, measured = float(key), entry["median_measured"]
        if 0 < true <= fit_max and measured is not None and measured > out[-1][0]:
            out.append([measured, true])
    return out


def summary(rows: np.ndarray, fit_max: float) -> dict:
    ok = np.isfinite(rows[:, 1])
    fit = ok & (np.abs(rows[:, 0]) <= fit_max)
    true, measured = rows[fit, 0], rows[fit, 1]
    gain = float((true * measured).sum() / (measured * measured).sum())
    table = {}
    for yaw in sorted({abs(t) for t in rows[:, 0]}):
        m = np.abs(rows[:, 0]) == yaw
        signed = np.sign(rows[m, 0] + 1e-12) * rows[m, 1]
        table[f"{yaw:g}"] = {"renders": int(m.sum()), "found": int(np.isfinite(signed).sum()),
                             "median_measured": round(float(np.nanmedian(signed)), 2) if np.isfinite(signed).any() else None}
    residual = true - gain * measured
    return {"gain": round(gain, 4), "knots": knots(table, fit_max), "fit_renders": int(fit.sum()), "fit_max_yaw": fit_max,
            "rms_error_after_gain": round(float(np.sqrt((residual ** 2).mean())), 2),
            "rms_error_before": round(float(np.sqrt(((true - measured) ** 2).mean())), 2), "by_true_yaw": table}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "data" / "lfw")
    ap.add_argument("--faces", type=int, default=30, help="near-frontal LFW faces rendered for MediaPipe")
    ap.add_argument("--dlib-faces", type=int, default=10, help="of those, rendered for dlib (its CNN retry is slow)")
    ap.add_argument("--max-start", type=float, default=5.0, help="|yaw| limit of a face to be rendered")
    ap.add_argument("--fit-max", type=float, default=50.0, help="largest true |yaw| the gain is fitted on")
    ap.add_argument("--step", type=int, default=5)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    faces = frontal_faces(args.lfw, args.faces, args.max_start)
    yaws = list(range(0, 91, args.step))
    out = {"source": f"{len(faces)} near-frontal LFW faces re-rendered at yaw 0..90 step {args.step} "
                     f"(tools/make_pose_calibration.py {' '.join(sys.argv[1:])})",
           "note": "knots: [median measured, true] yaw up to fit_max_yaw, the response face_pose inverts; gain: "
                   "least-squares slope of true on measured yaw up to fit_max_yaw, the inverse's slope past the "
                   "last knot; renders past about 50 degrees lack the ears and hair a head shows, so only the "
                   "table (by_true_yaw) reports them"}
    for name, n in (("mediapipe", len(faces)), ("dlib", args.dlib_faces)):
        if n:
            out[name] = summary(response(name, faces[:n], yaws), args.fit_max)
            log.info("%s: gain %.3f", name, out[name]["gain"])
    CALIBRATION_FILE.write_text(json.dumps(out, indent=1) + "\n")
    log.info("wrote %s", CALIBRATION_FILE)


if __name__ == "__main__":
    main()
