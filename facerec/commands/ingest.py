"""``facerec ingest``: a source (hub id, ImageFolder, saved dataset, Parquet) -> the store's samples table."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from facerec.commands.options import Conf, Master, Overwrite, Seed, Store
from facerec.pipeline.sources import DEFAULT_SOURCE


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest_cmd(
        store: Store,
        source: Annotated[str, typer.Option(
            "--source", help="Hugging Face hub id, a local ImageFolder (<identity>/<image>), a saved HF "
                             "dataset folder, a Parquet folder/file, or an fsspec URL of Parquet files (hf://datasets/...).")] = DEFAULT_SOURCE,
        split: Annotated[str, typer.Option("--split", help="Dataset split to read (ImageFolder rows get this split name).")] = "train",
        limit_classes: Annotated[Optional[int], typer.Option(
            "--limit-classes", min=1, help="Keep only the first N identities in sorted order.")] = None,
        max_samples: Annotated[Optional[int], typer.Option(
            "--max-samples", min=1, help="Stop after N rows (source order, after the other filters).")] = None,
        streaming: Annotated[bool, typer.Option(
            "--streaming", help="Hub ids: stream rows instead of downloading the whole dataset first.")] = False,
        sample_prob: Annotated[float, typer.Option(
            "--sample-prob", min=0.0, max=1.0, help="Keep each row with this probability (seeded, per sample).")] = 1.0,
        seed: Seed = 0,
        image_column: Annotated[Optional[str], typer.Option(
            "--image-column", help="Image column of an HF/Parquet source; default: detected from the features.")] = None,
        label_column: Annotated[Optional[str], typer.Option(
            "--label-column", help="Identity column of an HF/Parquet source; default: detected (ClassLabel, int, str).")] = None,
        shard_size: Annotated[int, typer.Option("--shard-size", min=1, help="Rows per shard file (the unit of work of every later stage).")] = 1024,
        overwrite: Overwrite = False,
        engine: Annotated[str, typer.Option(
            "--engine", help="auto: Spark tasks for file sources (ImageFolder, Parquet folder/file, saved dataset, "
                             "hf:// or s3:// Parquet URL), the driver for hub ids, --streaming and --max-samples; "
                             "spark or driver to choose. Both write the same bytes.")] = "auto",
        master: Master = None,
        conf: Conf = None,
    ) -> None:
        """Read a face image source, validate every image, shuffle globally and write the samples shards.

        Every row is kept with a status ("ok" or why it was rejected); the original encoded bytes are stored unchanged. A rerun of a finished ingest does nothing; an interrupted one resumes.

        Which path a source takes (--engine auto): local ImageFolders, Parquet folders or files, saved datasets and fsspec URLs of Parquet files (hf://datasets/OWNER/NAME/DIR, s3://...) are read by Spark tasks in parallel (--master, --conf); a hub id (OWNER/NAME), --streaming and --max-samples read rows in source order on the driver. Both paths write byte-identical samples tables.
        """
        from facerec.pipeline.ingest import IngestConfig, run_ingest
        from facerec.pipeline.spark import parse_conf

        config = IngestConfig(
            source=source, store=store, split=split, image_column=image_column, label_column=label_column,
            limit_classes=limit_classes, max_samples=max_samples, streaming=streaming, sample_prob=sample_prob,
            seed=seed, shard_size=shard_size, overwrite=overwrite, engine=engine, master=master, conf=parse_conf(conf),
        )
        for line in run_ingest(config).lines():
            typer.echo(line)
