"""Multi-process (DDP) training helpers: who am I, set up and tear down, and a self re-launch.

``torchrun --nproc_per_node N -m facerec.cli train ...`` starts N copies of the command with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and ``MASTER_ADDR``/``MASTER_PORT``) in their environment;
``facerec train --nproc N`` re-launches itself that way (``launch_self``). Everything here reads that
environment or torch.distributed's own state when asked: no module globals, nothing at import.

The training loop uses ``setup`` (process group: NCCL on CUDA, gloo otherwise; one GPU per local
rank), ``wrap_for_training`` (DDP around the training forward, so gradients are averaged across ranks),
``is_main`` (rank 0 alone writes metrics, checkpoints and plots) and ``teardown``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from facerec.errors import ConfigError
from facerec.training.devices import resolve_device

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

TRACE_ENV = "FACEREC_TRACE_DIR"   # tests: each rank writes the rows it trained on and its final weights here


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: global rank, number of processes, rank on this machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_info_from_env(env: Mapping[str, str] | None = None) -> DistInfo:
    """Rank, world size and local rank from torchrun's variables; one process when they are absent."""
    env = os.environ if env is None else env
    try:
        rank, world, local = (int(env.get(name, default)) for name, default in
                              (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")))
    except ValueError as exc:
        raise ConfigError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers, found "
                          f"{env.get('RANK')!r}, {env.get('WORLD_SIZE')!r}, {env.get('LOCAL_RANK')!r}") from exc
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ConfigError(f"need 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0, found RANK={rank}, "
                          f"WORLD_SIZE={world}, LOCAL_RANK={local}")
    return DistInfo(rank, world, local)


def current() -> DistInfo:
    """The running process group's rank and size once initialised, else what the environment says."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), dist_info_from_env().local_rank)
    return dist_info_from_env()


def is_main() -> bool:
    """True on rank 0 (and in a single-process run): the one process that writes run files."""
    return current().is_main


def setup(device_name: str = "auto") -> tuple[DistInfo, "torch.device"]:
    """Join the process group when launched by torchrun; returns (who, which device to train on).

    One process: ``resolve_device(device_name)``, nothing initialised. Several: CUDA devices are
    ``cuda:LOCAL_RANK`` with the NCCL backend (``auto`` or ``cuda`` asked), anything else trains on
    that device with gloo (CPU tests). A device index given with several processes is refused, since
    every rank would take the same GPU.
    """
    import torch
    import torch.distributed as dist

    info = dist_info_from_env()
    device = resolve_device(device_name)
    if not info.distributed:
        return info, device
    if device.type == "cuda":
        if device.index is not None and device_name != "auto":
            raise ConfigError(f"--device {device_name} names one GPU, but {info.world_size} processes run; "
                              "use --device cuda (each rank takes cuda:LOCAL_RANK)")
        if info.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {info.local_rank} but only {torch.cuda.device_count()} CUDA devices")
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    log.info("rank %d of %d (local rank %d) on %s, backend %s", info.rank, info.world_size, info.local_rank,
             device, backend)
    return info, device


def barrier() -> None:
    """Wait for every rank (no-op in a single-process run)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def teardown() -> None:
    """Leave the process group if this process joined one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _classify_step_type():
    from torch import nn

    class ClassifyStep(nn.Module):
        """``forward(images, labels) -> model.classify(images, labels)``: DDP averages gradients only for
        what runs through ``forward``, and the training path of the recogniser is ``classify``."""

        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, images, labels):
            return self.model.classify(images, labels)

    return ClassifyStep


def wrap_for_training(model: "nn.Module", info: DistInfo, device: "torch.device"):
    """The training forward ``(images, labels) -> (margin logits, cosines)``.

    One process: ``model.classify`` itself. Several: a DDP module around it; DDP broadcasts rank 0's
    weights at construction, so every rank starts (and, gradients being averaged, stays) identical.
    BatchNorm running statistics are rank 0's, broadcast before every forward (``broadcast_buffers``).
    """
    if not info.distributed:
        return model.classify
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(_classify_step_type()(model), device_ids=ids, output_device=ids[0] if ids else None)


def trace_rows(rows: "torch.Tensor", info: DistInfo | None = None) -> None:
    """Append the store rows of one training batch to ``$FACEREC_TRACE_DIR/rows-rank<r>.txt`` (tests)."""
    folder = os.environ.get(TRACE_ENV)
    if not folder:
        return
    info = info or current()
    with open(os.path.join(folder, f"rows-rank{info.rank}.txt"), "a", encoding="utf-8") as fh:
        fh.write(" ".join(str(int(r)) for r in rows.tolist()) + "\n")


def trace_weights(model: "nn.Module", info: DistInfo | None = None) -> None:
    """Save this rank's final ``state_dict`` to ``$FACEREC_TRACE_DIR/weights-rank<r>.pt`` (tests)."""
    folder = os.environ.get(TRACE_ENV)
    if not folder:
        return
    import torch

    info = info or current()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()},
               os.path.join(folder, f"weights-rank{info.rank}.pt"))


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N`` (the launched copies must not launch again)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def launch_self(nproc: int, argv: Sequence[str] | None = None) -> None:
    """Re-run this ``facerec`` command under ``torch.distributed.run`` with ``nproc`` local processes.

    ``argv`` is the command line after the program name (default ``sys.argv[1:]``), with ``--nproc``
    removed. Equivalent to ``torchrun --standalone --nproc_per_node N -m facerec.cli <argv>``; returns
    when every rank has finished and raises ``ChildFailedError`` (torch's) when one failed.
    """
    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    if dist_info_from_env().distributed:
        raise ConfigError("--nproc given inside a torchrun job; launch with one or the other")
    from torch.distributed import run as torchrun

    args = ["--standalone", "--nproc_per_node", str(nproc), "-m", "facerec.cli", *strip_nproc(list(argv or sys.argv[1:]))]
    log.info("launching %d processes: torchrun %s", nproc, " ".join(args))
    torchrun.main(args)


def training_summary(info: DistInfo, batch_size: int, lr: float) -> dict[str, Any]:
    """What the effective optimisation is: per-rank batch, processes, global batch, learning rate."""
    return {"world_size": info.world_size, "batch_per_rank": batch_size,
            "effective_batch": batch_size * info.world_size, "lr": lr}
