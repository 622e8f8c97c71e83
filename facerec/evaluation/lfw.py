"""LFW View 2 verification: the pairs file, per-image embedding caches, and the 10-fold report.

pairs.txt (official layout): a header ``10<TAB>300``, then 10 folds, each 300 same-person lines
``name<TAB>i<TAB>j`` followed by 300 different-person lines ``name1<TAB>i<TAB>name2<TAB>j``; image
numbers are 1-based, the file is ``<images>/<name>/<name>_%04d.jpg``. The folds are disjoint in people.

The harness that embeds and scores them is ``facerec.evaluation.pair_eval`` (``eval-pairs``; ``eval-lfw``
is its ``lfw`` case). This module keeps LFW's protocol and what the harness shares across benchmarks:
- dlib (``facerec.evaluation.dlib_embedder``): one image at a time (in one process or several,
  ``embed_images_one_by_one``), scored by Euclidean distance (the metric it was trained for), no mirroring.
- a trained run (``facerec.recognition.pair_eval.eval_pairs_run``): the pairs' images go through exactly the
  training data path: an ImageFolder of symlinks is built into an LFW store with the run's extractor and crop size
  (``facerec.pipeline.build.build_store``: landmarks, alignment, heatmaps, mask), and its rows are read
  by ``FaceStoreDataset`` with the run's channels and embedded with the mirror convention
  (``facerec.recognition.inference.embed_dataset``); scored by cosine. Images where no face was found keep the
  features stage's centre crop (zero heatmaps and mask) and are counted in the report. The store is
  the feature cache: a second evaluation reuses it.
Per-image embeddings are cached in ``<out>/embeddings-<name>.npz`` and reused, so an interrupted
evaluation continues where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerec.errors import ConfigError, SourceError
from facerec.evaluation.embed_workers import EmbedderFactory, embedded_images
from facerec.evaluation.metrics import verification_metrics
from facerec.evaluation.pairs import pair_images, subset_pairs  # noqa: F401 - LFW's callers import them here
from facerec.evaluation.verification import cosine_scores, ten_fold_accuracy, yaw_binned_metrics
from facerec.pipeline.build import build_store
from facerec.store.fs import atomic_local_path
from facerec.store.layout import StoreLayout
from facerec.store.open_store import open_feature_set

log = logging.getLogger(__name__)

IMAGE_DIRS = ("lfw-deepfunneled", "lfw_funneled", "lfw")
# Where dlib's HOG detector (upsample 1) puts the face in a 250 x 250 LFW image, as fractions of the
# side: the median box of the 279 single detections among 300 random deep-funneled images (seed 0),
# (67, 80)-(175, 187) px. The fall-back box of the 0.5% of images where HOG finds no face.
LFW_MEDIAN_FACE_BOX = (67 / 250, 80 / 250, 175 / 250, 187 / 250)
RESULT_FILE = "lfw.json"
METRICS = ("cosine", "euclidean")


@dataclass(frozen=True)
class LFWPair:
    name_a: str
    num_a: int
    name_b: str
    num_b: int
    same: bool
    fold: int            # 0-based

    @property
    def path_a(self) -> str:
        return lfw_relpath(self.name_a, self.num_a)

    @property
    def path_b(self) -> str:
        return lfw_relpath(self.name_b, self.num_b)


def lfw_relpath(name: str, number: int) -> str:
    """``name/name_%04d.jpg`` (number 1-based), relative to the images folder."""
    return f"{name}/{name}_{number:04d}.jpg"


def read_pairs(path: Path | str) -> list[LFWPair]:
    """Parse a View 2 pairs file, checking its layout: every fold holds n same then n different pairs."""
    path = Path(path)
    try:
        lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise SourceError(f"cannot read LFW pairs file {path}: {exc}") from exc
    if not lines or len(lines[0]) != 2 or not all(f.isdigit() for f in lines[0]):
        raise SourceError(f"{path}: expected a header line '<folds> <pairs per half>' (e.g. '10 300'), "
                          f"found {' '.join(lines[0]) if lines else 'an empty file'!r}")
    folds, per = int(lines[0][0]), int(lines[0][1])
    body = lines[1:]
    if len(body) != folds * 2 * per:
        raise SourceError(f"{path}: header says {folds} folds x {2 * per} pairs = {folds * 2 * per} lines, "
                          f"found {len(body)}")
    pairs = []
    for i, fields in enumerate(body):
        fold, within = divmod(i, 2 * per)
        same = within < per
        try:
            if same and len(fields) == 3:
                pairs.append(LFWPair(fields[0], int(fields[1]), fields[0], int(fields[2]), True, fold))
            elif not same and len(fields) == 4:
                pairs.append(LFWPair(fields[0], int(fields[1]), fields[2], int(fields[3]), False, fold))
            else:
                kind = "same-person 'name i j'" if same else "different-person 'name1 i name2 j'"
                raise SourceError(f"{path} line {i + 2}: expected a {kind} line (fold {fold + 1}), "
                                  f"found {' '.join(fields)!r}")
        except ValueError:
            raise SourceError(f"{path} line {i + 2}: image numbers must be integers, found {' '.join(fields)!r}") from None
    return pairs


def lfw_images_dir(lfw_dir: Path | str) -> Path:
    """The folder of identity sub-folders: ``lfw_dir`` itself or one of its usual sub-folders."""
    lfw_dir = Path(lfw_dir)
    for name in IMAGE_DIRS:
        if (lfw_dir / name).is_dir():
            return lfw_dir / name
    if lfw_dir.is_dir() and any(p.is_dir() for p in lfw_dir.iterdir()):
        return lfw_dir
    raise SourceError(f"{lfw_dir}: no LFW images folder (expected one of {', '.join(IMAGE_DIRS)} or identity folders)")


# ------------------------------------------------------------------------------------------- cache
class EmbeddingCache:
    """Per-image embeddings in one ``.npz`` (relative path -> float32 [E], plus how it was found)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.vectors: dict[str, np.ndarray] = {}
        self.how: dict[str, str] = {}
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as data:
                for key, vec, how in zip(data["paths"], data["embeddings"], data["how"]):
                    self.vectors[str(key)] = vec
                    self.how[str(key)] = str(how)
            log.info("reusing %d cached embeddings from %s", len(self.vectors), self.path)

    def __contains__(self, key: str) -> bool:
        return key in self.vectors

    def discard(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.vectors.pop(key, None)
            self.how.pop(key, None)

    def put(self, key: str, vector: np.ndarray, how: str) -> None:
        self.vectors[key] = np.asarray(vector, dtype=np.float32)
        self.how[key] = how

    def save(self) -> None:
        if not self.vectors:
            return
        keys = sorted(self.vectors)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_local_path(self.path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, paths=np.array(keys), embeddings=np.stack([self.vectors[k] for k in keys]),
                     how=np.array([self.how[k] for k in keys]))


def embed_images_one_by_one(images_dir: Path, relpaths: Sequence[str], cache: EmbeddingCache,
                            make_embedder: EmbedderFactory, *, workers: int = 1, save_every: int = 100) -> None:
    """Fill ``cache`` for every path not in it with ``embed(rgb) -> (vector, how)`` of an embedder built by
    ``make_embedder``: in this process, or in ``workers`` processes that each build their own
    (``facerec.evaluation.embed_workers``; the factory must then be picklable). Results are stored in
    path order and saved every ``save_every`` images either way, so an interrupted run continues."""
    from tqdm.auto import tqdm

    todo = [p for p in relpaths if p not in cache]
    log.info("%d of %d images to embed (%d cached), %d worker(s)", len(todo), len(relpaths),
             len(relpaths) - len(todo), workers)
    t0 = time.perf_counter()
    with embedded_images(images_dir, todo, make_embedder, workers) as results:
        progress = tqdm(results, total=len(todo), desc=f"embedding {images_dir.name} images", disable=None)
        for i, (rel, (vector, how)) in enumerate(zip(todo, progress, strict=True), start=1):
            cache.put(rel, vector, how)
            if i % save_every == 0:
                cache.save()
                log.info("%d/%d images embedded, %.2f s/image", i, len(todo), (time.perf_counter() - t0) / i)
    cache.save()


# ------------------------------------------------------------------------------------------- scoring
def score_lfw_pairs(pairs: Sequence[LFWPair], vectors: dict[str, np.ndarray], metric: str) -> np.ndarray:
    """One score per pair, higher = more alike: cosine similarity or minus the Euclidean distance."""

    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; expected one of: {', '.join(METRICS)}")
    missing = sorted({k for p in pairs for k in (p.path_a, p.path_b) if k not in vectors})
    if missing:
        raise ConfigError(f"no embedding for {len(missing)} LFW images (first: {missing[0]})")
    a = np.stack([vectors[p.path_a] for p in pairs]).astype(np.float64)
    b = np.stack([vectors[p.path_b] for p in pairs]).astype(np.float64)
    if metric == "cosine":
        return cosine_scores(a, b)
    return -np.linalg.norm(a - b, axis=1)


def lfw_report(pairs: Sequence[LFWPair], scores: np.ndarray) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """10-fold accuracy (threshold on 9 folds), AUC and TAR@FAR over all pairs, and the ROC points."""

    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    metrics, roc = verification_metrics(scores, same)
    return {"ten_fold": ten_fold_accuracy(scores, same, folds).to_dict(), "verification": metrics.to_dict()}, roc


# ------------------------------------------------------------------------------------------- a trained run
def _symlink_folder(images_dir: Path, relpaths: Sequence[str], dest: Path) -> Path:
    """An ImageFolder of symlinks to the needed images (nothing copied)."""
    for rel in relpaths:
        link = dest / rel
        if not link.exists():
            src = images_dir / rel
            if not src.is_file():
                raise SourceError(f"LFW image {src} named in the pairs file does not exist")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(src.resolve())
    return dest


def rows_of_images(feature_set, images_dir: Path, relpaths: Sequence[str]) -> dict[str, int]:
    """Store row of each image, found by its ``sample_id`` (identity + bytes, as ingest computes it,
    so byte-identical duplicates that ingest merged map to the same row)."""
    from facerec.pipeline.ingest import sample_id

    index = feature_set.index
    row_of_sid = dict(zip(index["sample_id"], index["row"]))
    rows, missing = {}, []
    for rel in relpaths:
        identity = rel.split("/", 1)[0]
        sid = sample_id(identity, (images_dir / rel).read_bytes(), rel)
        if sid in row_of_sid:
            rows[rel] = int(row_of_sid[sid])
        else:
            missing.append(rel)
    if missing:
        raise SourceError(f"{len(missing)} LFW images are not in the store {feature_set.location} "
                          f"(first: {missing[0]}); rebuild it")
    return rows


def build_lfw_store(images_dir: Path, relpaths: Sequence[str], work: Path, *, extractor: str, img_size: int):
    """Build (or reuse) a store of these LFW images with ``extractor`` at ``img_size``; returns
    (FeatureSet, {relative path: store row}).

    The store's folder is named after the image set (count and a hash of the sorted paths), so another
    subset of pairs gets its own store; a finished one is opened without starting Spark.
    """
    import hashlib

    digest = hashlib.sha1("\n".join(sorted(relpaths)).encode()).hexdigest()[:10]
    name = f"{extractor}-{img_size}-{len(relpaths)}img-{digest}"
    store = work / f"store-{name}"
    layout = StoreLayout.at(str(store))
    if not layout.is_finished(layout.features_index(extractor, img_size)):
        folder = _symlink_folder(images_dir, relpaths, work / f"images-{name}")
        build_store(str(folder), str(store), extractor=extractor, img_size=img_size)
    fset = open_feature_set(str(store), extractor, img_size)
    return fset, rows_of_images(fset, images_dir, relpaths)


def run_lfw_report(pairs: Sequence[LFWPair], vectors: dict[str, np.ndarray], fset, row_of: dict[str, int]
                   ) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """``lfw_report`` on cosine scores plus the metrics by the pair's larger |yaw| (pose from the store)."""

    scores = score_lfw_pairs(pairs, vectors, "cosine")
    report, roc = lfw_report(pairs, scores)
    same = np.array([p.same for p in pairs])
    report["yaw_bins"] = yaw_binned_metrics(scores, same, *pair_yaws(pairs, fset, row_of))
    return report, roc


def pair_yaws(pairs: Sequence[LFWPair], fset, row_of: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """The store's yaw of each pair's two images (degrees; NaN where no face was found)."""
    yaw = fset.pose[:, 0]
    return (np.array([yaw[row_of[p.path_a]] for p in pairs]), np.array([yaw[row_of[p.path_b]] for p in pairs]))
