"""``facerec evaluate``: verification of a trained run on its store's held-out identities."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from facerec.commands.options import Device, RunDir


def print_report(report: dict) -> None:
    """A short table: overall verification numbers, then AUC and accuracy per |yaw| bin."""
    from rich.console import Console
    from rich.table import Table

    v, t = report["verification"], report["ten_fold"]
    console = Console()
    tars = ", ".join(f"TAR@FAR {k}: {'-' if x is None else f'{x:.4f}'}" for k, x in v["tar_at_far"].items())
    console.print(f"{v['num_pairs']} pairs ({v['num_same']} same): AUC {v['auc']:.4f}, best accuracy "
                  f"{v['best_accuracy']:.4f}, 10-fold {t['mean']:.4f} +- {t['std']:.4f}; {tars}")
    yaw = report["yaw_bins"]
    if yaw["note"]:
        console.print(yaw["note"])
        return
    table = Table(title="by the pair's larger |yaw| (degrees)")
    for col in ("bin", "pairs", "AUC", "accuracy", "note"):
        table.add_column(col)
    for name, e in yaw["bins"].items():
        table.add_row(name, str(e["num_pairs"]), "-" if e["auc"] is None else f"{e['auc']:.4f}",
                      "-" if e["accuracy"] is None else f"{e['accuracy']:.4f}", e["note"] or "")
    console.print(table)


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        run: RunDir,
        store: Annotated[Optional[str], typer.Option("--store", help="Store to evaluate on; default the run's own.")] = None,
        device: Device = "auto",
        pairs: Annotated[int, typer.Option("--pairs", help="Balanced verification pairs among the test identities.")] = 3000,
        checkpoint: Annotated[str, typer.Option("--checkpoint", help="last.pt or best.pt.")] = "last.pt",
        seed: Annotated[int, typer.Option("--seed", help="Seed of the pair draw.")] = 0,
        dlib: Annotated[bool, typer.Option("--dlib/--no-dlib", help="Also score dlib's pretrained embedder on the "
                                           "same pairs (RUN/reference_dlib.json; the report shows both).")] = False,
    ) -> None:
        """Verification (AUC, accuracy, TAR@FAR, by |yaw|) of RUN on identities it never trained on; writes RUN/eval.json and plots."""
        from facerec.recognition.evaluate import evaluate_run

        print_report(evaluate_run(run, store, device=device, num_pairs=pairs, checkpoint=checkpoint, seed=seed))
        if dlib:
            from facerec.recognition.reference import compare_with_dlib

            for label, rep in compare_with_dlib(run, store)["models"].items():
                typer.echo(f"{label}: 10-fold accuracy {rep['ten_fold']['mean']:.4f} +- {rep['ten_fold']['std']:.4f}, "
                           f"AUC {rep['verification']['auc']:.4f}")
