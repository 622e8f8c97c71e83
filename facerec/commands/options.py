"""Option types shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Store = Annotated[str, typer.Option("--store", help="Store root: a local folder or an fsspec URL (file://, s3://, hdfs://).")]
Extractor = Annotated[str, typer.Option("--extractor", help="Landmark extractor: mediapipe (478 points), dlib (68) or template (placeholder).")]
Master = Annotated[Optional[str], typer.Option("--master", help="Spark master URL; default local[*].")]
Conf = Annotated[Optional[list[str]], typer.Option("--conf", help="Extra Spark config as key=value; repeatable.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Redo a finished stage instead of leaving it alone.")]
ImgSize = Annotated[int, typer.Option("--img-size", help="Side of the aligned square crop in pixels.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed.")]
Device = Annotated[str, typer.Option("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")]
RunDir = Annotated[Path, typer.Option("--run", help="A run folder written by facerec train.")]
OutDir = Annotated[Path, typer.Option("--out", help="Run folder to write config, metrics, checkpoints and plots to.")]
Partitions = Annotated[Optional[int], typer.Option("--partitions", min=1, help="At most this many Spark tasks at once; default one task per shard.")]
ShardSize = Annotated[int, typer.Option("--shard-size", min=1, help="Rows per shard file (the unit of work of every later stage).")]
DlibWorkers = Annotated[int, typer.Option("--workers", min=1, help="With --embedder dlib: embed the images in N processes (default 1: in this one). Each worker loads its own dlib models (up to about 300 MB of memory each, measured on CFP) and keeps one core busy: use at most one per core. Worth it on CFP-FP, where dlib's CNN detector runs on most profile photos (0.4-4 s each, by machine load); results are identical to one process.")]
YawFrom = Annotated[str, typer.Option("--yaw-from", help="Whose head pose bins the pairs by yaw: mediapipe (default: a MediaPipe run's own store; for dlib, the embedder or a dlib run, a MediaPipe store of the benchmark's images under OUT/work, built once) or none (no yaw bins). dlib's 68-point fit cannot read profiles, so its pose would file CFP's profiles as near-frontal.")]
