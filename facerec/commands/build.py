"""``facerec build``: ingest -> landmarks -> features -> canonical in one go, reusing finished stages."""

from __future__ import annotations

from typing import Annotated

import typer

from facerec.commands.options import Conf, Extractor, ImgSize, Master, Seed, ShardSize, Store
from facerec.pipeline.build import build_store
from facerec.pipeline.spark import parse_conf


def register(app: typer.Typer) -> None:
    @app.command("build")
    def build_cmd(
        data_root: Annotated[str, typer.Option(
            "--data-root", help="Image source: a local ImageFolder (<identity>/<image>), or anything --source of ingest reads.")],
        store: Store,
        extractor: Extractor = "mediapipe",
        img_size: ImgSize = 112,
        seed: Seed = 0,
        shard_size: ShardSize = 1024,
        k: Annotated[int, typer.Option("--k", min=1, help="Samples averaged into each identity's canonical landmarks.")] = 5,
        master: Master = None,
        conf: Conf = None,
    ) -> None:
        """Build the whole feature store from images; stages already finished in STORE are reused, interrupted ones resume."""

        def show(result) -> None:
            for line in result.lines():
                typer.echo(line)

        build_store(data_root, store, extractor=extractor, img_size=img_size, seed=seed, shard_size=shard_size,
                    k=k, master=master, conf=parse_conf(conf), on_result=show)
