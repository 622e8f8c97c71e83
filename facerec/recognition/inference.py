"""Use a trained recogniser: ``load_run(dir, checkpoint, device)`` (the one way to load a run) and the
mirrored embeddings of uint8 batches (``embed_batch``) or of a whole store reader (``embed_dataset``).

Embedding of a face (the verification convention of insightface and LFW papers):
``normalize(f(x) + f(mirror(x)))``, where the mirror flips every channel and swaps the left/right
heatmap channels (``facerec.store.transforms.RandomHorizontalFlip`` with p = 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facerec.errors import TrainingError
from facerec.recognition.config import TrainConfig
from facerec.recognition.inputs import InputSpec
from facerec.recognition.model import ModelSpec, Recognizer, build_recognizer
from facerec.store.dataset import FaceStoreDataset, normalize_batch
from facerec.store.sampler import ChunkShuffleSampler, make_loader
from facerec.store.transforms import RandomHorizontalFlip
from facerec.training.devices import resolve_amp, resolve_device
from facerec.training.runs import RunFolder


@dataclass(frozen=True)
class LoadedRun:
    """A trained run ready to embed: its folder, config, input channels, model (eval mode) and checkpoint."""

    path: Path
    config: TrainConfig
    inputs: InputSpec
    model: Recognizer
    state: dict                      # the checkpoint dict (loop, model_spec, class_names, ...)
    device: torch.device

    @property
    def step(self) -> int:
        return int(self.state["loop"]["step"])

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return resolve_amp(self.config.amp, self.device)

    def reader(self, feature_set: Any, rows: Any) -> FaceStoreDataset:
        """A ``FaceStoreDataset`` over ``rows`` with the channels this run's model takes."""
        dataset = FaceStoreDataset(feature_set, rows=rows, **self.inputs.reader_kwargs())
        self.inputs.check(dataset.num_channels, f"feature set {getattr(feature_set, 'location', feature_set)}")
        return dataset


def load_run(run_dir: Path | str, checkpoint: str = "last.pt", device: torch.device | str = "cpu") -> LoadedRun:
    """The run in ``run_dir`` with the weights of ``checkpoint`` on ``device`` (a name such as "auto", or a
    ``torch.device``). Runs saved before the input spec was written get it from their config."""
    run = RunFolder(Path(run_dir), resume=True)
    try:
        config = TrainConfig.from_dict(run.load_config())
        dev = device if isinstance(device, torch.device) else resolve_device(device)
        model, state = load_recognizer(run, checkpoint, dev)
    finally:
        run.close()
    if "input_spec" in state:
        inputs = InputSpec.from_dict(state["input_spec"])
    else:
        inputs = InputSpec.from_config(config, state["model_spec"]["in_chans"])
    return LoadedRun(run.path, config, inputs, model, state, dev)


def load_recognizer(run: RunFolder, checkpoint: str = "last.pt", device: torch.device | str = "cpu") -> tuple[Recognizer, dict]:
    """The run's model with its trained weights, in eval mode, and the checkpoint dict."""
    state = run.load_checkpoint(checkpoint, map_location="cpu")
    if "model_spec" not in state:
        raise TrainingError(f"{run.checkpoint_path(checkpoint)} is not a recogniser checkpoint (no model_spec)")
    model = build_recognizer(ModelSpec.from_dict(state["model_spec"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state


@torch.no_grad()
def embed_batch(model: Recognizer, images_uint8: torch.Tensor, layout: Any, device: torch.device, *,
                mirror: bool = True, amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """uint8 [B, C, S, S] -> L2-normalised float32 embeddings [B, E] on the CPU.

    ``layout``: the dataset's ``ChannelLayout`` (which channels swap under the mirror).
    """
    model.eval()
    batches = [images_uint8]
    if mirror:
        batches.append(RandomHorizontalFlip(1.0)(images_uint8, layout)[0])
    total = None
    for imgs in batches:
        x = normalize_batch(imgs, device)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            emb = model(x).float()
        total = emb if total is None else total + emb
    return torch.nn.functional.normalize(total, dim=1).cpu()


def embed_dataset(model: Recognizer, dataset: Any, device: torch.device, *, batch_size: int = 64,
                  num_workers: int = 0, mirror: bool = True, amp_dtype: torch.dtype | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of every row of a ``FaceStoreDataset``: (store rows [N] int64, embeddings [N, E] float32),
    read in chunk order (``ChunkShuffleSampler`` without shuffling)."""
    sampler = ChunkShuffleSampler.for_dataset(dataset, batch_size=batch_size, shuffle=False)
    loader = make_loader(dataset, sampler, num_workers, persistent_workers=False)
    rows, embs = [], []
    for batch in loader:
        embs.append(embed_batch(model, batch["image"], dataset.channel_layout, device, mirror=mirror, amp_dtype=amp_dtype))
        rows.append(batch["row"].numpy())
    return np.concatenate(rows), torch.cat(embs).numpy()
