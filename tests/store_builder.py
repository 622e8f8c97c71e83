"""Small complete feature sets for reader tests, built without the Spark stages.

Images are real LFW photos (centre 112x112 of the deep-funneled 250x250, which is roughly aligned);
landmarks are placed at known positions: every point of a heatmap group scattered around the ArcFace
template point (chin below the mouth), the other points spread over the face. Group heatmaps, stored
through ``facerec.geometry.heatmaps`` exactly as the features stage stores them, therefore peak at
known group points, which is what the reader tests check. A few rows are marked invalid (no face)
with zero image and heatmaps and NaN landmarks, and one row has unknown pose.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from facerec.geometry.alignment import template_for
from facerec.geometry.heatmaps import default_sigma, group_heatmaps, quantize
from facerec.geometry.landmark_sets import landmark_set
from facerec.schemas.tables import FEATURE_INDEX
from facerec.schemas.zarr_layout import FeatureLayout
from facerec.store.feature_arrays import create_feature_group
from facerec.store.fs import resolve, write_json_atomic, write_parquet_atomic
from facerec.store.layout import StoreLayout, shard_file

from conftest import lfw_identities


def lfw_crops(lfw: Path, num_identities: int, per_identity: int, size: int = 112) -> tuple[np.ndarray, list[str], list[str]]:
    """[N, 3, S, S] uint8 centre crops of real LFW images, their identities and file names."""
    images, names, files = [], [], []
    for name, paths in lfw_identities(lfw, min_images=per_identity)[:num_identities]:
        for path in paths[:per_identity]:
            with Image.open(path) as img:
                w, h = img.size
                box = ((w - size) // 2, (h - size) // 2, (w - size) // 2 + size, (h - size) // 2 + size)
                images.append(np.asarray(img.convert("RGB").crop(box)).transpose(2, 0, 1))
            names.append(name)
            files.append(path.name)
    return np.stack(images), names, files


def known_landmarks(n: int, extractor: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """[N, P, 2] float32 crop-pixel landmarks whose group means sit near the template points."""
    lset = landmark_set(extractor)
    centres = np.vstack([template_for(size), [[size * 0.5, size * 0.93]]])   # 5 template points + chin
    points = rng.uniform(0.2 * size, 0.8 * size, size=(n, lset.num_points, 2))
    for g, members in enumerate(lset.groups):
        offset = rng.normal(0.0, 0.02 * size, size=(n, 1, 2))                    # per-sample jitter of the group
        spread = rng.normal(0.0, 0.03 * size, size=(n, len(members), 2)) if len(members) > 1 else 0.0
        points[:, list(members)] = centres[g] + offset + spread
    return points.astype(np.float32)


def build_feature_set(
    store: Path,
    lfw: Path,
    *,
    num_identities: int = 8,
    per_identity: int = 4,
    extractor: str = "dlib",
    size: int = 112,
    chunk_rows: int = 4,
    shard_size: int = 16,
    heatmap_dtype: str = "uint8",
    compressor: str = "zstd",
    crop_codec: str = "lossless",
    invalid_rows: tuple[int, ...] = (3, 17),
    seed: int = 0,
) -> tuple[Path, dict]:
    """Write ``store/features/<extractor>-<size>.zarr`` + ``.index`` and return the zarr path and the truth.

    The truth dict holds what was written: images, landmarks, identities, valid, pose.
    """
    rng = np.random.default_rng(seed)
    images, identities, files = lfw_crops(lfw, num_identities, per_identity, size)
    n = len(images)
    lset = landmark_set(extractor)
    sigma = default_sigma(size)
    points = known_landmarks(n, extractor, size, rng)
    valid = np.ones(n, dtype=bool)
    valid[list(invalid_rows)] = False
    images[~valid] = 0
    points[~valid] = np.nan
    heatmaps = np.zeros((n, 6, size, size), dtype=heatmap_dtype)
    heatmaps[valid] = quantize(group_heatmaps(points[valid], lset, size, sigma), heatmap_dtype)
    mask = np.zeros((n, 1, size, size), dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    mask[valid, 0] = ((((xx - size / 2) / (0.35 * size)) ** 2 + ((yy - size * 0.55) / (0.45 * size)) ** 2) < 1)
    pose = rng.uniform(-30, 30, size=(n, 3)).astype(np.float32)
    pose[~valid] = np.nan

    layout = FeatureLayout(
        extractor=extractor, img_size=size, num_points=lset.num_points, num_rows=n, shard_size=shard_size,
        chunk_rows=chunk_rows, sigma=sigma, heatmap_dtype=heatmap_dtype, compressor=compressor,
        crop_codec=crop_codec,
    )
    slayout = StoreLayout.at(str(store))
    group = create_feature_group(slayout.features_zarr(extractor, size), layout, overwrite=True)
    group["image"][:] = images
    group["landmarks"][:] = points
    group["heatmaps"][:] = heatmaps
    group["mask"][:] = mask
    group["valid"][:] = valid

    names = sorted(set(identities))
    labels = np.array([names.index(i) for i in identities], dtype=np.int32)
    sample_ids = [hashlib.sha1(f"{i}/{f}".encode()).hexdigest() for i, f in zip(identities, files)]
    index_loc = slayout.features_index(extractor, size)
    for shard, start in enumerate(range(0, n, shard_size)):
        sl = slice(start, min(start + shard_size, n))
        yaw = pa.array(pose[sl, 0], mask=np.isnan(pose[sl, 0]))
        table = pa.table(
            {
                "row": pa.array(np.arange(n)[sl], pa.int64()),
                "sample_id": sample_ids[sl],
                "identity": identities[sl],
                "label": pa.array(labels[sl], pa.int32()),
                "split": ["train"] * (sl.stop - sl.start),
                "valid": pa.array(valid[sl]),
                "yaw": yaw,
                "pitch": pa.array(pose[sl, 1], mask=np.isnan(pose[sl, 1])),
                "roll": pa.array(pose[sl, 2], mask=np.isnan(pose[sl, 2])),
                "status": ["ok" if v else "no_face" for v in valid[sl]],
            },
            schema=FEATURE_INDEX,
        )
        write_parquet_atomic(table, index_loc.child(shard_file(shard)))
    write_json_atomic({"rows": n}, StoreLayout.manifest(index_loc))
    truth = {
        "images": images, "points": points, "identities": identities, "labels": labels, "valid": valid,
        "pose": pose, "mask": mask, "heatmaps": heatmaps, "sigma": sigma, "sample_ids": sample_ids,
    }
    return Path(slayout.features_zarr(extractor, size).path), truth


def resolve_index(zarr_path: Path):
    """The index folder Location beside a ``.zarr`` path."""
    return resolve(str(zarr_path)[: -len(".zarr")] + ".index")
