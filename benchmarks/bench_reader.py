"""Reader benchmark: how fast the feature store feeds ready uint8 batches, and what it costs on disk.

    python -m benchmarks.bench_reader --lfw ../shared/data/lfw [--num-images 3000]

Builds (or reuses) a MediaPipe feature store of real LFW images under ``runs/bench/reader-store-N`` with
``facerec.pipeline.build.build_store``, then measures samples/s into uint8 [B, 10, 112, 112] batches (RGB + 6
heatmaps + mask) for:
- the store through ``make_loader`` (2 workers, ``ChunkShuffleSampler``);
- (a) the on-the-fly path a user would otherwise write: read JPEG, decode, MediaPipe, align, render
  heatmaps and mask per sample, in a 2-worker DataLoader;
- (b) indexing a uint8 tensor already in RAM (random batches, one process).
Also: the compressor trade-off (bytes per sample vs in-process reader speed on copies of the store),
heatmaps read from the store vs rendered at read time from stored landmarks (CPU, per batch), and
store bytes per sample vs source JPEG bytes per sample. Results go to benchmarks/results/reader.json.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np

from facerec.store.fs import write_json_atomic, write_parquet_atomic
from facerec.store.layout import StoreLayout, shard_file

log = logging.getLogger("bench_reader")

EXTRACTOR = "mediapipe"
SIZE = 112
CODECS = (("none", 0), ("lz4", 5), ("zstd", 1), ("zstd", 3), ("zstd", 9))


# ------------------------------------------------------------------------------------------- the store
def lfw_subset(lfw: Path, dest: Path, num_images: int, seed: int = 0) -> Path:
    """An ImageFolder of symlinks to a seeded random ``num_images`` of LFW (nothing copied)."""
    files = sorted((lfw / "lfw-deepfunneled").glob("*/*.jpg"))
    pick = np.random.default_rng(seed).choice(len(files), size=min(num_images, len(files)), replace=False)
    for i in sorted(pick):
        link = dest / files[i].parent.name / files[i].name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(files[i].resolve())
    return dest


def build_store(lfw: Path, work: Path, num_images: int) -> tuple[Path, Path]:
    """A MediaPipe store of ``num_images`` LFW images via ``facerec.pipeline.build.build_store``; reused if built."""
    from facerec.pipeline.build import build_store as build

    store = work / f"reader-store-{num_images}"
    layout = StoreLayout.at(str(store))
    if StoreLayout.is_finished(layout.features_index(EXTRACTOR, SIZE)):
        log.info("reusing %s", layout.features_zarr(EXTRACTOR, SIZE))
    else:
        t0 = time.perf_counter()
        source = lfw_subset(lfw, work / f"lfw-subset-{num_images}", num_images)
        build(str(source), str(store), extractor=EXTRACTOR, img_size=SIZE)
        log.info("built %s in %.0f s", store, time.perf_counter() - t0)
    return store, Path(layout.features_zarr(EXTRACTOR, SIZE).path)


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# ------------------------------------------------------------------------------------------- readers
def time_loader(loader, sampler, epochs: int) -> dict:
    """samples/s over ``epochs`` epochs after the first batch (worker start-up reported apart)."""
    t0 = time.perf_counter()
    first = None
    count = 0
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader:
            if first is None:
                first = time.perf_counter()
                continue
            count += len(batch["image"])
    seconds = time.perf_counter() - first
    return {"samples_per_s": count / seconds, "samples": count, "seconds": seconds, "startup_s": first - t0,
            "batch_shape": list(batch["image"].shape)}


def bench_store_loader(zarr_path: Path, batch_size: int, workers: int, epochs: int) -> dict:
    from facerec.store.dataset import FaceStoreDataset
    from facerec.store.sampler import ChunkShuffleSampler, make_loader

    ds = FaceStoreDataset(str(zarr_path), add_mask_channel=True)
    sampler = ChunkShuffleSampler.for_dataset(ds, batch_size=batch_size, seed=0)
    loader = make_loader(ds, sampler, workers)
    out = time_loader(loader, sampler, epochs)
    out.update(workers=workers, batch_size=batch_size, rows=len(ds), chunk_rows=ds.chunk_rows)
    return out


class OnTheFlyDataset:
    """What a user would write without a store: JPEG -> MediaPipe -> align -> heatmaps + mask, per sample."""

    def __init__(self, paths: list[str], sigma: float) -> None:
        self.paths = paths
        self.sigma = sigma

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        import torch

        from facerec.pipeline.alignment import align_face, center_crop
        from facerec.pipeline.decode import decode_rgb
        from facerec.pipeline.extractors.base import get_extractor
        from facerec.pipeline.face_mask import face_mask
        from facerec.pipeline.heatmaps import group_heatmaps, quantize
        from facerec.pipeline.landmark_sets import landmark_set

        rgb = decode_rgb(Path(self.paths[i]).read_bytes())
        found = get_extractor(EXTRACTOR).extract(rgb)
        out = np.zeros((10, SIZE, SIZE), np.uint8)
        if found is None:
            out[:3] = center_crop(rgb, SIZE)
        else:
            lset = landmark_set(EXTRACTOR)
            out[:3], aligned, _ = align_face(rgb, found.points, lset, SIZE)
            out[3:9] = quantize(group_heatmaps(aligned, lset, SIZE, self.sigma), "uint8")
            out[9] = face_mask(aligned, SIZE)[0] * 255
        return {"image": torch.from_numpy(out)}


def bench_on_the_fly(lfw: Path, num: int, batch_size: int, workers: int, sigma: float) -> dict:
    import multiprocessing

    from torch.utils.data import DataLoader

    files = sorted(str(p) for p in (lfw / "lfw-deepfunneled").glob("*/*.jpg"))
    paths = [files[i] for i in np.random.default_rng(0).choice(len(files), size=num + batch_size, replace=False)]
    loader = DataLoader(OnTheFlyDataset(paths, sigma), batch_size=batch_size, num_workers=workers,
                        multiprocessing_context=multiprocessing.get_context("forkserver"))

    class _Once:
        def set_epoch(self, epoch):
            pass

    out = time_loader(loader, _Once(), 1)
    out.update(workers=workers, batch_size=batch_size)
    return out


def bench_ram(zarr_path: Path, batch_size: int, batches: int) -> dict:
    """(b): random batches indexed out of a uint8 [N, 10, S, S] tensor already in RAM."""
    import torch

    from facerec.store.dataset import FaceStoreDataset

    ds = FaceStoreDataset(str(zarr_path), add_mask_channel=True)
    data = ds.read_rows(ds.rows)["image"].clone()
    gen = torch.Generator().manual_seed(0)
    idx = [torch.randint(len(data), (batch_size,), generator=gen) for _ in range(batches + 1)]
    data[idx[0]]
    t0 = time.perf_counter()
    for i in idx[1:]:
        batch = data[i]
    seconds = time.perf_counter() - t0
    return {"samples_per_s": batches * batch_size / seconds, "samples": batches * batch_size, "seconds": seconds,
            "batch_shape": list(batch.shape), "ram_bytes": data.numel()}


def bench_in_process(zarr_path: Path, batch_size: int, max_batches: int, **options) -> dict:
    """Seconds per batch of ``read_rows`` in this process over ChunkShuffleSampler batches."""
    from facerec.store.dataset import FaceStoreDataset
    from facerec.store.sampler import ChunkShuffleSampler

    ds = FaceStoreDataset(str(zarr_path), **options)
    batches = list(ChunkShuffleSampler.for_dataset(ds, batch_size=batch_size, seed=1))[:max_batches + 1]
    ds.__getitems__(batches[0])
    t0 = time.perf_counter()
    for b in batches[1:]:
        ds.__getitems__(b)
    seconds = time.perf_counter() - t0
    n = sum(len(b) for b in batches[1:])
    return {"samples_per_s": n / seconds, "ms_per_batch": 1000 * seconds / len(batches[1:]), "batch_size": batch_size}


# ------------------------------------------------------------------------------------------- trade-offs
def copy_store(zarr_path: Path, dest_root: Path, compressor: str, level: int, rows: int) -> Path:
    """The first ``rows`` rows of a store rewritten with another compressor (arrays + index + manifest)."""
    import dataclasses

    import pyarrow.compute as pc

    from facerec.store.feature_arrays import create_feature_group
    from facerec.store.open_store import FeatureSet

    fs = FeatureSet.open(str(zarr_path))
    layout = dataclasses.replace(fs.layout, compressor=compressor, compression_level=level, num_rows=rows)
    slayout = StoreLayout.at(str(dest_root))
    group = create_feature_group(slayout.features_zarr(EXTRACTOR, SIZE), layout, overwrite=True)
    for name in group.array_keys():
        src = fs.array(name)
        for start in range(0, rows, layout.shard_size):
            stop = min(rows, start + layout.shard_size)
            group[name][start:stop] = src[start:stop]
    index = fs.index_table.filter(pc.less(fs.index_table.column("row"), rows))
    index_loc = slayout.features_index(EXTRACTOR, SIZE)
    write_parquet_atomic(index, index_loc.child(shard_file(0)))
    write_json_atomic({"rows": rows, "copied_from": str(zarr_path)}, StoreLayout.manifest(index_loc))
    return Path(slayout.features_zarr(EXTRACTOR, SIZE).path)


def bench_codecs(zarr_path: Path, work: Path, rows: int, batch_size: int) -> list[dict]:
    out = []
    for compressor, level in CODECS:
        dest = copy_store(zarr_path, work / f"codec-{compressor}-{level}", compressor, level, rows)
        per_array = {p.name: folder_bytes(p) / rows for p in dest.iterdir() if p.is_dir()}
        speed = bench_in_process(dest, batch_size, max_batches=rows // batch_size - 1, add_mask_channel=True)
        out.append({"compressor": compressor, "level": level, "bytes_per_sample": sum(per_array.values()),
                    "bytes_per_sample_by_array": per_array, **speed})
        log.info("codec %s-%d: %.0f B/sample, %.0f samples/s", compressor, level, sum(per_array.values()), speed["samples_per_s"])
    return out


def bench_heatmap_source(zarr_path: Path, batch_size: int, batches: int) -> dict:
    """Heatmap channels per batch on CPU: read from the store vs rendered from stored landmarks."""
    from facerec.store.dataset import FaceStoreDataset, read_rows_chunked
    from facerec.store.sampler import ChunkShuffleSampler

    stored = FaceStoreDataset(str(zarr_path))
    rendered = FaceStoreDataset(str(zarr_path), render_heatmaps=True)
    per_landmark = FaceStoreDataset(str(zarr_path), group_all_landmarks=True)
    rows = [stored.rows[b] for b in list(ChunkShuffleSampler.for_dataset(stored, batch_size=batch_size, seed=2))[:batches]]
    dest = np.empty((batch_size, 6, SIZE, SIZE), np.uint8)

    def timed(fn) -> float:
        fn(rows[0])
        t0 = time.perf_counter()
        for r in rows[1:]:
            fn(r)
        return 1000 * (time.perf_counter() - t0) / (len(rows) - 1)

    from facerec.schemas.zarr_layout import LANDMARKS

    stored_ms = timed(lambda r: stored._fill_heatmaps(dest[: len(r)], r, None))
    rendered_ms = timed(lambda r: rendered._fill_heatmaps(dest[: len(r)], r, read_rows_chunked(rendered.feature_set.array(LANDMARKS), r)))
    small = [r[:32] for r in rows[:4]]
    big = np.empty((32, 478, SIZE, SIZE), np.uint8)
    per_landmark._fill_heatmaps(big[: len(small[0])], small[0], read_rows_chunked(per_landmark.feature_set.array(LANDMARKS), small[0]))
    t0 = time.perf_counter()
    for r in small[1:]:
        per_landmark._fill_heatmaps(big[: len(r)], r, read_rows_chunked(per_landmark.feature_set.array(LANDMARKS), r))
    per_landmark_ms = 1000 * (time.perf_counter() - t0) / (len(small) - 1)
    return {
        "batch_size": batch_size,
        "stored_6_groups_ms_per_batch": stored_ms,
        "rendered_6_groups_ms_per_batch": rendered_ms,
        "rendered_over_stored": rendered_ms / stored_ms,
        "rendered_478_landmarks_ms_per_32": per_landmark_ms,
        "note": "rendered includes reading the landmarks array; stored includes decoding the heatmaps chunks",
    }


def storage_bytes(store: Path, zarr_path: Path) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    shards = sorted(Path(StoreLayout.at(str(store)).samples.path).glob("shard-*.parquet"))
    samples = pa.concat_tables([pq.read_table(p, columns=["image"]) for p in shards])
    jpeg = pc.binary_length(samples.column("image"))
    n = samples.num_rows
    index_dir = Path(str(zarr_path)[: -len(".zarr")] + ".index")
    per_array = {p.name: folder_bytes(p) / n for p in zarr_path.iterdir() if p.is_dir()}
    store_bytes = folder_bytes(zarr_path) + folder_bytes(index_dir)
    return {"rows": n, "jpeg_bytes_per_sample": float(pc.mean(jpeg).as_py()), "store_bytes_per_sample": store_bytes / n,
            "store_over_jpeg": store_bytes / n / float(pc.mean(jpeg).as_py()), "store_bytes_by_array": per_array,
            "raw_uint8_bytes_per_sample": 10 * SIZE * SIZE}


# ------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    from benchmarks.common import print_table, write_result

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, required=True, help="LFW folder holding lfw-deepfunneled/")
    parser.add_argument("--num-images", type=int, default=3000, help="LFW images in the benchmark store")
    parser.add_argument("--work", type=Path, default=Path("runs/bench"), help="where the store and copies live")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2, help="store-loader epochs timed")
    parser.add_argument("--on-the-fly-samples", type=int, default=256)
    parser.add_argument("--codec-rows", type=int, default=1024, help="rows copied per compressor variant")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not (args.lfw / "lfw-deepfunneled").is_dir():
        raise SystemExit(f"LFW not found at {args.lfw} (expected lfw-deepfunneled/ inside)")

    store, zarr_path = build_store(args.lfw, args.work, args.num_images)
    from facerec.store.open_store import FeatureSet

    sigma = FeatureSet.open(str(zarr_path)).layout.sigma
    result: dict = {"store": str(zarr_path), "num_rows": FeatureSet.open(str(zarr_path)).num_rows}
    result["store_loader"] = bench_store_loader(zarr_path, args.batch_size, args.workers, args.epochs)
    log.info("store loader: %.0f samples/s", result["store_loader"]["samples_per_s"])
    result["ram_tensor"] = bench_ram(zarr_path, args.batch_size, batches=50)
    log.info("RAM tensor: %.0f samples/s", result["ram_tensor"]["samples_per_s"])
    result["on_the_fly"] = bench_on_the_fly(args.lfw, args.on_the_fly_samples, 32, args.workers, sigma)
    log.info("on the fly: %.1f samples/s", result["on_the_fly"]["samples_per_s"])
    result["store_in_process"] = bench_in_process(zarr_path, args.batch_size, max_batches=20, add_mask_channel=True)
    result["speedup_vs_on_the_fly"] = result["store_loader"]["samples_per_s"] / result["on_the_fly"]["samples_per_s"]
    result["fraction_of_ram"] = result["store_loader"]["samples_per_s"] / result["ram_tensor"]["samples_per_s"]
    result["targets"] = {"speedup_vs_on_the_fly": 20.0, "fraction_of_ram": 0.3}
    result["heatmaps_stored_vs_rendered"] = bench_heatmap_source(zarr_path, args.batch_size, batches=8)
    result["storage"] = storage_bytes(store, zarr_path)
    result["codecs"] = bench_codecs(zarr_path, args.work / "reader-codecs", min(args.codec_rows, result["storage"]["rows"]), args.batch_size)
    result["load_average_end"] = list(os.getloadavg())
    path = write_result("reader", result)
    print_table("reader (samples/s into uint8 [B, 10, 112, 112])", [
        {"path": "store, 2 workers", "samples_per_s": result["store_loader"]["samples_per_s"]},
        {"path": "on the fly (a)", "samples_per_s": result["on_the_fly"]["samples_per_s"]},
        {"path": "RAM tensor (b)", "samples_per_s": result["ram_tensor"]["samples_per_s"]},
    ])
    print_table("compressors", [{k: c[k] for k in ("compressor", "level", "bytes_per_sample", "samples_per_s")} for c in result["codecs"]])
    print(f"speed-up vs on the fly {result['speedup_vs_on_the_fly']:.1f}x, fraction of RAM {result['fraction_of_ram']:.2f}; wrote {path}")
    return result


if __name__ == "__main__":
    main()
