"""A trained run on any pair benchmark (``eval-pairs --run``): LFW, CFP-FF, CFP-FP, an insightface ``.bin``.

The benchmark's images are built into a store with the run's extractor and crop size (landmarks with
the profile retries, alignment, heatmaps, mask; the store is the feature cache and is reused), read
with the run's channels and embedded mirror-summed (``facerec.recognition.lfw.embed_store_images``),
scored by cosine, and reported by ``facerec.evaluation.pair_report`` with yaw bins from MediaPipe's
calibrated pose (``yaw_from``): the run's own store when the run uses MediaPipe, else a MediaPipe store of
the same images (``facerec.evaluation.pair_eval.pose_of_images``), so runs of either extractor and the
dlib reference put every pair in the same bin. An image without landmarks keeps the features stage's centre crop with empty heatmaps (for a
``.bin``'s square aligned crop that is the crop itself), counted as ``no_face_centre_crop``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from facerec.errors import ConfigError
from facerec.evaluation.benchmarks import Benchmark
from facerec.evaluation.lfw import EmbeddingCache, build_lfw_store, pair_yaws, score_lfw_pairs
from facerec.evaluation.pair_eval import YAW_FROM_DEFAULT, log_report, pose_of_images, write_pairs_result
from facerec.evaluation.pair_report import pair_benchmark_report
from facerec.evaluation.pairs import subset_pairs
from facerec.recognition.inference import load_run
from facerec.recognition.lfw import embed_store_images

log = logging.getLogger(__name__)

RUN_FALLBACK = frozenset({"no_face_centre_crop"})


def eval_pairs_run(benchmarks: Sequence[Benchmark], run_dir: Path | str, out: Path | str | None = None, *,
                   work: Path | str | None = None, per_fold: int | None = None, device: str = "auto",
                   checkpoint: str = "last.pt", batch_size: int = 64,
                   yaw_from: str | None = YAW_FROM_DEFAULT) -> dict[str, dict]:
    """Each benchmark through the run's data path; writes ``out/pairs_<run>.json``; returns {benchmark: report}.

    ``out`` defaults to ``RUN/pairs``; ``work`` (ImageFolders of symlinks and their stores) to ``out/work``;
    ``yaw_from`` names the extractor whose pose bins the pairs (None: no yaw bins).
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "pairs"
    work = Path(work) if work is not None else out / "work"
    loaded = load_run(run_dir, checkpoint, device)
    cfg, state = loaded.config, loaded.state
    if cfg.extractor is None:
        raise ConfigError(f"{run_dir}/config.json names no extractor; retrain the run with this facerec")
    label, step = run_dir.name, state["loop"]["step"]
    reports, rocs = {}, {}
    for bench in benchmarks:
        pairs = subset_pairs(bench.pairs, per_fold)
        keys = sorted({p.path_a for p in pairs} | {p.path_b for p in pairs})
        fset, row_of = build_lfw_store(bench.images_dir, keys, work, extractor=cfg.extractor,
                                       img_size=state["model_spec"]["img_size"])
        cache = EmbeddingCache(out / f"embeddings-{bench.dataset}-{label}-{checkpoint.removesuffix('.pt')}-step{step}.npz")
        todo = [k for k in keys if k not in cache]
        if todo:
            vectors, how = embed_store_images(loaded, fset, row_of, todo, batch_size=batch_size)
            for k in todo:
                cache.put(k, vectors[k], how[k])
            cache.save()
        if yaw_from == cfg.extractor:
            yaw_a, yaw_b = pair_yaws(pairs, fset, row_of)
            yaw_source = f"{yaw_from} landmarks, calibrated yaw (the run's store)"
        else:
            yaw_a, yaw_b, yaw_source = pose_of_images(bench, pairs, keys, work, yaw_from)
        report, roc = pair_benchmark_report(pairs, score_lfw_pairs(pairs, cache.vectors, "cosine"),
                                            {k: cache.how[k] for k in keys}, RUN_FALLBACK, yaw_a, yaw_b)
        report.update({"embedder": f"run:{run_dir}", "checkpoint": checkpoint, "step": step, "metric": "cosine",
                       "mirror": True, "store": str(fset.location), "prealigned": bench.prealigned,
                       "pairs_per_fold_half": per_fold, "images_dir": str(bench.images_dir), "yaw_source": yaw_source})
        reports[bench.name], rocs[bench.name] = report, roc
        log_report(bench.name, label, report)
    write_pairs_result(out, label, reports, rocs)
    return reports
