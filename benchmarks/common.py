"""What every benchmark shares: the machine description and where and how results are written.

A result file is ``benchmarks/results/<name>.json``: ``{"benchmark": name, "machine": {...}, ...}``.
The machine block says what the numbers were measured on (CPU model, cores usable by this process,
RAM, load average at the time, Python/torch versions, UTC date), because throughput figures mean
nothing without it, least of all on a shared machine.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_TICK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------- /proc
@dataclass(frozen=True)
class ProcStat:
    """What the benchmarks read of ``/proc/PID/stat``: CPU seconds are what survive a shared machine."""

    ppid: int
    cpu_seconds: float      # user + system of the process itself (not of its children)
    name: str               # the command name (``java``, ``python``, ...)


def proc_stat(pid: int) -> ProcStat | None:
    """``/proc/PID/stat`` of one process; None when it is gone (or unreadable)."""
    try:
        head, tail = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)
        fields = tail.split()
        return ProcStat(int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK, head.partition("(")[2])
    except (OSError, ValueError, IndexError):
        return None


def proc_stats() -> dict[int, ProcStat]:
    """Every live process: pid -> its ``ProcStat``."""
    stats = ((int(entry), proc_stat(int(entry))) for entry in os.listdir("/proc") if entry.isdigit())
    return {pid: stat for pid, stat in stats if stat is not None}


def process_tree(root: int, stats: dict[int, ProcStat]) -> list[int]:
    """``root`` (if alive) and every live descendant, from one ``proc_stats`` snapshot."""
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        children.setdefault(stat.ppid, []).append(pid)
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        if pid in stats:
            out.append(pid)
        stack += children.get(pid, [])
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    """CPU model, cores (all and usable by this process), RAM GiB, load average, versions, UTC date."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable,
        "ram_gib": _ram_gib(),
        "load_average_1_5_15": load,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def write_result(name: str, result: dict[str, Any], results_dir: Path | None = None) -> Path:
    """Write ``result`` with the machine block to ``<results_dir>/<name>.json`` atomically; returns the path."""
    from facerec.store.fs import resolve, write_json_atomic

    path = (results_dir or RESULTS_DIR) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic({"benchmark": name, "machine": machine_info(), **result}, resolve(str(path)))
    return path


def print_table(title: str, rows: Sequence[dict[str, Any]]) -> None:
    """A rich table of ``rows`` (dicts with the same keys), floats to 3 significant digits."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    columns = list(rows[0]) if rows else []
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(f"{v:.3g}" if isinstance(v, float) else str(v) for v in (row.get(c) for c in columns)))
    Console().print(table)
