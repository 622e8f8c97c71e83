"""Input-channel ablation scored across pose on CFP: train on LFW people who are not CFP people.

Training data: every LFW person with ``--min-images`` (2) or more images except the people who are also
in CFP (``cfp-dataset/Data/list_name.txt``, spaces -> ``_`` match LFW's folder names; 172 of CFP's 500),
at most ``--max-per-identity`` images each. The exclusion is checked here (no training identity is a
CFP identity) and tested in ``tests/test_cfp_ablation.py``. Arms (``benchmarks.ablation.ARMS``): RGB,
RGB + 6 heatmaps, RGB + heatmaps + mask; same data, steps, model and seeds for every arm, the recipe
being ``TrainConfig``'s default. ``--compare-recipes arcface`` also trains the RGB arm with ArcFace
(s=64, m=0.5) for every seed: the collapse evidence in the ablation's own setting (scored on CFP too,
kept out of the arms' summary).
Every run records its final training loss and accuracy and a collapse verdict.

Scoring: all 7,000 CFP-FF and 7,000 CFP-FP pairs through the ``eval-pairs`` harness
(``facerec.recognition.pair_eval.eval_pairs_run``: profile retries, mirror-summed embeddings, cosine,
10-fold accuracy with the threshold chosen on 9 folds, AUC, TAR at FAR 1e-2, EER, AUC by |yaw| bin).
Summary and intervals: ``benchmarks/cfp_ablation_report.py``. Finished runs are reused, so an
interrupted ablation continues where it stopped.

Budget: ``--time-steps N`` trains N steps of every arm, prints seconds per step and the projected
wall time of the training (arms x seeds x epochs x steps/epoch), and writes nothing else.

    python -m benchmarks.cfp_ablation --time-steps 5            # measure, project the budget
    python -m benchmarks.cfp_ablation --seeds 0 1 2             # the ablation (6 epochs, 32 px ResNet-18)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.ablation import ARMS, last_train_epoch
from benchmarks.cfp_ablation_report import PROTOCOLS, collapse_verdict, markdown, plot, summarise_ablation
from benchmarks.common import machine_info
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


RECIPES = {"cosface": {"use_cosface": True}, "arcface": {"use_cosface": False}}


def default_recipe() -> str:
    """The recipe ``TrainConfig`` trains with when no flag says otherwise (what the ablation measures)."""
    from facerec.recognition.config import TrainConfig

    return "cosface" if TrainConfig.__dataclass_fields__["use_cosface"].default else "arcface"


def score_run_on_cfp(run_dir: Path, benches: list, work: Path, device: str) -> tuple[dict, dict[str, np.ndarray]]:
    """CFP-FF and CFP-FP of one run through the ``eval-pairs`` harness: per protocol the report's figures
    (10-fold accuracy, AUC, TAR at FAR 1e-2, EER, AUC by |yaw| bin, how images were aligned) and the
    per-pair cosine scores (for the paired bootstrap)."""
    from facerec.evaluation.lfw import EmbeddingCache, score_lfw_pairs
    from facerec.recognition.pair_eval import eval_pairs_run

    out = run_dir / "pairs"
    reports = eval_pairs_run(benches, run_dir, out, work=work, device=device)
    result, scores = {}, {}
    for bench in benches:
        report = reports[bench.name]
        cache = EmbeddingCache(out / f"embeddings-{bench.dataset}-{run_dir.name}-last-step{report['step']}.npz")
        scores[bench.name] = score_lfw_pairs(bench.pairs, cache.vectors, "cosine")
        ver = report["verification"]
        result[bench.name] = {
            "accuracy": report["ten_fold"]["mean"], "accuracy_std_over_folds": report["ten_fold"]["std"],
            "auc": ver["auc"], "tar_at_far_1e-2": ver.get("tar_at_far", {}).get("0.01"), "eer": report["eer"],
            "yaw_bins": {b: {"auc": e["auc"], "pairs": e["num_pairs"]} for b, e in report["yaw_bins"]["bins"].items()},
            "alignment": report["alignment"]["images"]}
    return result, scores


def time_steps(args: argparse.Namespace, store: str, num_images: int) -> dict:
    """Seconds per optimiser step of every arm (``--time-steps`` steps after one warm step) and the projection."""
    from facerec.recognition.config import TrainConfig
    from facerec.recognition.train import main as train_main

    per_arm = {}
    for arm in args.arms:
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


def _config(args: argparse.Namespace, store: str, out: Path, arm: str, seed: int, recipe: str | None = None) -> dict:
    recipe_fields = RECIPES[recipe] if recipe else {}
    return dict(store=store, out=str(out), img_size=args.img_size, backbone=args.backbone, stem=args.stem,
                embedding_size=args.embedding_size, epochs=args.epochs, batch_size=args.batch_size, seed=seed,
                holdout_identity_frac=0.0, holdout_image_frac=0.0, evaluate_after=False, num_workers=0,
                margin_warmup_epochs=args.margin_warmup_epochs, device=args.device, log_every=10,
                **ARMS[arm], **recipe_fields)


def train_one(args: argparse.Namespace, store: str, arm: str, seed: int, recipe: str) -> tuple[Path, dict]:
    """Train one run, or reuse it when its last checkpoint finished every epoch; returns (run dir, record)."""
    from facerec.recognition.config import TrainConfig
    from facerec.recognition.train import main as train_main

    out = Path(args.work) / "runs" / f"{recipe}-{arm}-seed{seed}-{args.backbone}-{args.img_size}-e{args.epochs}"
    t0, load = time.perf_counter(), Path("/proc/loadavg").read_text().strip()
    done = (out / "metrics.jsonl").is_file() and last_train_epoch(out)["epoch"] == args.epochs
    if not done:
        train_main(TrainConfig(**_config(args, store, out, arm, seed, recipe)))
    final = last_train_epoch(out)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    times = [r["time"] for r in records if "time" in r]
    return out, {"recipe": recipe, "arm": arm, "seed": seed, "steps": final["epoch"] * args.steps_per_epoch,
                 "train_loss": final["loss"], "train_accuracy": final["accuracy"],
                 "guard_warnings": sum(r.get("phase") == "collapse_warning" for r in records),
                 "train_seconds": round(time.perf_counter() - t0, 1) if not done else None,
                 "logged_seconds": round(times[-1] - times[0], 1) if len(times) > 1 else None,
                 "load_at_start": load}


def _plan(args: argparse.Namespace, recipe: str) -> list[tuple[int, str, str]]:
    """(seed, arm, recipe) of every run: seed-major, so the arms of a seed share the machine's load."""
    plan = [(seed, arm, recipe) for seed in args.seeds for arm in args.arms]
    return plan + [(seed, "rgb", other) for other in args.compare_recipes if other != recipe for seed in args.seeds]


def run(args: argparse.Namespace) -> dict:
    from facerec.evaluation.benchmarks import open_benchmark
    from facerec.evaluation.lfw import pair_yaws
    from facerec.evaluation.verification import yaw_bin_of

    t_start = time.perf_counter()
    images = lfw_images_dir(Path(args.lfw_dir))
    excluded = cfp_people(Path(args.cfp_dir))
    train_rel = training_images(images, excluded, min_images=args.min_images, max_per_identity=args.max_per_identity)
    people = {r.split("/", 1)[0] for r in train_rel}
    args.steps_per_epoch = len(train_rel) // args.batch_size
    log.info("training on %d images of %d LFW people (CFP's %d people excluded)", len(train_rel), len(people),
             len(excluded))
    fset, _ = build_lfw_store(images, train_rel, Path(args.work) / "train", extractor=args.extractor,
                              img_size=args.img_size)
    if args.time_steps:
        return {"timing": time_steps(args, str(fset.location), len(train_rel)), "settings": _settings(args)}
    recipe = default_recipe()
    if args.train_only:                          # parallel training processes; a final call scores them all
        done = [train_one(args, str(fset.location), arm, seed, rec)[1] for seed, arm, rec in _plan(args, recipe)]
        return {"trained": done, "settings": _settings(args)}
    benches = [open_benchmark(name, cfp_dir=Path(args.cfp_dir)) for name in PROTOCOLS]
    work_cfp = Path(args.work) / "cfp"
    runs, comparison, scores = [], [], {p: {} for p in PROTOCOLS}
    plan = _plan(args, recipe)
    for i, (seed, arm, rec) in enumerate(plan, 1):
        log.info("run %d/%d: %s %s seed %d", i, len(plan), rec, arm, seed)
        out, entry = train_one(args, str(fset.location), arm, seed, rec)
        entry["collapse"] = collapse_verdict({"epoch": args.epochs, "loss": entry["train_loss"],
                                              "accuracy": entry["train_accuracy"]}, len(people), recipe=rec)
        entry["cfp"], run_scores = score_run_on_cfp(out, benches, work_cfp, args.device)
        entry["ff_minus_fp_accuracy"] = entry["cfp"]["cfp-ff"]["accuracy"] - entry["cfp"]["cfp-fp"]["accuracy"]
        if rec != recipe:                        # scored beside the arms, kept out of their summary
            comparison.append(entry)
            continue
        for proto, s in run_scores.items():
            scores[proto].setdefault(arm, []).append(s)
        runs.append(entry)
        log.info("%s seed %d: CFP-FF %.4f, CFP-FP %.4f, train accuracy %.4f", arm, seed,
                 entry["cfp"]["cfp-ff"]["accuracy"], entry["cfp"]["cfp-fp"]["accuracy"], entry["train_accuracy"])
    pairs_info = {}
    for bench in benches:
        keys = bench.keys
        cfp_fset, row_of = build_lfw_store(bench.images_dir, keys, work_cfp, extractor=args.extractor,
                                           img_size=args.img_size)
        pairs_info[bench.name] = {"same": np.array([p.same for p in bench.pairs]),
                                  "bin_of": yaw_bin_of(*pair_yaws(bench.pairs, cfp_fset, row_of))}
    bins_fp = pairs_info["cfp-fp"]["bin_of"]
    summary = summarise_ablation(runs, scores, pairs_info, baseline="rgb", draws=args.bootstrap)
    lfw_people = {p.name for p in images.iterdir() if p.is_dir()}
    return {"what": "input-channel ablation on CFP (issue 13); train on LFW people who are not CFP people",
            "recipe": recipe, "settings": _settings(args), "steps_per_epoch": args.steps_per_epoch,
            "data": {"train_images": len(train_rel), "train_people": len(people), "excluded_cfp_people": len(excluded),
                     "excluded_lfw_people": len(excluded & lfw_people),
                     "train_valid": int(fset.valid.sum())},
            "fp_pairs_per_yaw_bin": {b: int(np.sum(bins_fp == b)) for b in dict.fromkeys(bins_fp.tolist()) if b},
            "machine": machine_info(), "wall_hours": round((time.perf_counter() - t_start) / 3600, 3),
            "runs": runs, "comparison_runs": comparison,
            "summary": summary}


def _settings(args: argparse.Namespace) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lfw-dir", default=str(DATA / "lfw"))
    p.add_argument("--cfp-dir", default=str(DATA / "cfp"))
    p.add_argument("--work", default="cfp-ablation-work", help="store and runs (the store is reused)")
    p.add_argument("--extractor", default="mediapipe")
    p.add_argument("--img-size", type=int, default=32, help="32 px: 4x cheaper a step than 64 px (budget)")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--stem", default="imagenet")
    p.add_argument("--embedding-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=6, help="6 x 78 steps a run")
    p.add_argument("--margin-warmup-epochs", type=float, default=0.0, help="margin 0 -> m over these epochs")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--min-images", type=int, default=2)
    p.add_argument("--max-per-identity", type=int, default=6)
    p.add_argument("--arms", nargs="*", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--compare-recipes", nargs="*", default=["arcface"], choices=list(RECIPES),
                   help="also train (and score) the RGB arm with these recipes for every seed (recipe evidence)")
    p.add_argument("--train-only", action="store_true",
                   help="train (or reuse) the runs and stop; for parallel processes, each given some --arms or "
                        "--seeds, followed by one call without it that scores every run and writes the results")
    p.add_argument("--threads", type=int, default=None, help="torch threads of this process (default: torch's)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap draws for the intervals")
    p.add_argument("--time-steps", type=int, default=0, help="only time N steps per arm and project the budget")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=RESULTS / "cfp_ablation.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = run(args)
    if args.train_only:
        sys.stdout.write(json.dumps(result["trained"], indent=2) + "\n")
        return
    out = args.out.with_name("cfp_ablation_timing.json") if args.time_steps else args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    if not args.time_steps:
        out.with_suffix(".md").write_text(markdown(result))
        plot(result, out.with_suffix(".png"))
    sys.stdout.write(json.dumps(result.get("timing") or result["summary"], indent=2) + "\n")


if __name__ == "__main__":
    main()
