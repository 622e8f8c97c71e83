"""The GPU step, measured: does each input path keep a ResNet-50 busy? One prepared script, time-boxed.

    python -m benchmarks.bench_gpu --lfw ../shared/data/lfw            # on a machine with a CUDA GPU
    python -m benchmarks.bench_gpu --device cpu --num-images 3000 --batch-size 8 --steps 1 --repeats 1 \
        --warmup 1 --workers 1                                        # a smoke run of the script on CPU

1. Builds (or reuses) a MediaPipe store of LFW with all cores (``build_store``, Spark ``local[*]``;
   ``--num-images`` limits it), and a JPEG-95 crop copy of it (``benchmarks.crop_codecs.copy_store``).
2. Trains ResNet-50 (face stem, 112 px, RGB + 6 heatmaps, ArcFace, bf16 autocast, channels_last,
   batch 256, AdamW) with the real training step, in alternating blocks of ``--steps`` steps, fed by
   - ``memory``: one uint8 batch held on the GPU (the model's own speed, no input pipeline);
   - ``cpu_augmented``: today's path: stored heatmaps, ``default_train_transform`` in ``--workers``
     DataLoader workers, pinned memory, normalised on the GPU;
   - ``device``: RGB + landmarks from the workers, augmentation and heatmaps on the GPU (``DeviceInputs``);
   - ``device_jpeg``: the same from the JPEG-95 crop copy (decode in the workers);
   and times every loader alone and ``DeviceInputs`` alone per batch (6 maps; all 478 maps).
3. Prints one JSON object (samples/s per arm, ``input_cost = 1 - arm / memory``, the machine) and
   writes it to ``--out``. Everything past ``--time-box`` seconds (default 450, under 8 minutes with the
   store build) is skipped and said so in the JSON.
Without CUDA it refuses to run unless ``--device cpu`` (a smoke run: its figures mean nothing for a GPU).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("bench_gpu")

EXTRACTOR, SIZE = "mediapipe", 112


class Clock:
    """Seconds left of the time box; arms and sections check it before starting."""

    def __init__(self, budget_s: float) -> None:
        self.t0, self.budget = time.perf_counter(), budget_s

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)


def build(lfw: Path, work: Path, num_images: int) -> tuple[Path, Path, float]:
    """The LFW store (all cores) and its JPEG-95 crop copy; seconds spent building."""
    from benchmarks.bench_reader import build_store
    from benchmarks.crop_codecs import copy_store
    from facerec.store.open_store import FeatureSet

    t0 = time.perf_counter()
    _, zarr_path = build_store(lfw, work, num_images)
    rows = FeatureSet.open(str(zarr_path)).num_rows
    jpeg = copy_store(zarr_path, work / f"gpu-crop-jpeg-95-{num_images}", rows, crop_codec="jpeg", crop_quality=95)
    return zarr_path, jpeg, time.perf_counter() - t0


def sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def loaders(zarr_path: Path, jpeg_path: Path, batch_size: int, workers: int, dev):
    """name -> (batch iterator, to_input(batch) -> (x, labels)) for every fed arm, plus the class count."""
    import torch

    from facerec.store.dataset import FaceStoreDataset, normalize_batch
    from facerec.store.device_augment import DeviceAugment, DeviceInputs
    from facerec.store.sampler import ChunkShuffleSampler, make_loader
    from facerec.store.transforms import default_train_transform

    cpu = FaceStoreDataset(str(zarr_path), transform=default_train_transform(), include_invalid=False)
    ship = FaceStoreDataset(str(zarr_path), use_heatmaps=False, return_landmarks=True, include_invalid=False)
    ship_jpeg = FaceStoreDataset(str(jpeg_path), use_heatmaps=False, return_landmarks=True, include_invalid=False)
    inputs = DeviceInputs(cpu.channel_layout, SIZE, cpu.sigma, augment=DeviceAugment(), device=dev)

    def stream(ds):
        sampler = ChunkShuffleSampler.for_dataset(ds, batch_size=batch_size, seed=0, drop_last=True)
        loader = make_loader(ds, sampler, workers, pin_memory=dev.type == "cuda")
        epoch = 0
        while True:
            sampler.set_epoch(epoch)
            yield from loader
            epoch += 1

    def cpu_input(batch):
        x = normalize_batch(batch["image"], dev)
        return x.contiguous(memory_format=torch.channels_last), batch["label"].to(dev, non_blocking=True)

    def device_input(batch):
        return inputs(batch).contiguous(memory_format=torch.channels_last), batch["label"].to(dev, non_blocking=True)

    arms = {"cpu_augmented": (stream(cpu), cpu_input), "device": (stream(ship), device_input),
            "device_jpeg": (stream(ship_jpeg), device_input)}
    return arms, int(cpu.feature_set.labels.max()) + 1, cpu.channel_layout.num_channels, inputs


class Arm:
    """A ResNet-50 and its optimiser trained from one batch source; ``block(n)`` times n steps."""

    def __init__(self, batches, to_input, spec, steps_total: int, dev) -> None:
        import torch

        from facerec.recognition.model import build_recognizer
        from facerec.training.schedule import warmup_cosine

        torch.manual_seed(0)
        self.batches, self.to_input, self.dev = batches, to_input, dev
        self.model = build_recognizer(spec).to(dev).to(memory_format=torch.channels_last).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, weight_decay=0.05)
        self.sched = warmup_cosine(self.opt, steps_total, 0)
        self.scaler = torch.amp.GradScaler(dev.type, enabled=False)       # bf16 needs no scaling
        self.rates: list[float] = []

    def block(self, steps: int, record: bool = True) -> None:
        import torch

        from facerec.recognition.train import train_step

        sync(self.dev)
        t0, n = time.perf_counter(), 0
        for _ in range(steps):
            x, labels = self.to_input(next(self.batches))
            loss, _ = train_step(self.model, self.opt, self.sched, self.scaler, x, labels,
                                 amp_dtype=torch.bfloat16, grad_clip=5.0)
            n += labels.shape[0]
        loss.item()
        sync(self.dev)
        if record:
            self.rates.append(n / (time.perf_counter() - t0))


def time_loader(batches, steps: int) -> float:
    next(batches)
    t0, n = time.perf_counter(), 0
    for _ in range(steps):
        n += len(next(batches)["label"])
    return n / (time.perf_counter() - t0)


def device_cost_ms(inputs, batch: dict, repeats: int = 20) -> float:
    """Median ms of ``inputs(batch)`` on its device (batch already pinned), synchronised."""
    times = []
    for _ in range(repeats + 2):
        sync(inputs.device)
        t0 = time.perf_counter()
        inputs(batch)
        sync(inputs.device)
        times.append(1000 * (time.perf_counter() - t0))
    return float(np.median(times[2:]))


def run(args: argparse.Namespace) -> dict:
    import torch

    from benchmarks.common import machine_info
    from facerec.recognition.model import ModelSpec
    from facerec.store.dataset import FaceStoreDataset
    from facerec.store.device_augment import DeviceAugment, DeviceInputs

    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu needs a CUDA GPU (or --device cpu for a smoke run); CPU figures: make bench-reader")
    clock = Clock(args.time_box)
    zarr_path, jpeg_path, build_s = build(args.lfw, args.work, args.num_images)
    result: dict = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu (smoke run)",
                    "machine": machine_info(), "cpu_count": os.cpu_count(),
                    "workers": args.workers, "batch_size": args.batch_size, "backbone": "resnet50", "stem": "face",
                    "img_size": SIZE, "amp": "bf16", "channels_last": True, "store": str(zarr_path),
                    "store_build_s": build_s, "skipped": []}
    arms_in, num_classes, channels, inputs = loaders(zarr_path, jpeg_path, args.batch_size, args.workers, dev)
    spec = ModelSpec("resnet50", channels, num_classes, img_size=SIZE, stem="face")
    first = next(arms_in["cpu_augmented"][0])
    held = {k: v.to(dev) for k, v in first.items()}
    memory = (iter(lambda: held, None), arms_in["cpu_augmented"][1])
    total = args.warmup + args.steps * args.repeats
    arms = {"memory": Arm(*memory, spec, total, dev), **{k: Arm(b, f, spec, total, dev) for k, (b, f) in arms_in.items()}}
    for name, arm in arms.items():
        arm.block(args.warmup, record=False)
    for r in range(args.repeats):
        for name, arm in arms.items():
            if clock.left() < 30:
                result["skipped"].append(f"{name} block {r + 1}: time box")
                continue
            arm.block(args.steps)
    mem = float(np.median(arms["memory"].rates))
    for name, arm in arms.items():
        if arm.rates:
            rate = float(np.median(arm.rates))
            result[name] = {"samples_per_s": rate, "blocks": [round(v, 1) for v in arm.rates],
                            "input_cost": None if name == "memory" else 1.0 - rate / mem}
    for name, (batches, _) in arms_in.items():
        if clock.left() > 20:
            result.setdefault("loader_alone_samples_per_s", {})[name] = time_loader(batches, args.steps)
        else:
            result["skipped"].append(f"{name} loader alone: time box")
    ship = FaceStoreDataset(str(zarr_path), use_heatmaps=False, return_landmarks=True)
    batch = ship.read_rows(ship.rows[: args.batch_size])
    batch = {k: v.pin_memory() for k, v in batch.items()} if dev.type == "cuda" else batch
    per_lm = FaceStoreDataset(str(zarr_path), group_all_landmarks=True).channel_layout
    result["device_inputs_ms_per_batch"] = {
        "groups_augmented": device_cost_ms(inputs, batch),
        "per_landmark_augmented_bf16": device_cost_ms(
            DeviceInputs(per_lm, SIZE, ship.sigma, augment=DeviceAugment(), device=dev, dtype=torch.bfloat16), batch, 5),
    }
    result["total_s"] = args.time_box - clock.left()
    return result


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lfw", type=Path, default=Path("../shared/data/lfw"))
    p.add_argument("--device", default="cuda", help="cuda (the measurement) or cpu (a smoke run of the script)")
    p.add_argument("--num-images", type=int, default=13233, help="LFW images in the store (all of LFW: 13233)")
    p.add_argument("--work", type=Path, default=Path("runs/bench"))
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    p.add_argument("--steps", type=int, default=20, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--time-box", type=float, default=450.0, help="seconds for the whole run, store build included")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu.json"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
