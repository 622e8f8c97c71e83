"""The input paths of training, measured in alternating rounds: today's CPU augmentation against the
device path (ship RGB + landmarks, augment and render on the device), and per-landmark maps.

Used by ``bench_reader``; also (a), the on-the-fly path without a store. The "device" on this machine is its CPU: the device-side cost per batch is
measured here on the CPU and reported beside the loader rates (on a GPU it is far smaller; see
``bench_gpu``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_reader import EXTRACTOR, SIZE, first_batch_seconds, summarize, timed_epoch

log = logging.getLogger("bench_reader")


def _loader_arms(zarr_path: Path, batch_size: int, workers: int):
    """name -> (loader, sampler, description) for every augmented training input path."""
    from facerec.store.dataset import FaceStoreDataset
    from facerec.store.sampler import ChunkShuffleSampler, make_loader
    from facerec.store.transforms import default_train_transform

    cpu = FaceStoreDataset(str(zarr_path), transform=default_train_transform(), include_invalid=False)
    dev = FaceStoreDataset(str(zarr_path), use_heatmaps=False, return_landmarks=True, include_invalid=False)
    sampler = ChunkShuffleSampler.for_dataset(cpu, batch_size=batch_size, seed=0, drop_last=True)
    return {
        "cpu_augmented": (make_loader(cpu, sampler, workers), sampler,
                          f"today: RGB + 6 stored heatmaps, default_train_transform in {workers} workers"),
        "cpu_augmented_no_workers": (make_loader(cpu, sampler, 0), sampler, "today, in process"),
        "device_path": (make_loader(dev, sampler, workers), sampler,
                        f"RGB + landmarks only, {workers} workers; augmentation and heatmaps on the device"),
        "device_path_no_workers": (make_loader(dev, sampler, 0), sampler, "the same, in process"),
    }, dev


def bench_augmented_loaders(zarr_path: Path, batch_size: int, workers: int, rounds: int) -> dict:
    """Samples/s delivered by each loader (one epoch per round, arms alternating, start-up apart), and
    the device path end to end on this CPU (loader + ``DeviceInputs`` in the same process)."""
    import torch

    from facerec.store.dataset import FaceStoreDataset
    from facerec.store.device_augment import DeviceAugment, DeviceInputs

    arms, dev_ds = _loader_arms(zarr_path, batch_size, workers)
    groups = FaceStoreDataset(str(zarr_path)).channel_layout       # the channels today's path produces
    inputs = DeviceInputs(groups, dev_ds.layout.img_size, dev_ds.sigma, augment=DeviceAugment())
    startup = {}
    for name, (loader, sampler, _) in arms.items():
        startup[name], (it, _) = first_batch_seconds(loader)
        for _ in it:
            pass
    rates = {name: [] for name in (*arms, "device_path_end_to_end_cpu")}
    cpu_rates = {name: [] for name in arms}
    gen = torch.Generator().manual_seed(0)
    for r in range(rounds):
        for name, (loader, sampler, _) in arms.items():
            wall, cpu = timed_epoch(loader, sampler, r + 1)
            rates[name].append(wall)
            cpu_rates[name].append(cpu)
        loader, sampler, _ = arms["device_path"]
        sampler.set_epoch(r + 1)
        t0, n = time.perf_counter(), 0
        for batch in loader:
            n += len(inputs(batch, gen))
        rates["device_path_end_to_end_cpu"].append(n / (time.perf_counter() - t0))
    out = {name: {**summarize(rates[name]), "description": desc, "startup_s": startup[name],
                  "samples_per_cpu_second": summarize(cpu_rates[name])["samples_per_s"]}
           for name, (_, _, desc) in arms.items()}
    out["device_path_end_to_end_cpu"] = {
        **summarize(rates["device_path_end_to_end_cpu"]),
        "description": f"device path, {workers} workers, with DeviceInputs (flip + zoom/shift + 6 maps) on this CPU"}
    out["batch_size"], out["workers"], out["rows"] = batch_size, workers, len(dev_ds)
    return out


def bench_device_cost(zarr_path: Path, batch_size: int, rounds: int, per_landmark_batch: int = 32) -> dict:
    """ms per batch of ``DeviceInputs`` on this CPU: 6 group maps at ``batch_size`` (float32 input), all
    P per-landmark maps at ``per_landmark_batch`` (bfloat16 input), with augmentation."""
    import torch

    from benchmarks.bench_reader import batch_rows, interleaved_ms
    from facerec.store.dataset import FaceStoreDataset
    from facerec.store.device_augment import DeviceAugment, DeviceInputs

    ship = FaceStoreDataset(str(zarr_path), use_heatmaps=False, return_landmarks=True)
    groups = FaceStoreDataset(str(zarr_path)).channel_layout
    per_lm = FaceStoreDataset(str(zarr_path), group_all_landmarks=True).channel_layout
    size, sigma = ship.layout.img_size, ship.sigma
    batches = [ship.read_rows(r) for r in batch_rows(ship, batch_size, seed=3)[:4]]
    small = [{k: v[:per_landmark_batch] for k, v in b.items()} for b in batches]
    g_in = DeviceInputs(groups, size, sigma, augment=DeviceAugment())
    p_in = DeviceInputs(per_lm, size, sigma, augment=DeviceAugment(), dtype=torch.bfloat16)
    timing = interleaved_ms({"groups": g_in, "plain": DeviceInputs(groups, size, sigma)}, batches, rounds)
    timing.update(interleaved_ms({"per_landmark": p_in}, small, 1))
    return {
        "device": "cpu (this machine; no GPU)", "torch_threads": torch.get_num_threads(),
        "groups_augmented_ms_per_batch": timing["groups"]["median_ms"],
        "groups_no_augmentation_ms_per_batch": timing["plain"]["median_ms"], "batch_size": batch_size,
        f"per_landmark_augmented_ms_per_{per_landmark_batch}": timing["per_landmark"]["median_ms"],
        "per_landmark_batch": per_landmark_batch, "per_landmark_dtype": "bfloat16", "timings": timing,
    }


def bench_per_landmark(zarr_path: Path, batch: int = 32, rounds: int = 2) -> dict:
    """All P per-landmark maps into a uint8 [B, 3 + P, S, S] batch: today's read-time NumPy render
    (``group_all_landmarks``) against reading RGB + landmarks and rendering with ``render_torch``,
    alternating, same rows."""
    import torch

    from benchmarks.bench_reader import batch_rows, interleaved_ms
    from facerec.geometry.render_torch import render_heatmaps_torch
    from facerec.store.dataset import FaceStoreDataset

    today = FaceStoreDataset(str(zarr_path), group_all_landmarks=True)
    ship = FaceStoreDataset(str(zarr_path), use_heatmaps=False, return_landmarks=True)
    size, p = ship.layout.img_size, ship.layout.num_points

    def new_path(rows):
        got = ship.read_rows(rows)
        out = torch.empty((len(rows), 3 + p, size, size), dtype=torch.uint8)
        out[:, :3] = got["image"]
        pts = torch.where(got["valid"][:, None, None], got["landmarks"], torch.tensor(float("nan")))
        render_heatmaps_torch(pts, size, ship.sigma, out=out[:, 3:])
        return out

    inputs = [r[:batch] for r in batch_rows(ship, 256, seed=4)[:3]]
    a, b = today.read_rows(inputs[0])["image"], new_path(inputs[0])
    max_diff = int((a.int() - b.int()).abs().max())
    timing = interleaved_ms({"today": lambda r: today.read_rows(r), "render_torch": new_path}, inputs, rounds)
    today_rate = 1000 * batch / timing["today"]["median_ms"]
    new_rate = 1000 * batch / timing["render_torch"]["median_ms"]
    return {"batch": batch, "points": p, "today_samples_per_s": today_rate, "render_torch_samples_per_s": new_rate,
            "speedup": new_rate / today_rate, "max_abs_difference_uint8": max_diff, "timings": timing}


class OnTheFlyDataset:
    """What a user would write without a store: JPEG -> MediaPipe -> align -> heatmaps + mask, per sample."""

    def __init__(self, paths: list[str], sigma: float) -> None:
        self.paths = paths
        self.sigma = sigma

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        import torch

        from facerec.geometry.alignment import align_face, center_crop
        from facerec.pipeline.decode import decode_rgb
        from facerec.pipeline.extractors.base import get_extractor
        from facerec.geometry.face_mask import face_mask
        from facerec.geometry.heatmaps import group_heatmaps, quantize
        from facerec.geometry.landmark_sets import landmark_set

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
    """(a): samples/s of OnTheFlyDataset in a 2-worker DataLoader, after its first batch (start-up apart)."""
    import multiprocessing

    from torch.utils.data import DataLoader

    files = sorted(str(p) for p in (lfw / "lfw-deepfunneled").glob("*/*.jpg"))
    paths = [files[i] for i in np.random.default_rng(0).choice(len(files), size=num + batch_size, replace=False)]
    loader = DataLoader(OnTheFlyDataset(paths, sigma), batch_size=batch_size, num_workers=workers,
                        multiprocessing_context=multiprocessing.get_context("forkserver"))
    startup, (it, _) = first_batch_seconds(loader)
    t0, n = time.perf_counter(), 0
    for batch in it:
        n += len(batch["image"])
    return {"samples_per_s": n / (time.perf_counter() - t0), "samples": n, "startup_s": startup,
            "workers": workers, "batch_size": batch_size, "batch_shape": list(batch["image"].shape)}
