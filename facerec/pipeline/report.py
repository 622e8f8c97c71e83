"""What a stage tells its user: counts in, ok and rejected by reason, so in = ok + rejected always.

Shard tasks return ``ShardCounts.to_dict()`` summaries; the driver merges them into a ``StageResult``
that the CLI prints and the stage writes into its ``_manifest.json``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from facerec.errors import StoreError


@dataclass
class ShardCounts:
    """Counts of one shard: every input row is either ok or rejected with a reason code."""

    rows_in: int = 0
    ok: int = 0
    rejected: Counter = field(default_factory=Counter)

    def add(self, status: str) -> None:
        self.rows_in += 1
        if status == "ok":
            self.ok += 1
        else:
            self.rejected[status] += 1

    def to_dict(self) -> dict[str, Any]:
        return {"rows_in": self.rows_in, "ok": self.ok, "rejected": dict(sorted(self.rejected.items()))}


@dataclass
class StageResult:
    stage: str
    output: str
    rows_in: int = 0
    ok: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    shards_done: int = 0          # shards computed in this run
    shards_skipped: int = 0       # shards found finished from an earlier run
    skipped_stage: bool = False   # the whole stage was already finished
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def merge(self, summary: dict[str, Any]) -> None:
        self.rows_in += int(summary["rows_in"])
        self.ok += int(summary["ok"])
        for reason, n in summary.get("rejected", {}).items():
            self.rejected[reason] = self.rejected.get(reason, 0) + int(n)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def check_balanced(self) -> None:
        """in = ok + rejected, or the stage lost rows: refuse to report success."""

        if self.rows_in != self.ok + self.rejected_total:
            raise StoreError(
                f"{self.stage}: {self.rows_in} rows in but {self.ok} ok + {self.rejected_total} rejected"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage, "output": self.output, "rows_in": self.rows_in, "ok": self.ok,
            "rejected": dict(sorted(self.rejected.items())), "shards_done": self.shards_done,
            "shards_skipped": self.shards_skipped, "skipped_stage": self.skipped_stage,
            "seconds": round(self.seconds, 3), **({"extra": self.extra} if self.extra else {}),
        }

    def lines(self) -> list[str]:
        """Human summary: counts in, ok, rejected by reason."""
        if self.skipped_stage:
            return [f"{self.stage}: already finished at {self.output} (use --overwrite to redo)"]
        out = [f"{self.stage}: {self.rows_in} in, {self.ok} ok, {self.rejected_total} rejected -> {self.output}"]
        out += [f"  rejected {reason}: {n}" for reason, n in sorted(self.rejected.items())]
        out.append(f"  shards computed {self.shards_done}, resumed/skipped {self.shards_skipped}, {self.seconds:.1f} s")
        return out
