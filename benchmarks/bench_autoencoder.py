"""Benchmark: the landmark autoencoder on real LFW landmarks, against its two baselines.

Builds (or reuses) a store of LFW identities with at least two images (at most ``--per-identity`` images
each, so George W. Bush's 530 do not dominate), trains the autoencoder with and without the residual
connection, and writes ``benchmarks/results/autoencoder.json``: NME of the model, of the input landmarks
unchanged and of the mean training canonical shape, overall and per |yaw| bin, with the face count of
each bin, on identities never seen in training; plus ``benchmarks/results/autoencoder_nme_by_yaw.png``.
The default model is the residual one; the plain MLP (``--no-residual``) is trained too, for comparison.

    .venv/bin/python benchmarks/bench_autoencoder.py --work /tmp/ae_bench            # build + train
    .venv/bin/python benchmarks/bench_autoencoder.py --store STORE --extractor dlib   # an existing store

The store is the cache: a second call reuses every finished stage. Images are symlinked, never copied.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
LFW = Path(os.environ.get("FACEREC_LFW_DIR", REPO.parent / "shared" / "data" / "lfw"))

log = logging.getLogger("bench_autoencoder")


def lfw_folder(dest: Path, min_images: int, per_identity: int) -> Path:
    """An ImageFolder of symlinks: every LFW identity with >= min_images images, the first per_identity of each."""
    images = LFW / "lfw-deepfunneled"
    if not images.is_dir():
        sys.exit(f"LFW not found at {images} (set FACEREC_LFW_DIR)")
    for person in sorted(p for p in images.iterdir() if p.is_dir()):
        files = sorted(person.glob("*.jpg"))
        if len(files) < min_images:
            continue
        (dest / person.name).mkdir(parents=True, exist_ok=True)
        for img in files[:per_identity]:
            link = dest / person.name / img.name
            if not link.exists():
                link.symlink_to(img)
    return dest


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", help="an existing store root (skips building)")
    parser.add_argument("--work", default="/tmp/facerec_bench_autoencoder", help="where to build the store and runs")
    parser.add_argument("--extractor", default="mediapipe")
    parser.add_argument("--img-size", type=int, default=112)
    parser.add_argument("--min-images", type=int, default=2)
    parser.add_argument("--per-identity", type=int, default=6)
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--holdout-identity-frac", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for this MLP on a busy machine)")
    parser.add_argument("--out", default=str(RESULTS / "autoencoder.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("py4j", "pyspark", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from facerec.frontalization.evaluate import METHOD_LABELS, yaw_bin_table
    from facerec.evaluation.plots import plot_yaw_bins
    from facerec.frontalization.train import AutoencoderConfig
    from facerec.frontalization.train import main as train

    work = Path(args.work)
    stages = None
    if args.store:
        store = args.store
    else:
        from facerec.pipeline.build import build_store

        store = str(work / "store")
        folder = lfw_folder(work / "images", args.min_images, args.per_identity)
        results = build_store(str(folder), store, extractor=args.extractor, img_size=args.img_size, seed=args.seed,
                              shard_size=args.shard_size)
        # A stage finished by an earlier call is reused: its time here is the check, not the build.
        stages = [{"stage": r.stage, "rows_in": r.rows_in, "ok": r.ok, "rejected": r.rejected,
                   "reused": bool(r.skipped_stage), "seconds": round(r.seconds, 1)} for r in results]

    runs = {}
    for name, residual in (("residual", True), ("no_residual", False)):
        out = work / f"run-{args.extractor}-{name}-s{args.seed}"
        cfg = AutoencoderConfig(store=store, extractor=args.extractor, out=str(out), img_size=args.img_size,
                                epochs=args.epochs, batch_size=args.batch_size, residual=residual,
                                holdout_identity_frac=args.holdout_identity_frac, seed=args.seed, device="cpu",
                                threads=args.threads,
                                resume=(out / "config.json").exists())
        t0 = time.time()
        summary = train(cfg)
        runs[name] = {"residual": residual, "train_seconds": round(time.time() - t0, 1), "run_dir": str(out),
                      "data": json.loads((out / "data.json").read_text()), **summary}

    result = {
        "benchmark": "landmark autoencoder: posed landmarks + pose -> identity canonical landmarks",
        "metric": "NME: mean point-to-point error / target inter-ocular distance (eye-group centres), "
                  "normalised frame, held-out identities",
        "store": store, "extractor": args.extractor, "img_size": args.img_size,
        "lfw_selection": None if args.store else {"min_images": args.min_images, "per_identity": args.per_identity},
        "store_stages": stages, "epochs": args.epochs, "seed": args.seed,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": runs,
    }
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2))
    # One figure: both model variants and the two baselines per |yaw| bin.
    table = yaw_bin_table(runs["residual"])
    table[f"{METHOD_LABELS['model']} (no residual)"] = yaw_bin_table(runs["no_residual"])[METHOD_LABELS["model"]]
    plot_yaw_bins(table, out_path.with_name(out_path.stem + "_nme_by_yaw.png"), "NME (held-out LFW identities)",
                  binned_by="the face's |yaw|")
    for name, run in runs.items():
        nme = run["nme"]
        log.info("%s: held-out NME model %.4f | input %.4f | mean %.4f (%d faces)", name, nme["model"]["all"],
                 nme["input"]["all"], nme["mean"]["all"], run["count"]["all"])
    return result


if __name__ == "__main__":
    main()
