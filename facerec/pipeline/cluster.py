"""A throw-away Spark standalone cluster on this machine: one master and N workers on 127.0.0.1.

Why: a stage that runs on ``local[*]`` can still break on a real cluster (code or data that only the
driver sees, objects that do not pickle, paths that only exist in the driver's process). Tests and the
scale-out guide (``docs/scale_out.md``) start such a cluster from the pyspark installation itself
(``SPARK_HOME`` = the ``pyspark`` package folder, which ships ``bin/spark-class`` and the jars)::

    with LocalStandaloneCluster(workers=2) as cluster:
        run_landmarks(LandmarksConfig(store=..., master=cluster.master_url))

The master and every worker run in their own process group with free ports picked at start; start-up
waits until all workers have registered with the master (its JSON status page), and ``stop`` (also on
an exception inside the ``with``) terminates each group, so executors launched by a worker go with it.
Logs are kept in ``work_dir/logs`` and their tails are quoted when start-up fails.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from facerec.errors import ConfigError, FacerecError
from facerec.pipeline.spark import FAST_JVM_OPTIONS

log = logging.getLogger(__name__)

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"

class ClusterError(FacerecError):
    """The local standalone cluster did not start (or a daemon died); the message quotes its log."""


def spark_home() -> Path:
    """The pyspark package folder: it holds ``bin/spark-class`` and ``jars/`` like a Spark distribution."""
    import pyspark

    home = Path(pyspark.__file__).resolve().parent
    if not (home / "bin" / "spark-class").exists() or not (home / "jars").is_dir():
        raise ClusterError(f"{home} is not a usable SPARK_HOME: expected bin/spark-class and jars/ in it")
    return home


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class _Daemon:
    name: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


class LocalStandaloneCluster:
    """Context manager: ``master_url`` is ``spark://127.0.0.1:<port>`` once entered.

    workers: worker daemons to start; cores_per_worker / memory: what each offers to executors
    (``--cores``, ``--memory``, e.g. "1g"); work_dir: logs and executor folders (a temporary folder,
    removed at stop, when None); start_timeout: seconds to wait for every worker to register.
    """

    def __init__(self, workers: int = 2, cores_per_worker: int = 1, memory: str = "1g", *,
                 host: str = "127.0.0.1", work_dir: str | Path | None = None, start_timeout: float = 180.0) -> None:
        if workers < 1 or cores_per_worker < 1:
            raise ConfigError(f"a cluster needs workers >= 1 and cores_per_worker >= 1, got {workers}, {cores_per_worker}")
        self.workers = workers
        self.cores_per_worker = cores_per_worker
        self.memory = memory
        self.host = host
        self.start_timeout = start_timeout
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.master_port: int | None = None
        self.webui_port: int | None = None
        self._daemons: list[_Daemon] = []

    # --------------------------------------------------------------------------------- properties
    @property
    def master_url(self) -> str:
        if self.master_port is None:
            raise ClusterError("the cluster is not started; use it as a context manager or call start()")
        return f"spark://{self.host}:{self.master_port}"

    @property
    def status_url(self) -> str:
        return f"http://{self.host}:{self.webui_port}/json/"

    def daemon_pids(self) -> dict[str, int]:
        """Process id of each daemon by name (``master``, ``worker-0``, ...)."""
        return {d.name: d.process.pid for d in self._daemons}

    # --------------------------------------------------------------------------------- start/stop
    def __enter__(self) -> "LocalStandaloneCluster":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the master, then the workers; return once all have registered."""
        if self._daemons:
            raise ClusterError("the cluster is already started")
        home = spark_home()
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="facerec-spark-cluster-"))
        (self.work_dir / "logs").mkdir(parents=True, exist_ok=True)
        env = self._env(home)
        spark_class = str(home / "bin" / "spark-class")
        t0 = time.perf_counter()
        try:
            self.master_port, self.webui_port = free_port(self.host), free_port(self.host)
            self._spawn("master", [spark_class, MASTER_CLASS, "--host", self.host, "--port", str(self.master_port),
                                   "--webui-port", str(self.webui_port)], env)
            self._wait_for(lambda s: s is not None, "the master to answer")
            for i in range(self.workers):
                worker_dir = self.work_dir / f"worker-{i}"
                worker_dir.mkdir(exist_ok=True)
                self._spawn(f"worker-{i}", [
                    spark_class, WORKER_CLASS, self.master_url, "--host", self.host,
                    "--cores", str(self.cores_per_worker), "--memory", self.memory,
                    "--port", str(free_port(self.host)), "--webui-port", str(free_port(self.host)),
                    "--work-dir", str(worker_dir),
                ], env)
            self._wait_for(lambda s: s is not None and _alive_workers(s) >= self.workers,
                           f"{self.workers} workers to register")
        except BaseException:
            self.stop()
            raise
        log.info("spark standalone cluster at %s: %d workers x %d cores, %s each (started in %.1f s)",
                 self.master_url, self.workers, self.cores_per_worker, self.memory, time.perf_counter() - t0)

    def stop(self) -> None:
        """Terminate every daemon's process group (workers first), then remove a temporary work dir."""
        for daemon in reversed(self._daemons):
            _terminate_group(daemon.process)
        self._daemons = []
        self.master_port = self.webui_port = None
        if self._own_work_dir and self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None

    # --------------------------------------------------------------------------------- helpers
    def status(self) -> dict | None:
        """The master's JSON status (workers, apps), or None while it does not answer."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # 127.0.0.1: never via a proxy
        try:
            with opener.open(self.status_url, timeout=2) as resp:
                return json.load(resp)
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _env(self, home: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "SPARK_HOME": str(home),
            "SPARK_LOG_DIR": str(self.work_dir / "logs"),
            "SPARK_WORKER_DIR": str(self.work_dir),
            "SPARK_LOCAL_IP": self.host,
            "SPARK_DAEMON_MEMORY": os.environ.get("FACEREC_SPARK_DAEMON_MEMORY", "256m"),
            "SPARK_DAEMON_JAVA_OPTS": FAST_JVM_OPTIONS,   # daemons do little work: fast start
            "SPARK_NO_DAEMONIZE": "1",
        })
        env.pop("SPARK_CONF_DIR", None)
        return env

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log_path = self.work_dir / "logs" / f"{name}.log"
        with open(log_path, "wb") as out:
            process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        self._daemons.append(_Daemon(name, process, log_path))

    def _wait_for(self, ready, what: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            dead = [d for d in self._daemons if d.process.poll() is not None]
            if dead:
                d = dead[0]
                raise ClusterError(f"spark {d.name} exited with code {d.process.returncode} while waiting for {what}; "
                                   f"log {d.log_path}:\n{d.log_tail()}")
            if ready(self.status()):
                return
            time.sleep(0.5)
        tails = "\n".join(f"--- {d.name} ({d.log_path}):\n{d.log_tail(800)}" for d in self._daemons)
        raise ClusterError(f"timed out after {self.start_timeout:.0f} s waiting for {what} at {self.status_url}\n{tails}")


def _alive_workers(status: dict) -> int:
    if "aliveworkers" in status:
        return int(status["aliveworkers"])
    return sum(1 for w in status.get("workers", []) if w.get("state") == "ALIVE")


def _terminate_group(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group of ``process``; SIGKILL what is left after ``grace`` seconds."""
    if process.poll() is not None and not _group_alive(process.pid):
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(process.pid):
            process.poll()
            time.sleep(0.2)
        if not _group_alive(process.pid):
            break
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        log.warning("spark daemon %d did not exit", process.pid)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
