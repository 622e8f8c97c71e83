"""Device selection (``auto`` picks CUDA, then MPS, then CPU) and what a device runs best with:
the autocast dtype (``resolve_amp``) and the memory format (``use_channels_last``).

Torch-free at import (configs validate against ``AMP_CHOICES`` without loading torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facerec.errors import ConfigError

if TYPE_CHECKING:
    import torch

AMP_CHOICES = ("auto", "bf16", "fp16", "off")
SWITCH_CHOICES = ("auto", "on", "off")


def resolve_device(name: str = "auto"):
    """Return a ``torch.device`` for ``name``; refuse a device this machine does not have."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here; use --device auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} asked for, but MPS is not available here; use --device auto or cpu")
    return device


def resolve_amp(amp: str, device: "torch.device") -> "torch.dtype | None":
    """The autocast dtype for ``amp`` on ``device``; None = full float32."""
    import torch

    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError(f"amp fp16 needs a CUDA device, found {device}; use bf16 or off")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def use_channels_last(mode: str, device: "torch.device") -> bool:
    return mode == "on" or (mode == "auto" and device.type == "cuda")
