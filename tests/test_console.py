"""A quiet console: native third-party lines are filtered out of stderr, ours stay; --verbose keeps all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_SCRIPT = r"""
import os, sys, time
from facerec.console import quiet_console, log_file
quiet_console(verbose=sys.argv[1] == "1")
for line in [b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
             b"W0000 00:00:1796289859.851174   20606 inference_feedback_manager.cc:114] Feedback manager requires",
             b"26/12/03 09:16:01 WARN Utils: Your hostname, vm, resolves to a loopback address",
             b"Using Spark's default log4j profile: org/apache/spark/log4j2-defaults.properties",
             b"\tat org.apache.spark.rdd.RDD.iterator(RDD.scala:338)",
             b"a native line that is not noise"]:
    os.write(2, line + b"\n")                    # what C++ libraries and the JVM do
print("our log line", file=sys.stderr)           # what Python logging and progress bars do
sys.stderr.flush()
time.sleep(0.3)
print(log_file())
"""


def _run(verbose: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "FACEREC_VERBOSE": ""}
    return subprocess.run([sys.executable, "-c", _SCRIPT, verbose], capture_output=True, text=True, env=env,
                          timeout=60)


def test_native_noise_is_filtered_and_kept_in_a_log_file() -> None:
    done = _run("0")
    assert done.returncode == 0, done.stderr
    assert "our log line" in done.stderr and "a native line that is not noise" in done.stderr
    for noise in ("TensorFlow Lite", "inference_feedback_manager", "WARN Utils", "log4j", "RDD.scala"):
        assert noise not in done.stderr
    kept = Path(done.stdout.strip()).read_text()
    assert "TensorFlow Lite" in kept and "RDD.scala" in kept and "our log line" not in kept


def test_verbose_shows_everything() -> None:
    done = _run("1")
    assert done.returncode == 0, done.stderr
    assert "TensorFlow Lite" in done.stderr and "WARN Utils" in done.stderr and "our log line" in done.stderr
