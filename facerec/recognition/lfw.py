"""A trained run on LFW View 2: the pairs' images go through exactly the training data path.

An ImageFolder of symlinks is built into an LFW store with the run's extractor and crop size
(``facerec.evaluation.lfw.build_lfw_store``), its rows are read with the run's input channels
(``LoadedRun.reader``) and embedded with the mirror convention; the protocol, caches and report are
``facerec.evaluation.lfw``'s, shared with the dlib reference.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facerec.errors import ConfigError
from facerec.evaluation.lfw import (EmbeddingCache, build_lfw_store, lfw_images_dir, pair_images, read_pairs,
                                    run_lfw_report, subset_pairs, write_lfw_result)
from facerec.recognition.inference import LoadedRun, embed_dataset, load_run

log = logging.getLogger(__name__)


def embed_store_images(loaded: LoadedRun, fset, row_of: dict[str, int], relpaths: Sequence[str], *,
                       batch_size: int = 64) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Mirrored embeddings of store images with the run's input channels (``loaded``: a
    ``facerec.recognition.inference.LoadedRun``); returns ({path: vector}, {path: "aligned" | "no_face_centre_crop"})."""
    dataset = loaded.reader(fset, np.unique([row_of[r] for r in relpaths]))
    rows, emb = embed_dataset(loaded.model, dataset, loaded.device, batch_size=batch_size, amp_dtype=loaded.amp_dtype)
    by_row = {int(r): e for r, e in zip(rows, emb)}
    vectors = {rel: by_row[row_of[rel]] for rel in relpaths}
    how = {rel: "aligned" if fset.valid[row_of[rel]] else "no_face_centre_crop" for rel in relpaths}
    return vectors, how



def eval_lfw_run(lfw_dir: Path | str, run_dir: Path | str, *, out: Path | str | None = None,
                 work: Path | str | None = None, pairs_file: Path | str | None = None, per_fold: int | None = None,
                 device: str = "auto", checkpoint: str = "last.pt", batch_size: int = 64) -> dict:
    """A trained run on LFW View 2 (see the module docstring); writes ``out/lfw_<run>.json`` and the ROC.

    ``out`` defaults to ``RUN/lfw``; ``work`` (the LFW ImageFolder of symlinks and its store) to ``out/work``.
    """
    lfw_dir, run_dir = Path(lfw_dir), Path(run_dir)
    out = Path(out) if out is not None else run_dir / "lfw"
    loaded = load_run(run_dir, checkpoint, device)
    cfg, state = loaded.config, loaded.state
    if cfg.extractor is None:
        raise ConfigError(f"{run_dir}/config.json names no extractor; retrain the run with this facerec")
    pairs = subset_pairs(read_pairs(pairs_file or lfw_dir / "pairs.txt"), per_fold)
    images = lfw_images_dir(lfw_dir)
    needed = pair_images(pairs)
    fset, row_of = build_lfw_store(images, needed, Path(work) if work is not None else out / "work",
                                   extractor=cfg.extractor, img_size=state["model_spec"]["img_size"])
    label = run_dir.name
    cache = EmbeddingCache(out / f"embeddings-{label}-{checkpoint.removesuffix('.pt')}-step{state['loop']['step']}.npz")
    todo = [rel for rel in needed if rel not in cache]
    if todo:
        vectors, how = embed_store_images(loaded, fset, row_of, todo, batch_size=batch_size)
        for rel in todo:
            cache.put(rel, vectors[rel], how[rel])
        cache.save()
    report, roc = run_lfw_report(pairs, cache.vectors, fset, row_of)
    faces = dict(Counter(cache.how[rel] for rel in needed))
    report.update({"embedder": f"run:{run_dir}", "checkpoint": checkpoint, "step": state["loop"]["step"],
                   "metric": "cosine", "mirror": True, "num_pairs": len(pairs), "num_images": len(needed),
                   "faces": faces, "store": str(fset.location), "pairs_per_fold_half": per_fold, "lfw_dir": str(lfw_dir)})
    write_lfw_result(out, report, roc, label)
    t = report["ten_fold"]
    log.info("LFW %s: %.2f%% +- %.2f, AUC %.4f (%d pairs; %s)", label, 100 * t["mean"], 100 * t["std"],
             report["verification"]["auc"], len(pairs), faces)
    return report
