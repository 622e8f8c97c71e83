"""The report as data: sections of paragraphs, tables and figures, rendered to HTML and to Markdown.

The builder assembles one ``Document``; ``render_html`` embeds every figure as a base64 PNG data URI
(one self-contained file, no network, no script), ``render_markdown`` links the same PNG files by a
path relative to the Markdown file. Both renderers read the same blocks, so the two never disagree.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from facerec.errors import ConfigError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Paragraph:
    text: str
    muted: bool = False


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str | None = None


@dataclass(frozen=True)
class Figure:
    path: Path            # a PNG file on disk
    caption: str
    width_px: int | None = None   # display width in the HTML; None: natural size up to the column


@dataclass(frozen=True)
class Swatches:
    """A colour legend: (label, "#rrggbb") pairs."""

    items: list[tuple[str, str]]


@dataclass(frozen=True)
class Row:
    """Blocks shown side by side in the HTML (wrapping on narrow screens), one after another in Markdown."""

    blocks: list


Block = Paragraph | Table | Figure | Swatches | Row


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    anchor: str = ""

    def __post_init__(self) -> None:
        if not self.anchor:
            self.anchor = "".join(c if c.isalnum() else "-" for c in self.title.lower()).strip("-")


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]

    def figures(self) -> list[Figure]:
        def walk(blocks: list) -> list[Figure]:
            out: list[Figure] = []
            for b in blocks:
                out += walk(b.blocks) if isinstance(b, Row) else [b] if isinstance(b, Figure) else []
            return out

        return [f for s in self.sections for f in walk(s.blocks)]


def png_data_uri(path: Path) -> str:
    """``data:image/png;base64,...`` of a PNG file; anything that is not a PNG is refused."""
    data = Path(path).read_bytes()
    if not data.startswith(PNG_MAGIC):
        raise ConfigError(f"report figure {path} is not a PNG file (first bytes {data[:8]!r})")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


# HTML -----------------------------------------------------------------------------------------------
_CSS = """
:root { --ink: #1f2328; --muted: #656d76; --line: #d0d7de; --bg: #ffffff; --panel: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 15px/1.5 -apple-system, "Segoe UI", "Helvetica Neue", Arial, "DejaVu Sans", sans-serif; }
header { background: #24292f; color: #fff; padding: 22px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; font-weight: 600; }
header p { margin: 0; color: #c9d1d9; font-size: 13px; }
nav { padding: 10px 32px; border-bottom: 1px solid var(--line); background: var(--panel); font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
main { max-width: 1100px; margin: 0 auto; padding: 8px 32px 48px; }
section { border-bottom: 1px solid var(--line); padding: 12px 0 20px; }
h2 { font-size: 19px; font-weight: 600; margin: 14px 0 10px; }
p { margin: 6px 0 10px; }
p.muted { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13px; }
caption { caption-side: top; text-align: left; color: var(--muted); padding-bottom: 4px; font-size: 12px; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; background: #fff; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
.row { display: flex; flex-wrap: wrap; gap: 0 28px; align-items: flex-start; }
.row figure { flex: 1 1 420px; max-width: calc(50% - 14px); }
.row figure img { width: 100%; }
.swatches { display: flex; flex-wrap: wrap; gap: 14px; font-size: 13px; margin: 4px 0 10px; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 5px;
          vertical-align: -1px; border: 1px solid rgba(0,0,0,.2); }
"""


def _is_number(text: str) -> bool:
    """A cell to right-align: a number (with separators, %, a unit s), or the dash of a missing number."""
    if text == "—":
        return True
    try:
        float(text.split(" ± ")[0].replace(",", "").rstrip("%s "))
    except ValueError:
        return False
    return True


def _html_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        cls = ' class="muted"' if block.muted else ""
        return f"<p{cls}>{html.escape(block.text)}</p>"
    if isinstance(block, Table):
        cap = f"<caption>{html.escape(block.caption)}</caption>" if block.caption else ""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
        body = "".join(
            "<tr>" + "".join(
                f'<td class="num">{html.escape(c)}</td>' if _is_number(c) else f"<td>{html.escape(c)}</td>" for c in row
            ) + "</tr>"
            for row in block.rows
        )
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(block, Figure):
        style = f' style="width:{block.width_px}px"' if block.width_px else ""
        alt = html.escape(block.caption, quote=True)
        return (f'<figure><img src="{png_data_uri(block.path)}" alt="{alt}"{style}>'
                f"<figcaption>{html.escape(block.caption)}</figcaption></figure>")
    if isinstance(block, Swatches):
        items = "".join(
            f'<span><span class="swatch" style="background:{html.escape(colour)}"></span>{html.escape(label)}</span>'
            for label, colour in block.items
        )
        return f'<div class="swatches">{items}</div>'
    if isinstance(block, Row):
        return '<div class="row">' + "".join(_html_block(b) for b in block.blocks) + "</div>"
    raise ConfigError(f"unknown report block {type(block).__name__}")


def render_html(doc: Document) -> str:
    """One self-contained HTML page: inline CSS, figures as data URIs, no script, no external fetch."""
    nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in doc.sections)
    sections = "\n".join(
        f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>\n'
        + "\n".join(_html_block(b) for b in s.blocks) + "</section>"
        for s in doc.sections
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(doc.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{html.escape(doc.title)}</h1><p>{html.escape(doc.subtitle)}</p></header>\n"
        f"<nav>{nav}</nav>\n<main>\n{sections}\n</main>\n</body>\n</html>\n"
    )


# Markdown -------------------------------------------------------------------------------------------
def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_block(block: Block, md_dir: Path) -> str:
    if isinstance(block, Paragraph):
        return f"_{block.text}_" if block.muted else block.text
    if isinstance(block, Table):
        lines = [f"**{block.caption}**", ""] if block.caption else []
        lines.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
        lines.append("|" + "|".join("---:" if all(_is_number(r[i]) for r in block.rows) and block.rows else "---"
                                    for i in range(len(block.headers))) + "|")
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
        return "\n".join(lines)
    if isinstance(block, Figure):
        rel = Path(os.path.relpath(Path(block.path).resolve(), md_dir.resolve())).as_posix()
        return f"![{_md_cell(block.caption)}]({rel})\n\n_{block.caption}_"
    if isinstance(block, Swatches):
        return "Colours: " + ", ".join(f"{label} ({colour})" for label, colour in block.items)
    if isinstance(block, Row):
        return "\n\n".join(_md_block(b, md_dir) for b in block.blocks)
    raise ConfigError(f"unknown report block {type(block).__name__}")


def render_markdown(doc: Document, md_dir: Path) -> str:
    """Markdown with figures linked by paths relative to ``md_dir`` (where the .md file is written)."""
    parts = [f"# {doc.title}", "", doc.subtitle, ""]
    parts += [f"- [{s.title}](#{s.anchor})" for s in doc.sections]
    for s in doc.sections:
        parts += ["", f"## {s.title}", ""]
        parts += ["\n\n".join(_md_block(b, md_dir) for b in s.blocks)]
    return "\n".join(parts) + "\n"
