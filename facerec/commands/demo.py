"""``facerec demo``: the whole system in miniature, from a face source to a report (``make demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facerec.commands.options import Master
from facerec.demo import DemoConfig, run_demo

d = DemoConfig()   # the defaults live in DemoConfig only; options left out (None) keep them


class RichObserver:
    """Stage headers, a completion line per stage, and a closing table of wall times and outputs."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=False)
        self.rows: list[tuple[str, float, str]] = []
        self._status = None

    def stage_started(self, stage, index: int, total: int) -> None:
        self.console.rule(f"[bold]\\[{index}/{total}] {stage.name}[/bold]: {stage.what}", align="left")
        if not stage.own_progress:          # Spark stages and evaluation: a spinner with the elapsed time
            self._status = self.console.status(f"{stage.name} running…", spinner="dots")
            self._status.start()

    def stage_finished(self, stage, seconds: float, lines: list[str]) -> None:
        self.close()
        for line in lines:
            self.console.print(f"  {line}", highlight=False, markup=False)
        self.console.print(f"[green]✓[/green] {stage.name} [dim]{seconds:.1f} s[/dim] → {stage.output}", highlight=False)
        self.rows.append((stage.name, seconds, stage.output))

    def close(self) -> None:
        """Stop a spinner left running by a stage that failed."""
        if self._status is not None:
            self._status.stop()
            self._status = None

    def summary(self, result) -> None:
        from rich.table import Table

        table = Table(title="facerec demo: wall time per stage", header_style="bold")
        table.add_column("stage")
        table.add_column("seconds", justify="right")
        table.add_column("output")
        for name, seconds, output in self.rows:
            table.add_row(name, f"{seconds:.1f}", output)
        table.add_row("[bold]total[/bold]", f"[bold]{result.total_seconds:.1f}[/bold]", "")
        self.console.print(table)
        self.console.print(f"report: [bold]{result.report_html}[/bold] (and {result.report_md.name})", highlight=False)
        self.console.print(f"store: {result.store}   recogniser run: {result.recognizer_run}   "
                           f"autoencoder run: {result.autoencoder_run}", highlight=False)
        self.console.print(f"inspect the store: facerec inspect --store {result.store}", highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        source: Annotated[Optional[str], typer.Option(
            "--source", help="Local ImageFolder (one sub-folder per identity), Parquet or saved dataset; "
                             "default: a streamed subset of logasja/VGGFace2 from Hugging Face.")] = None,
        out: Annotated[Optional[Path], typer.Option("--out", help=f"Folder for the store, runs and report (default: {d.out}).")] = None,
        max_images: Annotated[Optional[int], typer.Option("--max-images", min=2, help=f"Images to ingest at most (default: {d.max_images}).")] = None,
        max_identities: Annotated[Optional[int], typer.Option("--max-identities", min=2, help=f"Identities at most (default: {d.max_identities}).")] = None,
        min_images: Annotated[Optional[int], typer.Option("--min-images", min=2, help=f"ImageFolder: skip identities with fewer images (default: {d.min_images}).")] = None,
        max_per_identity: Annotated[Optional[int], typer.Option("--max-per-identity", min=2, help=f"ImageFolder: images per identity at most (default: {d.max_per_identity}).")] = None,
        extractor: Annotated[Optional[str], typer.Option("--extractor", help=f"mediapipe, dlib or template (default: {d.extractor}).")] = None,
        img_size: Annotated[Optional[int], typer.Option("--img-size", help=f"Aligned crop side in pixels (default: {d.img_size}).")] = None,
        backbone: Annotated[Optional[str], typer.Option("--backbone", help=f"Recogniser backbone (default: {d.backbone}).")] = None,
        epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help=f"Recogniser training epochs (default: {d.epochs}).")] = None,
        batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help=f"Recogniser batch size (default: {d.batch_size}).")] = None,
        use_heatmaps: Annotated[Optional[bool], typer.Option("--use-heatmaps/--no-heatmaps", help=f"Heatmap input channels (default: {d.use_heatmaps}).")] = None,
        ae_epochs: Annotated[Optional[int], typer.Option("--ae-epochs", min=1, help=f"Landmark autoencoder epochs (default: {d.ae_epochs}).")] = None,
        eval_pairs: Annotated[Optional[int], typer.Option("--eval-pairs", min=20, help=f"Verification pairs of held-out identities (default: {d.eval_pairs}).")] = None,
        compare_dlib: Annotated[Optional[bool], typer.Option("--dlib/--no-dlib", help=f"Score dlib's pretrained embedder on the same held-out pairs, as a reference (default: {d.compare_dlib}).")] = None,
        holdout: Annotated[Optional[float], typer.Option("--holdout-identity-frac", min=0.0, max=1.0, help=f"Share of identities held out for verification (default: {d.holdout_identity_frac}).")] = None,
        shard_size: Annotated[Optional[int], typer.Option("--shard-size", min=1, help=f"Rows per store shard (default: {d.shard_size}).")] = None,
        device: Annotated[Optional[str], typer.Option("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")] = None,
        master: Master = None,
        seed: Annotated[Optional[int], typer.Option("--seed", help=f"Random seed (default: {d.seed}).")] = None,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Rebuild the store in OUT instead of reusing it.")] = False,
    ) -> None:
        """Run ingest -> landmarks -> features -> canonical -> training (recogniser, autoencoder) -> evaluation -> report."""

        given = dict(source=source, out=out, max_images=max_images, max_identities=max_identities,
                     min_images=min_images, max_per_identity=max_per_identity, extractor=extractor, img_size=img_size,
                     backbone=backbone, epochs=epochs, batch_size=batch_size, use_heatmaps=use_heatmaps,
                     ae_epochs=ae_epochs, eval_pairs=eval_pairs, compare_dlib=compare_dlib, holdout_identity_frac=holdout, shard_size=shard_size, device=device, master=master,
                     seed=seed, overwrite=overwrite)
        cfg = DemoConfig(**{k: v for k, v in given.items() if v is not None})
        observer = RichObserver()
        try:
            result = run_demo(cfg, observer)
        finally:
            observer.close()
        observer.summary(result)
