"""Fault injection for recovery tests: kill this process at a named point, as a crash would.

Off unless its environment variables are set, and then it costs one dictionary lookup per call.
Tests use it to prove that a killed Spark Python worker, driver or training process loses nothing:

- ``FACEREC_FAULT_KILL_BEFORE_COMMIT=<path suffix>``: ``facerec.store.fs.commit`` SIGKILLs its own
  process just before it renames a finished temporary file onto a final name ending in this suffix,
  e.g. ``landmarks/mediapipe/shard-00001.parquet`` (a Spark Python worker, after the shard's work is
  done but before it is visible) or ``samples/_manifest.json`` (the driver, before a stage is marked done).
- ``FACEREC_FAULT_KILL_AT_STEP=<n>``: the recogniser's training loop SIGKILLs itself when it is about
  to run its optimiser step ``n + 1`` (``n`` steps done and logged).
- ``FACEREC_FAULT_DISK_FULL=<path suffix>``: ``facerec.store.fs.write_parquet_atomic`` writes a few
  bytes of the temporary file of a final path ending in this suffix, then fails with ``OSError(ENOSPC)``
  as a full disk would (in whatever process writes it: a Spark worker or the driver).
- ``FACEREC_FAULT_ONCE=<marker file>``: kill only if this file does not exist yet, creating it first
  (atomically, so of several processes exactly one dies); the retry or rerun then goes through.
  Without it every process that reaches the point dies.

SIGKILL, not an exception: no ``finally``, no ``except`` and no atexit handler runs, as with the OOM
killer or a lost machine.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
from typing import BinaryIO

log = logging.getLogger(__name__)

KILL_BEFORE_COMMIT_ENV = "FACEREC_FAULT_KILL_BEFORE_COMMIT"
KILL_AT_STEP_ENV = "FACEREC_FAULT_KILL_AT_STEP"
DISK_FULL_ENV = "FACEREC_FAULT_DISK_FULL"
ONCE_ENV = "FACEREC_FAULT_ONCE"


def _claim_once() -> bool:
    """True when this process should die: no once-marker configured, or it created the marker now."""
    marker = os.environ.get(ONCE_ENV)
    if not marker:
        return True
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{os.getpid()}\n")
    return True


def _kill_self(where: str) -> None:
    log.warning("fault injection: SIGKILL of process %d at %s", os.getpid(), where)
    os.kill(os.getpid(), signal.SIGKILL)


def before_commit(final_path: str) -> None:
    """Called by ``fs.commit`` with the final path a temporary file is about to be renamed to."""
    suffix = os.environ.get(KILL_BEFORE_COMMIT_ENV)
    if suffix and str(final_path).rstrip("/").endswith(suffix) and _claim_once():
        _kill_self(f"commit of {final_path}")


def at_train_step(step: int) -> None:
    """Called by the training loop before each optimiser step with the number of steps done."""
    value = os.environ.get(KILL_AT_STEP_ENV)
    if value and int(value) == step and _claim_once():
        _kill_self(f"training step {step}")


def disk_full_while_writing(final_path: str, fh: BinaryIO) -> None:
    """Called by ``fs.write_parquet_atomic`` with the open temporary file of ``final_path``."""
    suffix = os.environ.get(DISK_FULL_ENV)
    if suffix and str(final_path).rstrip("/").endswith(suffix) and _claim_once():
        fh.write(b"PAR1" + b"\0" * 1020)   # a torn start of a Parquet file, as a filling disk leaves it
        log.warning("fault injection: ENOSPC while writing %s", final_path)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(final_path))
