"""Short real-data runs that reproduce ArcFace's collapse and test remedies for it.

A small LFW feature set (real photos, centre crops; built by ``tests/store_builder.py`` without the Spark
stages, so it takes seconds) and the ablation's model (ResNet-18, ImageNet stem, 64 px, 128-d, batch 64,
lr 2e-3). Each recipe is a set of ``TrainConfig`` fields; every recipe runs with every seed, alternated
(recipe-major inside each seed) so the machine's load hits all of them alike. Writes one JSON with every
run's settings, final training loss/accuracy, the collapse plateau for its class count, and ``uptime``.

    python benchmarks/collapse_probe.py --recipes arcface arcface-warmup --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

RECIPES: dict[str, dict] = {
    "arcface": {"use_cosface": False, "margin_warmup_epochs": 0.0},          # s=64, m=0.5 from step 0
    "arcface-warmup": {"use_cosface": False, "margin_warmup_epochs": 5.0},   # m ramps 0 -> 0.5 over 5 epochs
    "cosface": {"use_cosface": True, "margin_warmup_epochs": 0.0},
    "arcface-s32": {"use_cosface": False, "margin_warmup_epochs": 0.0, "scale": 32.0},
    "arcface-lr5e-4": {"use_cosface": False, "margin_warmup_epochs": 0.0, "lr": 5e-4},
}


def face_crops(lfw: Path, num_identities: int, per_identity: int, size: int):
    """[N, 3, size, size] uint8: the central 120 px of each deep-funneled LFW photo (the face) resized to
    ``size``; the tests' builder takes the central ``size`` px unresized, which at 32 px is only the nose."""
    import numpy as np
    from PIL import Image

    from conftest import lfw_identities

    images, names, files = [], [], []
    for name, paths in lfw_identities(lfw, min_images=per_identity)[:num_identities]:
        for path in paths[:per_identity]:
            with Image.open(path) as img:
                w, h = img.size
                box = ((w - 120) // 2, (h - 120) // 2, (w + 120) // 2, (h + 120) // 2)
                face = img.convert("RGB").crop(box).resize((size, size), Image.BILINEAR)
            images.append(np.asarray(face).transpose(2, 0, 1))
            names.append(name)
            files.append(path.name)
    return np.stack(images), names, files


def build_store(work: Path, identities: int, per_identity: int, img_size: int) -> Path:
    """The probe's feature set (reused when present): real LFW faces, known landmarks."""
    sys.path.insert(0, str(REPO / "tests"))
    import store_builder   # tests' builder: real photos, no Spark
    from conftest import LFW_DIR

    store_builder.lfw_crops = face_crops
    build_feature_set = store_builder.build_feature_set

    store = work / f"store-{identities}x{per_identity}-{img_size}"
    if not (store / "features").exists():
        build_feature_set(store, LFW_DIR, num_identities=identities, per_identity=per_identity, extractor="dlib",
                          size=img_size, chunk_rows=16, shard_size=256, invalid_rows=())
    return store


def uptime() -> str:
    return Path("/proc/loadavg").read_text().strip()


def run_one(store: Path, out: Path, recipe: str, seed: int, args: argparse.Namespace) -> dict:
    from facerec.recognition.config import TrainConfig
    from facerec.recognition.train import main as train_main

    fields = {"margin_warmup_epochs": 0.0, **RECIPES[recipe]}
    if "margin_warmup_epochs" not in TrainConfig.__dataclass_fields__:
        fields.pop("margin_warmup_epochs")
    cfg = TrainConfig(store=str(store), out=str(out), img_size=args.img_size, backbone=args.backbone,
                      stem="imagenet", embedding_size=128, epochs=args.epochs, batch_size=args.batch_size,
                      lr=fields.pop("lr", args.lr), warmup_epochs=0.5, seed=seed, use_heatmaps=False,
                      holdout_identity_frac=0.0, holdout_image_frac=0.0, evaluate_after=False, num_workers=0,
                      device="cpu", log_every=5, **fields)
    load_before, t0 = uptime(), time.perf_counter()
    result = train_main(cfg)
    seconds = time.perf_counter() - t0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    epochs = [r for r in rows if r.get("phase") == "train_epoch"]
    warnings = [r for r in rows if r.get("phase") == "collapse_warning"]

    return {
        "recipe": recipe, "seed": seed, "settings": {k: v for k, v in vars(cfg).items() if k not in ("store", "out")},
        "steps": result.steps, "epochs": [{"epoch": r["epoch"], "loss": round(r["loss"], 3),
                                           "accuracy": round(r["accuracy"], 4)} for r in epochs],
        "final_loss": round(epochs[-1]["loss"], 3), "final_accuracy": round(epochs[-1]["accuracy"], 4),
        "collapse_warnings": warnings[:1], "seconds": round(seconds, 1), "load_before": load_before,
        "load_after": uptime(),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=REPO / "runs" / "collapse_probe")
    p.add_argument("--identities", type=int, default=100)
    p.add_argument("--per-identity", type=int, default=6)
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS / "collapse_remedy.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    store = build_store(args.work, args.identities, args.per_identity, args.img_size)
    n = args.identities
    plateau = math.log(1 + (n - 1) * math.exp(64 * 0.5 * math.sin(0.5)))
    done = json.loads(args.out.read_text())["runs"] if args.out.exists() else []
    for seed in args.seeds:
        for recipe in args.recipes:
            tag = f"{recipe}-seed{seed}-e{args.epochs}-{n}x{args.per_identity}-{args.img_size}"
            if any(r.get("tag") == tag for r in done):
                continue
            rec = {"tag": tag, **run_one(store, args.work / "runs" / tag, recipe, seed, args)}
            rec["classes"] = n
            done.append(rec)
            logging.info("%s: loss %.3f, accuracy %.4f (plateau %.2f, chance %.4f)", tag, rec["final_loss"],
                         rec["final_accuracy"], plateau, 1 / n)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({
                "what": "short real-data runs: ArcFace collapse and its remedies (benchmarks/collapse_probe.py)",
                "machine": f"{os.cpu_count()} cores shared with other engineers; load per run in load_before/after",
                "data": f"{n} LFW people x {args.per_identity} images, centre crops {args.img_size}px",
                "plateau_loss_arcface_s64_m0.5": round(plateau, 3), "chance_accuracy": 1 / n, "runs": done,
            }, indent=2))


if __name__ == "__main__":
    main()
