"""A verification pair of any protocol (LFW, CFP, an insightface ``.bin``), and the checks they share.

Every protocol reader returns ``VerificationPair``s: two image keys (paths relative to the protocol's
image folder, or ``bin:<index>`` for a ``.bin`` set), whether they show the same person, and the
0-based fold the pair belongs to. The harness needs nothing else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from facerec.errors import SourceError


@dataclass(frozen=True)
class VerificationPair:
    path_a: str
    path_b: str
    same: bool
    fold: int            # 0-based


def pair_images(pairs: Sequence) -> list[str]:
    """Distinct image keys the pairs need, sorted (anything with ``path_a``/``path_b``)."""
    return sorted({p.path_a for p in pairs} | {p.path_b for p in pairs})


def check_balanced_folds(pairs: Sequence, where: str) -> None:
    """Refuse a protocol whose folds do not each hold as many same as different pairs."""
    counts = Counter((p.fold, p.same) for p in pairs)
    folds = sorted({p.fold for p in pairs})
    bad = [f"fold {f + 1}: {counts[(f, True)]} same / {counts[(f, False)]} different"
           for f in folds if counts[(f, True)] != counts[(f, False)]]
    if bad:
        raise SourceError(f"{where}: every fold should hold as many same as different pairs; " + "; ".join(bad))


def subset_pairs(pairs: Sequence, per_fold: int | None) -> list:
    """The first ``per_fold`` same and first ``per_fold`` different pairs of every fold (quick runs)."""
    if per_fold is None:
        return list(pairs)
    out, seen = [], Counter()
    for p in pairs:
        key = (p.fold, p.same)
        if seen[key] < per_fold:
            seen[key] += 1
            out.append(p)
    return out
