"""Embeddings for new images through exactly the path the model was trained on.

Per image, the same functions the stages and readers run, in the same order:
1. ``landmark_stage.extract_landmarks_row`` with the run's extractor: decode (reason codes for bad
   files), landmarks in source pixels, head pose;
2. ``feature_stage._row_features`` with the run's feature layout (crop size, heatmap sigma and dtype):
   5-point alignment onto the ArcFace template, the 6 grouped heatmaps, the hull mask;
3. the rows are written to a small temporary feature group (Zarr + index, the store's own layout) and
   read back through ``FaceStoreDataset`` with the run's channel switches (heatmaps, mask, all
   landmarks), so the stacked uint8 input is built by the training reader itself;
4. ``evaluate.embed_batch``: normalise as in training, ``f(x) + f(mirror(x))`` with the left/right
   heatmap channels swapped in the mirror, L2-normalised.

The output Parquet (``tables.EMBEDDINGS``) has one row per input image in input order: path, detected,
embedding (list<float32>, null where no face was aligned: a centre crop is not the face the model
learnt on), status/error, and the head pose. The run's store is read only for its feature layout.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facerec.errors import ConfigError
from facerec.geometry.landmark_sets import landmark_set
from facerec.pipeline.extractors.base import get_extractor
from facerec.pipeline.feature_stage import _row_features
from facerec.schemas import tables, zarr_layout as zl
from facerec.store.feature_arrays import create_feature_group, open_feature_group
from facerec.store.fs import resolve, write_json_atomic, write_parquet_atomic
from facerec.store.layout import StoreLayout, shard_file
from facerec.store.open_store import find_feature_group

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
UNREADABLE = "unreadable"     # status: the file could not be read from disk


@dataclass(frozen=True)
class EmbedConfig:
    run: Path                          # a run folder written by `facerec train`
    inputs: tuple[str, ...]            # image files and/or folders (searched recursively)
    out: Path                          # the Parquet file to write
    store: str | None = None           # where to read the feature layout; None: the run's store
    checkpoint: str = "last.pt"
    batch_size: int = 32
    device: str = "auto"


@dataclass(frozen=True)
class EmbedResult:
    out: Path
    images: int
    embedded: int
    by_status: dict[str, int]
    embedding_size: int
    seconds: float

    def lines(self) -> list[str]:
        out = [f"embed: {self.images} images, {self.embedded} embedded ({self.embedding_size}-d) -> {self.out}"]
        out += [f"  {status}: {n}" for status, n in sorted(self.by_status.items()) if status != tables.STATUS_OK]
        out.append(f"  {self.seconds:.1f} s")
        return out


def list_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given (whatever their name) plus image files found under folders, sorted per folder."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise ConfigError(f"embed input {path} does not exist (expected an image file or a folder of images)")
    if not found:
        raise ConfigError(f"no images under {', '.join(map(str, inputs))} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return found


def run_feature_layout(train_cfg: Any, store: str | None):
    """The FeatureLayout the run was trained on (crop size, sigma, heatmap dtype, extractor)."""

    _, layout = open_feature_group(find_feature_group(store or train_cfg.store, train_cfg.extractor, train_cfg.img_size))
    return layout


def _read(path: Path) -> tuple[bytes | None, str | None]:
    try:
        return path.read_bytes(), None
    except OSError as exc:
        return None, f"cannot read {path}: {exc}"


def _feature_rows(paths: list[Path], layout) -> Iterator[tuple[int, dict, str, str | None, dict | None]]:
    """(i, landmarks row, status, error, arrays) per image: the landmarks and features stages' row code."""
    from facerec.pipeline.landmark_stage import extract_landmarks_row

    extractor = get_extractor(layout.extractor)
    lset = landmark_set(layout.extractor)
    for i, path in enumerate(paths):
        data, read_error = _read(path)
        sample = {"sample_id": str(path), "shard": 0, "position": i, "image": data,
                  "status": tables.STATUS_OK if read_error is None else UNREADABLE, "error": read_error}
        if read_error is not None:
            yield i, None, UNREADABLE, read_error, None
            continue
        lm = extract_landmarks_row(extractor, lset, sample)
        status, arrays = _row_features(sample, lm, lset, layout)
        error = None
        if status != tables.STATUS_OK:
            error = lm["error"] if status == lm["status"] else f"{status}: no face aligned"
        yield i, lm, status, error, arrays


def write_input_group(paths: list[Path], layout, folder: Path) -> tuple[str, list[dict]]:
    """Compute every image's features into ``folder/input.zarr`` + its index; returns (zarr path, per-row facts).

    The group has the run's layout with ``num_rows`` = number of images (one shard; raw chunks, it is
    temporary). Rows without a face keep zero arrays and valid=false, as in the features stage.
    """
    import pyarrow as pa

    n = len(paths)
    chunk = min(layout.chunk_rows, n)
    glayout = dataclasses.replace(layout, num_rows=n, shard_size=chunk * -(-n // chunk), chunk_rows=chunk,
                                  compressor="none")
    zloc = resolve(str(folder / "input.zarr"))
    group = create_feature_group(zloc, glayout)
    shapes = glayout.shapes()
    facts: list[dict] = []
    valid = np.zeros(n, dtype=bool)
    points = np.zeros((n, glayout.num_points, 2), np.float32)
    rows = iter(_feature_rows(paths, glayout))
    for block in range(0, n, chunk):
        stop = min(block + chunk, n)
        out = {name: np.zeros((stop - block, *shapes[name][0][1:]), shapes[name][2]) for name in (zl.IMAGE, zl.HEATMAPS, zl.MASK)}
        for _ in range(block, stop):
            i, lm, status, error, arrays = next(rows)
            valid[i] = status == tables.STATUS_OK
            for name, value in (arrays or {}).items():
                if name == zl.LANDMARKS:
                    points[i] = value
                else:
                    out[name][i - block] = value
            pose = {k: (lm or {}).get(k) for k in ("yaw", "pitch", "roll")}
            facts.append({"path": str(paths[i]), "detected": bool(valid[i]), "status": status, "error": error, **pose})
        for name, value in out.items():
            group[name][block:stop] = value
    group[zl.LANDMARKS][:] = points
    group[zl.VALID][:] = valid
    index = pa.Table.from_pydict({
        "row": list(range(n)), "sample_id": [f["path"] for f in facts], "identity": [""] * n, "label": [0] * n,
        "split": ["embed"] * n, "valid": valid.tolist(), "yaw": [f["yaw"] for f in facts],
        "pitch": [f["pitch"] for f in facts], "roll": [f["roll"] for f in facts], "status": [f["status"] for f in facts],
    }, schema=tables.FEATURE_INDEX)
    iloc = resolve(str(folder / "input.index"))
    write_parquet_atomic(index, iloc.child(shard_file(0)))
    write_json_atomic({"stage": "embed-input", "rows": n}, StoreLayout.manifest(iloc))
    return zloc.path, facts


def embed_images(cfg: EmbedConfig) -> EmbedResult:
    """Embed every image of ``cfg.inputs`` with the run's model; writes ``cfg.out``."""
    from facerec.recognition.inference import embed_batch, load_run

    if cfg.batch_size < 1:
        raise ConfigError(f"embed: batch size must be >= 1, found {cfg.batch_size}")
    if Path(cfg.out).suffix != ".parquet":
        raise ConfigError(f"embed output must be a .parquet file, got {cfg.out}")
    t0 = time.perf_counter()
    paths = list_images(cfg.inputs)
    loaded = load_run(cfg.run, cfg.checkpoint, cfg.device)     # TrainConfig.from_dict: the validating constructor
    model, device = loaded.model, loaded.device
    layout = run_feature_layout(loaded.config, cfg.store)
    log.info("embedding %d images with %s (%s landmarks, %d px crops)", len(paths), loaded.path, layout.extractor, layout.img_size)
    embeddings: list[list[float] | None] = [None] * len(paths)
    with tempfile.TemporaryDirectory(prefix="facerec-embed-") as tmp:
        zarr_path, facts = write_input_group(paths, layout, Path(tmp))
        rows = np.flatnonzero([f["detected"] for f in facts])
        if len(rows):
            ds = loaded.reader(zarr_path, rows)
            for start in range(0, len(rows), cfg.batch_size):
                batch = ds.read_rows(rows[start : start + cfg.batch_size])
                emb = embed_batch(model, batch["image"], ds.channel_layout, device).numpy().astype(np.float32)
                for r, e in zip(batch["row"].tolist(), emb):
                    embeddings[r] = e.tolist()
    size = int(model.backbone.embedding_size)
    write_embeddings(facts, embeddings, cfg.out, {"run": str(Path(cfg.run).resolve()), "checkpoint": cfg.checkpoint})
    counts = Counter(f["status"] for f in facts)
    return EmbedResult(Path(cfg.out), len(paths), int(len(rows)), dict(counts), size, time.perf_counter() - t0)


def write_embeddings(facts: list[dict], embeddings: list, out: Path, meta: dict[str, str]) -> Path:
    """The EMBEDDINGS table, with the run and checkpoint in the Parquet metadata, written atomically."""
    import json

    import pyarrow as pa

    table = pa.Table.from_pydict({
        "path": [f["path"] for f in facts], "detected": [f["detected"] for f in facts], "embedding": embeddings,
        "status": [f["status"] for f in facts], "error": [f["error"] for f in facts],
        "yaw": [f["yaw"] for f in facts], "pitch": [f["pitch"] for f in facts], "roll": [f["roll"] for f in facts],
    }, schema=tables.EMBEDDINGS)
    table = table.replace_schema_metadata({**tables.EMBEDDINGS.metadata, b"facerec.recognition.embed": json.dumps(meta).encode()})
    out = Path(out)
    write_parquet_atomic(table, resolve(str(out.resolve())))
    return out
