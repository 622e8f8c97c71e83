"""``eval-pairs``: any pair benchmark (LFW, CFP-FF, CFP-FP, an insightface ``.bin``) through one path.

pairs -> per-image embeddings (cached per dataset, so an interrupted run continues and CFP's two
protocols share their frontal photos) -> scores -> ``pair_benchmark_report`` -> ``<out>/pairs_<label>.json``
(one entry per benchmark, plus ``cfp_ff_minus_fp`` where both CFP protocols ran) and a ROC plot each.

Embedders:
- ``dlib``: HOG (upsample 1), then dlib's CNN detector where HOG finds nothing (profiles), then a
  fall-back box (LFW's median HOG box for LFW, else the whole image; a ``.bin`` crop is already the
  aligned face); the 5-point predictor, ``get_face_chip`` and the ResNet; Euclidean distance, no mirror.
- a trained run: the benchmark's images are built into a store with the run's extractor and crop size
  (landmarks with the profile retries, alignment, heatmaps, mask) and embedded with the run's channels,
  mirror-summed; cosine. An image without landmarks keeps the features stage's centre crop (for a
  ``.bin``'s square aligned crop that is the crop itself) with empty heatmaps: counted as a fall-back.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facerec.errors import ConfigError
from facerec.evaluation.benchmarks import Benchmark
from facerec.evaluation.pair_report import cfp_gap, pair_benchmark_report

log = logging.getLogger(__name__)

DLIB_FALLBACK = frozenset({"no_face_fallback_box", "no_face_whole_image"})
RUN_FALLBACK = frozenset({"no_face_centre_crop"})


def score_pairs(pairs: Sequence, vectors: dict[str, np.ndarray], metric: str) -> np.ndarray:
    """One score per pair, higher = more alike: cosine similarity or minus the Euclidean distance."""
    from facerec.model.lfw import score_lfw_pairs

    return score_lfw_pairs(pairs, vectors, metric)


def write_pairs_result(out: Path, label: str, reports: dict[str, dict], rocs: dict) -> Path:
    """``out/pairs_<label>.json`` and ``out/roc_<benchmark>_<label>.png`` per benchmark with a ROC."""
    from facerec.model.plots import plot_roc

    out.mkdir(parents=True, exist_ok=True)
    for name, roc in rocs.items():
        if roc is not None:
            plot_roc({label: (roc[0], roc[1], reports[name]["verification"]["auc"])}, out / f"roc_{name}_{label}.png",
                     title=f"{name} ROC")
    result = {"benchmarks": reports, "cfp_ff_minus_fp": cfp_gap(reports)}
    path = out / f"pairs_{label}.json"
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, path)
    return path


def _log_report(name: str, label: str, report: dict) -> None:
    t, a = report["ten_fold"], report["alignment"]
    log.info("%s %s: %.2f%% +- %.2f over %d pairs; alignment %s (%d pairs touch a fall-back)", name, label,
             100 * t["mean"], 100 * t["std"], report["num_pairs"], a["images"], a["pairs_touching_fallback"])


def eval_pairs_dlib(benchmarks: Sequence[Benchmark], out: Path | str, *, per_fold: int | None = None,
                    upsample: int = 1, metric: str = "euclidean") -> dict[str, dict]:
    """dlib's embedder on each benchmark (see the module docstring); returns {benchmark: report}."""
    from facerec.evaluation.pairs import subset_pairs
    from facerec.model.dlib_embedder import DlibEmbedder
    from facerec.model.lfw import LFW_MEDIAN_FACE_BOX, EmbeddingCache, embed_images_one_by_one

    out = Path(out)
    reports, rocs = {}, {}
    for bench in benchmarks:
        pairs = subset_pairs(bench.pairs, per_fold)
        keys = sorted({p.path_a for p in pairs} | {p.path_b for p in pairs})
        box = LFW_MEDIAN_FACE_BOX if bench.dataset == "lfw" else None
        embedder = DlibEmbedder(upsample=upsample, fallback_box=box, cnn_fallback=True)
        cache = EmbeddingCache(out / f"embeddings-{bench.dataset}-dlib-up{upsample}-cnn.npz")
        embed_images_one_by_one(bench.images_dir, keys, cache, embedder.embed)
        report, roc = pair_benchmark_report(pairs, score_pairs(pairs, cache.vectors, metric),
                                            {k: cache.how[k] for k in keys}, DLIB_FALLBACK)
        report.update({"embedder": "dlib", "metric": metric, "mirror": False, "upsample": upsample,
                       "cnn_fallback": True, "fallback_box": "lfw_median_hog_box" if box else "whole_image",
                       "pairs_per_fold_half": per_fold, "images_dir": str(bench.images_dir)})
        reports[bench.name], rocs[bench.name] = report, roc
        _log_report(bench.name, "dlib", report)
    write_pairs_result(out, "dlib", reports, rocs)
    return reports


def eval_pairs_run(benchmarks: Sequence[Benchmark], run_dir: Path | str, out: Path | str | None = None, *,
                   work: Path | str | None = None, per_fold: int | None = None, device: str = "auto",
                   checkpoint: str = "last.pt", batch_size: int = 64) -> dict[str, dict]:
    """A trained run on each benchmark through the training data path; returns {benchmark: report}."""
    from facerec.devices import resolve_device
    from facerec.evaluation.pairs import subset_pairs
    from facerec.model.evaluate import load_recognizer
    from facerec.model.lfw import EmbeddingCache, build_lfw_store, embed_store_images, pair_yaws
    from facerec.model.runs import RunFolder
    from facerec.model.train_recognizer import TrainConfig

    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "pairs"
    work = Path(work) if work is not None else out / "work"
    run = RunFolder(run_dir, resume=True)
    cfg = TrainConfig.from_dict(run.load_config())
    if cfg.extractor is None:
        raise ConfigError(f"{run_dir}/config.json names no extractor; retrain the run with this facerec")
    dev = resolve_device(device)
    model, state = load_recognizer(run, checkpoint, dev)
    label = run_dir.name
    reports, rocs = {}, {}
    for bench in benchmarks:
        pairs = subset_pairs(bench.pairs, per_fold)
        keys = sorted({p.path_a for p in pairs} | {p.path_b for p in pairs})
        fset, row_of = build_lfw_store(bench.images_dir, keys, work, extractor=cfg.extractor,
                                       img_size=state["model_spec"]["img_size"])
        cache = EmbeddingCache(out / f"embeddings-{bench.dataset}-{label}-{checkpoint.removesuffix('.pt')}"
                                     f"-step{state['loop']['step']}.npz")
        todo = [k for k in keys if k not in cache]
        if todo:
            vectors, how = embed_store_images(model, cfg, fset, row_of, todo, dev, batch_size=batch_size)
            for k in todo:
                cache.put(k, vectors[k], how[k])
            cache.save()
        yaw_a, yaw_b = pair_yaws(pairs, fset, row_of)
        report, roc = pair_benchmark_report(pairs, score_pairs(pairs, cache.vectors, "cosine"),
                                            {k: cache.how[k] for k in keys}, RUN_FALLBACK, yaw_a, yaw_b)
        report.update({"embedder": f"run:{run_dir}", "checkpoint": checkpoint, "step": state["loop"]["step"],
                       "metric": "cosine", "mirror": True, "store": str(fset.location), "prealigned": bench.prealigned,
                       "pairs_per_fold_half": per_fold, "images_dir": str(bench.images_dir)})
        reports[bench.name], rocs[bench.name] = report, roc
        _log_report(bench.name, label, report)
    write_pairs_result(out, label, reports, rocs)
    run.close()
    return reports
