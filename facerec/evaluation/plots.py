"""PNG figures for run folders: training curves, ROC curves, metrics per yaw bin (matplotlib, Agg)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from facerec.errors import ConfigError

_SKIP_KEYS = {"step", "phase", "time", "epoch"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_training_curves(metrics: Sequence[Mapping], path: Path) -> Path:
    """One panel per metric name, one line per phase, x = optimiser step.

    metrics: records as written by ``RunFolder.log`` ({"step", "phase", name: value, ...}).
    Non-numeric and non-finite values, and counts (names starting ``num_``), are left out.
    """
    series: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for rec in metrics:
        phase = str(rec.get("phase", ""))
        for name, value in rec.items():
            if name in _SKIP_KEYS or name.startswith("num_") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                series[name][phase].append((int(rec["step"]), float(value)))
    if not series:
        raise ConfigError(f"no numeric metrics to plot for {path}")
    names = sorted(series)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    plt = _pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for phase, points in sorted(series[name].items()):
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, label=phase)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    return _save(fig, path)


def plot_roc(curves: Mapping[str, tuple[Sequence[float], Sequence[float], float]], path: Path,
             title: str = "Verification ROC") -> Path:
    """ROC curves on a log FAR axis. curves: label -> (fpr, tpr, auc)."""
    if not curves:
        raise ConfigError(f"no ROC curves to plot for {path}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for label, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.4f})")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_yaw_bins(table: Mapping[str, Mapping[str, float | None]], path: Path, metric_name: str,
                  errors: Mapping[str, Mapping[str, float | None]] | None = None,
                  binned_by: str = "the pair's larger |yaw|", chance: float | None = None,
                  counts: Mapping[str, Mapping[str, int]] | None = None) -> Path:
    """Grouped bars: one group per yaw bin, one bar per label. A None value (too few pairs) is left empty.

    table: label -> {bin name -> value}; bins keep the order of the first label's mapping.
    errors: optional label -> {bin name -> half-length of an error bar} (e.g. the std over seeds).
    binned_by: what the bins measure, for the title (pairs for verification, faces for landmarks).
    chance: the value a guess gets (0.5 for AUC): the axis starts there and a dashed line marks it, so
    bars are read against chance rather than against a zoomed axis.
    counts: optional label -> {bin name -> pairs (or faces)}, written on each bar, so a bar of 30 pairs
    is not read like one of 3,000.
    """
    if not table:
        raise ConfigError(f"no yaw-bin values to plot for {path}")
    labels = list(table)
    bins = list(next(iter(table.values())))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(bins) * max(1, len(labels)) ** 0.5), 4.0))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        values = [table[label].get(b) for b in bins]
        xs = [j + (i - (len(labels) - 1) / 2) * width for j in range(len(bins))]
        heights = [v if v is not None else 0.0 for v in values]
        yerr = None
        if errors is not None and label in errors:
            yerr = [errors[label].get(b) or 0.0 if v is not None else 0.0 for b, v in zip(bins, values)]
        bars = ax.bar(xs, heights, width=width, label=label, yerr=yerr, capsize=3 if yerr else 0)
        for bar, v, b in zip(bars, values, bins):
            n = counts.get(label, {}).get(b) if counts is not None else None
            if v is not None and n is not None:
                ax.text(bar.get_x() + bar.get_width() / 2, v, f"{n:,}", ha="center", va="bottom", fontsize=7)
            if v is None:
                bar.set_alpha(0.0)
                ax.text(bar.get_x() + bar.get_width() / 2, 0.03, "n/a", ha="center", fontsize=7, rotation=90,
                        transform=ax.get_xaxis_transform())
    ax.set_xticks(range(len(bins)))
    ax.set_xticklabels([b if b == "all" else f"|yaw| {b}" for b in bins])
    ax.set_ylabel(metric_name)
    finite = [v for row in table.values() for v in row.values() if v is not None]
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
        ax.set_ylim(min([chance, *finite]) - 0.02, 1.0)
    elif finite and min(finite) > 0.4 and max(finite) <= 1.0:
        ax.set_ylim(max(0.0, min(finite) - 0.05), 1.0)
    ax.grid(alpha=0.3, axis="y")
    if len(labels) > 1 or chance is not None:
        ax.legend(fontsize=8)
    ax.set_title(f"{metric_name} by {binned_by} (degrees)")
    return _save(fig, path)


def plot_yaw_auc(yaw_bins: Mapping[str, Mapping | None], path: Path, metric_name: str = "AUC") -> Path | None:
    """AUC by the pair's larger |yaw|, a bar per label with its pair count, from the ``yaw_bins`` of pair
    reports (``yaw_binned_metrics``); labels without usable bins are left out, None when none has them."""
    binned = {label: y for label, y in yaw_bins.items() if y is not None and y["note"] is None}
    if not binned:
        return None
    table = {label: {name: e["auc"] for name, e in y["bins"].items()} for label, y in binned.items()}
    pairs = {label: {name: e["num_pairs"] for name, e in y["bins"].items()} for label, y in binned.items()}
    return plot_yaw_bins(table, path, metric_name, chance=0.5, counts=pairs)
