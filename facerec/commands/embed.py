"""``facerec embed`` (embeddings for new images) and ``facerec export`` (the embedding model as ONNX)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facerec.commands.options import Device, RunDir
from facerec.recognition.embed import EmbedConfig, embed_images
from facerec.recognition.export import export_onnx

Checkpoint = Annotated[str, typer.Option("--checkpoint", help="Checkpoint file in RUN/checkpoints (last.pt or best.pt).")]


def register(app: typer.Typer) -> None:
    @app.command("embed")
    def embed_cmd(
        run: RunDir,
        inputs: Annotated[list[str], typer.Argument(help="Image files and/or folders of images (searched recursively).")],
        out: Annotated[Path, typer.Option("--out", help="Parquet file to write: path, detected, embedding, status.")],
        store: Annotated[Optional[str], typer.Option(
            "--store", help="Store holding the run's feature set (its layout: crop size, sigma); default: the run's store.")] = None,
        checkpoint: Checkpoint = "last.pt",
        batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
        device: Device = "auto",
    ) -> None:
        """Embed new images through the training path: landmarks, alignment, heatmaps, mirror-summed, L2-normalised."""

        result = embed_images(EmbedConfig(run=run, inputs=tuple(inputs), out=out, store=store, checkpoint=checkpoint,
                                          batch_size=batch_size, device=device))
        for line in result.lines():
            typer.echo(line)

    @app.command("export")
    def export_cmd(
        run: RunDir,
        onnx: Annotated[Path, typer.Option("--onnx", help="ONNX file to write.")],
        checkpoint: Checkpoint = "last.pt",
        opset: Annotated[int, typer.Option("--opset", min=17, help="ONNX opset version (17 or later).")] = 17,
        atol: Annotated[float, typer.Option("--atol", help="Largest accepted |onnxruntime - PyTorch| difference.")] = 1e-4,
    ) -> None:
        """Export the run's embedding network to ONNX (dynamic batch), checked against PyTorch with onnxruntime."""

        for line in export_onnx(run, onnx, checkpoint=checkpoint, opset=opset, atol=atol).lines():
            typer.echo(line)
