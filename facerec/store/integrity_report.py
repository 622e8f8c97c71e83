"""What ``facerec inspect`` shows about integrity: each stage's provenance and the last verification."""

from __future__ import annotations

from typing import Any

from facerec.store.fs import read_json
from facerec.store.layout import MANIFEST, StoreLayout
from facerec.store.provenance import version_drift
from facerec.store.verify import last_verification


def stage_folders(layout: StoreLayout) -> list[tuple[str, Any]]:
    """(label, folder) of every finished stage output in the store."""
    out = [("samples", layout.samples)]
    for parent, suffix in (("landmarks", ""), ("features", ".index"), ("identities", "")):
        root = layout.root.child(parent)
        if not root.exists():
            continue
        for path in sorted(root.fs.ls(root.path, detail=False)):
            name = path.rstrip("/").rpartition("/")[2]
            if name.startswith((".", "_")) or (suffix and not name.endswith(suffix)):
                continue
            out.append((f"{parent}/{name[: len(name) - len(suffix)] if suffix else name}", root.child(name)))
    return [(label, folder) for label, folder in out if folder.child(MANIFEST).exists()]


def integrity_overview(store: str) -> dict[str, Any]:
    """Per stage: versions it was built with, the source revision, drift from now, and whether it has
    commit records; plus the last ``facerec verify`` outcome (None if never verified)."""
    layout = StoreLayout.at(store)
    stages = {}
    for label, folder in stage_folders(layout):
        manifest = read_json(folder.child(MANIFEST))
        prov = manifest.get("provenance") or {}
        stages[label] = {
            "recorded": "integrity" in manifest,
            "versions": {k: prov.get("versions", {}).get(k) for k in prov.get("relevant", ())},
            "source_revision": prov.get("source_revision", (manifest.get("source") or {}).get("revision")),
            "drift": [list(d) for d in version_drift(prov)],
        }
    return {"stages": stages, "last_verification": last_verification(store)}


def integrity_renderables(overview: dict[str, Any]) -> list[Any]:
    """The overview as rich renderables: a provenance table and one line for the last verification."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="provenance (versions that shaped each stage)", header_style="bold")
    for col in ("stage", "checksummed", "built with", "source revision", "differs now"):
        table.add_column(col)
    for label, s in overview["stages"].items():
        versions = ", ".join(f"{k} {v}" for k, v in s["versions"].items()) or "not recorded"
        drift = ", ".join(f"{p} {a} -> {b}" for p, a, b in s["drift"]) or "-"
        table.add_row(label, "yes" if s["recorded"] else "[yellow]no[/yellow]", versions,
                      s["source_revision"] or "-", drift if drift == "-" else f"[yellow]{drift}[/yellow]")
    last = overview["last_verification"]
    if last is None:
        line = "last verification: never (run `facerec verify --store STORE [--deep]`)"
    else:
        kind = "deep" if last.get("deep") else "cheap"
        outcome = "OK" if last.get("ok") else f"{last.get('num_problems')} problems"
        line = f"last verification: {last.get('finished_at')} ({kind}): {outcome}"
    return [table, Text(line)]
