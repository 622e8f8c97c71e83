"""What checksumming costs: the store reader with and without its chunk checks, verify, and the write side.

A MediaPipe store of ``--num-images`` LFW images is built (or reused) with ``facerec build``. Then:

1. **read**: the same ``FaceStoreDataset.read_rows`` batches (``ChunkShuffleSampler`` order, RGB + 6
   heatmaps + mask, in process) with the commit-record checks on and off, alternating batch by batch
   so machine load hits both arms alike; the bare work, CRC32C alone over the chunk bytes a batch
   touches, is timed beside them. Then whole epochs through ``make_loader`` (2 workers, what training
   sees), checked and unchecked loaders alternating epoch by epoch. Target: under 10% of the rate.
2. **verify**: ``verify_store`` cheap and deep, seconds and MB/s.
3. **write**: ``chunk_records`` (reading back and checksumming a shard's chunks, what a features task
   does before committing) against the features stage's own seconds per shard from its manifest.

Writes ``benchmarks/results/integrity.json`` with the machine block (load average included).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from benchmarks.common import print_table, write_result

log = logging.getLogger(__name__)

EXTRACTOR, SIZE = "mediapipe", 112


def build(lfw: Path, work: Path, num_images: int) -> Path:
    """A store with commit records; reused when finished."""
    from benchmarks.bench_reader import lfw_subset
    from facerec.pipeline.build import build_store
    from facerec.store.layout import StoreLayout

    store = work / f"integrity-store-{num_images}"
    index = StoreLayout.at(str(store)).features_index(EXTRACTOR, SIZE)
    if not (StoreLayout.is_finished(index) and "integrity" in StoreLayout.read_manifest(index)):
        source = lfw_subset(lfw, work / f"lfw-subset-{num_images}", num_images)
        build_store(str(source), str(store), extractor=EXTRACTOR, img_size=SIZE)
    return store


def bench_read(store: Path, batch_size: int, rounds: int) -> dict:
    """ms per batch with checks on / off / CRC32C alone, alternating call by call."""
    from benchmarks.bench_reader import batch_rows, interleaved_ms
    from facerec.store.dataset import FaceStoreDataset
    from facerec.store.integrity import chunk_key, crc32c
    from facerec.store.open_store import FeatureSet

    checked = FaceStoreDataset(FeatureSet.open(str(store)), use_heatmaps=True, add_mask_channel=True)
    bare_set = FeatureSet.open(str(store))
    bare_set.expected = {}                        # the same reader without commit-record checks
    unchecked = FaceStoreDataset(bare_set, use_heatmaps=True, add_mask_channel=True)
    assert checked.feature_set.expected and all(r.expected is not None for r in
                                                (checked.feature_set.reader(n) for n in ("image", "heatmaps", "mask")))
    batches = batch_rows(checked, batch_size, seed=0)

    def crc_only(rows: np.ndarray) -> None:
        """The bare work: read and checksum the stored bytes of every chunk the batch touches."""
        for name in ("image", "heatmaps", "mask"):
            reader = checked.feature_set.reader(name)
            for chunk in np.unique(rows // reader.chunk_rows):
                crc32c((reader._folder / chunk_key(reader.array, int(chunk))).read_bytes())

    touched = [sum(len(np.unique(rows // checked.feature_set.reader(n).chunk_rows)) for n in ("image", "heatmaps", "mask"))
               for rows in batches]
    times = interleaved_ms({"checked": checked.read_rows, "unchecked": unchecked.read_rows, "crc_only": crc_only},
                           batches, rounds)
    on, off = times["checked"]["median_ms"], times["unchecked"]["median_ms"]
    return {
        "batch_size": batch_size, "batches": len(batches), "rounds": rounds, "ms_per_batch": times,
        "chunks_checked_per_batch": float(np.mean(touched)),
        "samples_per_s_checked": round(batch_size / on * 1000, 1), "samples_per_s_unchecked": round(batch_size / off * 1000, 1),
        "rate_ratio_checked_over_unchecked": round(off / on, 4),
        "cost_fraction_of_read": round((on - off) / off, 4),
        "cost_fraction_of_read_by_min": round((times["checked"]["min_ms"] - times["unchecked"]["min_ms"])
                                              / times["unchecked"]["min_ms"], 4),
        "crc_only_fraction_of_unchecked_read": round(times["crc_only"]["median_ms"] / off, 4),
    }


def bench_loader(store: Path, batch_size: int, workers: int, rounds: int) -> dict:
    """Samples/s of whole epochs through ``make_loader`` (what training sees), checks on and off, alternating."""
    from benchmarks.bench_reader import first_batch_seconds, timed_epoch
    from facerec.store.dataset import FaceStoreDataset
    from facerec.store.open_store import FeatureSet
    from facerec.store.sampler import ChunkShuffleSampler, make_loader

    checked = FaceStoreDataset(FeatureSet.open(str(store)), use_heatmaps=True, add_mask_channel=True)
    bare_set = FeatureSet.open(str(store))
    bare_set.expected = {}
    unchecked = FaceStoreDataset(bare_set, use_heatmaps=True, add_mask_channel=True)
    sampler = ChunkShuffleSampler.for_dataset(checked, batch_size=batch_size, seed=0)
    loaders = {"checked": make_loader(checked, sampler, workers), "unchecked": make_loader(unchecked, sampler, workers)}
    for loader in loaders.values():               # start the workers, run the warm-up epoch
        _, (it, _) = first_batch_seconds(loader)
        for _ in it:
            pass
    rates: dict[str, list[float]] = {name: [] for name in loaders}
    for r in range(rounds):
        for name in (list(loaders) if r % 2 == 0 else list(loaders)[::-1]):
            rates[name].append(timed_epoch(loaders[name], sampler, r + 1)[0])
    on, off = float(np.median(rates["checked"])), float(np.median(rates["unchecked"]))
    return {"workers": workers, "rounds": rounds, "samples_per_s": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
            "median_checked": round(on, 1), "median_unchecked": round(off, 1), "cost_fraction_of_rate": round(1 - on / off, 4)}


def bench_verify(store: Path) -> dict:
    from facerec.store.verify import verify_store

    out = {}
    for deep in (False, True):
        t0 = time.perf_counter()
        report = verify_store(str(store), deep=deep)
        seconds = time.perf_counter() - t0
        assert report.ok, report.lines()
        out["deep" if deep else "cheap"] = {"seconds": round(seconds, 3), "files": report.files, "chunks": report.chunks,
                                            "mb_read": round(report.bytes_read / 1e6, 1),
                                            "mb_per_s": round(report.bytes_read / 1e6 / seconds, 1) if deep else None}
    return out


def bench_write(store: Path) -> dict:
    """Seconds to read back and checksum one shard's chunks, against the stage's seconds per shard."""
    from facerec.schemas.zarr_layout import ARRAY_NAMES
    from facerec.store.feature_arrays import open_feature_group
    from facerec.store.integrity import chunk_records
    from facerec.store.layout import StoreLayout

    layout = StoreLayout.at(str(store))
    zloc = layout.features_zarr(EXTRACTOR, SIZE)
    group, fl = open_feature_group(zloc)
    manifest = StoreLayout.read_manifest(layout.features_index(EXTRACTOR, SIZE))
    shard_s = manifest.get("timings", {}).get("shard_s") or []
    times = []
    for shard in range(-(-fl.num_rows // fl.shard_size)):
        start = shard * fl.shard_size
        t0 = time.perf_counter()
        chunk_records(zloc, group, ARRAY_NAMES, start, min(start + fl.shard_size, fl.num_rows))
        times.append(time.perf_counter() - t0)
    return {"record_s_per_shard": [round(t, 4) for t in times], "stage_s_per_shard": shard_s,
            "record_fraction_of_shard": round(float(np.median(times)) / float(np.median(shard_s)), 5) if shard_s else None}


def main(argv: list[str] | None = None) -> dict:
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(show_path=False)])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, required=True, help="LFW folder holding lfw-deepfunneled/")
    parser.add_argument("--num-images", type=int, default=2048, help="LFW images in the benchmark store")
    parser.add_argument("--work", type=Path, default=Path("runs/bench"), help="where the store lives")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=8, help="passes over the epoch's batches, arms alternating")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the loader arm")
    parser.add_argument("--loader-rounds", type=int, default=6, help="epochs per loader arm, order alternating")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    store = build(args.lfw, args.work, args.num_images)
    result = {"store": str(store), "num_images": args.num_images, "read": bench_read(store, args.batch_size, args.rounds),
              "loader": bench_loader(store, args.batch_size, args.workers, args.loader_rounds),
              "verify": bench_verify(store), "write": bench_write(store)}
    path = write_result("integrity", result, args.out)
    r = result["read"]
    print_table("reader with and without chunk checks (in process)", [
        {"arm": k, "median ms/batch": v["median_ms"], "min ms/batch": v["min_ms"]} for k, v in r["ms_per_batch"].items()])
    log.info("checks cost %.1f%% of the in-process read, %.1f%% of the %d-worker loader's rate (target < 10%%); verify cheap %.2f s, deep %.2f s; written %s",
             100 * r["cost_fraction_of_read"], 100 * result["loader"]["cost_fraction_of_rate"], args.workers,
             result["verify"]["cheap"]["seconds"], result["verify"]["deep"]["seconds"], path)
    print(json.dumps(result["verify"]))
    return result


if __name__ == "__main__":
    main()
