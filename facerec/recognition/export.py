"""Export a run's embedding network to ONNX and prove onnxruntime computes what PyTorch computes.

The exported graph is ``Recognizer.forward`` (the backbone and its embedding neck; the margin head is
training-only): input ``images`` float32 ``[B, C, S, S]`` normalised as in training
(``facerec.store.dataset.normalize_batch``: RGB ``(x/255 - 0.5)/0.5``, heatmap and mask channels
``x/255``), output ``embeddings`` float32 ``[B, E]``, not L2-normalised. The batch axis is dynamic.
The verification convention (sum with the mirrored input, heatmap channels swapped, then L2-normalise)
stays with the caller, as ``facerec embed`` does it; the model's metadata says so.

The TorchScript-based exporter (``dynamo=False``) is used: the torch.export-based one needs the
``onnxscript`` package, which facerec does not depend on; both give the same graph for a plain ResNet.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerec.errors import ConfigError, FacerecError
from facerec.store.dataset import normalize_batch
from facerec.store.fs import atomic_local_path

log = logging.getLogger(__name__)

MIN_OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"


class ExportError(FacerecError):
    """The exported model does not reproduce PyTorch's output."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    opset: int
    in_chans: int
    img_size: int
    embedding_size: int
    max_abs_diff: float          # largest |onnxruntime - PyTorch| over the checked batches
    checked_batch_sizes: tuple[int, ...]
    seconds: float

    def lines(self) -> list[str]:
        return [
            f"export: {self.path} (opset {self.opset}, input [B, {self.in_chans}, {self.img_size}, {self.img_size}], "
            f"output [B, {self.embedding_size}])",
            f"  onnxruntime vs PyTorch at batch sizes {list(self.checked_batch_sizes)}: max |diff| "
            f"{self.max_abs_diff:.2e}; {self.seconds:.1f} s",
        ]


def _sample_inputs(in_chans: int, img_size: int, batch: int, seed: int):
    """Normalised inputs from random uint8 images, through the training normalisation."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 256, (batch, in_chans, img_size, img_size), generator=gen, dtype=torch.uint8)
    return normalize_batch(raw, "cpu")


def max_difference(net, onnx_path: Path, in_chans: int, img_size: int, batch_sizes: tuple[int, ...]) -> float:
    """Largest absolute difference between onnxruntime and PyTorch outputs over the given batch sizes."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for i, b in enumerate(batch_sizes):
        x = _sample_inputs(in_chans, img_size, b, seed=1000 + i)
        with torch.no_grad():
            ref = net(x).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
        if got.shape != ref.shape:
            raise ExportError(f"{onnx_path}: onnxruntime gave shape {got.shape} for batch {b}, PyTorch {ref.shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def export_onnx(run_dir: Path, onnx_path: Path, *, checkpoint: str = "last.pt", opset: int = MIN_OPSET,
                atol: float = 1e-4, batch_sizes: tuple[int, ...] = (1, 3)) -> ExportResult:
    """Write the run's embedding network to ``onnx_path`` and check it with onnxruntime within ``atol``."""
    import onnx
    import torch

    from facerec.recognition.inference import load_run

    if opset < MIN_OPSET:
        raise ConfigError(f"ONNX opset must be >= {MIN_OPSET}, got {opset}")
    t0 = time.perf_counter()
    loaded = load_run(run_dir, checkpoint, "cpu")
    model, state = loaded.model, loaded.state
    net = model.backbone.eval()
    in_chans, img_size, emb = int(net.in_chans), int(net.img_size), int(net.embedding_size)
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_local_path(onnx_path) as tmp:   # committed only once it matches PyTorch
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)   # the TorchScript exporter's notice
            torch.onnx.export(
                net, (_sample_inputs(in_chans, img_size, 2, seed=0),), str(tmp), dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )
        proto = onnx.load(str(tmp))
        meta = {
            "facerec.run": str(Path(run_dir).resolve()), "facerec.checkpoint": checkpoint,
            "facerec.step": str(state.get("loop", {}).get("step", "")),
            "facerec.model_spec": json.dumps(state["model_spec"], sort_keys=True),
            "facerec.input": f"float32 [B, {in_chans}, {img_size}, {img_size}]: RGB (x/255-0.5)/0.5, then heatmap "
                             "and mask channels x/255, as facerec.store.dataset.normalize_batch",
            "facerec.output": f"float32 [B, {emb}] raw embeddings; verification uses "
                              "L2-normalise(f(x) + f(mirror(x))) with left/right heatmap channels swapped",
        }
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        diff = max_difference(net, tmp, in_chans, img_size, batch_sizes)
        if not diff <= atol:
            raise ExportError(f"ONNX export of {run_dir} differs from PyTorch by {diff:.2e} (> {atol:g}); not written")
    result = ExportResult(onnx_path, opset, in_chans, img_size, emb, diff, tuple(batch_sizes), time.perf_counter() - t0)
    log.info("exported %s: max |onnxruntime - torch| = %.2e", onnx_path, diff)
    return result
