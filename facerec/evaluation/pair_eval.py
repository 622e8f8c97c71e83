"""``eval-pairs``: any pair benchmark (LFW, CFP-FF, CFP-FP, an insightface ``.bin``) through one path.

pairs -> per-image embeddings (cached per dataset, so an interrupted run continues and CFP's two
protocols share their frontal photos) -> scores -> ``pair_benchmark_report`` -> ``<out>/pairs_<label>.json``
(one entry per benchmark, plus ``cfp_ff_minus_fp`` where both CFP protocols ran) and a ROC plot each.

Embedders:
- ``dlib``: HOG (upsample 1), then dlib's CNN detector where HOG finds nothing (profiles), then a
  fall-back box (LFW's median HOG box for LFW, else the whole image; a ``.bin`` crop is already the
  aligned face); the 5-point predictor, ``get_face_chip`` and the ResNet; Euclidean distance, no mirror.
  Its pairs are binned by MediaPipe's calibrated yaw (``pose_of_images``), as a MediaPipe run's are.
  ``workers`` > 1 (``--workers``) spreads the images over that many processes (the CNN costs 0.4-4 s a profile, by load).
- a trained run (``facerec.recognition.pair_eval.eval_pairs_run``): the benchmark's images are built into a store with the run's extractor and crop size
  (landmarks with the profile retries, alignment, heatmaps, mask) and embedded with the run's channels,
  mirror-summed; cosine. An image without landmarks keeps the features stage's centre crop (for a
  ``.bin``'s square aligned crop that is the crop itself) with empty heatmaps: counted as a fall-back.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from facerec.evaluation.benchmarks import Benchmark
from facerec.evaluation.dlib_embedder import DlibEmbedder
from facerec.evaluation.lfw import (LFW_MEDIAN_FACE_BOX, EmbeddingCache, build_lfw_store, embed_images_one_by_one,
                                   pair_yaws, score_lfw_pairs)
from facerec.evaluation.pair_report import cfp_gap, pair_benchmark_report
from facerec.evaluation.pairs import subset_pairs
from facerec.evaluation.plots import plot_roc, plot_yaw_auc

log = logging.getLogger(__name__)

DLIB_FALLBACK = frozenset({"no_face_fallback_box", "no_face_whole_image"})
YAW_FROM_DEFAULT = "mediapipe"     # whose head pose bins dlib's pairs (``pose_of_images``)
YAW_STORE_IMG_SIZE = 112           # the crop size of that store: a 112 px MediaPipe run's own benchmark store


def write_pairs_result(out: Path, label: str, reports: dict[str, dict], rocs: dict) -> Path:
    """``out/pairs_<label>.json``, ``out/roc_<benchmark>_<label>.png`` per benchmark with a ROC, and
    ``out/yaw_auc_<label>.png``: AUC by the pair's larger |yaw|, one bar per benchmark with yaw bins."""
    out.mkdir(parents=True, exist_ok=True)
    for name, roc in rocs.items():
        if roc is not None:
            plot_roc({label: (roc[0], roc[1], reports[name]["verification"]["auc"])}, out / f"roc_{name}_{label}.png",
                     title=f"{name} ROC")
    plot_yaw_auc({name: r.get("yaw_bins") for name, r in reports.items()}, out / f"yaw_auc_{label}.png", f"AUC ({label})")
    result = {"benchmarks": reports, "cfp_ff_minus_fp": cfp_gap(reports)}
    path = out / f"pairs_{label}.json"
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, path)
    return path


def log_report(name: str, label: str, report: dict) -> None:
    t, a = report["ten_fold"], report["alignment"]
    log.info("%s %s: %.2f%% +- %.2f over %d pairs; alignment %s (%d pairs touch a fall-back)", name, label,
             100 * t["mean"], 100 * t["std"], report["num_pairs"], a["images"], a["pairs_touching_fallback"])


def pose_of_images(bench: Benchmark, pairs: Sequence, keys: Sequence[str], work: Path, yaw_from: str | None
                   ) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """(yaw of each pair's first and second image, what measured it) from a ``yaw_from`` store of the images.

    Pose belongs to the photo, not to the embedder: dlib's own 68-point fit cannot read a profile (its
    yaw response peaks near 46 degrees at a true 50 and falls back towards 0 past 65, ``docs/pipeline.md``),
    so dlib's pairs are binned by MediaPipe's calibrated yaw, from the same store (same images, extractor
    and crop size) a MediaPipe run evaluated on this benchmark builds and reuses; its pairs then fall in
    the same bins as that run's. A photo without a face has no yaw and counts as unknown pose.
    """
    if yaw_from is None:
        return None, None, None
    fset, row_of = build_lfw_store(bench.images_dir, keys, work, extractor=yaw_from, img_size=YAW_STORE_IMG_SIZE)
    yaw_a, yaw_b = pair_yaws(pairs, fset, row_of)
    return yaw_a, yaw_b, f"{yaw_from} landmarks, calibrated yaw (store {fset.location})"


def eval_pairs_dlib(benchmarks: Sequence[Benchmark], out: Path | str, *, per_fold: int | None = None,
                    upsample: int = 1, metric: str = "euclidean", workers: int = 1,
                    yaw_from: str | None = YAW_FROM_DEFAULT, work: Path | str | None = None) -> dict[str, dict]:
    """dlib's embedder on each benchmark (see the module docstring); returns {benchmark: report}.

    ``workers`` > 1 embeds the images in that many processes, each loading its own dlib models (same
    results, see ``facerec.evaluation.embed_workers``). ``yaw_from`` names the extractor whose head pose
    bins the pairs by yaw (``pose_of_images``; None: no yaw bins); ``work`` holds its store (default
    ``out/work``)."""
    out = Path(out)
    work = Path(work) if work is not None else out / "work"
    reports, rocs = {}, {}
    for bench in benchmarks:
        pairs = subset_pairs(bench.pairs, per_fold)
        keys = sorted({p.path_a for p in pairs} | {p.path_b for p in pairs})
        box = LFW_MEDIAN_FACE_BOX if bench.dataset == "lfw" else None
        make_embedder = partial(DlibEmbedder, upsample=upsample, fallback_box=box, cnn_fallback=True)
        cache = EmbeddingCache(out / f"embeddings-{bench.dataset}-dlib-up{upsample}-cnn.npz")
        embed_images_one_by_one(bench.images_dir, keys, cache, make_embedder, workers=workers)
        yaw_a, yaw_b, yaw_source = pose_of_images(bench, pairs, keys, work, yaw_from)
        report, roc = pair_benchmark_report(pairs, score_lfw_pairs(pairs, cache.vectors, metric),
                                            {k: cache.how[k] for k in keys}, DLIB_FALLBACK, yaw_a, yaw_b)
        report.update({"embedder": "dlib", "metric": metric, "mirror": False, "upsample": upsample,
                       "cnn_fallback": True, "fallback_box": "lfw_median_hog_box" if box else "whole_image",
                       "pairs_per_fold_half": per_fold, "images_dir": str(bench.images_dir),
                       "yaw_source": yaw_source})
        reports[bench.name], rocs[bench.name] = report, roc
        log_report(bench.name, "dlib", report)
    write_pairs_result(out, "dlib", reports, rocs)
    return reports
