"""A trained run beside dlib's pretrained embedder, on exactly the pairs the run was evaluated on.

``evaluate_run`` leaves the scored pairs in ``RUN/eval_pairs.npz`` (store rows, same/different, fold,
the run's cosine score). ``compare_with_dlib`` embeds the original source image of every row in those
pairs with ``facerec.evaluation.dlib_embedder.DlibEmbedder`` (as ``eval-pairs --embedder dlib`` does:
HOG, then the CNN detector, then the whole image; Euclidean distance, no mirror), and puts both
models through one report function (``pair_benchmark_report``: 10-fold accuracy on the same folds,
AUC, TAR at FAR, EER, yaw bins with the store's yaw, and how every image was aligned). It writes
``RUN/reference_dlib.json`` and, in ``RUN/plots/``, both ROC curves in one plot and AUC by |yaw| bin.

dlib sees the source photo, the run sees its aligned crop: each model gets the input it was built for.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from facerec.errors import StoreError
from facerec.evaluation.pair_eval import DLIB_FALLBACK
from facerec.evaluation.pair_report import pair_benchmark_report
from facerec.evaluation.pairs import VerificationPair
from facerec.evaluation.plots import plot_roc, plot_yaw_auc
from facerec.recognition.evaluate import PAIRS_FILE, load_pairs
from facerec.store.fs import resolve, write_json_atomic
from facerec.store.open_store import open_feature_set
from facerec.training.runs import CONFIG_FILE, REFERENCE_FILE, RunFolder

log = logging.getLogger(__name__)

RUN_LABEL = "this run"
DLIB_LABEL = "dlib ResNet"
RUN_FALLBACK = frozenset({"no_face_centre_crop"})   # the features stage's centre crop where no face was found
ROC_PLOT, YAW_PLOT = "roc_vs_dlib", "yaw_auc_vs_dlib"


def source_images(store: str, sample_ids: list[str]) -> dict[str, bytes]:
    """The original encoded bytes of the given samples, from the store's samples table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from facerec.schemas import tables
    from facerec.store.layout import StoreLayout
    from facerec.store.summary import read_columns

    table = read_columns(StoreLayout.at(store).samples, tables.SAMPLES, ["sample_id", "image"])
    table = table.filter(pc.is_in(table.column("sample_id"), value_set=pa.array(sample_ids)))
    found = dict(zip(table.column("sample_id").to_pylist(), table.column("image").to_pylist()))
    missing = [s for s in sample_ids if found.get(s) is None]
    if missing:
        raise StoreError(f"{store}: the samples table holds no image for {len(missing)} of the pairs' samples "
                         f"(first {missing[0]}); was the store rebuilt after the run was evaluated?")
    return found


def embed_with_dlib(images: dict[str, bytes], upsample: int = 1) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """dlib descriptors of encoded images, and how each face box was found."""
    from tqdm.auto import tqdm

    from facerec.evaluation.dlib_embedder import DlibEmbedder
    from facerec.pipeline.decode import decode_rgb

    embedder = DlibEmbedder(upsample=upsample, cnn_fallback=True)
    vectors, how = {}, {}
    for key, data in tqdm(sorted(images.items()), desc="dlib embeddings", disable=None):
        vectors[key], how[key] = embedder.embed(decode_rgb(data))
    return vectors, how


def side_by_side(keys: list[VerificationPair], run_scores: np.ndarray, dlib_scores: np.ndarray,
                 run_how: dict[str, str], dlib_how: dict[str, str], yaw_a: np.ndarray, yaw_b: np.ndarray
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both models through ``pair_benchmark_report`` on the same pairs and folds; (result, ROC points per model)."""
    run_report, run_roc = pair_benchmark_report(keys, run_scores, run_how, RUN_FALLBACK, yaw_a, yaw_b)
    dlib_report, dlib_roc = pair_benchmark_report(keys, dlib_scores, dlib_how, DLIB_FALLBACK, yaw_a, yaw_b)
    result = {"num_pairs": len(keys), "models": {
        RUN_LABEL: {**run_report, "embedder": "trained run", "metric": "cosine", "mirror": True,
                    "input": "aligned crop"},
        DLIB_LABEL: {**dlib_report, "embedder": "dlib", "metric": "euclidean", "mirror": False,
                     "input": "source photo"},
    }}
    return result, {RUN_LABEL: run_roc, DLIB_LABEL: dlib_roc}


def write_reference(run_path: Path, result: dict[str, Any], rocs: dict[str, Any]) -> dict[str, Any]:
    """RUN/reference_dlib.json, both ROC curves in one plot and AUC by |yaw| for both; returns the result."""
    run = RunFolder(run_path, resume=True)
    models = result["models"]
    plots = []
    if all(roc is not None for roc in rocs.values()):
        plots.append(plot_roc({label: (*rocs[label], models[label]["verification"]["auc"]) for label in models},
                              run.plot_path(ROC_PLOT), title="Held-out pairs: this run and dlib"))
    # both models are binned by the same store yaw: both have bins or neither has
    yaw_plot = plot_yaw_auc({label: rep["yaw_bins"] for label, rep in models.items()}, run.plot_path(YAW_PLOT))
    if yaw_plot is not None:
        plots.append(yaw_plot)
    result["plots"] = [str(p.relative_to(run.path)) for p in plots]
    write_json_atomic(result, resolve(str(run.path / REFERENCE_FILE)), default=float)
    run.close()
    return result


def compare_with_dlib(run_dir: Path | str, store: str | None = None, *, upsample: int = 1) -> dict[str, Any]:
    """Score dlib on the run's evaluation pairs; writes RUN/reference_dlib.json and two plots; returns it."""
    import json

    run_path = Path(run_dir)
    config = json.loads((run_path / CONFIG_FILE).read_text())
    pairs = load_pairs(run_path / PAIRS_FILE)
    store = store or config["store"]
    fset = open_feature_set(store, config.get("extractor"), config.get("img_size"))
    rows = np.unique(np.r_[pairs["row_a"], pairs["row_b"]])
    index = fset.index.set_index("row")
    sample_of = {int(r): str(index.at[int(r), "sample_id"]) for r in rows}

    t0 = time.perf_counter()
    images = source_images(store, sorted(set(sample_of.values())))
    vectors, dlib_how = embed_with_dlib(images, upsample)
    seconds = time.perf_counter() - t0

    keys = [VerificationPair(str(a), str(b), bool(s), int(f))
            for a, b, s, f in zip(pairs["row_a"], pairs["row_b"], pairs["same"], pairs["fold"])]
    a = np.stack([vectors[sample_of[int(r)]] for r in pairs["row_a"]]).astype(np.float64)
    b = np.stack([vectors[sample_of[int(r)]] for r in pairs["row_b"]]).astype(np.float64)
    yaw = fset.pose[:, 0]
    result, rocs = side_by_side(
        keys, pairs["score"], -np.linalg.norm(a - b, axis=1),
        {str(r): "aligned" if fset.valid[int(r)] else "no_face_centre_crop" for r in rows},
        {str(r): dlib_how[sample_of[int(r)]] for r in rows}, yaw[pairs["row_a"]], yaw[pairs["row_b"]])
    result.update({"pairs_file": PAIRS_FILE, "num_images": len(rows),
                   "num_identities": int(index.loc[rows, "identity"].nunique())})
    result["models"][DLIB_LABEL].update({"upsample": upsample, "cnn_fallback": True, "seconds": round(seconds, 2)})
    write_reference(run_path, result, rocs)
    for label, rep in result["models"].items():
        log.info("%s on %d held-out pairs: 10-fold %.4f, AUC %s", label, len(keys), rep["ten_fold"]["mean"],
                 rep["verification"]["auc"] if rep["verification"] else None)
    return result
