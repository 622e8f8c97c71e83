"""Store copies with another compressor or crop codec, and what each costs: bytes, decode rate, pixels.

Used by ``bench_reader`` (compressors and crop codecs in one run) and ``crop_codec_accuracy`` (the same
copies, embedded by one trained model).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

from facerec.store.fs import write_json_atomic, write_parquet_atomic
from facerec.store.layout import StoreLayout, shard_file

log = logging.getLogger("bench_reader")

# (crop codec, quality): today's lossless lz4 first, the baseline every other variant is compared with.
CROP_VARIANTS = (("lossless", 0), ("jpeg", 90), ("jpeg", 95), ("webp", 90), ("webp", 95), ("jxl", 90), ("jxl", 95))


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def copy_store(zarr_path: Path, dest_root: Path, rows: int, **changes) -> Path:
    """The first ``rows`` rows of a feature set rewritten with ``changes`` to its FeatureLayout
    (``compressor``, ``compression_level``, ``crop_codec``, ``crop_quality``): arrays, index, manifest.
    Reused when the copy already exists with the same layout."""
    import pyarrow.compute as pc

    from facerec.store.feature_arrays import create_feature_group
    from facerec.store.open_store import FeatureSet

    fs = FeatureSet.open(str(zarr_path))
    layout = dataclasses.replace(fs.layout, num_rows=rows, **changes)
    slayout = StoreLayout.at(str(dest_root))
    extractor, size = fs.layout.extractor, fs.layout.img_size
    dest = Path(slayout.features_zarr(extractor, size).path)
    index_loc = slayout.features_index(extractor, size)
    if StoreLayout.is_finished(index_loc):
        try:
            if FeatureSet.open(str(dest)).layout == layout:
                return dest
        except Exception as exc:     # a broken or older copy: rebuilt below
            log.info("rebuilding %s (%s)", dest, exc)
    group = create_feature_group(slayout.features_zarr(extractor, size), layout, overwrite=True)
    for name in group.array_keys():
        src = fs.array(name)
        for start in range(0, rows, layout.shard_size):
            stop = min(rows, start + layout.shard_size)
            group[name][start:stop] = src[start:stop]
    index = fs.index_table.filter(pc.less(fs.index_table.column("row"), rows))
    write_parquet_atomic(index, index_loc.child(shard_file(0)))
    write_json_atomic({"rows": rows, "copied_from": str(zarr_path)}, StoreLayout.manifest(index_loc))
    return dest


def variant_name(codec: str, quality: int) -> str:
    return "lossless-lz4" if codec == "lossless" else f"{codec}-{quality}"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def decode_rate(zarr_path: Path, repeats: int = 3) -> dict:
    """Faces per CPU-second decoding every image chunk in this thread (one core), best of ``repeats``."""
    from facerec.schemas.zarr_layout import IMAGE
    from facerec.store.open_store import FeatureSet

    reader = FeatureSet.open(str(zarr_path)).reader(IMAGE)
    chunks = int(np.ceil(reader.array.shape[0] / reader.chunk_rows))
    best = float("inf")
    for _ in range(repeats):
        c0 = time.process_time()
        for i in range(chunks):
            np.ascontiguousarray(reader.chunk(i))        # decoded and laid out as [C, 3, S, S]
        best = min(best, time.process_time() - c0)
    return {"faces_per_cpu_second": chunks * reader.chunk_rows / max(best, 1e-6), "direct": reader.direct}


def bench_crop_codecs(zarr_path: Path, work: Path, rows: int, jpeg_bytes_per_face: float) -> list[dict]:
    """Each crop variant of the first ``rows`` faces: bytes per face (crop and whole store), encode time,
    decode rate per core, PSNR against the lossless crops."""
    from facerec.schemas.zarr_layout import IMAGE
    from facerec.store.open_store import FeatureSet

    reference = np.asarray(FeatureSet.open(str(zarr_path)).array(IMAGE)[:rows])
    out = []
    for codec, quality in CROP_VARIANTS:
        name = variant_name(codec, quality)
        t0 = time.perf_counter()
        dest = copy_store(zarr_path, work / f"crop-{name}", rows, crop_codec=codec, crop_quality=quality)
        copy_s = time.perf_counter() - t0
        index_dir = Path(str(dest)[: -len(".zarr")] + ".index")
        by_array = {p.name: folder_bytes(p) / rows for p in dest.iterdir() if p.is_dir()}
        store_bytes = (folder_bytes(dest) + folder_bytes(index_dir)) / rows
        pixels = np.asarray(FeatureSet.open(str(dest)).array(IMAGE)[:rows])
        entry = {
            "variant": name, "crop_codec": codec, "quality": quality, "rows": rows,
            "crop_bytes_per_face": by_array["image"], "store_bytes_per_face": store_bytes,
            "store_bytes_by_array": by_array, "store_over_source_jpeg": store_bytes / jpeg_bytes_per_face,
            "crop_over_source_jpeg": by_array["image"] / jpeg_bytes_per_face,
            "copy_seconds": copy_s, "psnr_db_vs_lossless": psnr(pixels, reference),
            "mean_abs_error": float(np.abs(pixels.astype(np.int16) - reference).mean()),
            **decode_rate(dest), "path": str(dest),
        }
        log.info("crop %s: %.0f B/face crop, %.0f B/face store (%.2fx JPEG), %.0f faces/CPU-s, PSNR %.1f dB", name,
                 entry["crop_bytes_per_face"], store_bytes, entry["store_over_source_jpeg"],
                 entry["faces_per_cpu_second"], entry["psnr_db_vs_lossless"])
        out.append(entry)
    return out
