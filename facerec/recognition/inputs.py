"""``InputSpec``: which channels a recogniser takes, saved with the run and read by every reader of it.

RGB first, then the landmark heatmaps (6 groups, or one per landmark with ``group_all_landmarks``), then
the face mask; ``in_chans`` is their count. Training writes it into every checkpoint (``input_spec``);
evaluation, LFW, ``embed`` and export build their readers from it, so no reader re-spells the flags.
Torch-free.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from facerec.errors import ConfigError


@dataclass(frozen=True)
class InputSpec:
    use_heatmaps: bool
    add_mask_channel: bool
    group_all_landmarks: bool
    in_chans: int

    @classmethod
    def from_config(cls, cfg: Any, in_chans: int) -> "InputSpec":
        """From a ``TrainConfig`` (or anything with the three flags) and the model's input channels."""
        return cls(bool(cfg.use_heatmaps), bool(cfg.add_mask_channel), bool(cfg.group_all_landmarks), int(in_chans))

    def reader_kwargs(self) -> dict[str, bool]:
        """The ``FaceStoreDataset`` arguments that select these channels."""
        return {"use_heatmaps": self.use_heatmaps, "add_mask_channel": self.add_mask_channel,
                "group_all_landmarks": self.group_all_landmarks}

    def check(self, num_channels: int, what: str) -> None:
        """Refuse a reader whose images do not have the channels the model was trained on."""
        if num_channels != self.in_chans:
            raise ConfigError(f"{what} gives {num_channels} input channels, the run's model takes {self.in_chans} "
                              f"({self}); read it with the run's own extractor and image size")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "InputSpec":
        try:
            return cls(**data)
        except TypeError as exc:   # a field unknown to (or missing from) this facerec's InputSpec
            raise ConfigError(f"checkpoint input spec {data} does not fit this facerec: {exc}") from None
