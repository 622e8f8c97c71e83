"""``facerec eval-pairs``: verification on LFW, CFP-FF, CFP-FP or an insightface .bin, one harness."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facerec.commands.options import Device, DlibWorkers, YawFrom
from facerec.errors import ConfigError

EMBEDDERS = ("dlib",)
YAW_SOURCES = ("mediapipe", "none")      # --yaw-from: the first is the default


def register(app: typer.Typer) -> None:
    @app.command("eval-pairs")
    def eval_pairs_cmd(
        benchmark: Annotated[list[str], typer.Option("--benchmark", help="lfw | cfp-ff | cfp-fp | cfp (both, with the FF - FP gap) | bin:PATH (an insightface .bin); repeatable.")],
        run: Annotated[Optional[Path], typer.Option("--run", help="A run folder written by facerec train.")] = None,
        embedder: Annotated[Optional[str], typer.Option("--embedder", help="A reference embedder instead of a run: dlib.")] = None,
        lfw_dir: Annotated[Optional[Path], typer.Option("--lfw-dir", help="Folder holding lfw-deepfunneled/ and pairs.txt (for lfw).")] = None,
        cfp_dir: Annotated[Optional[Path], typer.Option("--cfp-dir", help="Folder holding cfp-dataset/ (for cfp-ff, cfp-fp).")] = None,
        out: Annotated[Optional[Path], typer.Option("--out", help="Results, plots and embedding caches; default RUN/pairs or ./pairs-<embedder>.")] = None,
        per_fold: Annotated[Optional[int], typer.Option("--per-fold", min=1, help="Use only the first N same and N different pairs of each fold (quick runs).")] = None,
        checkpoint: Annotated[str, typer.Option("--checkpoint", help="last.pt or best.pt (with --run).")] = "last.pt",
        device: Device = "auto",
        workers: DlibWorkers = 1,
        yaw_from: YawFrom = "mediapipe",
    ) -> None:
        """10-fold accuracy (threshold on 9 folds) +- std, AUC, TAR@FAR 1e-2/1e-3, EER, images per alignment
        path, and for CFP the FF - FP gap; writes pairs_<name>.json and a ROC per benchmark."""
        from facerec.evaluation.benchmarks import expand_specs, open_benchmark
        from facerec.evaluation.pair_eval import eval_pairs_dlib
        from facerec.recognition.pair_eval import eval_pairs_run

        pose_from = check_choice("eval-pairs", run, embedder, workers, yaw_from)
        out = out or (run / "pairs" if run is not None else Path(f"pairs-{embedder}"))
        benches = [open_benchmark(s, lfw_dir=lfw_dir, cfp_dir=cfp_dir, work=out / "work") for s in expand_specs(benchmark)]
        if run is not None:
            reports = eval_pairs_run(benches, run, out, per_fold=per_fold, device=device, checkpoint=checkpoint,
                                     yaw_from=pose_from)
        else:
            reports = eval_pairs_dlib(benches, out, per_fold=per_fold, workers=workers, yaw_from=pose_from)
        print_reports(reports)


def check_choice(command: str, run: Path | None, embedder: str | None, workers: int,
                 yaw_from: str = YAW_SOURCES[0]) -> str | None:
    """Exactly one of --run / --embedder, a known embedder, --workers only with the embedder, a known
    --yaw-from; returns the extractor whose pose bins the pairs (None: no bins)."""
    if (run is None) == (embedder is None):
        raise ConfigError(f"{command}: pass exactly one of --run RUNDIR or --embedder dlib")
    if embedder is not None and embedder not in EMBEDDERS:
        raise ConfigError(f"unknown embedder {embedder!r}; expected one of: {', '.join(EMBEDDERS)}")
    if yaw_from not in YAW_SOURCES:
        raise ConfigError(f"unknown --yaw-from {yaw_from!r}; expected one of: {', '.join(YAW_SOURCES)}")
    if run is not None and workers != 1:
        raise ConfigError(f"{command}: --workers {workers} applies to --embedder dlib; a run's images go through "
                          f"the store build (Spark), which uses every core already: drop --workers")
    return None if yaw_from == "none" else yaw_from


def print_reports(reports: dict[str, dict]) -> None:
    """One line per benchmark, and the CFP gap where both protocols ran."""
    from rich.console import Console

    console = Console()
    for name, r in reports.items():
        t, v = r["ten_fold"], r["verification"]
        extra = f", AUC {v['auc']:.4f}, EER {100 * r['eer']:.2f}%" if v else f" ({r['note']})"
        console.print(f"{name}: {r['num_pairs']} pairs, {len(t['fold_accuracies'])} folds, accuracy "
                      f"{100 * t['mean']:.2f}% +- {100 * t['std']:.2f}{extra} ({r['metric']} scores, mirror "
                      f"{r['mirror']}); images by alignment {r['alignment']['images']}")
        if r.get("yaw_bins"):
            console.print(f"  by the pair's larger |yaw| (accuracy, pairs): {yaw_bin_cells(r['yaw_bins'])}")
    if "cfp-ff" in reports and "cfp-fp" in reports:
        gap = reports["cfp-ff"]["ten_fold"]["mean"] - reports["cfp-fp"]["ten_fold"]["mean"]
        console.print(f"CFP FF - FP: {100 * gap:.2f} points")


def yaw_bin_cells(yaw_bins: dict) -> str:
    """``0-15 98.1% (1234), 15-30 ...`` over the bins that hold pairs."""
    cells = []
    for name, entry in yaw_bins["bins"].items():
        if entry["num_pairs"]:
            acc = "-" if entry["accuracy"] is None else f"{100 * entry['accuracy']:.1f}%"
            cells.append(f"{name} {acc} ({entry['num_pairs']})")
    return ", ".join(cells)
