"""``facerec train-autoencoder`` and ``facerec evaluate-autoencoder``: the landmark autoencoder's CLI."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Optional

import typer

from facerec.commands.options import Device, Extractor, ImgSize, OutDir, RunDir, Seed, Store
from facerec.frontalization.train import AutoencoderConfig, evaluate_run, main

# Defaults come from the config dataclass, so the CLI and the library never disagree.
_D = {f.name: f.default for f in dataclasses.fields(AutoencoderConfig)}


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"held-out NME ({summary['count']['all']} faces, identities unseen in training)")
    bins = list(summary["count"])
    table.add_column("method")
    for b in bins:
        table.add_column(f"|yaw| {b}" if b != "all" else "all", justify="right")
    table.add_row("faces", *(str(summary["count"][b]) for b in bins))
    for method, row in summary["nme"].items():
        table.add_row(method, *("-" if row[b] is None else f"{row[b]:.4f}" for b in bins))
    Console().print(table)


def register(app: typer.Typer) -> None:
    @app.command("train-autoencoder")
    def train_autoencoder_cmd(
        store: Store,
        extractor: Extractor,
        out: OutDir,
        img_size: ImgSize = _D["img_size"],
        epochs: Annotated[int, typer.Option("--epochs", help="Passes over the training identities' samples.")] = _D["epochs"],
        batch_size: Annotated[int, typer.Option("--batch-size")] = _D["batch_size"],
        lr: Annotated[float, typer.Option("--lr", help="Peak AdamW learning rate (warm-up, then cosine).")] = _D["lr"],
        width: Annotated[int, typer.Option("--width", help="Hidden width of encoder and decoder MLPs.")] = _D["width"],
        depth: Annotated[int, typer.Option("--depth", help="Hidden layers in each of encoder and decoder.")] = _D["depth"],
        code_size: Annotated[int, typer.Option("--code-size", help="Size of the bottleneck code.")] = _D["code_size"],
        dropout: Annotated[float, typer.Option("--dropout")] = _D["dropout"],
        residual: Annotated[bool, typer.Option("--residual/--no-residual", help="Predict a correction to the input shape (default) or the shape itself.")] = _D["residual"],
        mirror: Annotated[bool, typer.Option("--mirror/--no-mirror", help="Mirror augmentation of half of each batch.")] = _D["mirror"],
        holdout_frac: Annotated[float, typer.Option("--holdout-identity-frac", help="Share of identities held out for evaluation.")] = _D["holdout_identity_frac"],
        device: Device = _D["device"],
        threads: Annotated[int, typer.Option("--threads", help="CPU threads for torch; 0 = torch default.")] = _D["threads"],
        resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")] = False,
        seed: Seed = _D["seed"],
    ) -> None:
        """Train the landmark autoencoder (posed landmarks + pose -> canonical landmarks), then evaluate it."""

        cfg = AutoencoderConfig(store=store, extractor=extractor, out=str(out), img_size=img_size, epochs=epochs,
                                batch_size=batch_size, lr=lr, width=width, depth=depth, code_size=code_size,
                                dropout=dropout, residual=residual, mirror=mirror, holdout_identity_frac=holdout_frac,
                                device=device, threads=threads, resume=resume, seed=seed)
        _print_summary(main(cfg))

    @app.command("evaluate-autoencoder")
    def evaluate_autoencoder_cmd(
        run: RunDir,
        store: Annotated[Optional[str], typer.Option("--store", help="Store to evaluate on; default the run's own.")] = None,
        device: Device = "auto",
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    ) -> None:
        """Re-evaluate a landmark-autoencoder run on its held-out identities (NME by |yaw| bin vs baselines)."""

        summary = evaluate_run(run, store, device)
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
        else:
            _print_summary(summary)
