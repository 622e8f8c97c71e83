"""The landmark autoencoder: posed landmarks + head pose -> the identity's canonical (frontal) landmarks.

Input: a face's aligned landmarks in the normalised frame of ``facerec.frontalization.data``
(centred on their mean, divided by their RMS distance to it) flattened to 2P numbers, plus the head
pose (yaw, pitch, roll) divided by 90 degrees. Output: P x 2 points in the same normalised frame, the
prediction of the identity's canonical shape normalised the same way.

An MLP encoder squeezes (points, pose) into a ``code_size`` code (the bottleneck that forces the model
to keep the identity's shape and drop the pose); an MLP decoder expands it back to 2P numbers. With
``residual=True`` (the default) the decoder output is a correction added to the input shape, and the
untrained model is the identity map; without it the output is the shape itself and the output layer's
bias starts at the mean training target (``set_output_bias``), so an untrained model predicts the mean
canonical shape. On LFW (MediaPipe-478) the residual form is better in every |yaw| bin
(docs/autoencoder.md).
"""

from __future__ import annotations

import torch
from torch import nn

from facerec.errors import ConfigError


def _mlp(in_features: int, width: int, depth: int, dropout: float) -> nn.Sequential:
    """``depth`` blocks of Linear -> LayerNorm -> GELU -> Dropout, the first taking ``in_features``."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(in_features if i == 0 else width, width), nn.LayerNorm(width), nn.GELU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class LandmarkAutoencoder(nn.Module):
    """MLP encoder (points + pose) -> code -> MLP decoder -> [P, 2] canonical points.

    forward(points [B, P, 2] normalised, pose [B, pose_dim] scaled) -> [B, P, 2] normalised.
    Works for any P (dlib 68, MediaPipe 478); the parameter count grows with P only in the first and
    last layers.
    """

    def __init__(
        self,
        num_points: int,
        pose_dim: int = 3,
        width: int = 256,
        depth: int = 2,
        code_size: int = 32,
        dropout: float = 0.1,
        residual: bool = True,
    ) -> None:
        super().__init__()
        for name, value, low in (("num_points", num_points, 1), ("width", width, 1), ("depth", depth, 1),
                                 ("code_size", code_size, 1), ("pose_dim", pose_dim, 0)):
            if value < low:
                raise ConfigError(f"LandmarkAutoencoder: {name} must be >= {low}, found {value}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"LandmarkAutoencoder: dropout must be in [0, 1), found {dropout}")
        self.num_points, self.pose_dim, self.residual = num_points, pose_dim, residual
        self.encoder = nn.Sequential(_mlp(2 * num_points + pose_dim, width, depth, dropout), nn.Linear(width, code_size))
        self.decoder = nn.Sequential(_mlp(code_size, width, depth, dropout), nn.Linear(width, 2 * num_points))
        if residual:  # start as the identity map: the decoder learns the correction only
            nn.init.zeros_(self.decoder[-1].weight)
            nn.init.zeros_(self.decoder[-1].bias)

    def set_output_bias(self, mean_shape: torch.Tensor) -> None:
        """Start the output at ``mean_shape`` [P, 2] (non-residual models): step 0 predicts the mean."""
        if self.residual:
            return
        if tuple(mean_shape.shape) != (self.num_points, 2):
            raise ConfigError(f"mean shape must be [{self.num_points}, 2], found {tuple(mean_shape.shape)}")
        with torch.no_grad():
            self.decoder[-1].bias.copy_(mean_shape.reshape(-1).to(self.decoder[-1].bias))

    def encode(self, points: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """[B, P, 2], [B, pose_dim] -> [B, code_size]."""
        if points.ndim != 3 or tuple(points.shape[1:]) != (self.num_points, 2):
            raise ConfigError(f"autoencoder input must be [B, {self.num_points}, 2], found {tuple(points.shape)}")
        if pose.ndim != 2 or pose.shape[1] != self.pose_dim or pose.shape[0] != points.shape[0]:
            raise ConfigError(f"pose must be [{points.shape[0]}, {self.pose_dim}], found {tuple(pose.shape)}")
        return self.encoder(torch.cat([points.flatten(1), pose], dim=1))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """[B, code_size] -> [B, P, 2] (a correction when residual)."""
        return self.decoder(code).view(code.shape[0], self.num_points, 2)

    def forward(self, points: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        out = self.decode(self.encode(points, pose))
        return points + out if self.residual else out
