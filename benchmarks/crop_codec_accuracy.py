"""What a lossy crop codec costs in accuracy: one trained run, the same faces from every store copy.

    python -m benchmarks.crop_codec_accuracy --store runs/bench/reader-store-3000 --run runs/bench/codec-run

The run is trained once on the lossless store (``facerec train``, the command is printed and run when
``--run`` has no checkpoint; ``--epochs`` sets its budget). Each crop variant of ``benchmarks.crop_codecs``
(copies made by ``bench_reader``, reused here) is then
- verified: ``evaluate_run`` on the run's held-out identities, read from that copy (AUC, best accuracy,
  10-fold accuracy; the pairs are the same for every copy, drawn with the same seed);
- compared face by face: the cosine between each test face's embedding from the copy and from the
  lossless store (mirror-summed, L2-normalised, as evaluation embeds).
Writes ``benchmarks/results/crop_codec_accuracy.json``; ``bench_reader`` copies it into reader.json.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.crop_codecs import CROP_VARIANTS, copy_store, variant_name

log = logging.getLogger("crop_codec_accuracy")

EXTRACTOR, SIZE = "mediapipe", 112


def train_command(store: Path, run: Path, epochs: int) -> list[str]:
    """A small CPU run (ResNet-18, imagenet stem, RGB + 6 heatmaps, CosFace: stable on few images)."""
    return [sys.executable, "-m", "facerec.cli", "train", "--store", str(store), "--extractor", EXTRACTOR,
            "--use-heatmaps", "true", "--backbone", "resnet18", "--stem", "imagenet", "--epochs", str(epochs),
            "--batch-size", "64", "--lr", "2e-3", "--use-cosface", "true", "--device", "cpu", "--num-workers", "1",
            "--seed", "0", "--out", str(run)]


def test_embeddings(run: Path, zarr_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(rows, embeddings) of the run's test split read from ``zarr_path``, as evaluation embeds them."""
    from facerec.recognition.data import split_rows
    from facerec.recognition.inference import embed_dataset, load_run
    from facerec.store.open_store import open_feature_set

    loaded = load_run(run, "last.pt", "cpu")
    fset = open_feature_set(str(zarr_path), loaded.config.extractor, loaded.config.img_size)
    dataset = loaded.reader(fset, split_rows(loaded.config, fset, "test"))
    rows, emb = embed_dataset(loaded.model, dataset, loaded.device, batch_size=64)
    order = np.argsort(rows)
    return rows[order], emb[order]


def main(argv: list[str] | None = None) -> dict:
    from benchmarks.common import write_result
    from facerec.recognition.evaluate import evaluate_run
    from facerec.store.layout import StoreLayout

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("runs/bench/reader-store-3000"), help="the lossless store")
    parser.add_argument("--run", type=Path, default=Path("runs/bench/codec-run"), help="trained here when missing")
    parser.add_argument("--work", type=Path, default=Path("runs/bench/reader-crops"), help="the crop copies")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=3000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    zarr_path = Path(StoreLayout.at(str(args.store)).features_zarr(EXTRACTOR, SIZE).path)
    if not (args.run / "checkpoints" / "last.pt").exists():
        cmd = train_command(args.store, args.run, args.epochs)
        log.info("training: %s", " ".join(cmd))
        subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    from facerec.store.open_store import FeatureSet

    rows = FeatureSet.open(str(zarr_path)).num_rows
    variants, reference = [], None
    for codec, quality in CROP_VARIANTS:
        name = variant_name(codec, quality)
        dest = copy_store(zarr_path, args.work / f"crop-{name}", rows, crop_codec=codec, crop_quality=quality)
        report = evaluate_run(args.run, str(dest), device="cpu", num_pairs=args.pairs)
        test_rows, emb = test_embeddings(args.run, dest)
        if reference is None:
            reference = (test_rows, emb)
        if not np.array_equal(reference[0], test_rows):
            raise SystemExit(f"{dest}: test rows differ from the lossless store's; the copies must hold the same rows")
        cos = (emb * reference[1]).sum(axis=1)
        v = report["verification"]
        variants.append({
            "variant": name, "crop_codec": codec, "quality": quality, "store": str(dest),
            "auc": v["auc"], "best_accuracy": v["best_accuracy"], "ten_fold_accuracy": report["ten_fold"]["mean"],
            "ten_fold_std": report["ten_fold"]["std"], "num_pairs": v["num_pairs"], "test_faces": len(test_rows),
            "cosine_to_lossless": {"mean": float(cos.mean()), "min": float(cos.min()),
                                   "p01": float(np.percentile(cos, 1)), "median": float(np.median(cos))},
        })
        log.info("%s: AUC %.4f, 10-fold %.4f, cosine to lossless mean %.4f min %.4f", name, v["auc"],
                 report["ten_fold"]["mean"], cos.mean(), cos.min())
    base = variants[0]
    for entry in variants:
        entry["auc_delta"] = entry["auc"] - base["auc"]
        entry["ten_fold_delta"] = entry["ten_fold_accuracy"] - base["ten_fold_accuracy"]
    result = {"run": str(args.run), "train_command": " ".join(train_command(args.store, args.run, args.epochs)[1:]),
              "store": str(zarr_path), "variants": variants, "load_average_end": list(os.getloadavg())}
    write_result("crop_codec_accuracy", result)
    return result


if __name__ == "__main__":
    main()
