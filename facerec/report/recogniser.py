"""The recogniser's part of the report, as designed tables and plots with captions and units.

Three sections from a run folder, nothing recomputed:
- **Recogniser training**: the recipe and budget (from ``config.json``, the head in ``eval.json``, the
  training-set size in ``eval.json``, the demo's wall time), loss and accuracy per epoch from
  ``metrics.jsonl``, the collapse guard's warning if it fired, the training curves;
- **Verification**: the run beside dlib's pretrained embedder on the same held-out pairs
  (``reference_dlib.json``, ``facerec.recognition.reference``; without it, the run alone from
  ``eval.json``), one ROC plot of both, and a plain statement of what this budget can reach;
- **Metrics by yaw**: AUC and accuracy per |yaw| bin for both models, and the bar plot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from facerec.report.document import Figure, Paragraph, Section, Table

LOSS_NAMES = {"arcface": "ArcFace", "cosface": "CosFace"}
# What the report says about the reference model; from dlib-models' README (the model's own card).
DLIB_TRAINING = "about 3 million faces of 7,485 people, none of them LFW people (dlib-models README)"
DLIB_LFW = "99.38% +- 0.27 on LFW (dlib-models README)"
SMALL_BUDGET_IMAGES = 20_000   # below this many training images the report says plainly what to expect
SCALE_POINTER = ("For what this recogniser reaches with more data and steps, see README.md, section Benchmarks "
                 "(the CFP/LFW ablation: more people, longer CPU runs, several seeds) and the GPU figures "
                 "there (ResNet-50, 112 px, bf16).")


# formatting --------------------------------------------------------------------------------------------
def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}"


def num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def epochs(n: int | None) -> str:
    return f"{count(n)} epoch{'' if n == 1 else 's'}"


# training ----------------------------------------------------------------------------------------------
def _epoch_rows(records: Sequence[Mapping]) -> list[list[str]]:
    """One row per finished epoch: train loss and accuracy, and the validation accuracy logged with it."""
    val = {r.get("epoch"): r for r in records if r.get("phase") == "val"}
    rows = []
    for r in (r for r in records if r.get("phase") == "train_epoch"):
        v = val.get(r.get("epoch"), {})
        rows.append([count(r.get("epoch")), count(r.get("step")), num(r.get("loss"), 2), pct(r.get("accuracy")),
                     pct(v.get("accuracy")), num(v.get("loss"), 2) if v else "—"])
    return rows


def loss_text(config: Mapping, head: Mapping | None) -> str:
    kind = (head or {}).get("type") or ("cosface" if config.get("use_cosface") else "arcface")
    s = (head or {}).get("s", config.get("scale"))
    m = (head or {}).get("m", config.get("margin"))
    text = f"{LOSS_NAMES.get(kind, kind)}, scale s = {num(s, 0) if s is not None else 'default'}, " \
           f"margin m = {num(m, 2) if m is not None else 'default'}"
    if config.get("margin_warmup_epochs"):
        text += f", margin ramped from 0 over {config['margin_warmup_epochs']:g} epochs"
    return text


def recipe_table(config: Mapping, evaluation: Mapping | None, records: Sequence[Mapping],
                 train_seconds: float | None) -> Table:
    ev = evaluation or {}
    data = ev.get("training_data") or {}
    steps = max((int(r["step"]) for r in records if isinstance(r.get("step"), int)), default=None)
    channels = "RGB" + (" + 6 landmark heatmaps" if config.get("use_heatmaps") else "") + \
               (" + face mask" if config.get("add_mask_channel") else "")
    rows = [
        ["backbone", f"{config.get('backbone')} ({config.get('stem', 'face')} stem), "
                     f"{config.get('embedding_size')}-d embedding"],
        ["input", f"{config.get('img_size')} px aligned crop, {channels}"],
        ["loss", loss_text(config, ev.get("head"))],
        ["optimiser", f"AdamW, learning rate {config.get('lr', 0):g}, weight decay {config.get('weight_decay', 0):g}, "
                      f"{config.get('warmup_epochs', 0):g} warm-up epochs then cosine decay"],
        ["training data", f"{count(data.get('images'))} images of {count(data.get('identities'))} people"
                          if data else "not recorded (evaluate the run to record it)"],
        ["budget", f"{epochs(config.get('epochs'))} of batches of {config.get('batch_size')}: "
                   f"{count(steps)} optimiser steps"],
        ["wall time", f"{train_seconds:,.0f} s (device setting: {config.get('device', 'auto')})"
                      if train_seconds is not None else "not measured here"],
    ]
    return Table(["", "this run"], rows, "Recipe and budget (config.json; the head as built, from eval.json)")


def training_blocks(config: Mapping, evaluation: Mapping | None, records: Sequence[Mapping],
                    train_seconds: float | None) -> list:
    blocks: list = [recipe_table(config, evaluation, records, train_seconds)]
    rows = _epoch_rows(records)
    if rows:
        blocks.append(Table(["epoch", "step", "train loss", "train accuracy (%)", "validation accuracy (%)",
                             "validation loss"], rows,
                            "Per epoch (metrics.jsonl): training batches, and held-out images of the training people"))
    else:
        blocks.append(Paragraph("metrics.jsonl holds no finished epoch.", muted=True))
    for warning in (r for r in records if r.get("phase") == "collapse_warning"):
        detail = ", ".join(f"{k} {num(v) if isinstance(v, float) else v}" for k, v in warning.items()
                           if k not in ("phase", "time"))
        blocks.append(Paragraph(f"Collapse guard: this run sat on the collapse plateau ({detail}); its "
                                "embeddings are close to useless. See docs/training.md, Optimisation."))
    return blocks


# verification ------------------------------------------------------------------------------------------
def _fallback(rep: Mapping) -> str:
    a = rep.get("alignment") or {}
    if not a:
        return "—"
    fb = sum(n for k, n in (a.get("images") or {}).items() if k in set(a.get("fallback_kinds") or ()))
    return f"{fb:,} of {a.get('num_images', 0):,}"


def _model_row(label: str, rep: Mapping, trained_on: str) -> list[str]:
    v, t = rep.get("verification") or {}, rep.get("ten_fold") or {}
    acc = f"{pct(t.get('mean'))} ± {pct(t.get('std'))}" if t.get("mean") is not None else "—"
    tar = (v.get("tar_at_far") or {}).get("0.01")
    return [label, trained_on, acc, num(v.get("auc")), pct(tar), pct(rep.get("eer")), _fallback(rep)]


HEADERS = ["model", "trained on", "10-fold accuracy (%)", "AUC", "TAR @ FAR 1e-2 (%)", "EER (%)",
           "images aligned by a fall-back"]


def ordered_models(reference: Mapping) -> list[tuple[str, Mapping]]:
    """The trained run first, then the reference model(s) (JSON files may have their keys sorted)."""
    return sorted(reference["models"].items(), key=lambda item: item[1].get("embedder") != "trained run")


def comparison_table(reference: Mapping, run_trained_on: str) -> Table:
    rows = [_model_row(label, rep, run_trained_on if rep.get("embedder") == "trained run" else DLIB_TRAINING)
            for label, rep in ordered_models(reference)]
    return Table(HEADERS, rows, f"The same {reference['num_pairs']:,} held-out pairs for both models; "
                                "accuracy: threshold chosen on 9 folds, applied to the 10th, mean ± std over folds")


def run_only_table(evaluation: Mapping, run_trained_on: str) -> Table:
    rep = {"verification": evaluation.get("verification"), "ten_fold": evaluation.get("ten_fold")}
    return Table(HEADERS, [_model_row("this run", rep, run_trained_on)],
                 f"{count((evaluation.get('verification') or {}).get('num_pairs'))} held-out pairs "
                 "(no reference model was scored on them)")


def expectation(config: Mapping, evaluation: Mapping, reference: Mapping | None, train_seconds: float | None) -> str:
    """What this budget can reach, said with this run's numbers beside dlib's."""
    data = evaluation.get("training_data") or {}
    mine = (evaluation.get("ten_fold") or {}).get("mean")
    budget = (f"This recogniser trained for {epochs(config.get('epochs'))} on {count(data.get('images'))} images of "
              f"{count(data.get('identities'))} people"
              + (f" in {train_seconds:,.0f} s of wall time" if train_seconds is not None else "") + ". ")
    small = data.get("images") is not None and data["images"] < SMALL_BUDGET_IMAGES
    text = budget + ("A budget this small teaches a face recogniser little: a model of this kind needs hundreds "
                     "of thousands of images and hours of GPU time before verification accuracy approaches the "
                     "high 90s, and a run this short should be expected to land between chance (50%) and about "
                     "70% on people it never saw: it shows that the whole path works, not what the method can do. "
                     if small else "")
    if reference is not None and mine is not None:
        dlib = next((r for r in reference["models"].values() if r.get("embedder") == "dlib"), None)
        theirs = (dlib or {}).get("ten_fold", {}).get("mean")
        if theirs is not None:
            gap = 100 * (theirs - mine)
            text += (f"Here it reaches {pct(mine)}% against dlib's {pct(theirs)}% on the same pairs "
                     f"({abs(gap):.1f} points {'below' if gap > 0 else 'above'} it); dlib's model, trained on "
                     "about 3 million faces, reports " + DLIB_LFW + ". ")
    elif mine is not None:
        text += f"Here it reaches {pct(mine)}%. "
    return text + SCALE_POINTER


def verification_blocks(config: Mapping, evaluation: Mapping | None, reference: Mapping | None,
                        plots: Mapping[str, Path], train_seconds: float | None) -> list:
    if not evaluation or not evaluation.get("verification"):
        return [Paragraph("No evaluation was recorded in this run folder (run `facerec evaluate`).", muted=True)]
    v = evaluation["verification"]
    data = evaluation.get("training_data") or {}
    trained_on = (f"{count(data.get('images'))} images of {count(data.get('identities'))} people, "
                  f"{epochs(config.get('epochs'))}")
    same = (reference or {}).get("models", {})
    n_same = next(iter(same.values()), {}).get("num_same") if same else None
    lead = (f"{v.get('num_pairs', 0):,} pairs"
            + (f" ({n_same:,} same person, {v.get('num_pairs', 0) - n_same:,} different)" if n_same is not None else "")
            + f" among {count(evaluation.get('num_test_images'))} images of {count(evaluation.get('num_test_identities'))} "
            "people held out of training. Chance is 50% accuracy and AUC 0.5.")
    blocks: list = [Paragraph(lead)]
    if reference is not None:
        blocks.append(comparison_table(reference, trained_on))
        dlib = next((r for r in reference["models"].values() if r.get("embedder") == "dlib"), {})
        blocks.append(Paragraph(
            "dlib embeds the source photo (HOG face detector, then its CNN detector, then the whole image; "
            "5-point alignment; Euclidean distance); this run embeds its aligned crop (mirror-summed, cosine). "
            f"dlib took {dlib.get('seconds', 0):,.0f} s for {reference.get('num_images', 0):,} images.", muted=True))
    else:
        blocks.append(run_only_table(evaluation, trained_on))
    for path in pick_plots(plots, "roc", "roc_vs_dlib"):
        both = path.stem == "roc_vs_dlib"
        blocks.append(Figure(path, "ROC on the held-out pairs (true-accept rate against false-accept rate, log axis), "
                                   + ("both models on the same pairs" if both else "this run") + "; AUC in the legend"))
    blocks.append(Paragraph(expectation(config, evaluation, reference, train_seconds)))
    return blocks


def pick_plots(plots: Mapping[str, Path], kind: str, combined: str) -> list[Path]:
    """The plot of both models when there is one, else every plot of the run whose name holds ``kind``."""
    if combined in plots:
        return [plots[combined]]
    return [p for stem, p in sorted(plots.items()) if kind in stem.lower() and not stem.endswith("_vs_dlib")]


# by yaw ------------------------------------------------------------------------------------------------
def yaw_blocks(evaluation: Mapping | None, reference: Mapping | None, plots: Mapping[str, Path]) -> list:
    models: dict[str, Any] = {}
    if reference is not None:
        models = {label: rep.get("yaw_bins") for label, rep in ordered_models(reference)}
    elif evaluation is not None:
        models = {"this run": evaluation.get("yaw_bins")}
    models = {k: v for k, v in models.items() if isinstance(v, Mapping) and v.get("bins")}
    if not models:
        return [Paragraph("No yaw-binned results in this run folder.", muted=True)]
    first = next(iter(models.values()))
    if first.get("note"):
        return [Paragraph(first["note"], muted=True)]
    headers = ["|yaw| bin (degrees)", "pairs", "same person"]
    for label in models:
        headers += [f"{label}: AUC", f"{label}: accuracy (%)"]
    rows = []
    for name, entry in first["bins"].items():
        row = [name, count(entry["num_pairs"]), count(entry["num_same"])]
        for yb in models.values():
            e = yb["bins"][name]
            row += [num(e.get("auc")), pct(e.get("accuracy"))]
        rows.append(row)
    notes = [f"{name}: {e['note']}" for name, e in first["bins"].items() if e.get("note")]
    blocks: list = [Table(headers, rows, "By the larger |yaw| of the pair's two faces; accuracy at each model's "
                                         "best threshold over all pairs; — where a bin has too few pairs")]
    if notes:
        blocks.append(Paragraph("Bins without a number: " + "; ".join(notes) + ".", muted=True))
    for path in pick_plots(plots, "yaw", "yaw_auc_vs_dlib"):
        what = "AUC of both models" if path.stem == "yaw_auc_vs_dlib" else path.stem.replace("_", " ")
        blocks.append(Figure(path, f"{what} per |yaw| bin of the pair (degrees); an empty bar (n/a) is a bin with "
                                   "too few pairs"))
    return blocks


def recogniser_sections(config: Mapping, evaluation: Mapping | None, reference: Mapping | None,
                        records: Sequence[Mapping], plots: Mapping[str, Path], train_seconds: float | None,
                        extra_training: list) -> list[Section]:
    """Training, Verification and Metrics by yaw; ``plots``: PNG stem -> path in the run folder."""
    training = training_blocks(config, evaluation, records, train_seconds) + extra_training
    return [Section("Recogniser training", training),
            Section("Verification", verification_blocks(config, evaluation, reference, plots, train_seconds)),
            Section("Metrics by yaw", yaw_blocks(evaluation, reference, plots))]
