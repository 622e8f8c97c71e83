"""A quiet console: third-party noise off by default, everything back with ``--verbose``.

Two kinds of noise reach the terminal without going through Python's ``logging``:
- native libraries writing to file descriptor 2: MediaPipe's TF Lite and absl lines
  (``INFO: Created TensorFlow Lite XNNPACK delegate``, ``W0000 ... inference_feedback_manager.cc``),
  in this process and in every Spark Python worker (they inherit the descriptor through the JVM);
- the JVM: ``Using Spark's default log4j profile``, log4j ``WARN``/``ERROR`` lines and Java stack
  traces of failed tasks (facerec's own error line already names the stage and the reason).

``quiet_console()`` points descriptor 2 at a pipe read by a thread that drops lines matching those
patterns (writing them to a log file instead) and passes every other line through; Python's own
``sys.stderr`` (our log lines, tqdm and rich progress) keeps the real terminal, unfiltered and
unbuffered. Python loggers of py4j, pyspark, absl and friends are set to WARNING.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import tempfile
import threading

NOISY_LOGGERS = ("py4j", "pyspark", "matplotlib", "PIL", "urllib3", "fsspec", "httpx", "numcodecs", "absl",
                 "datasets", "huggingface_hub", "filelock")

_NOISE = re.compile(
    r"^(INFO: Created TensorFlow Lite|WARNING: All log messages before absl|[IWEF]\d{4} [\d:. ]+\d+ \S+:\d+\]"
    r"|WARNING: Using incubator modules|Using Spark's default log4j profile|Setting default log level to"
    r"|To adjust logging level use|\d\d/\d\d/\d\d \d\d:\d\d:\d\d (TRACE|DEBUG|INFO|WARN|ERROR) "
    r"|\s+at [\w.$<>/]+\(.*\)$|Caused by: |\s*\.\.\. \d+ more$|[\w.$]+(Exception|Error)(: |$)"
    r"|WARNING: (An illegal|Please consider|Use --illegal|All illegal|sun\.misc\.Unsafe|A terminally deprecated)"
    r"|\[Stage \d+:)"
)

_installed: dict[str, object] = {}


def log_file() -> str:
    """Where dropped native lines go (one file per process)."""
    folder = os.path.join(tempfile.gettempdir(), f"facerec-{os.getuid()}")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"native-{os.getpid()}.log")


def configure_loggers(verbose: bool) -> None:
    """Our loggers at INFO (DEBUG when verbose); third-party Python loggers at WARNING unless verbose."""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


def _pump(read_fd: int, terminal: int, dropped_path: str) -> None:
    with os.fdopen(read_fd, "rb", buffering=0) as pipe, open(dropped_path, "ab") as dropped:
        pending = b""
        while True:
            chunk = pipe.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                text = line.decode("utf-8", "replace")
                if _NOISE.match(text):
                    dropped.write(line + b"\n")
                    dropped.flush()
                else:
                    os.write(terminal, line + b"\n")
        if pending:
            os.write(terminal, pending)


def quiet_console(verbose: bool = False) -> None:
    """Filter native stderr noise (see the module docstring); a no-op when verbose or already installed."""
    configure_loggers(verbose)
    if verbose or _installed or os.environ.get("FACEREC_VERBOSE") == "1":
        return
    try:
        sys.stderr.flush()
        terminal = os.dup(2)
        read_fd, write_fd = os.pipe()
    except (OSError, ValueError):      # no usable descriptor 2 (embedded interpreters): leave it alone
        return
    os.dup2(write_fd, 2)
    os.close(write_fd)
    # Python's own stderr keeps the terminal: progress bars and our log lines are never held back.
    sys.stderr = os.fdopen(os.dup(terminal), "w", buffering=1, encoding="utf-8", errors="replace")
    thread = threading.Thread(target=_pump, args=(read_fd, terminal, log_file()), daemon=True,
                              name="facerec-quiet-stderr")
    thread.start()
    _installed.update(thread=thread, terminal=terminal)
    atexit.register(_restore)


def _restore() -> None:
    """Give descriptor 2 back to the terminal and let the pump drain what it has (best effort)."""
    terminal = _installed.get("terminal")
    if terminal is None:
        return
    try:
        os.dup2(int(terminal), 2)
    except OSError:
        return
    thread = _installed.get("thread")
    if isinstance(thread, threading.Thread):
        thread.join(timeout=0.3)
