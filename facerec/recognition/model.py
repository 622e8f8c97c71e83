"""The recogniser: a backbone that embeds, plus the margin head used only while training.

``Recognizer.forward(images) -> embeddings [B, E]`` is what evaluation and export use;
``Recognizer.classify(images, labels) -> (margin logits, cosines)`` is the training path (the head's
class centres are thrown away after training). A ``ModelSpec`` (plain fields, saved in every
checkpoint as a dict) rebuilds the same network for evaluation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from facerec.errors import ConfigError
from facerec.recognition.backbones import create_backbone
from facerec.recognition.heads import MarginHead, create_head
from facerec.schemas import NUM_HEATMAP_GROUPS


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a recogniser's modules (not its weights)."""

    backbone: str
    in_chans: int
    num_classes: int
    img_size: int = 112
    stem: str = "face"
    embedding_size: int = 512
    dropout: float = 0.0
    margin_type: str = "arcface"
    scale: float | None = None
    margin: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"model spec has unknown fields {unknown}; written by a newer facerec?")
        return cls(**data)


def input_channels(*, use_heatmaps: bool, add_mask_channel: bool, group_all_landmarks: bool = False,
                   num_points: int | None = None) -> int:
    """Channels of the network input: RGB, then heatmaps (6 groups, or one per landmark), then the mask.

    The same count as the reader's ``ChannelLayout.num_channels``, for building a model without a store.
    """
    heat = 0
    if use_heatmaps:
        if group_all_landmarks:
            if not num_points:
                raise ConfigError("group_all_landmarks needs the extractor's number of points")
            heat = num_points
        else:
            heat = NUM_HEATMAP_GROUPS
    return 3 + heat + int(add_mask_channel)


class Recognizer(nn.Module):
    def __init__(self, backbone: nn.Module, head: MarginHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised float images [B, C, S, S] -> embeddings [B, E] (not L2-normalised)."""
        return self.backbone(images)

    def classify(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (margin logits [B, K] for the loss, plain cosines [B, K] for accuracy), float32."""
        cosine = self.head.cosine(self.backbone(images))
        return self.head.margin_logits(cosine, labels), cosine


def build_recognizer(spec: ModelSpec) -> Recognizer:
    backbone = create_backbone(spec.backbone, in_chans=spec.in_chans, embedding_size=spec.embedding_size,
                               stem=spec.stem, dropout=spec.dropout, img_size=spec.img_size)
    head = create_head(spec.embedding_size, spec.num_classes, margin_type=spec.margin_type,
                       s=spec.scale, m=spec.margin)
    return Recognizer(backbone, head)
