"""The CFP ablation's summary, Markdown table and plot, from its per-run records and per-pair scores.

Kept apart from the training loop (``benchmarks/cfp_ablation.py``); rerunning that script over a finished
work folder rebuilds this summary without training or embedding again (runs and embeddings are reused).
``python -m benchmarks.cfp_ablation_report [RESULT.json]`` redraws the plot (an output, not committed) from
a result file alone, by default ``benchmarks/results/cfp_ablation.json`` into ``cfp_ablation.png`` beside it.

Two kinds of interval against the RGB arm, both paired:
- over seeds: seed i of an arm minus seed i of RGB, resampling the seeds (what another training run would
  give; with 3 seeds the interval is coarse and says so by its width);
- over pairs: every draw resamples CFP's pairs once and scores every arm and seed on that resample
  (``benchmarks.ablation.bootstrap_auc_delta``): what another draw of test pairs would give.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from benchmarks.ablation import bootstrap_auc_delta, summarise

PROTOCOLS = ("cfp-ff", "cfp-fp")
METRICS = ("accuracy", "auc", "tar_at_far_1e-2")


def collapse_verdict(final: dict, num_classes: int, *, recipe: str, scale: float | None = None,
                     margin: float | None = None) -> dict:
    """Did the run end collapsed? Training accuracy under 5x chance, or the training guard's own verdict on
    its last epoch (``facerec.training.collapse.CollapseGuard``: ArcFace's plateau near chance; it never
    judges CosFace, which has no basin)."""
    from facerec.recognition.heads import DEFAULT_MARGIN, DEFAULT_SCALE
    from facerec.training.collapse import CollapseGuard

    m = DEFAULT_MARGIN[recipe] if margin is None else margin
    s = DEFAULT_SCALE[recipe] if scale is None else scale
    guard = CollapseGuard.for_run(num_classes, margin_type=recipe, s=s, m=m, margin_warmup_epochs=0.0,
                                  warmup_epochs=0.0)
    chance = 1.0 / num_classes
    on_plateau = guard.check(final["epoch"], final["loss"], final["accuracy"]) is not None
    under_chance = final["accuracy"] < 5 * chance
    return {"collapsed": bool(on_plateau or under_chance), "accuracy_over_chance": round(final["accuracy"] / chance, 1),
            "plateau": round(guard.plateau, 3), "on_plateau": on_plateau, "under_5x_chance": bool(under_chance)}


def bootstrap_over_seeds(values: dict[str, list[float]], baseline: str, *, draws: int = 2000, seed: int = 0) -> dict:
    """95% percentile interval of (arm mean - baseline mean), resampling the seeds paired (seed i of each arm)."""
    rng = np.random.default_rng(seed)
    out = {}
    base = np.asarray(values[baseline], dtype=np.float64)
    for arm, vals in values.items():
        if arm == baseline or len(vals) != len(base) or not len(base):
            continue
        diff = np.asarray(vals, dtype=np.float64) - base
        means = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(draws)]
        low, high = np.percentile(means, [2.5, 97.5])
        out[arm] = {"delta": round(float(diff.mean()), 4), "low": round(float(low), 4), "high": round(float(high), 4),
                    "seeds": len(diff)}
    return out


def summarise_ablation(runs: list[dict], scores: dict[str, dict[str, list[np.ndarray]]],
                       pairs_info: dict[str, dict], *, baseline: str, draws: int) -> dict:
    """Per arm mean/std of every metric and the FF - FP gap; deltas against ``baseline`` over seeds and pairs.

    runs: the default recipe's run records; scores: protocol -> arm -> per-seed score arrays (seed order);
    pairs_info: protocol -> {"same": bool array, "bin_of": yaw bin name per pair}.
    """
    arms = list(dict.fromkeys(r["arm"] for r in runs))
    per_arm: dict = {}
    for arm in arms:
        mine = sorted((r for r in runs if r["arm"] == arm), key=lambda r: r["seed"])
        entry = {"train_accuracy": summarise([r["train_accuracy"] for r in mine]),
                 "ff_minus_fp_accuracy": summarise([r["ff_minus_fp_accuracy"] for r in mine]),
                 "seeds": [r["seed"] for r in mine]}
        for proto in PROTOCOLS:
            for metric in METRICS:
                entry[f"{proto}_{metric}"] = summarise([r["cfp"][proto][metric] for r in mine])
            bins = mine[0]["cfp"][proto]["yaw_bins"]
            entry[f"{proto}_yaw_auc"] = {b: summarise([r["cfp"][proto]["yaw_bins"][b]["auc"] for r in mine])
                                        for b in bins}
        per_arm[arm] = entry
    over_seeds: dict = {}
    for key in [f"{p}_{m}" for p in PROTOCOLS for m in ("accuracy", "auc")] + ["ff_minus_fp_accuracy"]:
        values = {arm: [_metric(r, key) for r in sorted(runs, key=lambda r: r["seed"]) if r["arm"] == arm]
                  for arm in arms}
        over_seeds[key] = bootstrap_over_seeds(values, baseline, draws=draws)
    over_pairs = {f"{proto}_auc": bootstrap_auc_delta(scores[proto], pairs_info[proto]["same"],
                                                      pairs_info[proto]["bin_of"], baseline, draws=draws)
                  for proto in PROTOCOLS}
    return {"per_arm": per_arm, "delta_vs_rgb_over_seeds": over_seeds, "delta_vs_rgb_over_pairs": over_pairs}


def _metric(run: dict, key: str) -> float:
    """``ff_minus_fp_accuracy`` or ``<protocol>_<metric>`` (protocols are 6 characters: cfp-ff, cfp-fp)."""
    return run[key] if key == "ff_minus_fp_accuracy" else run["cfp"][key[:6]][key[7:]]


def _pm(s: dict, pct: bool = False, digits: int = 3) -> str:
    if s.get("mean") is None:
        return "n/a"
    k = 100.0 if pct else 1.0
    d = 1 if pct else digits
    return f"{k * s['mean']:.{d}f} ± {k * s['std']:.{d}f}"


def _interval(e: dict | None, pct: bool = False) -> str:
    if not e:
        return "n/a"
    k, d = (100.0, 1) if pct else (1.0, 3)
    return f"{k * e['delta']:+.{d}f} [{k * e['low']:+.{d}f}, {k * e['high']:+.{d}f}]"


def _budget(result: dict) -> str:
    """Training time from each run's own log (a run may have been trained by an earlier call)."""
    secs = [r["logged_seconds"] for r in result["runs"] + result.get("comparison_runs", [])
            if r.get("logged_seconds")]
    mine = [r["logged_seconds"] for r in result["runs"] if r.get("logged_seconds")]
    text = (f"Training: {len(mine)} runs of the recipe, {min(mine):.0f}-{max(mine):.0f} s each, "
            f"{sum(secs) / 3600:.2f} run-hours for all {len(secs)} runs" if mine else "Training time not logged")
    return (f"{text}; this call (stores and runs reused, scoring, bootstrap) {60 * result['wall_hours']:.0f} min "
            f"on {result['machine']['cpu_cores']} cores.")


def markdown(result: dict) -> str:
    """The README's tables: per arm (mean ± std over seeds), the deltas against RGB, yaw bins, collapse."""
    s, data, st = result["summary"], result["data"], result["settings"]
    lines = [f"CFP ablation: {data['train_images']:,} LFW images of {data['train_people']:,} people (CFP's "
             f"{data['excluded_cfp_people']} people excluded, {data.get('excluded_lfw_people', '?')} of them LFW "
             f"folders), {st['backbone']} {st['img_size']} px, "
             f"{st['epochs']} epochs x {result['steps_per_epoch']} steps, batch {st['batch_size']}, recipe "
             f"{result['recipe']}, seeds {', '.join(map(str, st['seeds']))}. Test: all 7,000 CFP-FF and 7,000 CFP-FP pairs (10 folds each "
             "protocol), mirror-summed embeddings, cosine; accuracy: threshold chosen on 9 folds. "
             f"{_budget(result)}", "",
             "| arm | train acc (last epoch) | CFP-FF acc % | CFP-FF AUC | CFP-FP acc % | CFP-FP AUC | "
             "CFP-FP TAR@FAR1e-2 | FF − FP (points) |", "|---|---|---|---|---|---|---|---|"]
    for arm, a in s["per_arm"].items():
        lines.append(f"| {arm} | {_pm(a['train_accuracy'], pct=True)}% | {_pm(a['cfp-ff_accuracy'], pct=True)} | "
                     f"{_pm(a['cfp-ff_auc'])} | {_pm(a['cfp-fp_accuracy'], pct=True)} | {_pm(a['cfp-fp_auc'])} | "
                     f"{_pm(a['cfp-fp_tar_at_far_1e-2'])} | {_pm(a['ff_minus_fp_accuracy'], pct=True)} |")
    seeds, pairs = s["delta_vs_rgb_over_seeds"], s["delta_vs_rgb_over_pairs"]
    lines += ["", "Difference against the RGB arm, 95% paired bootstrap intervals (over seeds: seed i minus seed i; "
              "over pairs: CFP's pairs resampled, every seed scored on the same resample):", "",
              "| arm | FF acc (seeds), points | FP acc (seeds), points | FF − FP gap (seeds), points | "
              "FF AUC (pairs) | FP AUC (pairs) |", "|---|---|---|---|---|---|"]
    for arm in [a for a in s["per_arm"] if a in seeds["cfp-fp_accuracy"]]:
        lines.append(f"| {arm} | {_interval(seeds['cfp-ff_accuracy'].get(arm), True)} | "
                     f"{_interval(seeds['cfp-fp_accuracy'].get(arm), True)} | "
                     f"{_interval(seeds['ff_minus_fp_accuracy'].get(arm), True)} | "
                     f"{_interval(pairs['cfp-ff_auc'].get(arm, {}).get('all'))} | "
                     f"{_interval(pairs['cfp-fp_auc'].get(arm, {}).get('all'))} |")
    bins = list(next(iter(s["per_arm"].values()))["cfp-fp_yaw_auc"])
    counts = result.get("fp_pairs_per_yaw_bin", {})
    lines += ["", "CFP-FP AUC by the pair's larger |yaw| (mean ± std over seeds; pairs per bin in brackets):", "",
              "| arm | " + " | ".join(f"\\|yaw\\| {b} ({counts.get(b, '?')})" for b in bins) + " |",
              "|---|" + "---|" * len(bins)]
    for arm, a in s["per_arm"].items():
        lines.append(f"| {arm} | " + " | ".join(_pm(a["cfp-fp_yaw_auc"][b]) for b in bins) + " |")
    lines += ["", "Every run, the default recipe's and the comparison recipe's (same data, steps, model, seeds; "
              "collapsed: training accuracy under 5x chance, or on ArcFace's plateau):", "",
              "| recipe | arm | seed | final loss | final train acc | × chance | plateau | collapsed | "
              "CFP-FF acc % | CFP-FP acc % |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["runs"] + result.get("comparison_runs", []):
        v, cfp = r["collapse"], r.get("cfp") or {}
        acc = {p: f"{100 * cfp[p]['accuracy']:.1f}" if p in cfp else "n/a" for p in PROTOCOLS}
        lines.append(f"| {r['recipe']} | {r['arm']} | {r['seed']} | {r['train_loss']:.2f} | "
                     f"{100 * r['train_accuracy']:.2f}% | {v['accuracy_over_chance']} | {v['plateau']} | "
                     f"{'**yes**' if v['collapsed'] else 'no'} | {acc['cfp-ff']} | {acc['cfp-fp']} |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> Path:
    """Left: CFP-FF and CFP-FP accuracy per arm (error bars: std over seeds). Right: CFP-FP AUC by |yaw| bin."""
    from facerec.evaluation.plots import _pyplot

    s = result["summary"]["per_arm"]
    arms = list(s)
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1, 1.6]})
    width = 0.38
    for i, proto in enumerate(PROTOCOLS):
        means = [100 * (s[a][f"{proto}_accuracy"]["mean"] or math.nan) for a in arms]
        stds = [100 * (s[a][f"{proto}_accuracy"]["std"] or 0.0) for a in arms]
        left.bar([j + (i - 0.5) * width for j in range(len(arms))], means, width, yerr=stds, capsize=3,
                 label=proto.upper())
    left.set_xticks(range(len(arms)))
    left.set_xticklabels(arms, rotation=12)
    left.set_ylabel("10-fold accuracy (%)")
    left.set_ylim(50, 100)
    left.legend()
    left.set_title("CFP accuracy per arm (± std over seeds)")
    bins = list(s[arms[0]]["cfp-fp_yaw_auc"])
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        vals = [s[arm]["cfp-fp_yaw_auc"][b]["mean"] for b in bins]
        errs = [s[arm]["cfp-fp_yaw_auc"][b]["std"] or 0.0 for b in bins]
        right.bar([j + (i - (len(arms) - 1) / 2) * width for j in range(len(bins))],
                  [v if v is not None else math.nan for v in vals], width, yerr=errs, capsize=2, label=arm)
    right.set_xticks(range(len(bins)))
    counts = result.get("fp_pairs_per_yaw_bin", {})
    right.set_xticklabels([f"|yaw| {b}\n{counts.get(b, '?')} pairs" for b in bins])
    right.set_ylim(0.5, 1.0)
    right.set_ylabel("AUC")
    right.set_title("CFP-FP AUC by the pair's larger |yaw|")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    from benchmarks.common import RESULTS_DIR

    parser = argparse.ArgumentParser(description="Redraw the CFP ablation's plot from its result file.")
    parser.add_argument("result", nargs="?", type=Path, default=RESULTS_DIR / "cfp_ablation.json")
    args = parser.parse_args(argv)
    print(plot(json.loads(args.result.read_text()), args.result.with_suffix(".png")))


if __name__ == "__main__":
    main()
