"""``facerec verify`` and ``facerec repair``: check a store against what its stages recorded; fix it."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from facerec.commands.options import Conf, Master, Store


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify_cmd(
        store: Store,
        deep: Annotated[bool, typer.Option(
            "--deep", help="Read every byte: CRC32C of each Parquet file and Zarr chunk, every Parquet page decoded.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON for machines.")] = False,
    ) -> None:
        """Check that every recorded file and chunk is there, intact, and that counts agree across stages.

        Prints each problem with its stage, shard, array, chunk and rows and the command that repairs it, and exits 1 when anything is wrong. Without --deep only sizes, listings and Parquet footers are read (seconds); --deep checksums every byte.
        """
        from facerec.store.verify import record_verification, verify_store

        report = verify_store(store, deep=deep)
        record_verification(report)
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
        else:
            for line in report.lines():
                typer.echo(line)
        if not report.ok:
            raise typer.Exit(1)

    @app.command("repair")
    def repair_cmd(
        store: Store,
        cheap: Annotated[bool, typer.Option(
            "--cheap", help="Find damage with the cheap checks only (no checksums); default: the deep ones.")] = False,
        master: Master = None,
        conf: Conf = None,
    ) -> None:
        """Recompute exactly the shards `facerec verify` finds damaged, from each stage's inputs; nothing else.

        Landmarks, features and canonical shards are recomputed in dependency order, then the store is verified again; the repaired store is byte-identical to a clean build. A damaged samples table is reported with the ingest command that rebuilds it. Exits 1 if damage remains.
        """
        from facerec.pipeline.repair import repair_store
        from facerec.pipeline.spark import parse_conf, spark_session
        from facerec.store.verify import record_verification

        spark = spark_session(master, parse_conf(conf), app_name="facerec-repair") if master or conf else None
        result = repair_store(store, deep=not cheap, spark=spark, on_result=lambda r: [typer.echo(l) for l in r.lines()])
        for line in result.lines():
            typer.echo(line)
        final = result.after or result.before
        record_verification(final)
        if not final.ok:
            for line in final.lines():
                typer.echo(line)
            raise typer.Exit(1)
