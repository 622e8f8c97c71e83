"""``facerec canonical``: per identity, the frontal landmark shape from its least-posed samples (Spark)."""

from __future__ import annotations

from typing import Annotated

import typer

from facerec.commands.options import Conf, Extractor, ImgSize, Master, Overwrite, Store
from facerec.pipeline.canonical import CanonicalConfig, run_canonical
from facerec.pipeline.spark import parse_conf


def register(app: typer.Typer) -> None:
    @app.command("canonical")
    def canonical_cmd(
        store: Store,
        extractor: Extractor = "mediapipe",
        img_size: ImgSize = 112,
        k: Annotated[int, typer.Option(
            "--k", min=1, help="Average the aligned landmarks of this many valid samples of least |yaw|+|pitch|+|roll|.")] = 5,
        master: Master = None,
        conf: Conf = None,
        overwrite: Overwrite = False,
    ) -> None:
        """Write STORE/identities/<extractor>-<size>/: canonical landmarks, pose deviation and counts per identity."""

        config = CanonicalConfig(store=store, extractor=extractor, img_size=img_size, k=k, master=master,
                                 conf=parse_conf(conf), overwrite=overwrite)
        for line in run_canonical(config).lines():
            typer.echo(line)
