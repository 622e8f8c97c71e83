"""``facerec features``: samples + landmarks -> aligned crops, landmarks, heatmaps and masks in Zarr (Spark)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from facerec.commands.options import Conf, Extractor, ImgSize, Master, Overwrite, Partitions, Store
from facerec.pipeline.feature_stage import FeaturesConfig, run_features
from facerec.pipeline.spark import parse_conf


def register(app: typer.Typer) -> None:
    @app.command("features")
    def features_cmd(
        store: Store,
        extractor: Extractor = "mediapipe",
        img_size: ImgSize = 112,
        sigma: Annotated[Optional[float], typer.Option(
            "--sigma", help="Heatmap Gaussian sigma in crop pixels; default 2.0 at 112, scaled with --img-size.")] = None,
        heatmap_dtype: Annotated[str, typer.Option(
            "--heatmap-dtype", help="Stored heatmap dtype: uint8 (default, half the bytes) or float16.")] = "uint8",
        compressor: Annotated[str, typer.Option(
            "--compressor", help="Zarr chunk compressor: lz4 (default, fastest reads), zstd, blosc-zstd or none.")] = "lz4",
        compression_level: Annotated[int, typer.Option("--compression-level", help="Compressor level.")] = 5,
        crop_codec: Annotated[str, typer.Option(
            "--crop-codec", help="Aligned crop storage: jpeg (default, quality 95), webp, jxl or lossless (the compressor); see docs/feature_store.md.")] = "jpeg",
        crop_quality: Annotated[int, typer.Option("--crop-quality", help="Image codec quality (0-100).")] = 95,
        master: Master = None,
        conf: Conf = None,
        partitions: Partitions = None,
        overwrite: Overwrite = False,
    ) -> None:
        """Align every sample onto the ArcFace template and store crops, landmarks, 6 heatmaps and the face mask.

        Writes STORE/features/<extractor>-<size>.zarr and its .index table, one Spark task per shard. A rerun of a finished stage does nothing; an interrupted one computes only the missing shards.
        """

        config = FeaturesConfig(
            store=store, extractor=extractor, img_size=img_size, sigma=sigma, heatmap_dtype=heatmap_dtype,
            compressor=compressor, compression_level=compression_level,
            crop_codec=crop_codec, crop_quality=crop_quality, master=master, conf=parse_conf(conf),
            partitions=partitions, overwrite=overwrite,
        )
        for line in run_features(config).lines():
            typer.echo(line)
