"""``facerec eval-lfw``: LFW View 2 (10 folds) of a trained run or of dlib's embedder; the ``lfw`` case of
``facerec eval-pairs``, kept under its own name."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facerec.commands.options import Device, DlibWorkers, YawFrom


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
        workers: DlibWorkers = 1,
        yaw_from: YawFrom = "mediapipe",
    ) -> None:
        """10-fold LFW accuracy (threshold chosen on 9 folds) +- std, AUC, TAR@FAR, EER; writes pairs_<name>.json
        and the ROC (the same as eval-pairs --benchmark lfw)."""
        from facerec.commands.eval_pairs import check_choice, print_reports
        from facerec.evaluation.benchmarks import open_benchmark
        from facerec.evaluation.pair_eval import eval_pairs_dlib
        from facerec.recognition.pair_eval import eval_pairs_run

        pose_from = check_choice("eval-lfw", run, embedder, workers, yaw_from)
        bench = open_benchmark("lfw", lfw_dir=lfw_dir, pairs_file=pairs_file)
        if run is not None:
            reports = eval_pairs_run([bench], run, out or run / "lfw", per_fold=per_fold, device=device,
                                     checkpoint=checkpoint, yaw_from=pose_from)
        else:
            reports = eval_pairs_dlib([bench], out or Path(f"lfw-{embedder}"), per_fold=per_fold, workers=workers,
                                      yaw_from=pose_from)
        print_reports(reports)
