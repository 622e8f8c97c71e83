"""What every model's checkpoint shares: a schema version, the RNG state, and ``check_resume``.

Checkpoints are plain dicts of tensors, numbers, strings, lists and dicts (they load with
``weights_only=True``); the recogniser and the autoencoder add their own keys on top of ``version``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from facerec.errors import TrainingError

CHECKPOINT_VERSION = 1


def rng_state() -> dict:
    """The torch CPU (and, when present, every CUDA device's) RNG state."""
    import torch

    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_resume(now: Mapping[str, Any], saved: Mapping[str, Any], may_differ: Iterable[str], *, run: str) -> None:
    """Refuse to resume ``run`` when a config field outside ``may_differ`` changed since it was saved."""
    may_differ = tuple(may_differ)
    differ = sorted(k for k in now if k not in may_differ and saved.get(k) != now[k])
    if differ:
        detail = ", ".join(f"{k}: run has {saved.get(k)!r}, now {now[k]!r}" for k in differ)
        raise TrainingError(f"cannot resume {run} with a different config ({detail}); "
                            f"only {', '.join(may_differ)} may change")
