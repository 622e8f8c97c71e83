"""Reader benchmark: how fast the feature store feeds ready uint8 batches, and what it costs on disk.

    python -m benchmarks.bench_reader --lfw ../shared/data/lfw [--num-images 3000]

Builds (or reuses) a MediaPipe feature store of real LFW images under ``runs/bench/reader-store-N`` with
``facerec.pipeline.build.build_store``, then measures samples/s into uint8 [B, 10, 112, 112] batches (RGB + 6
heatmaps + mask) for:
- the store through ``make_loader`` (2 workers, ``ChunkShuffleSampler``);
- (a) the on-the-fly path a user would otherwise write: read JPEG, decode, MediaPipe, align, render
  heatmaps and mask per sample, in a 2-worker DataLoader;
- (b) indexing a uint8 tensor already in RAM (random batches, one process; NumPy fancy indexing of
  its memory, the faster of that and torch's ``tensor[idx]``, which is also reported).
Also: the compressor trade-off (bytes per sample vs in-process reader speed on copies of the store),
heatmaps read from the store vs rendered at read time from stored landmarks (CPU, per batch), and
store bytes per sample vs source JPEG bytes per sample. Issue 15 adds, in the same run
(``benchmarks.reader_paths``, ``benchmarks.crop_codecs``):
- the augmented training loaders: today's (RGB + 6 heatmaps, ``default_train_transform`` in the workers)
  against the device path (RGB + landmarks shipped, augmentation and rendering on the device), the
  device-side cost per batch on this CPU beside them;
- all P per-landmark maps: today's NumPy render at read time against ``render_torch``;
- crop codecs (lossless lz4, JPEG, WebP, JPEG XL): bytes per face, decode rate per core, PSNR; the
  accuracy cost comes from ``benchmarks.crop_codec_accuracy`` (one trained run), copied in when present.
Top-level summary keys: ``augmented_loader_speedup``, ``per_landmark_speedup``, ``crop_bytes_vs_source_jpeg``.
Every figure is stored with the load average (``uptime``) around it: the machine is shared.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.common import proc_stats, process_tree
from benchmarks.crop_codecs import copy_store, folder_bytes
from facerec.store.layout import StoreLayout

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


# ------------------------------------------------------------------------------------------- readers
def summarize(samples_per_s: list[float]) -> dict:
    """Median, min and max of repeated throughput figures (the machine is shared: one figure lies)."""
    return {"samples_per_s": float(np.median(samples_per_s)), "min": float(np.min(samples_per_s)),
            "max": float(np.max(samples_per_s)), "rounds": [round(v, 1) for v in samples_per_s]}


def first_batch_seconds(loader) -> tuple[float, object]:
    t0 = time.perf_counter()
    it = iter(loader)
    batch = next(it)
    return time.perf_counter() - t0, (it, batch)


def process_tree_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and all its descendants (DataLoader workers, the
    forkserver), from /proc: throughput per CPU-second is what survives a shared, loaded machine."""
    stats = proc_stats()
    return sum(stats[pid].cpu_seconds for pid in process_tree(os.getpid(), stats))


class RamDataset:
    """(b) through a loader: rows of a uint8 tensor held in RAM (shared with the workers), batched
    with NumPy fancy indexing into the same shared-memory batch buffer the store reader uses."""

    def __init__(self, images) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitems__(self, indices):
        from facerec.store.dataset import batch_buffer

        out = batch_buffer((len(indices), *self.images.shape[1:]))
        np.take(self.images.numpy(), np.asarray(indices), axis=0, out=out.numpy())
        return {"image": out}


def timed_epoch(loader, sampler, epoch: int) -> tuple[float, float]:
    """(samples per wall second, samples per CPU second of the whole process tree) of one epoch."""
    sampler.set_epoch(epoch)
    t0, c0, n = time.perf_counter(), process_tree_cpu_seconds(), 0
    for batch in loader:
        n += len(batch["image"])
    return n / (time.perf_counter() - t0), n / (process_tree_cpu_seconds() - c0)


def bench_store_vs_ram(zarr_path: Path, batch_size: int, workers: int, rounds: int) -> dict:
    """The store through make_loader against a uint8 tensor in RAM, in alternating rounds.

    - ``store_loader``: FaceStoreDataset + ChunkShuffleSampler + make_loader (``workers`` workers);
    - ``ram_tensor`` (b): random batches indexed out of ``[N, 10, S, S]`` in this process (NumPy
      fancy indexing, the faster of that and torch's ``tensor[idx]``, also reported);
    - ``ram_loader``: the same tensor served through the same loader and sampler, the ceiling of any
      worker-based loader on this machine (it pays the same shared-memory transfer);
    - ``store_loader_no_workers``: the store through make_loader with 0 workers (batches read in
      this process, no transfer), the like-for-like partner of ``ram_tensor``.
    A loader round is one epoch with persistent workers; start-up is reported apart.
    """
    import torch

    from facerec.store.dataset import FaceStoreDataset
    from facerec.store.sampler import ChunkShuffleSampler, make_loader

    ds = FaceStoreDataset(str(zarr_path), add_mask_channel=True)
    ram = ds.read_rows(ds.rows)["image"].clone()
    sampler = ChunkShuffleSampler.for_dataset(ds, batch_size=batch_size, seed=0)
    loaders = {
        "store_loader": make_loader(ds, sampler, workers),
        "ram_loader": make_loader(RamDataset(ram), sampler, workers),
        "store_loader_no_workers": make_loader(ds, sampler, 0),
    }
    startup = {}
    for name, loader in loaders.items():
        startup[name], (it, batch) = first_batch_seconds(loader)
        for batch in it:                              # finish the warm-up epoch
            pass
    shape = list(batch["image"].shape)
    ram_np = ram.numpy()
    gen = torch.Generator().manual_seed(0)
    rates: dict[str, list[float]] = {k: [] for k in (*loaders, "ram_tensor", "ram_tensor_torch")}
    cpu_rates: dict[str, list[float]] = {k: [] for k in (*loaders, "ram_tensor")}
    for r in range(rounds):
        for name, loader in loaders.items():
            wall, cpu = timed_epoch(loader, sampler, r + 1)
            rates[name].append(wall)
            cpu_rates[name].append(cpu)
        idx = [torch.randint(len(ram), (batch_size,), generator=gen) for _ in range(len(sampler))]
        t0, c0 = time.perf_counter(), process_tree_cpu_seconds()
        for i in idx:
            picked = torch.from_numpy(ram_np[i.numpy()])
        rates["ram_tensor"].append(len(idx) * batch_size / (time.perf_counter() - t0))
        cpu_rates["ram_tensor"].append(len(idx) * batch_size / max(process_tree_cpu_seconds() - c0, 1e-3))
        t0 = time.perf_counter()
        for i in idx:
            ram[i]
        rates["ram_tensor_torch"].append(len(idx) * batch_size / (time.perf_counter() - t0))
    common = {"workers": workers, "batch_size": batch_size, "batch_shape": shape}
    out = {
        "store_loader": {**summarize(rates["store_loader"]), **common, "startup_s": startup["store_loader"],
                         "rows": len(ds), "chunk_rows": ds.chunk_rows},
        "ram_loader": {**summarize(rates["ram_loader"]), **common, "startup_s": startup["ram_loader"]},
        "store_loader_no_workers": {**summarize(rates["store_loader_no_workers"]), **common, "workers": 0},
        "ram_tensor": {**summarize(rates["ram_tensor"]), "method": "NumPy fancy indexing in this process",
                       "batch_shape": list(picked.shape), "ram_bytes": ram.numel(),
                       "torch_index": {**summarize(rates["ram_tensor_torch"]), "method": "tensor[idx]"}},
        "samples_per_cpu_second": {k: summarize(v) for k, v in cpu_rates.items()},
    }
    return out


def batch_rows(ds, batch_size: int, seed: int) -> list[np.ndarray]:
    """Store rows of the full batches of one ChunkShuffleSampler epoch over ``ds``."""
    from facerec.store.sampler import ChunkShuffleSampler

    batches = ChunkShuffleSampler.for_dataset(ds, batch_size=batch_size, seed=seed)
    return [ds.rows[b] for b in batches if len(b) == batch_size]


def interleaved_ms(fns: dict[str, callable], inputs: list, rounds: int) -> dict[str, dict]:
    """Median/min ms per call of each function, the functions alternating call by call (fair under load)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn(inputs[0])                                 # open arrays, warm caches
    for _ in range(rounds):
        for x in inputs:
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn(x)
                times[name].append(1000 * (time.perf_counter() - t0))
    return {name: {"median_ms": float(np.median(t)), "min_ms": float(np.min(t)), "calls": len(t)} for name, t in times.items()}


# ------------------------------------------------------------------------------------------- trade-offs
def bench_codecs(zarr_path: Path, work: Path, rows: int, batch_size: int, rounds: int) -> list[dict]:
    """Bytes per sample and in-process read time per batch of each compressor (copies of ``rows`` rows)."""
    from facerec.store.dataset import FaceStoreDataset

    datasets, sizes = {}, {}
    for compressor, level in CODECS:
        dest = copy_store(zarr_path, work / f"codec-{compressor}-{level}", rows, compressor=compressor, compression_level=level)
        datasets[f"{compressor}-{level}"] = FaceStoreDataset(str(dest), add_mask_channel=True)
        sizes[f"{compressor}-{level}"] = {p.name: folder_bytes(p) / rows for p in dest.iterdir() if p.is_dir()}
    inputs = batch_rows(next(iter(datasets.values())), batch_size, seed=1)
    timing = interleaved_ms({name: ds.read_rows for name, ds in datasets.items()}, inputs, rounds)
    out = []
    for (compressor, level), name in zip(CODECS, datasets):
        t = timing[name]
        out.append({"compressor": compressor, "level": level, "bytes_per_sample": sum(sizes[name].values()),
                    "bytes_per_sample_by_array": sizes[name], "ms_per_batch": t["median_ms"], "min_ms_per_batch": t["min_ms"],
                    "samples_per_s": 1000 * batch_size / t["median_ms"], "batch_size": batch_size})
        log.info("codec %s: %.0f B/sample, %.0f ms per batch", name, out[-1]["bytes_per_sample"], t["median_ms"])
    return out


def bench_heatmap_source(zarr_path: Path, batch_size: int, rounds: int) -> dict:
    """Heatmap channels per batch on CPU: read from the store vs rendered at read time from stored landmarks.

    Both include their reads: the stored path decodes the heatmap chunks, the rendered path decodes
    the landmark chunks (478 points) and renders with facerec.geometry.heatmaps.
    """
    from facerec.schemas.zarr_layout import LANDMARKS
    from facerec.store.dataset import FaceStoreDataset

    stored = FaceStoreDataset(str(zarr_path))
    rendered = FaceStoreDataset(str(zarr_path), render_heatmaps=True)
    per_landmark = FaceStoreDataset(str(zarr_path), group_all_landmarks=True)
    inputs = batch_rows(stored, batch_size, seed=2)[:6]
    dest = np.empty((batch_size, 6, SIZE, SIZE), np.uint8)

    def points(ds, rows):
        return ds.feature_set.reader(LANDMARKS).read_rows(rows)

    timing = interleaved_ms({
        "stored": lambda r: stored._fill_heatmaps(dest, r, None),
        "rendered": lambda r: rendered._fill_heatmaps(dest, r, points(rendered, r)),
    }, inputs, rounds)
    big = np.empty((32, 478, SIZE, SIZE), np.uint8)
    t478 = interleaved_ms({"478": lambda r: per_landmark._fill_heatmaps(big, r[:32], points(per_landmark, r[:32]))}, inputs[:3], 1)
    return {
        "batch_size": batch_size,
        "stored_6_groups_ms_per_batch": timing["stored"]["median_ms"],
        "rendered_6_groups_ms_per_batch": timing["rendered"]["median_ms"],
        "rendered_over_stored": timing["rendered"]["median_ms"] / timing["stored"]["median_ms"],
        "rendered_478_landmarks_ms_per_32_samples": t478["478"]["median_ms"],
        "timings": timing,
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
def uptime() -> str:
    """The ``uptime`` line (load averages), recorded with every figure: this machine is shared."""
    import subprocess

    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def staged(result: dict, key: str, fn, *args, **kwargs):
    """Run one benchmark section, storing its result with the load before and after it."""
    before = uptime()
    value = fn(*args, **kwargs)
    result[key] = value
    result.setdefault("uptime", {})[key] = {"before": before, "after": uptime()}
    return value


def summary_keys(result: dict, accuracy_file: Path, chosen: str) -> None:
    """The issue's three top-level ratios, and the accuracy run when its JSON exists."""
    import json

    loaders = result["augmented_loaders"]
    result["augmented_loader_speedup"] = loaders["device_path"]["samples_per_s"] / loaders["cpu_augmented"]["samples_per_s"]
    result["per_landmark_speedup"] = result["per_landmark"]["speedup"]
    crops = {c["variant"]: c for c in result["crop_codecs"]}
    result["crop_codec_default"] = chosen
    result["crop_bytes_vs_source_jpeg"] = crops[chosen]["store_over_source_jpeg"]
    result["targets"].update({"augmented_loader_speedup": 6.0, "per_landmark_speedup": 10.0, "crop_bytes_vs_source_jpeg": 2.0})
    if accuracy_file.exists():
        result["crop_codec_accuracy"] = {**json.loads(accuracy_file.read_text()), "source": str(accuracy_file)}
    else:
        result["crop_codec_accuracy"] = {"note": f"not measured in this run: run python -m benchmarks.crop_codec_accuracy ({accuracy_file} missing)"}


def main(argv: list[str] | None = None) -> dict:
    from benchmarks.common import write_result
    from benchmarks.crop_codecs import bench_crop_codecs
    from benchmarks.reader_paths import bench_augmented_loaders, bench_device_cost, bench_on_the_fly, bench_per_landmark

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, required=True, help="LFW folder holding lfw-deepfunneled/")
    parser.add_argument("--num-images", type=int, default=3000, help="LFW images in the benchmark store")
    parser.add_argument("--work", type=Path, default=Path("runs/bench"), help="where the store and copies live")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurement rounds (medians reported)")
    parser.add_argument("--on-the-fly-samples", type=int, default=256)
    parser.add_argument("--codec-rows", type=int, default=2048, help="rows copied per compressor variant")
    parser.add_argument("--crop-default", default="jpeg-95", help="the crop variant the summary reports (the features default)")
    parser.add_argument("--accuracy-json", type=Path, default=Path("benchmarks/results/crop_codec_accuracy.json"))
    parser.add_argument("--sections", default="all", help="comma list of: store,on_the_fly,heatmaps,compressors,augmented,per_landmark,crops (all: every one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not (args.lfw / "lfw-deepfunneled").is_dir():
        raise SystemExit(f"LFW not found at {args.lfw} (expected lfw-deepfunneled/ inside)")
    want = set(args.sections.split(",")) if args.sections != "all" else {
        "store", "on_the_fly", "heatmaps", "compressors", "augmented", "per_landmark", "crops"}

    store, zarr_path = build_store(args.lfw, args.work, args.num_images)
    from facerec.store.open_store import FeatureSet

    opened = FeatureSet.open(str(zarr_path))
    sigma = opened.layout.sigma
    result: dict = {"store": str(zarr_path), "num_rows": opened.num_rows, "layout": dataclasses.asdict(opened.layout),
                    "uptime_start": uptime(), "targets": {"speedup_vs_on_the_fly": 20.0, "fraction_of_ram": 0.3}}
    result["storage"] = storage_bytes(store, zarr_path)
    if "augmented" in want:
        staged(result, "augmented_loaders", bench_augmented_loaders, zarr_path, args.batch_size, args.workers, args.rounds)
        staged(result, "device_side_cost_cpu", bench_device_cost, zarr_path, args.batch_size, args.rounds)
    if "per_landmark" in want:
        staged(result, "per_landmark", bench_per_landmark, zarr_path)
    if "crops" in want:
        staged(result, "crop_codecs", bench_crop_codecs, zarr_path, args.work / "reader-crops", opened.num_rows,
               result["storage"]["jpeg_bytes_per_sample"])
    if {"augmented", "per_landmark", "crops"} <= want:
        summary_keys(result, args.accuracy_json, args.crop_default)
    if "store" in want:
        staged(result, "store_vs_ram", bench_store_vs_ram, zarr_path, args.batch_size, args.workers, args.rounds)
        result.update(result["store_vs_ram"])
        result["fraction_of_ram"] = result["store_loader"]["samples_per_s"] / result["ram_tensor"]["samples_per_s"]
        result["fraction_of_ram_no_workers"] = result["store_loader_no_workers"]["samples_per_s"] / result["ram_tensor"]["samples_per_s"]
        result["fraction_of_ram_loader"] = result["store_loader"]["samples_per_s"] / result["ram_loader"]["samples_per_s"]
        cpu = result["samples_per_cpu_second"]
        result["fraction_of_ram_per_cpu_second"] = cpu["store_loader"]["samples_per_s"] / cpu["ram_tensor"]["samples_per_s"]
    if "on_the_fly" in want:
        staged(result, "on_the_fly", bench_on_the_fly, args.lfw, args.on_the_fly_samples, 32, args.workers, sigma)
        if "store" in want:
            result["speedup_vs_on_the_fly"] = result["store_loader"]["samples_per_s"] / result["on_the_fly"]["samples_per_s"]
    if "heatmaps" in want:
        staged(result, "heatmaps_stored_vs_rendered", bench_heatmap_source, zarr_path, args.batch_size, args.rounds)
    if "compressors" in want:
        rows = min(args.codec_rows, result["storage"]["rows"])
        staged(result, "codecs", bench_codecs, zarr_path, args.work / "reader-codecs", rows, args.batch_size, args.rounds)
    result["load_average_end"] = list(os.getloadavg())
    result["uptime_end"] = uptime()
    path = write_result("reader", result)
    report(result, args.batch_size, path)
    return result


def report(result: dict, batch_size: int, path: Path) -> None:
    """The tables printed at the end (everything is in the JSON)."""
    from benchmarks.common import print_table

    if "augmented_loaders" in result:
        loaders = result["augmented_loaders"]
        print_table("augmented training input (samples/s delivered)", [
            {"path": k, "samples_per_s": v["samples_per_s"], "what": v["description"]}
            for k, v in loaders.items() if isinstance(v, dict)])
        print(f"device-side cost on this CPU: {result['device_side_cost_cpu']}")
    if "per_landmark" in result:
        pl = result["per_landmark"]
        print(f"per-landmark maps: today {pl['today_samples_per_s']:.1f}, render_torch {pl['render_torch_samples_per_s']:.1f} samples/s")
    if "crop_codecs" in result:
        print_table("crop codecs", [{k: c[k] for k in ("variant", "crop_bytes_per_face", "store_bytes_per_face",
                                                       "store_over_source_jpeg", "faces_per_cpu_second", "psnr_db_vs_lossless")}
                                    for c in result["crop_codecs"]])
    for key in ("augmented_loader_speedup", "per_landmark_speedup", "crop_bytes_vs_source_jpeg"):
        if key in result:
            print(f"{key}: {result[key]:.2f}")
    if "store_loader" in result:
        print_table("reader (samples/s into uint8 [B, 10, 112, 112])", [
            {"path": "store, 2 workers", "samples_per_s": result["store_loader"]["samples_per_s"]},
            {"path": "RAM tensor (b), in process", "samples_per_s": result["ram_tensor"]["samples_per_s"]},
            {"path": "RAM tensor, 2 workers", "samples_per_s": result["ram_loader"]["samples_per_s"]},
            {"path": "store, 0 workers", "samples_per_s": result["store_loader_no_workers"]["samples_per_s"]},
        ])
    if "codecs" in result:
        print_table("compressors", [{k: c[k] for k in ("compressor", "level", "bytes_per_sample", "samples_per_s")} for c in result["codecs"]])
    print(f"wrote {path}; {result['uptime_end']}")


if __name__ == "__main__":
    main()
