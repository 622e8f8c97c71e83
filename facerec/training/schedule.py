"""Learning-rate schedule stepped once per optimiser step: linear warm-up, then cosine decay."""

from __future__ import annotations

import math

from facerec.errors import ConfigError


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int, min_lr_ratio: float = 0.0) -> float:
    """Multiplier of the base LR at ``step`` (0-based).

    Warm-up rises linearly from 1/(warmup+1) to 1 over ``warmup_steps``; then a half cosine falls
    from 1 to ``min_lr_ratio`` at ``total_steps``. Past the end it stays at ``min_lr_ratio``.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class _WarmupCosine:
    """A picklable lambda for LambdaLR (its state_dict then holds plain numbers)."""

    def __init__(self, total_steps: int, warmup_steps: int, min_lr_ratio: float) -> None:
        self.total_steps, self.warmup_steps, self.min_lr_ratio = total_steps, warmup_steps, min_lr_ratio

    def __call__(self, step: int) -> float:
        return warmup_cosine_factor(step, self.total_steps, self.warmup_steps, self.min_lr_ratio)


def warmup_cosine(optimizer, total_steps: int, warmup_steps: int, min_lr_ratio: float = 0.0):
    """A ``LambdaLR`` for ``optimizer``; call ``scheduler.step()`` after every ``optimizer.step()``."""
    from torch.optim.lr_scheduler import LambdaLR

    if total_steps < 1:
        raise ConfigError(f"schedule: total_steps must be >= 1, found {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ConfigError(f"schedule: warmup_steps must be in [0, {total_steps}], found {warmup_steps}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ConfigError(f"schedule: min_lr_ratio must be in [0, 1], found {min_lr_ratio}")
    return LambdaLR(optimizer, _WarmupCosine(total_steps, warmup_steps, min_lr_ratio))
