"""``facerec landmarks``: the samples table -> landmarks, head pose and statuses per sample (Spark)."""

from __future__ import annotations

import typer

from facerec.commands.options import Conf, Extractor, Master, Overwrite, Partitions, Store
from facerec.pipeline.spark import parse_conf


def register(app: typer.Typer) -> None:
    @app.command("landmarks")
    def landmarks_cmd(
        store: Store,
        extractor: Extractor = "mediapipe",
        master: Master = None,
        conf: Conf = None,
        partitions: Partitions = None,
        overwrite: Overwrite = False,
    ) -> None:
        """Find the face landmarks and head pose of every ingested image, one Spark task per shard.

        Writes STORE/landmarks/<extractor>/; images without a face get a row with detected=false. A rerun of a finished stage does nothing; an interrupted one computes only the missing shards.
        """
        from facerec.pipeline.landmark_stage import LandmarksConfig, run_landmarks

        config = LandmarksConfig(store=store, extractor=extractor, master=master, conf=parse_conf(conf),
                                 partitions=partitions, overwrite=overwrite)
        for line in run_landmarks(config).lines():
            typer.echo(line)
