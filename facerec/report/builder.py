"""Build a run's report: ``report.html`` (self-contained) and ``report.md`` (links PNG files).

Sources, nothing recomputed that another part already wrote:
- the store: counts and rejects by reason per stage (``facerec.store.summary``), head pose of the extractor's
  landmarks, a grid of aligned crops with their heatmaps read from the Zarr arrays;
- the recogniser's run folder: config.json, metrics.jsonl, evaluation JSON, and the PNG plots the
  training and evaluation code wrote under ``plots/`` (training curves, ROC, yaw bins), linked as is;
- the autoencoder's run folder, when given: the same;
- ``timings``: seconds per stage as measured by whoever ran the stages (the demo), else the seconds
  recorded in the stages' manifests.

Figures drawn here go to ``OUT/report_files/``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facerec.errors import StoreError
from facerec.geometry.heatmaps import dequantize
from facerec.geometry.landmark_sets import HEATMAP_GROUP_NAMES
from facerec.report import figures
from facerec.report.autoencoder import autoencoder_blocks
from facerec.report.document import (Document, Figure, Paragraph, Row, Section, Swatches, Table, render_html,
                                     render_markdown)
from facerec.report.recogniser import recogniser_sections
from facerec.schemas import tables, zarr_layout as zl
from facerec.store.layout import StoreLayout
from facerec.store.open_store import FeatureSet
from facerec.store.summary import StoreSummary, format_bytes, inspect_store, read_columns, rejected_text, stage_label
from facerec.training.runs import CONFIG_FILE, EVAL_FILE, REFERENCE_FILE, read_metrics

log = logging.getLogger(__name__)

REPORT_HTML = "report.html"
REPORT_MD = "report.md"
FILES_DIR = "report_files"
TRAIN_STAGE = "train recogniser"    # the demo's name for the recogniser's training in ``timings``


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    markdown: Path
    figures: list[Path]


# small helpers -------------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc


def _scalars(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Flatten nested mappings into (dotted key, scalar) pairs; lists are left out."""
    out: list[tuple[str, Any]] = []
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += _scalars(value, name + ".")
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out.append((name, value))
    return out


# sections -------------------------------------------------------------------------------------------
def _dataset_section(summary: StoreSummary) -> Section:
    rows = [
        [stage_label(s), "yes" if s.finished else "no", _fmt(s.rows), _fmt(s.ok), rejected_text(s.rejected),
         format_bytes(s.bytes)]
        for s in summary.stages
    ]
    splits = ", ".join(f"{k}: {v:,}" for k, v in summary.splits.items()) or "none"
    blocks: list = [
        Paragraph(f"Store {summary.store} (layout version {summary.layout_version}): {summary.identities:,} "
                  f"identities; usable samples by source split: {splits}; {format_bytes(summary.total_bytes)} on disk."),
        Table(["stage", "finished", "rows", "ok", "rejected by reason", "on disk"], rows, "Stages of the store"),
    ]
    reasons: dict[str, dict[str, int]] = {}
    for s in summary.stages:
        for reason, n in s.rejected.items():
            reasons.setdefault(reason, {})[stage_label(s)] = n
    if reasons:
        blocks.append(Table(
            ["reason", "stage", "rows"],
            [[r, st, _fmt(n)] for r, per in sorted(reasons.items()) for st, n in per.items()],
            "Rejects by reason",
        ))
    else:
        blocks.append(Paragraph("No row was rejected by any stage.", muted=True))
    return Section("Dataset", blocks)


def _pose_section(store: str, extractor: str, summary: StoreSummary, out: Path) -> Section:
    pose = summary.pose.get(extractor)
    if pose is None:
        return Section("Head pose", [Paragraph(f"The {extractor} landmarks hold no head pose.", muted=True)])
    t = read_columns(StoreLayout.at(store).landmarks(extractor), tables.LANDMARKS, ["yaw", "pitch", "roll", "status"])
    ok = np.asarray(t.column("status").to_pylist()) == tables.STATUS_OK
    angles = {a: np.asarray(t.column(a).to_numpy(zero_copy_only=False), dtype=np.float64)[ok] for a in ("yaw", "pitch", "roll")}
    png = figures.plot_pose_histograms(angles, out / "pose_histogram.png")
    keys = list(next(iter(pose.quantiles.values())))
    return Section("Head pose", [
        Paragraph(f"Head pose of the {pose.faces:,} faces found by the {extractor} extractor "
                  "(degrees; solvePnP against a generic 3-D face)."),
        Figure(png, f"Histograms of yaw, pitch and roll ({extractor})"),
        Row([
            Table(["angle", *keys], [[a, *(f"{qs[k]:.1f}" for k in keys)] for a, qs in pose.quantiles.items()],
                  "Quantiles (degrees)"),
            Table(["|yaw| (degrees)", "faces"], [[label, _fmt(n)] for label, n in pose.abs_yaw_hist],
                  "Faces per |yaw| bin"),
        ]),
    ])


def _crops_section(fset: "FeatureSet", out: Path, num_crops: int) -> Section:
    """A grid of aligned crops, one per identity where possible, with their grouped heatmaps overlaid."""

    index = fset.index_table
    candidates = [(r, i) for r, i, v in zip(index.column("row").to_pylist(), index.column("identity").to_pylist(),
                                           index.column("valid").to_pylist()) if v]
    rows, seen = [], set()
    for row, identity in candidates:           # first valid sample of each identity, in row order
        if identity not in seen and len(rows) < num_crops:
            rows.append(row)
            seen.add(identity)
    chosen = set(rows)
    rows += [r for r, _ in candidates if r not in chosen][: num_crops - len(rows)]   # fewer identities than tiles
    rows = sorted(rows)
    title = "Aligned crops and heatmaps"
    if not rows:
        return Section(title, [Paragraph("The feature set holds no valid face.", muted=True)])
    sel = (np.asarray(rows), slice(None), slice(None), slice(None))
    crops = np.asarray(fset.array(zl.IMAGE).get_orthogonal_selection(sel))
    heat = dequantize(np.asarray(fset.array(zl.HEATMAPS).get_orthogonal_selection(sel)))
    lay = fset.layout
    png = figures.save_png(figures.crops_grid(crops, heat, cols=4, scale=2 if lay.img_size <= 128 else 1),
                           out / "aligned_crops.png")
    colours = [(name.replace("_", " "), "#%02x%02x%02x" % tuple(int(v) for v in c))
               for name, c in zip(HEATMAP_GROUP_NAMES, figures.GROUP_COLOURS)]
    return Section(title, [
        Paragraph(f"{len(rows)} samples of feature set {lay.name} ({lay.img_size}x{lay.img_size} px, heatmap "
                  f"sigma {lay.sigma:g} px, stored as {lay.heatmap_dtype}), one per identity where possible: "
                  "each pair shows the aligned crop and the same crop with its 6 grouped heatmaps overlaid."),
        Swatches(colours),
        Figure(png, f"Aligned crops (left) and grouped heatmaps (right), Zarr rows {rows[0]}..{rows[-1]}"),
    ])


_TRAINING_PLOTS = ("curve", "loss", "train")


def _is_training_plot(name: str) -> bool:
    return any(key in name.lower() for key in _TRAINING_PLOTS)


def _caption(path: Path, run_label: str) -> str:
    return f"{run_label}: {path.stem.replace('_', ' ')} ({path.parent.name}/{path.name})"


def _pairs_table(pairs: list[tuple[str, Any]], headers: tuple[str, str], caption: str, per_row: int = 2) -> Table:
    """(key, value) pairs laid out ``per_row`` pairs to a row, so a long config stays short on screen."""
    rows = []
    for i in range(0, len(pairs), per_row):
        chunk = pairs[i : i + per_row]
        row = [cell for k, v in chunk for cell in (k, _fmt(v))]
        rows.append(row + [""] * (2 * per_row - len(row)))
    return Table(list(headers) * per_row, rows, caption)


def _evaluation_files(run: Path) -> list[Path]:
    return sorted(p for p in run.glob("*.json") if p.name != CONFIG_FILE)


WIDE_PX = 900   # figures at least this wide (multi-panel plots) get the full column


def _png_width(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as img:
        return img.size[0]


def _figures(paths: list[Path], label: str) -> list:
    """Wide figures full width, narrow ones two to a row, in the given order."""
    blocks: list = []
    pending: list[Figure] = []
    for p in paths:
        fig = Figure(p, _caption(p, label))
        if _png_width(p) >= WIDE_PX:
            blocks += pending + [fig]
            pending = []
            continue
        pending.append(fig)
        if len(pending) == 2:
            blocks.append(Row(pending))
            pending = []
    return blocks + pending


def _run_sections(run: Path, label: str, *, recogniser: bool, train_seconds: float | None = None) -> list[Section]:
    """A run folder as designed sections: results tables, plots, and the resolved config last."""
    if not (run / CONFIG_FILE).exists():
        raise StoreError(f"{run} is not a run folder: it holds no {CONFIG_FILE}")
    config = _read_json(run / CONFIG_FILE)
    plots = sorted((run / "plots").glob("*.png")) if (run / "plots").is_dir() else []
    results = {f.name: _read_json(f) for f in _evaluation_files(run)}
    cfg = _scalars(config)
    config_table = [_pairs_table(cfg, ("setting", "value"), f"Resolved config ({run}/{CONFIG_FILE}), to reproduce the run",
                                 per_row=3 if len(cfg) > 12 else 2)] if cfg else []
    if not recogniser:
        big = [p for p in plots if "example" in p.name]
        blocks = autoencoder_blocks(results) + _figures(big, label) + _figures([p for p in plots if p not in big], label)
        if not plots:
            blocks.append(Paragraph("This run wrote no plots.", muted=True))
        return [Section(label, blocks + config_table)]

    training_plots = [p for p in plots if _is_training_plot(p.stem)]
    results_plots = {p.stem: p for p in plots if p not in training_plots}
    sections = recogniser_sections(config, results.get(EVAL_FILE), results.get(REFERENCE_FILE), read_metrics(run),
                                   results_plots, train_seconds, _figures(training_plots, label) + config_table)
    shown = {f.path for s in sections for f in Document("", "", [s]).figures()}
    unused = [p for stem, p in results_plots.items()
              if p not in shown and not stem.startswith(("roc", "yaw"))]    # the tables cover the single-model ones
    if unused:
        sections.append(Section("Other figures", _figures(unused, label)))
    return sections


def _timings_section(timings: Mapping[str, float], source: str) -> Section:
    total = sum(timings.values())
    rows = [[stage, f"{sec:.1f}", f"{100 * sec / total:.0f}%" if total else "-"] for stage, sec in timings.items()]
    rows.append(["total", f"{total:.1f}", "100%" if total else "-"])
    return Section("Timings", [Paragraph(source, muted=True), Table(["stage", "seconds", "share"], rows)])


def _manifest_timings(summary: StoreSummary) -> dict[str, float]:
    return {stage_label(s): float(s.seconds) for s in summary.stages if s.seconds is not None}


# entry point ---------------------------------------------------------------------------------------
def build_report(
    run_dir: Path,
    store: str,
    *,
    autoencoder_run: Path | None = None,
    extractor: str | None = None,
    img_size: int | None = None,
    timings: Mapping[str, float] | None = None,
    out_dir: Path | None = None,
    num_crops: int = 16,
    title: str = "facerec report",
) -> ReportPaths:
    """Write ``OUT/report.html`` and ``OUT/report.md`` (OUT defaults to ``run_dir``).

    extractor and img_size pick the feature set; by default the run's config says (keys ``extractor``
    and ``img_size``), else the store's only one.
    """
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir
    files = out / FILES_DIR
    files.mkdir(parents=True, exist_ok=True)
    config = _read_json(run_dir / CONFIG_FILE) if (run_dir / CONFIG_FILE).exists() else {}
    summary = inspect_store(store)
    fset = FeatureSet.open(store, extractor or config.get("extractor"), img_size or config.get("img_size"))
    extractor, img_size = fset.layout.extractor, fset.layout.img_size
    sections = [
        _dataset_section(summary),
        _pose_section(store, extractor, summary, files),
        _crops_section(fset, files, num_crops),
        *_run_sections(run_dir, "recogniser", recogniser=True,
                       train_seconds=(timings or {}).get(TRAIN_STAGE)),
    ]
    if autoencoder_run is not None:
        sections += _run_sections(Path(autoencoder_run), "Landmark autoencoder", recogniser=False)
    if timings:
        sections.append(_timings_section(timings, "Wall time of each stage of this run, seconds."))
    elif _manifest_timings(summary):
        sections.append(_timings_section(_manifest_timings(summary), "Seconds recorded in the stage manifests."))

    doc = Document(title, f"run {run_dir} · store {summary.store} · feature set {extractor}-{img_size} · "
                          f"written {time.strftime('%Y-%m-%d %H:%M')}", sections)
    html_path, md_path = out / REPORT_HTML, out / REPORT_MD
    html_path.write_text(render_html(doc), encoding="utf-8")
    md_path.write_text(render_markdown(doc, out), encoding="utf-8")
    log.info("report written to %s and %s", html_path, md_path)
    return ReportPaths(html_path, md_path, [f.path for f in doc.figures()])
