"""``facerec inspect``: what a store holds (stages, counts, rejects, sizes, layout version, pose)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from facerec.commands.options import Store


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect_cmd(
        store: Store,
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON for machines.")] = False,
    ) -> None:
        """Show the stages done, counts and rejects by reason, sizes on disk, layout version, head pose,
        the versions each stage was built with and the last `facerec verify`."""
        from rich.console import Console

        from facerec.store.integrity_report import integrity_overview, integrity_renderables
        from facerec.store_summary import inspect_store, rich_tables

        summary = inspect_store(store)
        integrity = integrity_overview(store)
        if as_json:
            typer.echo(json.dumps({**summary.to_dict(), "integrity": integrity}, indent=2, sort_keys=True, default=str))
            return
        console = Console()
        for renderable in [*rich_tables(summary), *integrity_renderables(integrity)]:
            console.print(renderable)
