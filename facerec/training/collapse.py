"""The collapse guard: notice early that a margin-loss run is heading into the degenerate basin.

On small data, ArcFace with its full margin from step 0 can settle where every embedding sits opposite
every class centre (all cosines -1). There ArcFace's fall-back past pi - m makes the target logit
``cos(theta) - m sin(m)`` = -1 - m sin(m) against -1 for every other class, so the loss is

    log(1 + (N - 1) exp(s m sin(m)))          (CosFace: log(1 + (N - 1) exp(s m)))

for N classes: 21.0 for 283 classes at s = 64, m = 0.5. It is lower than the loss at the random start
(about s sin(m) + log N, 36 for 283 classes), so gradient descent can reach it, and nothing in it tells
people apart: training accuracy stays near chance (1 / N). ``CollapseGuard.check`` flags an epoch whose
loss is within ``tolerance`` of that plateau while its training accuracy is under ``chance_factor``
times chance (at most ``max_accuracy``), once the margin is fully on (before that the plateau is a
different number). The thresholds come from the 20-epoch ablation (283 classes, chance 0.35%): its
three collapsed runs ended at loss 19.2-19.8 with 1.3-4.9% accuracy, its healthy ones at 23-80%
accuracy, one of them (44%) at loss 20.6, near the plateau: the loss alone does not tell them apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def collapse_plateau(num_classes: int, *, margin_type: str, s: float, m: float) -> float:
    """Loss of the all-opposite solution (every cosine -1) for ``num_classes`` classes."""
    gap = m * math.sin(m) if margin_type == "arcface" else m
    return math.log1p((num_classes - 1) * math.exp(s * gap))


@dataclass(frozen=True)
class CollapseGuard:
    """Flags epochs that look like the basin: loss near the plateau, accuracy near chance."""

    num_classes: int
    plateau: float
    start_epoch: float            # epochs before this one are not judged (margin or learning-rate warm-up)
    chance_factor: float = 20.0   # "near chance": training accuracy under this many times 1 / N ...
    max_accuracy: float = 0.25    # ... and under this (few classes: 20 x chance would be everything)
    tolerance: float = 0.25       # "near the plateau": |loss - plateau| <= tolerance * plateau

    @classmethod
    def for_run(cls, num_classes: int, *, margin_type: str, s: float, m: float, margin_warmup_epochs: float,
                warmup_epochs: float) -> "CollapseGuard":
        # CosFace has no basin below its start: every all-equal-cosine state costs log(1 + (N-1) exp(s m)), the
        # random start included, so "near the plateau" would only mean "not learning yet" (it fired at epoch
        # 4-5 of every CosFace probe run). Only ArcFace's runs are judged.
        start = max(margin_warmup_epochs, warmup_epochs) + 1.0 if margin_type == "arcface" else math.inf
        return cls(num_classes, collapse_plateau(num_classes, margin_type=margin_type, s=s, m=m), start)

    def check(self, epoch: int, loss: float, accuracy: float) -> dict | None:
        """The evidence when epoch ``epoch`` (1-based, finished) looks collapsed, else None."""
        chance = 1.0 / self.num_classes
        if epoch < self.start_epoch:
            return None
        near_plateau = abs(loss - self.plateau) <= self.tolerance * self.plateau
        if not (near_plateau and accuracy < min(self.chance_factor * chance, self.max_accuracy)):
            return None
        return {"epoch": epoch, "loss": loss, "accuracy": accuracy, "plateau": round(self.plateau, 3),
                "chance": chance, "chance_factor": self.chance_factor}

    @staticmethod
    def message(evidence: dict) -> str:
        return (f"training looks collapsed at epoch {evidence['epoch']}: loss {evidence['loss']:.2f} is on the "
                f"all-embeddings-opposite plateau {evidence['plateau']:.2f} and training accuracy "
                f"{100 * evidence['accuracy']:.2f}% is near chance "
                f"({100 * evidence['chance']:.2f}%). This run is not learning identities; restart with another "
                "--seed, more images per person, the default CosFace head (--use-cosface true) or a lower --lr "
                "(docs/training.md, Optimisation)")
