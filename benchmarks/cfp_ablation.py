"""Input-channel ablation scored across pose on CFP: train on LFW people who are not CFP people.

Training data: every LFW person with ``--min-images`` (2) or more images except the people who are also
in CFP (``cfp-dataset/Data/list_name.txt``, spaces -> ``_`` match LFW's folder names; 172 of CFP's 500),
at most ``--max-per-identity`` images each. The exclusion is checked here (no training identity is a
CFP identity) and tested in ``tests/test_cfp_ablation.py``. Arms (``benchmarks.ablation.ARMS``): RGB,
RGB + 6 heatmaps, RGB + heatmaps + mask; same data, steps, model and seeds for every arm, the recipe
being ``TrainConfig``'s default (ArcFace s=64 m=0.5; ``--margin-warmup-epochs`` to ramp it). Every run
records its final training loss and accuracy, and the collapse guard's verdict is in its metrics.jsonl.

Scoring: CFP-FF and CFP-FP through issue 12's ``eval-pairs`` harness
(``facerec.recognition.pair_eval.eval_pairs_run``, on main since bb319f4), called by ``score_run_on_cfp``;
not yet exercised by a run of this script. Where the harness cannot be imported a run is recorded with
``cfp: null`` and the reason.

Budget: ``--time-steps N`` trains N steps of every arm, prints seconds per step and the projected
wall time of the whole ablation (arms x seeds x epochs x steps/epoch), and writes nothing else.

    python benchmarks/cfp_ablation.py --time-steps 5            # measure, project the budget
    python benchmarks/cfp_ablation.py --seeds 0 1 2             # the ablation (6 epochs, 64 px ResNet-18)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.ablation import ARMS, last_train_epoch, summarise
from facerec.evaluation.lfw import build_lfw_store, lfw_images_dir

log = logging.getLogger("cfp_ablation")
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DATA = REPO.parent / "shared" / "data"


def cfp_people(cfp_dir: Path) -> set[str]:
    """CFP's 500 identities as LFW folder names (spaces -> ``_``)."""
    path = cfp_dir / "cfp-dataset" / "Data" / "list_name.txt"
    return {line.strip().replace(" ", "_") for line in path.read_text().splitlines() if line.strip()}


def training_images(images_dir: Path, exclude: set[str], *, min_images: int, max_per_identity: int) -> list[str]:
    """Relative paths ``person/file.jpg`` of every LFW person with ``min_images``+ images not in ``exclude``."""
    out = []
    for person in sorted(p for p in images_dir.iterdir() if p.is_dir() and p.name not in exclude):
        files = sorted(person.glob("*.jpg"))
        if len(files) >= min_images:
            out += [f"{person.name}/{f.name}" for f in files[:max_per_identity]]
    overlap = {r.split("/", 1)[0] for r in out} & exclude
    if overlap:
        raise SystemExit(f"training identities include CFP people: {sorted(overlap)[:5]}")
    return out


def score_run_on_cfp(run_dir: Path, cfp_dir: Path, work: Path, device: str) -> dict:
    """CFP-FF and CFP-FP of one run through issue 12's eval-pairs harness: per protocol accuracy, AUC, TAR at
    FAR 1e-2 and the per-pair cosine scores (for the paired bootstrap). ImportError: no harness."""
    from facerec.evaluation.benchmarks import open_benchmark          # issue 12's eval-pairs harness
    from facerec.evaluation.lfw import EmbeddingCache, score_lfw_pairs
    from facerec.recognition.pair_eval import eval_pairs_run

    benches = [open_benchmark(name, cfp_dir=cfp_dir) for name in ("cfp-ff", "cfp-fp")]
    out = run_dir / "pairs"
    reports = eval_pairs_run(benches, run_dir, out, work=work, device=device)
    result = {}
    for bench in benches:
        report = reports[bench.name]
        cache = EmbeddingCache(out / f"embeddings-{bench.dataset}-{run_dir.name}-last-step{report['step']}.npz")
        result[bench.name] = {"accuracy": report["ten_fold"]["mean"], "auc": report["verification"]["auc"],
                              "tar_at_far_1e-2": report["verification"].get("tar_at_far", {}).get("0.01"),
                              "scores": score_lfw_pairs(bench.pairs, cache.vectors, "cosine").tolist(),
                              "same": [bool(p.same) for p in bench.pairs]}
    return result


def bootstrap_over_seeds(values: dict[str, list[float]], baseline: str, *, draws: int = 2000, seed: int = 0) -> dict:
    """95% percentile interval of (arm mean - baseline mean), resampling the seeds paired (seed i of each arm)."""
    rng = np.random.default_rng(seed)
    out = {}
    base = np.asarray(values[baseline])
    for arm, vals in values.items():
        if arm == baseline or len(vals) != len(base) or not len(base):
            continue
        diff = np.asarray(vals) - base
        means = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(draws)]
        low, high = np.percentile(means, [2.5, 97.5])
        out[arm] = {"delta": round(float(diff.mean()), 4), "low": round(float(low), 4), "high": round(float(high), 4)}
    return out


def time_steps(args: argparse.Namespace, store: str, num_images: int) -> dict:
    """Seconds per optimiser step of every arm (``--time-steps`` steps after one warm step) and the projection."""
    from facerec.recognition.config import TrainConfig
    from facerec.recognition.train import main as train_main

    per_arm = {}
    for arm in ARMS:
        times = []
        for steps in (1, 1 + args.time_steps):
            cfg = _config(args, store, Path(args.work) / "timing" / f"{arm}-{steps}-{time.time():.0f}", arm, 0)
            t0 = time.perf_counter()
            train_main(TrainConfig(**{**cfg, "max_steps": steps}))
            times.append(time.perf_counter() - t0)
        per_arm[arm] = (times[1] - times[0]) / args.time_steps
    steps_per_epoch = num_images // args.batch_size
    total = sum(per_arm.values()) * len(args.seeds) * args.epochs * steps_per_epoch
    return {"seconds_per_step": per_arm, "steps_per_epoch": steps_per_epoch, "projected_hours": round(total / 3600, 2),
            "load": Path("/proc/loadavg").read_text().strip()}


def _config(args: argparse.Namespace, store: str, out: Path, arm: str, seed: int) -> dict:
    return dict(store=store, out=str(out), img_size=args.img_size, backbone=args.backbone, stem=args.stem,
                embedding_size=args.embedding_size, epochs=args.epochs, batch_size=args.batch_size, seed=seed,
                holdout_identity_frac=0.0, holdout_image_frac=0.0, evaluate_after=False, num_workers=0,
                margin_warmup_epochs=args.margin_warmup_epochs, device=args.device, log_every=10, **ARMS[arm])


def run(args: argparse.Namespace) -> dict:
    from facerec.recognition.config import TrainConfig
    from facerec.recognition.train import main as train_main

    images = lfw_images_dir(Path(args.lfw_dir))
    excluded = cfp_people(Path(args.cfp_dir))
    train_rel = training_images(images, excluded, min_images=args.min_images, max_per_identity=args.max_per_identity)
    people = {r.split("/", 1)[0] for r in train_rel}
    log.info("training on %d images of %d LFW people (CFP's %d people excluded)", len(train_rel), len(people),
             len(excluded))
    fset, _ = build_lfw_store(images, train_rel, Path(args.work) / "train", extractor=args.extractor,
                              img_size=args.img_size)
    if args.time_steps:
        return {"timing": time_steps(args, str(fset.location), len(train_rel)), "settings": _settings(args)}
    runs = []
    for seed in args.seeds:                      # seed-major: every arm sees the same machine load
        for arm in ARMS:
            out = Path(args.work) / "runs" / f"{arm}-seed{seed}-{args.backbone}-{args.img_size}-e{args.epochs}"
            t0, load = time.perf_counter(), Path("/proc/loadavg").read_text().strip()
            result = train_main(TrainConfig(**_config(args, str(fset.location), out, arm, seed)))
            final = last_train_epoch(out)
            entry = {"arm": arm, "seed": seed, "steps": result.steps, "train_loss": final["loss"],
                     "train_accuracy": final["accuracy"], "train_seconds": round(time.perf_counter() - t0, 1),
                     "load": load}
            try:
                entry["cfp"] = score_run_on_cfp(out, Path(args.cfp_dir), Path(args.work) / "cfp", args.device)
            except ImportError as exc:
                entry["cfp"], entry["cfp_unscored"] = None, f"eval-pairs harness (issue 12) not available: {exc}"
            runs.append(entry)
    return {"settings": _settings(args), "data": {"train_images": len(train_rel), "train_people": len(people),
                                                  "excluded_cfp_people": len(excluded)},
            "runs": [{k: v for k, v in r.items() if k != "cfp"} | {"cfp": _without_scores(r["cfp"])} for r in runs],
            "summary": _summary(runs)}


def _without_scores(cfp: dict | None) -> dict | None:
    return None if cfp is None else {p: {k: v for k, v in m.items() if k not in ("scores", "same")}
                                     for p, m in cfp.items()}


def _summary(runs: list[dict]) -> dict:
    """Per arm mean/spread of train accuracy and each CFP metric; paired bootstrap vs rgb over seeds."""
    out: dict = {"per_arm": {}, "delta_vs_rgb_over_seeds": {}}
    for arm in ARMS:
        mine = [r for r in runs if r["arm"] == arm]
        out["per_arm"][arm] = {"train_accuracy": summarise([r["train_accuracy"] for r in mine])}
        for proto in ("cfp-ff", "cfp-fp"):
            for metric in ("accuracy", "auc"):
                out["per_arm"][arm][f"{proto}_{metric}"] = summarise(
                    [r["cfp"][proto][metric] if r.get("cfp") else None for r in mine])
    for proto in ("cfp-ff", "cfp-fp"):
        values = {arm: [r["cfp"][proto]["auc"] for r in runs if r["arm"] == arm and r.get("cfp")] for arm in ARMS}
        out["delta_vs_rgb_over_seeds"][f"{proto}_auc"] = bootstrap_over_seeds(values, "rgb")
    return out


def _settings(args: argparse.Namespace) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lfw-dir", default=str(DATA / "lfw"))
    p.add_argument("--cfp-dir", default=str(DATA / "cfp"))
    p.add_argument("--work", default="cfp-ablation-work", help="store and runs (the store is reused)")
    p.add_argument("--extractor", default="mediapipe")
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--stem", default="imagenet")
    p.add_argument("--embedding-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=6, help="6 x 78 steps fits 2.5 h on 2 cores (docs/training.md)")
    p.add_argument("--margin-warmup-epochs", type=float, default=0.0, help="margin 0 -> m over these epochs")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--min-images", type=int, default=2)
    p.add_argument("--max-per-identity", type=int, default=6)
    p.add_argument("--time-steps", type=int, default=0, help="only time N steps per arm and project the budget")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=RESULTS / "cfp_ablation.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    result = run(args)
    out = args.out.with_name("cfp_ablation_timing.json") if args.time_steps else args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    sys.stdout.write(json.dumps(result.get("timing") or result["summary"], indent=2) + "\n")


if __name__ == "__main__":
    main()
