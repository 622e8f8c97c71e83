"""Use a trained landmark autoencoder: load it from its run folder, predict canonical landmarks in crop pixels.

``predict_canonical`` is what a ``--frontalize`` option of the features stage or of a reader would call:
posed aligned landmarks + pose in, the predicted frontal (canonical) landmarks of the same person out,
in the same aligned-crop pixel frame, ready to render as extra heatmap channels.

Placing the prediction in pixels: the model predicts a normalised shape (centred, unit RMS radius).
It is put back at the mean centre and mean RMS radius of the training identities' canonical shapes
(saved in the checkpoint), not at the input's own centre and radius: aligned crops put a frontal face
at one place and size (the alignment template), while a turned face's own centre shifts and its radius
shrinks with yaw, which would carry the pose back into the "frontal" output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facerec.errors import ConfigError, TrainingError
from facerec.frontalization.data import normalise_shapes
from facerec.frontalization.evaluate import predict_normalised
from facerec.training.devices import resolve_device
from facerec.training.runs import RunFolder

if TYPE_CHECKING:
    import torch

    from facerec.frontalization.model import LandmarkAutoencoder


@dataclass
class LoadedAutoencoder:
    """A trained model with what is needed to use it alone (no store): its config, the training mean
    shape [P, 2] (normalised), and the canonical pixel frame (centre [2], radius) at ``img_size``."""

    model: "LandmarkAutoencoder"
    config: dict
    mean_shape: np.ndarray
    frame_centre: np.ndarray
    frame_scale: float
    device: "torch.device"

    @property
    def img_size(self) -> int:
        return int(self.config["img_size"])

    @property
    def extractor(self) -> str:
        return str(self.config["extractor"])


def load_autoencoder(run_dir: str | Path, device: str = "cpu", checkpoint: str = "last.pt") -> LoadedAutoencoder:
    """The model of ``RUN/checkpoints/<checkpoint>`` (loaded with weights_only=True) in eval mode."""
    from facerec.frontalization.model import LandmarkAutoencoder

    dev = resolve_device(device)
    run = RunFolder(Path(run_dir), resume=True)
    state = run.load_checkpoint(checkpoint, map_location=dev)
    for key in ("model", "config", "num_points", "mean_shape", "frame_centre", "frame_scale"):
        if key not in state:
            raise TrainingError(f"{run.checkpoint_path(checkpoint)} is not a landmark-autoencoder checkpoint (no {key!r})")
    cfg = state["config"]
    model = LandmarkAutoencoder(int(state["num_points"]), width=cfg["width"], depth=cfg["depth"], code_size=cfg["code_size"],
                                dropout=cfg["dropout"], residual=cfg["residual"])
    model.load_state_dict(state["model"])
    model.to(dev).eval()
    return LoadedAutoencoder(model, cfg, state["mean_shape"].cpu().numpy(), state["frame_centre"].cpu().numpy(),
                             float(state["frame_scale"]), dev)


def predict_canonical(run_dir: "str | Path | LoadedAutoencoder", aligned_points: np.ndarray, pose: np.ndarray,
                      img_size: int | None = None, device: str = "cpu") -> np.ndarray:
    """Posed aligned landmarks [N, P, 2] (crop pixels) + pose [N, 3] (yaw, pitch, roll, degrees)
    -> predicted canonical landmarks [N, P, 2] float32 in crop pixels of an ``img_size`` crop
    (default: the size the model was trained on; other sizes are scaled by img_size / trained size).

    Rows whose input is non-finite or collapsed, or whose pose is unknown (NaN), come back as NaN rows:
    callers mask them exactly as they mask invalid rows.
    """

    ae = run_dir if isinstance(run_dir, LoadedAutoencoder) else load_autoencoder(run_dir, device)
    points = np.asarray(aligned_points, dtype=np.float32)
    pose = np.asarray(pose, dtype=np.float32)
    p = ae.model.num_points
    if points.ndim != 3 or points.shape[1:] != (p, 2):
        raise ConfigError(f"predict_canonical: aligned_points must be [N, {p}, 2] for this model ({ae.extractor}), "
                          f"found {points.shape}")
    if pose.shape != (points.shape[0], 3):
        raise ConfigError(f"predict_canonical: pose must be [{points.shape[0]}, 3] (yaw, pitch, roll), found {pose.shape}")
    norm, _, _ = normalise_shapes(points)
    ok = np.isfinite(norm).all(axis=(1, 2)) & np.isfinite(pose).all(axis=1)
    out = np.full(points.shape, np.nan, dtype=np.float32)
    if ok.any():
        pred = predict_normalised(ae.model, norm[ok], pose[ok], ae.device)
        factor = 1.0 if img_size is None else img_size / ae.img_size
        out[ok] = (pred * ae.frame_scale + ae.frame_centre) * factor
    return out
