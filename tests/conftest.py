"""Shared fixtures: where the real LFW data is, and small real-face folders built from it.

The LFW tests skip with a reason when ``../shared/data/lfw`` is absent, except under CI (``CI=true``),
where a missing data folder fails: a green CI must mean the real-face tests ran.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LFW_DIR = Path(os.environ.get("FACEREC_LFW_DIR", REPO.parent / "shared" / "data" / "lfw")).resolve()


def _require_lfw() -> Path:
    return _require(LFW_DIR / "lfw-deepfunneled", "LFW data", "FACEREC_LFW_DIR").parent


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    """The LFW folder holding lfw-deepfunneled/ and pairs.txt."""
    return _require_lfw()


def lfw_identities(lfw: Path, min_images: int = 1) -> list[tuple[str, list[Path]]]:
    """Identities in sorted order with their sorted image paths."""
    root = lfw / "lfw-deepfunneled"
    out = []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        images = sorted(person.glob("*.jpg"))
        if len(images) >= min_images:
            out.append((person.name, images))
    return out


def make_image_folder(dest: Path, lfw: Path, num_identities: int, per_identity: int, min_images: int = 2) -> Path:
    """An ImageFolder of symlinks to real LFW images (nothing copied): ``dest/<identity>/<image>``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, images in lfw_identities(lfw, min_images)[:num_identities]:
        (dest / name).mkdir(exist_ok=True)
        for img in images[:per_identity]:
            link = dest / name / img.name
            if not link.exists():
                link.symlink_to(img)
    return dest


@pytest.fixture(scope="session")
def lfw_small_folder(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 120 real LFW images of 30 people with 4+ images each."""
    return make_image_folder(tmp_path_factory.mktemp("lfw_small"), lfw_dir, 30, 4, min_images=4)


def local_spark():
    """The local Spark session of the test run, started again if another test switched masters.

    It is the default master (``local[*]``, two cores here), so stages called without a session in
    tests reuse it rather than restarting Spark.

    Starting Spark takes tens of seconds, so the session is shared; but a test that runs a stage with
    another master (a standalone cluster, say) stops it, so tests ask for it each time
    instead of holding a stale object. Its JVM gets the local default flags (``spark.FAST_JVM_OPTIONS``:
    C1-only JIT and the serial GC), which start about twice as fast on a busy 2-core machine.
    """
    from facerec.pipeline.spark import spark_session

    return spark_session(None, app_name="facerec-tests")


@pytest.fixture
def spark():
    """A live local session (see ``local_spark``)."""
    return local_spark()


CFP_DIR = Path(os.environ.get("FACEREC_CFP_DIR", REPO.parent / "shared" / "data" / "cfp")).resolve()
BIN_DIR = Path(os.environ.get("FACEREC_BIN_DIR", REPO.parent / "shared" / "data" / "insightface-bin")).resolve()


def _require(path: Path, what: str, env: str) -> Path:
    if path.exists():
        return path
    msg = f"{what} not found at {path} (set {env})"
    if os.environ.get("CI") == "true":
        pytest.fail(msg + ": under CI the real-data tests must run")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def cfp_dir() -> Path:
    """The CFP folder holding cfp-dataset/ (Data/Images, Protocol)."""
    return _require(CFP_DIR / "cfp-dataset" / "Protocol", "CFP data", "FACEREC_CFP_DIR").parents[1]


@pytest.fixture(scope="session")
def small_lfw_bin() -> Path:
    """insightface's real small_lfw.bin (20 aligned crops, 10 pairs)."""
    return _require(BIN_DIR / "small_lfw.bin", "insightface small_lfw.bin", "FACEREC_BIN_DIR")
