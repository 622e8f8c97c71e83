"""Training throughput: the store reader feeding the model vs the same model fed from memory.

Three arms, all running the real training step (``train_recognizer.train_step``: forward, margin
loss, backward, clipping, AdamW, schedule):
- ``memory``: one uint8 batch held in RAM (on CUDA: already on the GPU), reused every step: the model's
  own speed, no input pipeline;
- ``store``: batches from the feature store through ``FaceStoreDataset`` + ``ChunkShuffleSampler`` +
  ``make_loader`` with ``--num-workers`` workers, moved and normalised on the device as in training;
- ``loader``: the same loader with no model at all: the input pipeline's ceiling.
``input_cost = 1 - store / memory`` is the fraction of training speed the input pipeline costs. The
memory and store arms run in alternating blocks (``--repeats`` of ``--steps`` steps each, medians
reported), so a change in the machine's load over the run hits both alike.

The memory batch is real: the first batch the store gives. With ``--synthetic`` and no store, only the
memory arm runs, on random uint8 input (labelled as such in the output).

CPU (the default):  python benchmarks/bench_train.py --store STORE --backbone resnet18 --num-workers 2
GPU:                python benchmarks/bench_train.py --store STORE --device cuda --backbone resnet50 \\
                        --amp bf16 --channels-last --batch-size 256 --num-workers 8
Stems:              python benchmarks/bench_train.py --store STORE --compare-stems --epochs 3
                    (one identical short training per stem, plus forward FLOPs and feature-map sizes)
Prints one JSON object (also written to --out when given).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from facerec.training.devices import resolve_device
from facerec.recognition.model import ModelSpec, build_recognizer
from facerec.training.schedule import warmup_cosine
from facerec.recognition.config import TrainConfig
from facerec.recognition.data import build_data
from facerec.recognition.train import device_inputs, train_step
from facerec.training.devices import resolve_amp, use_channels_last

log = logging.getLogger("bench_train")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _model_and_optim(spec: ModelSpec, device: torch.device, channels_last: bool, steps: int):
    model = build_recognizer(spec).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    sched = warmup_cosine(opt, steps, 0)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    return model, opt, sched, scaler


class Arm:
    """One model + optimiser trained from one batch source; ``block(n)`` times n steps."""

    def __init__(self, batches, spec: ModelSpec, device: torch.device, *, amp_dtype, channels_last: bool,
                 total_steps: int) -> None:
        torch.manual_seed(0)
        self.batches, self.device, self.amp_dtype, self.channels_last = batches, device, amp_dtype, channels_last
        self.model, self.opt, self.sched, self.scaler = _model_and_optim(spec, device, channels_last, total_steps)
        self.rates: list[float] = []

    def block(self, steps: int, record: bool = True) -> None:
        _sync(self.device)
        t0, samples = time.perf_counter(), 0
        for _ in range(steps):
            images, labels = device_inputs(next(self.batches), self.device, self.channels_last)
            loss, _ = train_step(self.model, self.opt, self.sched, self.scaler, images, labels,
                                 amp_dtype=self.amp_dtype, grad_clip=5.0)
            samples += labels.shape[0]
        loss.item()
        _sync(self.device)
        if record:
            self.rates.append(samples / (time.perf_counter() - t0))

    def summary(self) -> dict:
        return {"samples_per_s": round(float(np.median(self.rates)), 2), "blocks": [round(r, 2) for r in self.rates]}


def time_arms(arms: dict[str, Arm], *, warmup: int, steps: int, repeats: int) -> dict:
    """Warm every arm up, then alternate blocks of ``steps`` steps ``repeats`` times; median samples/s.

    Alternating blocks spreads slow drifts of the machine's load (other jobs) over all arms alike.
    """
    for arm in arms.values():
        arm.block(warmup, record=False)
    for _ in range(repeats):
        for arm in arms.values():
            arm.block(steps)
    return {name: arm.summary() for name, arm in arms.items()}


def time_loader(batches, *, warmup: int, steps: int) -> dict:
    samples, t0 = 0, None
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        batch = next(batches)
        if i >= warmup:
            samples += batch["image"].shape[0]
    seconds = time.perf_counter() - t0
    return {"samples": samples, "seconds": round(seconds, 3), "samples_per_s": round(samples / seconds, 2)}


def _forever(loader, sampler):
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def _repeat(batch: dict):
    while True:
        yield batch


def run(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    amp_dtype = resolve_amp(args.amp, device)
    channels_last = use_channels_last("on" if args.channels_last else "off", device)
    torch.manual_seed(0)
    result = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
              else platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
              "backbone": args.backbone, "stem": args.stem, "batch_size": args.batch_size,
              "amp": str(amp_dtype), "channels_last": channels_last, "steps": args.steps, "warmup": args.warmup}
    if args.store is None:
        if not args.synthetic:
            raise SystemExit("pass --store STORE (or --synthetic for the memory arm alone on random input)")
        chans = 3 + 6 * args.use_heatmaps + args.add_mask_channel
        images = torch.randint(0, 256, (args.batch_size, chans, args.img_size, args.img_size), dtype=torch.uint8)
        batch = {"image": images, "label": torch.randint(0, 1000, (args.batch_size,))}
        spec = ModelSpec(args.backbone, chans, 1000, img_size=args.img_size, stem=args.stem)
        result["input"] = "synthetic random uint8 (no store)"
    else:
        from facerec.store.open_store import open_feature_set

        cfg = TrainConfig(store=args.store, out="unused", backbone=args.backbone, stem=args.stem,
                          batch_size=args.batch_size, num_workers=args.num_workers, use_heatmaps=args.use_heatmaps,
                          add_mask_channel=args.add_mask_channel, augment=args.augment, holdout_identity_frac=0.0,
                          holdout_image_frac=0.0, img_size=args.img_size, input_path="cpu")   # the workers' path
        fset = open_feature_set(args.store, None, args.img_size)
        data = build_data(cfg, fset)
        spec = ModelSpec(args.backbone, data.train.num_channels, data.num_classes, img_size=fset.layout.img_size,
                         stem=args.stem)
        batch = next(iter(data.train_loader))
        result.update(input=f"store {fset.location}", store_rows=len(data.train), num_workers=args.num_workers,
                      chunk_rows=fset.layout.chunk_rows, augment=args.augment)
    if device.type == "cuda":
        batch = {k: v.to(device) for k, v in batch.items()}     # the memory arm's input lives on the GPU
    result["channels"] = spec.in_chans
    result["img_size"] = spec.img_size
    total = args.warmup + args.steps * args.repeats
    kw = dict(amp_dtype=amp_dtype, channels_last=channels_last, total_steps=total)
    arms = {"memory": Arm(_repeat(batch), spec, device, **kw)}
    if args.store is not None:
        stream = _forever(data.train_loader, data.sampler)
        result["loader"] = time_loader(stream, warmup=args.warmup, steps=args.steps)
        arms["store"] = Arm(stream, spec, device, **kw)
    result["repeats"] = args.repeats
    result.update(time_arms(arms, warmup=args.warmup, steps=args.steps, repeats=args.repeats))
    if args.store is not None:
        result["store_over_memory"] = round(result["store"]["samples_per_s"] / result["memory"]["samples_per_s"], 3)
        result["input_cost"] = round(1.0 - result["store_over_memory"], 3)
    return result


def forward_flops(backbone: str, stem: str, in_chans: int, img_size: int) -> dict:
    """Forward FLOPs of one image (torch's FlopCounterMode: 2 per multiply-add) and the last feature map."""
    from torch.utils.flop_counter import FlopCounterMode

    from facerec.recognition.backbones import create_backbone

    model = create_backbone(backbone, in_chans=in_chans, stem=stem, img_size=img_size).eval()
    x = torch.zeros(1, in_chans, img_size, img_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fmap = model.body(x)
        model.neck(fmap)
    return {"gflops": round(counter.get_total_flops() / 1e9, 3), "feature_map": list(fmap.shape[1:]),
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2)}


def compare_stems(args: argparse.Namespace) -> dict:
    """The same short training (same store, seed, steps, batches) once per stem; FLOPs and map sizes."""
    from facerec.recognition.evaluate import evaluate_run
    from facerec.training.runs import RunFolder
    from facerec.recognition.workflow import build_train_evaluate as train_main

    out = Path(args.runs_dir)
    result: dict = {"backbone": args.backbone, "store": args.store, "epochs": args.epochs,
                    "batch_size": args.batch_size, "seed": 0, "stems": {}}
    for stem in ("face", "imagenet"):
        cfg = TrainConfig(store=args.store, out=str(out / f"stem-{stem}"), backbone=args.backbone, stem=stem,
                          epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, num_workers=args.num_workers,
                          device=args.device, amp=args.amp, holdout_identity_frac=0.2, log_every=1,
                          eval_pairs=args.eval_pairs, img_size=args.img_size, warmup_epochs=0.5)
        run_dir = Path(cfg.out)
        if (run_dir / "checkpoints" / "last.pt").exists():     # finished earlier: reuse, evaluate if needed
            state = RunFolder(run_dir, resume=True).load_checkpoint()
            if state["loop"]["epoch"] < args.epochs:
                raise SystemExit(f"{run_dir} holds an unfinished run; remove it or finish it with facerec train --resume")
            evaluation = (json.loads((run_dir / "eval.json").read_text()) if (run_dir / "eval.json").exists()
                          else evaluate_run(run_dir, device=args.device, num_pairs=args.eval_pairs))
            steps, seconds = state["loop"]["step"], None
        else:
            t0 = time.perf_counter()
            res = train_main(cfg)
            seconds = round(time.perf_counter() - t0, 1)
            steps, evaluation = res.steps, res.evaluation
        metrics = RunFolder(run_dir, resume=True).read_metrics()
        entry = forward_flops(args.backbone, stem, 9, args.img_size)
        entry.update({
            "train_seconds": seconds, "steps": steps,
            "train_loss_by_epoch": [round(m["loss"], 3) for m in metrics if m["phase"] == "train_epoch"],
            "train_samples_per_s": [round(m["samples_per_s"], 2) for m in metrics if m["phase"] == "train_epoch"],
            "val_accuracy_by_epoch": [round(m["accuracy"], 4) for m in metrics if m["phase"] == "val"],
            "test_auc": evaluation["verification"]["auc"],
            "test_best_accuracy": evaluation["verification"]["best_accuracy"],
            "test_ten_fold": [evaluation["ten_fold"]["mean"], evaluation["ten_fold"]["std"]],
            "test_pairs": evaluation["verification"]["num_pairs"],
        })
        result["stems"][stem] = entry
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", help="feature store root or .zarr path")
    p.add_argument("--synthetic", action="store_true", help="without --store: memory arm on random input")
    p.add_argument("--device", default="cpu")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--stem", default="face")
    p.add_argument("--img-size", type=int, default=112)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=5, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=3, help="timed blocks per arm, alternating arms")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--amp", default="off", choices=("auto", "bf16", "fp16", "off"))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--use-heatmaps", type=int, default=1, choices=(0, 1))
    p.add_argument("--add-mask-channel", type=int, default=0, choices=(0, 1))
    p.add_argument("--augment", type=int, default=1, choices=(0, 1), help="joint flip/zoom in the workers")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.add_argument("--compare-stems", action="store_true",
                   help="instead: train once per stem (face, imagenet) on --store and compare")
    p.add_argument("--epochs", type=int, default=3, help="--compare-stems: epochs per stem")
    p.add_argument("--lr", type=float, default=1e-3, help="--compare-stems: peak learning rate")
    p.add_argument("--eval-pairs", type=int, default=600, help="--compare-stems: verification pairs")
    p.add_argument("--runs-dir", default="bench-runs", help="--compare-stems: where the two runs go")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    result = compare_stems(args) if args.compare_stems else run(args)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
