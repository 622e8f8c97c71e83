"""LFW ablation of the input channels, without training on test people.

Train on the people of LFW View 2 folds 1-5 (those with at least ``--min-images`` images, at most
``--max-per-identity`` each), evaluate on the pairs of folds 6-10 (View 2's folds are disjoint in people,
checked here), threshold chosen on 4 of those 5 folds and applied to the fifth. Arms, identical in
everything else (seeds, data, steps, model):

    rgb                 3 channels
    rgb+heatmaps        3 + 6 grouped landmark heatmaps
    rgb+heatmaps+mask   3 + 6 + the face-hull mask

Both stores (training people, test images) come from the real pipeline (``build_store``: MediaPipe
landmarks, alignment, heatmaps, mask) and are reused when they already exist; training runs are reused
when their last checkpoint finished. Writes ``benchmarks/results/ablation.json`` (per arm and seed: the
5-fold accuracy, AUC and AUC by the pair's larger |yaw|; per arm the mean and std over seeds) and
``benchmarks/results/ablation.png``.

    python benchmarks/ablation.py --lfw-dir ../shared/data/lfw --work /tmp/ablation
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from facerec.evaluation.lfw import (build_lfw_store, lfw_images_dir, pair_images, pair_yaws, read_pairs, run_lfw_report,
                                    score_lfw_pairs, subset_pairs)
from facerec.recognition.lfw import embed_store_images

log = logging.getLogger("ablation")

ARMS = {
    "rgb": {"use_heatmaps": False, "add_mask_channel": False},
    "rgb+heatmaps": {"use_heatmaps": True, "add_mask_channel": False},
    "rgb+heatmaps+mask": {"use_heatmaps": True, "add_mask_channel": True},
}
TRAIN_FOLDS = range(0, 5)     # 0-based: View 2 folds 1-5
RESULTS = Path(__file__).resolve().parent / "results"


def training_images(pairs, images_dir: Path, *, min_images: int, max_per_identity: int) -> list[str]:
    """Relative paths of the training people's images: everyone named in folds 1-5 with enough images."""
    people = sorted({n for p in pairs if p.fold in TRAIN_FOLDS for n in (p.name_a, p.name_b)})
    out = []
    for name in people:
        files = sorted((images_dir / name).glob("*.jpg"))
        if len(files) >= min_images:
            out += [f"{name}/{f.name}" for f in files[:max_per_identity]]
    return out


def train_arm(args: argparse.Namespace, train_store: str, arm: str, seed: int):
    """Train one arm with one seed (or reuse a finished run); returns (run dir, TrainConfig)."""
    from facerec.training.runs import RunFolder
    from facerec.recognition.config import TrainConfig
    from facerec.recognition.train import main as train_main

    out = Path(args.work) / "runs" / f"{arm}-seed{seed}-{args.backbone}-{args.stem}-e{args.epochs}"
    cfg = TrainConfig(store=train_store, out=str(out), img_size=args.img_size, backbone=args.backbone,
                      stem=args.stem, embedding_size=args.embedding_size, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, warmup_epochs=args.warmup_epochs, seed=seed,
                      holdout_identity_frac=0.0, holdout_image_frac=0.0, evaluate_after=False,
                      num_workers=args.num_workers, device=args.device, log_every=10, **ARMS[arm])
    if (out / "checkpoints" / "last.pt").exists():
        state = RunFolder(out, resume=True).load_checkpoint()
        if state["loop"]["epoch"] >= args.epochs:
            log.info("%s seed %d: reusing the finished run in %s", arm, seed, out)
            return out, TrainConfig.from_dict(RunFolder(out, resume=True).load_config())
        cfg = dataclasses.replace(cfg, resume=True)
    t0 = time.perf_counter()
    train_main(cfg)
    log.info("%s seed %d: trained in %.0f s", arm, seed, time.perf_counter() - t0)
    return out, TrainConfig.from_dict(RunFolder(out, resume=True).load_config())


def last_train_epoch(run: Path) -> dict:
    """Loss and accuracy of the run's last training epoch: how far the budget got the model."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    last = [r for r in rows if r.get("phase") == "train_epoch"][-1]
    return {"epoch": last["epoch"], "loss": round(last["loss"], 3), "accuracy": round(last["accuracy"], 4)}


def markdown_table(result: dict) -> str:
    """The README's table: mean +- std over seeds per arm, accuracy, AUC and AUC by |yaw| bin."""
    first = next(iter(next(iter(result["runs"].values())).values()))
    bins = list(first["yaw_auc"])
    head = (["arm", "accuracy", "AUC"] + [f"AUC \\|yaw\\| {b} ({first['yaw_pairs'][b]} pairs)" for b in bins]
            + ["train loss / accuracy, last epoch"])

    def cell(s: dict, pct: bool = False) -> str:
        if s["mean"] is None:
            return "n/a"
        k = 100.0 if pct else 1.0
        return f"{k * s['mean']:.{1 if pct else 3}f} +- {k * s['std']:.{1 if pct else 3}f}"

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm, s in result["summary"].items():
        final = [r["final_train"] for r in result["runs"][arm].values() if r.get("final_train")]
        trained = (f"{np.mean([f['loss'] for f in final]):.1f} / {100 * np.mean([f['accuracy'] for f in final]):.1f}%"
                   if final else "n/a")
        row = ([arm, cell(s["accuracy"], pct=True) + "%", cell(s["auc"])] + [cell(s["yaw_auc"][b]) for b in bins]
               + [trained])
        lines.append("| " + " | ".join(row) + " |")
    deltas = result.get("auc_delta_vs_rgb") or {}
    if deltas:
        names = ["all"] + bins
        lines += ["", "| AUC minus the rgb arm's (95% paired bootstrap over pairs) | "
                  + " | ".join(n if n == "all" else f"\\|yaw\\| {n}" for n in names) + " |",
                  "|" + "---|" * (len(names) + 1)]
        for arm, by_bin in deltas.items():
            cells = [f"{e['delta']:+.3f} [{e['low']:+.3f}, {e['high']:+.3f}]" if (e := by_bin.get(n)) else "n/a"
                     for n in names]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bootstrap_auc_delta(scores: dict[str, list[np.ndarray]], same: np.ndarray, bin_of: np.ndarray,
                        baseline: str, *, draws: int = 1000, seed: int = 0) -> dict:
    """Paired bootstrap over test pairs of (mean AUC over seeds of an arm) - (the same for ``baseline``).

    Every draw resamples the pairs once and scores every arm and seed on that same resample, so the
    interval reflects the test set's size, not only the seeds. Returns arm -> bin -> {delta, low, high}
    (a 95% percentile interval), bins "all" and each |yaw| bin.
    """
    from sklearn.metrics import roc_auc_score

    from facerec.evaluation.verification import YAW_BINS

    def mean_auc(arm: str, idx: np.ndarray) -> float:
        return float(np.mean([roc_auc_score(same[idx], s[idx]) for s in scores[arm]]))

    rng = np.random.default_rng(seed)
    groups = {"all": np.arange(len(same))}
    groups.update({name: np.flatnonzero(bin_of == name) for name, _, _ in YAW_BINS})
    out: dict = {}
    for arm in scores:
        if arm == baseline:
            continue
        out[arm] = {}
        for name, members in groups.items():
            if len(members) == 0 or len(np.unique(same[members])) < 2:
                continue
            delta = mean_auc(arm, members) - mean_auc(baseline, members)
            samples = []
            for _ in range(draws):
                idx = rng.choice(members, size=len(members), replace=True)
                if len(np.unique(same[idx])) == 2:
                    samples.append(mean_auc(arm, idx) - mean_auc(baseline, idx))
            low, high = np.percentile(samples, [2.5, 97.5])
            out[arm][name] = {"delta": round(delta, 4), "low": round(float(low), 4), "high": round(float(high), 4),
                              "pairs": int(len(members))}
    return out


def summarise(values: list[float | None]) -> dict:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "n": len(vals)}


def run(args: argparse.Namespace) -> dict:
    from facerec.training.devices import resolve_device
    from facerec.recognition.inference import load_run

    lfw_dir, work = Path(args.lfw_dir), Path(args.work)
    pairs = read_pairs(lfw_dir / "pairs.txt")
    images = lfw_images_dir(lfw_dir)
    test_pairs = [p for p in subset_pairs(pairs, args.pairs_per_fold) if p.fold not in TRAIN_FOLDS]
    train_rel = training_images(pairs, images, min_images=args.min_images, max_per_identity=args.max_per_identity)
    train_people = {r.split("/", 1)[0] for r in train_rel}
    test_people = {n for p in test_pairs for n in (p.name_a, p.name_b)}
    if train_people & test_people:
        raise SystemExit(f"training and test people overlap: {sorted(train_people & test_people)[:5]}")
    test_rel = pair_images(test_pairs)
    log.info("training on %d images of %d people (folds 1-5); testing on %d pairs (%d images) of folds 6-10",
             len(train_rel), len(train_people), len(test_pairs), len(test_rel))
    t0 = time.perf_counter()
    train_fset, _ = build_lfw_store(images, train_rel, work / "train", extractor=args.extractor, img_size=args.img_size)
    test_fset, test_rows = build_lfw_store(images, test_rel, work / "test", extractor=args.extractor,
                                           img_size=args.img_size)
    store_seconds = time.perf_counter() - t0
    device = resolve_device(args.device)
    per_run: dict = {}
    scores: dict[str, list[np.ndarray]] = {}
    for arm in ARMS:
        for seed in args.seeds:
            t1 = time.perf_counter()
            out, cfg = train_arm(args, str(train_fset.location), arm, seed)
            loaded = load_run(out, "last.pt", device)
            state = loaded.state
            vectors, _ = embed_store_images(loaded, test_fset, test_rows, test_rel)
            report, _ = run_lfw_report(test_pairs, vectors, test_fset, test_rows)
            scores.setdefault(arm, []).append(score_lfw_pairs(test_pairs, vectors, "cosine"))
            per_run.setdefault(arm, {})[str(seed)] = {
                "accuracy": report["ten_fold"]["mean"], "accuracy_std_over_folds": report["ten_fold"]["std"],
                "auc": report["verification"]["auc"], "steps": state["loop"]["step"],
                "yaw_auc": {b: e["auc"] for b, e in report["yaw_bins"]["bins"].items()},
                "yaw_pairs": {b: e["num_pairs"] for b, e in report["yaw_bins"]["bins"].items()},
                "final_train": last_train_epoch(out),
                "seconds": round(time.perf_counter() - t1, 1),
            }
            log.info("%s seed %d: accuracy %.4f, AUC %.4f", arm, seed, per_run[arm][str(seed)]["accuracy"],
                     per_run[arm][str(seed)]["auc"])
    bins = list(next(iter(next(iter(per_run.values())).values()))["yaw_auc"])
    summary = {
        arm: {
            "accuracy": summarise([r["accuracy"] for r in runs.values()]),
            "auc": summarise([r["auc"] for r in runs.values()]),
            "yaw_auc": {b: summarise([r["yaw_auc"][b] for r in runs.values()]) for b in bins},
        }
        for arm, runs in per_run.items()
    }
    from facerec.evaluation.verification import yaw_bin_of

    bin_of = yaw_bin_of(*pair_yaws(test_pairs, test_fset, test_rows))
    same = np.array([p.same for p in test_pairs])
    delta = bootstrap_auc_delta(scores, same, bin_of, baseline=next(iter(ARMS)), draws=args.bootstrap)
    return {
        "protocol": "train on LFW View 2 folds 1-5 people, test on folds 6-10 pairs; accuracy: threshold on 4 "
                    "of the 5 test folds, applied to the fifth, mean over the 5; embeddings mirrored, cosine",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "data": {"train_images": len(train_rel), "train_people": len(train_people), "test_pairs": len(test_pairs),
                 "test_images": len(test_rel), "train_valid": int(train_fset.valid.sum()),
                 "test_valid": int(np.sum([test_fset.valid[test_rows[r]] for r in test_rel])),
                 "store_build_seconds": round(store_seconds, 1)},
        "summary": summary,
        "auc_delta_vs_rgb": delta,
        "runs": per_run,
    }


def plot(result: dict, path: Path) -> Path:
    """AUC per arm overall and by |yaw| bin, error bars = std over seeds."""
    from facerec.evaluation.plots import plot_yaw_bins

    table, errors = {}, {}
    for arm, s in result["summary"].items():
        table[arm] = {"all": s["auc"]["mean"], **{b: v["mean"] for b, v in s["yaw_auc"].items()}}
        errors[arm] = {"all": s["auc"]["std"], **{b: v["std"] for b, v in s["yaw_auc"].items()}}
    return plot_yaw_bins(table, path, "AUC (LFW folds 6-10)", errors=errors)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lfw-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw"))
    p.add_argument("--work", default="ablation-work", help="stores and runs (reused when present)")
    p.add_argument("--extractor", default="mediapipe")
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--stem", default="imagenet")
    p.add_argument("--embedding-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup-epochs", type=float, default=0.5)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--min-images", type=int, default=4)
    p.add_argument("--max-per-identity", type=int, default=6)
    p.add_argument("--pairs-per-fold", type=int, default=300, help="same and different pairs per test fold")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap draws for the AUC differences")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=RESULTS / "ablation.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    result["plot"] = str(plot(result, args.out.with_suffix(".png")))
    args.out.with_suffix(".md").write_text(markdown_table(result))
    sys.stdout.write(json.dumps(result["summary"], indent=2) + "\n")


if __name__ == "__main__":
    main()
