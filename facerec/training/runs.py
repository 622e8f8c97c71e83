"""A run folder: the resolved config, metrics (JSON lines + TensorBoard), checkpoints and plots.

    RUN/config.json        the frozen config dataclass, resolved (every default written out)
    RUN/metrics.jsonl      one JSON object per log call: {"step", "phase", <metric>: value, "time"}
    RUN/tb/                TensorBoard scalars named "<phase>/<metric>"
    RUN/checkpoints/       last.pt (and best.pt when asked), written atomically (tmp + rename)
    RUN/plots/             PNG figures

Checkpoints are plain dicts of tensors, numbers, strings, lists and dicts, so they load with
``torch.load(weights_only=True)``: nothing pickled, no code runs on load.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from facerec.errors import TrainingError
from facerec.store.fs import atomic_local_path, resolve, write_text_atomic

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.json"             # what a model's evaluation of its run writes
REFERENCE_FILE = "reference_dlib.json"   # the run beside dlib on the same pairs (facerec.recognition.reference)


def read_metrics(run_dir: Path) -> list[dict]:
    """Every record of RUN/metrics.jsonl in order ([] before the first); reading only, so a report can
    use it on a finished run without opening a ``RunFolder``."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def config_to_dict(cfg: Any) -> dict:
    """A dataclass (or dict) -> a JSON-ready dict; paths become strings."""
    raw = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    return json.loads(json.dumps(raw, default=str))


class RunFolder:
    """One training run's folder. ``resume=False`` refuses a folder that already holds a run.

    ``replica=True`` (DDP ranks other than 0) reads the run (config, checkpoints) but writes nothing:
    rank 0 writes config, metrics, checkpoints and plots for all ranks.
    """

    def __init__(self, path: Path, *, resume: bool = False, replica: bool = False) -> None:
        self.path = Path(path)
        self.replica = replica
        self._purge_step: int | None = None
        if replica:
            self._writer = None
            return
        if not resume and (self.path / METRICS_FILE).exists():
            raise TrainingError(
                f"run folder {self.path} already holds a run (metrics.jsonl exists); "
                "pass --resume to continue it or choose another --out"
            )
        if resume and not (self.path / CONFIG_FILE).exists():
            raise TrainingError(f"cannot resume: {self.path} holds no run (no {CONFIG_FILE})")
        (self.path / "checkpoints").mkdir(parents=True, exist_ok=True)
        (self.path / "plots").mkdir(exist_ok=True)
        self._writer = None

    # config -----------------------------------------------------------------------------------
    def save_config(self, cfg: Any) -> dict:
        """Write the resolved config; returns it as a dict."""
        data = config_to_dict(cfg)
        if self.replica:
            return data
        write_text_atomic(json.dumps(data, indent=2, sort_keys=True), resolve(str(self.path / CONFIG_FILE)))
        return data

    def load_config(self) -> dict:
        try:
            return json.loads((self.path / CONFIG_FILE).read_text())
        except FileNotFoundError:
            raise TrainingError(f"{self.path} holds no {CONFIG_FILE}; is it a run folder?") from None

    # metrics ----------------------------------------------------------------------------------
    def log(self, step: int, phase: str, **metrics: float) -> None:
        """Append one record to metrics.jsonl and the same scalars to TensorBoard as phase/name."""
        if self.replica:
            return
        clean = {k: _scalar(v) for k, v in metrics.items()}
        record = {"step": int(step), "phase": phase, **clean, "time": round(time.time(), 3)}
        with open(self.path / METRICS_FILE, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        writer = self._tb()
        if writer is not None:
            for name, value in clean.items():
                if isinstance(value, (int, float)) and value is not None:
                    writer.add_scalar(f"{phase}/{name}", value, int(step))

    def drop_metrics_after(self, step: int) -> int:
        """Keep only records up to ``step`` (a resumed run's checkpoint): a run killed after its last
        checkpoint logged steps that the resumed run redoes. Returns how many records were dropped."""
        records = self.read_metrics()
        kept = [r for r in records if r["step"] <= step]
        if self.replica or len(kept) == len(records):
            return 0
        write_text_atomic("".join(json.dumps(r) + "\n" for r in kept), resolve(str(self.path / METRICS_FILE)))
        self._purge_step = step + 1          # TensorBoard: hide the dropped steps' events too
        log.info("dropped %d metric records after step %d (logged after the last checkpoint)", len(records) - len(kept), step)
        return len(records) - len(kept)

    def read_metrics(self) -> list[dict]:
        return read_metrics(self.path)

    def _tb(self):
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is a declared dependency; a broken install only loses TB
                log.warning("tensorboard is not importable; metrics go to %s only", METRICS_FILE)
                self._writer = False
                return None
            self._writer = SummaryWriter(log_dir=str(self.path / "tb"), purge_step=self._purge_step)
        return self._writer or None

    # checkpoints ------------------------------------------------------------------------------
    def checkpoint_path(self, name: str = "last.pt") -> Path:
        return self.path / "checkpoints" / name

    def save_checkpoint(self, state: dict, name: str = "last.pt", *, best: bool = False) -> Path:
        """Write ``state`` atomically under ``name``; with ``best=True`` also as best.pt."""
        import torch

        final = self.checkpoint_path(name)
        if self.replica:
            return final
        with atomic_local_path(final) as tmp:
            torch.save(state, tmp)
        if best:
            with atomic_local_path(self.checkpoint_path("best.pt")) as tmp:
                torch.save(state, tmp)
        return final

    def has_checkpoint(self, name: str = "last.pt") -> bool:
        return self.checkpoint_path(name).exists()

    def load_checkpoint(self, name: str = "last.pt", map_location: Any = "cpu") -> dict:
        """Load a checkpoint with ``weights_only=True`` (tensors and plain containers only)."""
        import torch

        path = self.checkpoint_path(name)
        if not path.exists():
            raise TrainingError(f"no checkpoint {name} in {self.path / 'checkpoints'}")
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:  # torch raises several kinds for a corrupt or foreign file
            raise TrainingError(f"cannot load checkpoint {path}: {exc}") from exc

    # plots ------------------------------------------------------------------------------------
    def plot_path(self, name: str) -> Path:
        return self.path / "plots" / (name if name.endswith(".png") else f"{name}.png")

    def close(self) -> None:
        if self._writer:
            self._writer.close()
        self._writer = None

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _scalar(value: Any) -> Any:
    """Tensors and numpy numbers -> Python numbers; NaN/inf stay floats (JSON writes NaN)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return value
    return value
