"""``facerec inspect``: what a store holds (stages, counts, rejects, sizes, layout version, pose)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from facerec.commands.options import Store
from facerec.store.integrity_report import integrity_overview, integrity_renderables
from facerec.store.summary import StoreSummary, format_bytes, inspect_store, rejected_text, stage_label, text_histogram


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect_cmd(
        store: Store,
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON for machines.")] = False,
    ) -> None:
        """Show the stages done, counts and rejects by reason, sizes on disk, layout version, head pose,
        the versions each stage was built with and the last `facerec verify`."""
        summary = inspect_store(store)
        integrity = integrity_overview(store)
        if as_json:
            typer.echo(json.dumps({**summary.to_dict(), "integrity": integrity}, indent=2, sort_keys=True, default=str))
            return
        console = Console()
        for renderable in [*rich_tables(summary), *integrity_renderables(integrity)]:
            console.print(renderable)


def rich_tables(summary: StoreSummary) -> list[Any]:
    """The summary as rich renderables: stages table, feature sets table, pose table and |yaw| bars."""
    out: list[Any] = []
    head = Table(title=f"store {summary.store}", show_header=True, header_style="bold")
    for col in ("stage", "done", "rows", "ok", "rejected by reason", "files", "on disk", "seconds"):
        head.add_column(col, justify="right" if col in ("rows", "ok", "files", "on disk", "seconds") else "left")
    for s in summary.stages:
        head.add_row(
            stage_label(s), "yes" if s.finished else "[yellow]no[/yellow]", str(s.rows), str(s.ok),
            rejected_text(s.rejected), str(s.files), format_bytes(s.bytes),
            "-" if s.seconds is None else f"{s.seconds:.1f}",
        )
    out.append(head)
    splits = ", ".join(f"{k} {v}" for k, v in summary.splits.items()) or "-"
    out.append(Text(
        f"layout version {summary.layout_version}, {summary.identities} identities, splits: {splits}, "
        f"total {format_bytes(summary.total_bytes)}"
    ))
    feats = [s for s in summary.stages if s.stage == "features"]
    if feats:
        ft = Table(title="feature sets", header_style="bold")
        for col in ("name", "rows", "valid", "img size", "points", "sigma", "heatmaps", "compressor", "zarr size"):
            ft.add_column(col)
        for s in feats:
            d = s.details
            ft.add_row(s.name, str(d["zarr_rows"]), str(d["valid"]), str(d["img_size"]), str(d["num_points"]),
                       f"{d['sigma']:g}", d["heatmap_dtype"], d["compressor"], format_bytes(d["zarr_bytes"]))
        out.append(ft)
    for extractor, pose in summary.pose.items():
        pt = Table(title=f"head pose, {extractor} ({pose.faces} faces, degrees)", header_style="bold")
        pt.add_column("angle")
        keys = list(next(iter(pose.quantiles.values())))
        for k in keys:
            pt.add_column(k, justify="right")
        for angle, qs in pose.quantiles.items():
            pt.add_row(angle, *(f"{qs[k]:.1f}" for k in keys))
        out.append(pt)
        out.append(Text("|yaw| histogram (degrees)\n" + "\n".join(text_histogram(pose.abs_yaw_hist))))
    return out
