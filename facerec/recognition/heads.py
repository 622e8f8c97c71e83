"""Margin heads: normalise -> cosine -> clamp -> margin on the target class -> scale -> logits.

One module covers ArcFace (additive angular margin, cos(theta + m)) and CosFace (additive cosine
margin, cos(theta) - m). The logits feed a plain cross-entropy.

ArcFace past theta + m > pi: cos(theta + m) would rise again as theta grows, rewarding a worse
embedding, so there the target logit is cos(theta) - m * sin(m) instead (insightface's th/mm trick:
th = cos(pi - m), mm = sin(pi - m) * m, the first-order expansion of cos(theta + m) at theta = pi - m).
The logit then keeps decreasing in theta; at the switch it steps down by cos m + m sin m - 1
(0.117 at m = 0.5), never up.

Margin warm-up: ``set_margin_fraction(f)`` applies ``f * m`` (0 <= f <= 1) while ``m`` stays the margin
the head was built with (and saved in the model spec). Training ramps f from 0 to 1 over the first
epochs: with the full ArcFace margin from step 0 a small data set can fall into the degenerate basin
where every embedding sits opposite every class centre (docs/training.md, Optimisation).

The whole head runs in float32 with autocast disabled: at s = 64 a half-precision cosine error of
1e-3 is a logit error of 0.06, and the sqrt(1 - cos^2) near cos = +-1 needs the range.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from facerec.errors import ConfigError, choice_error

MARGIN_TYPES = ("arcface", "cosface")
DEFAULT_MARGIN = {"arcface": 0.5, "cosface": 0.35}
# CosFace at s=30 is AM-Softmax's setting for CASIA-WebFace-sized data (Wang et al. 2018); ArcFace keeps
# insightface's s=64. s=30 already allows a target posterior of 0.99 for 10^10 classes (the bound
# s >= log((C-1) p / (1-p)) of Ranjan et al. 2017), so a larger s buys nothing on small data but logits
# that saturate the softmax. Why CosFace is the default: docs/training.md, Optimisation.
DEFAULT_SCALE = {"arcface": 64.0, "cosface": 30.0}
COS_EPS = 1e-6     # cosines are clamped to [-1 + eps, 1 - eps]: sin and gradients stay finite


class MarginHead(nn.Module):
    """Class-centre weights ``[num_classes, E]`` and the margin; ``forward(emb, labels) -> logits``.

    Shapes: embeddings ``[B, E]`` (any float dtype), labels ``[B]`` int64, logits ``[B, K]`` float32.
    """

    def __init__(self, embedding_size: int, num_classes: int, *, margin_type: str = "arcface",
                 s: float | None = None, m: float | None = None) -> None:
        super().__init__()
        if margin_type not in MARGIN_TYPES:
            raise choice_error("margin type", margin_type, MARGIN_TYPES)
        if num_classes < 2:
            raise ConfigError(f"MarginHead: need at least 2 classes to train, found {num_classes}")
        m = DEFAULT_MARGIN[margin_type] if m is None else float(m)
        s = DEFAULT_SCALE[margin_type] if s is None else float(s)
        if not 0.0 <= m < (math.pi / 2 if margin_type == "arcface" else 1.0):
            raise ConfigError(f"MarginHead: {margin_type} margin {m} out of range")
        if s <= 0:
            raise ConfigError(f"MarginHead: scale s must be > 0, found {s}")
        self.margin_type, self.s, self.m = margin_type, float(s), m
        self.num_classes, self.embedding_size = num_classes, embedding_size
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.normal_(self.weight, std=0.01)
        self.set_margin_fraction(1.0)

    def set_margin_fraction(self, fraction: float) -> None:
        """Apply ``fraction * m`` from now on (margin warm-up); 1.0 is the full margin."""
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(f"MarginHead: margin fraction must be in [0, 1], found {fraction}")
        m = self.m * fraction
        self.active_m = m
        self._cos_m, self._sin_m = math.cos(m), math.sin(m)
        self._th = math.cos(math.pi - m)          # theta + m > pi  <=>  cos(theta) < th
        self._mm = math.sin(math.pi - m) * m

    def extra_repr(self) -> str:
        return f"{self.embedding_size} -> {self.num_classes}, {self.margin_type}, s={self.s}, m={self.m}"

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """[B, E] -> [B, K] float32 cosine between each embedding and each class centre, clamped."""
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            emb = F.normalize(embeddings.float(), dim=1)
            centres = F.normalize(self.weight.float(), dim=1)
            return F.linear(emb, centres).clamp(-1.0 + COS_EPS, 1.0 - COS_EPS)

    def target_logit(self, cos_target: torch.Tensor) -> torch.Tensor:
        """The margin applied to the target class's cosine [B] (unscaled)."""
        if self.margin_type == "cosface":
            return cos_target - self.active_m
        cos_target = cos_target.clamp(-1.0 + COS_EPS, 1.0 - COS_EPS)   # sqrt stays off 0: finite gradient
        sin = torch.sqrt((1.0 - cos_target * cos_target).clamp_min(0.0))
        phi = cos_target * self._cos_m - sin * self._sin_m            # cos(theta + m)
        return torch.where(cos_target > self._th, phi, cos_target - self._mm)

    def margin_logits(self, cosine: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scaled logits [B, K] with the margin on each row's label column."""
        if labels.shape != cosine.shape[:1]:
            raise ConfigError(f"MarginHead: labels of shape {tuple(labels.shape)} for {cosine.shape[0]} embeddings")
        idx = labels.long().unsqueeze(1)
        with torch.autocast(device_type=cosine.device.type, enabled=False):
            target = self.target_logit(cosine.gather(1, idx).squeeze(1))
            return cosine.scatter(1, idx, target.unsqueeze(1).to(cosine.dtype)) * self.s

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.margin_logits(self.cosine(embeddings), labels)


def create_head(embedding_size: int, num_classes: int, *, margin_type: str = "arcface",
                s: float | None = None, m: float | None = None) -> MarginHead:
    """Build a head; ``None`` values keep the defaults (``DEFAULT_SCALE``, ``DEFAULT_MARGIN``)."""
    return MarginHead(embedding_size, num_classes, margin_type=margin_type, s=s, m=m)
