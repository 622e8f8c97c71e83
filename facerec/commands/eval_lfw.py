"""``facerec eval-lfw``: LFW View 2 verification (10 folds) of a trained run or of dlib's embedder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facerec.commands.options import Device
from facerec.errors import ConfigError
from facerec.evaluation import lfw

EMBEDDERS = ("dlib",)


def register(app: typer.Typer) -> None:
    @app.command("eval-lfw")
    def eval_lfw_cmd(
        lfw_dir: Annotated[Path, typer.Option("--lfw-dir", help="Folder holding lfw-deepfunneled/ (or the identity folders) and pairs.txt.")],
        run: Annotated[Optional[Path], typer.Option("--run", help="A run folder written by facerec train.")] = None,
        embedder: Annotated[Optional[str], typer.Option("--embedder", help="A reference embedder instead of a run: dlib.")] = None,
        out: Annotated[Optional[Path], typer.Option("--out", help="Where results, plots and caches go; default RUN/lfw or ./lfw-<embedder>.")] = None,
        pairs_file: Annotated[Optional[Path], typer.Option("--pairs", help="Pairs file; default LFW_DIR/pairs.txt.")] = None,
        per_fold: Annotated[Optional[int], typer.Option("--per-fold", min=1, help="Use only the first N same and N different pairs of each fold (quick runs).")] = None,
        checkpoint: Annotated[str, typer.Option("--checkpoint", help="last.pt or best.pt (with --run).")] = "last.pt",
        device: Device = "auto",
    ) -> None:
        """10-fold LFW accuracy (threshold chosen on 9 folds), its std, and AUC; writes lfw_<name>.json and the ROC."""
        from rich.console import Console

        from facerec.recognition.lfw import eval_lfw_run

        if (run is None) == (embedder is None):
            raise ConfigError("eval-lfw: pass exactly one of --run RUNDIR or --embedder dlib")
        if embedder is not None and embedder not in EMBEDDERS:
            raise ConfigError(f"unknown embedder {embedder!r}; expected one of: {', '.join(EMBEDDERS)}")
        if run is not None:
            report = eval_lfw_run(lfw_dir, run, out=out, pairs_file=pairs_file, per_fold=per_fold,
                                      device=device, checkpoint=checkpoint)
        else:
            report = lfw.eval_lfw_dlib(lfw_dir, out or Path(f"lfw-{embedder}"), pairs_file=pairs_file, per_fold=per_fold)
        t, v = report["ten_fold"], report["verification"]
        Console().print(f"LFW View 2, {report['num_pairs']} pairs, {len(t['fold_accuracies'])} folds: "
                        f"accuracy {100 * t['mean']:.2f}% +- {100 * t['std']:.2f}, AUC {v['auc']:.4f} "
                        f"({report['metric']} scores, mirror {report['mirror']})")
