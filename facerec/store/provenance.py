"""What shaped a stage's output: the versions of the packages it ran with, and the source's revision.

Every stage manifest records ``provenance``: the versions of facerec and of the libraries whose
behaviour decides the bytes a stage writes (a new MediaPipe moves landmarks, a new OpenCV moves
warped pixels, a new Zarr or numcodecs may encode chunks differently), which of them matter to that
stage, and the source's revision where it has one (a Hugging Face dataset's commit). ``facerec verify``
warns when the environment differs from what built the store: a repair or rerun may then not
reproduce the same bytes. Versions come from package metadata; nothing heavy is imported.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

# name shown -> distributions that provide it, first installed wins
PACKAGES: dict[str, tuple[str, ...]] = {
    "facerec": ("facerec",),
    "mediapipe": ("mediapipe",),
    "dlib": ("dlib-bin", "dlib"),
    "opencv": ("opencv-contrib-python", "opencv-python", "opencv-python-headless", "opencv-contrib-python-headless"),
    "numpy": ("numpy",),
    "zarr": ("zarr",),
    "numcodecs": ("numcodecs",),
    "pyarrow": ("pyarrow",),
    "pillow": ("pillow",),
}

_COMMON = ("facerec", "numpy", "pyarrow")
_EXTRACTOR_PACKAGES = {"mediapipe": ("mediapipe", "opencv"), "dlib": ("dlib", "opencv"), "template": ("opencv",)}


def stage_packages(stage: str, extractor: str | None = None) -> tuple[str, ...]:
    """The packages whose version can change what ``stage`` writes (``extractor`` for landmarks/features)."""
    if stage in ("ingest", "samples"):
        return (*_COMMON, "pillow")
    if stage == "landmarks":
        return (*_COMMON, "pillow", *_EXTRACTOR_PACKAGES.get(extractor or "", ("mediapipe", "dlib", "opencv")))
    if stage == "features":
        return (*_COMMON, "pillow", "opencv", "zarr", "numcodecs")
    return (*_COMMON, "zarr")


def package_version(name: str) -> str | None:
    """Installed version of a package of ``PACKAGES`` (None when it is not installed)."""
    for dist in PACKAGES.get(name, (name,)):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def provenance(stage: str, extractor: str | None = None, source_revision: str | None = None) -> dict[str, Any]:
    """The ``provenance`` section of a stage manifest."""
    out: dict[str, Any] = {
        "versions": {name: package_version(name) for name in PACKAGES},
        "relevant": list(stage_packages(stage, extractor)),
    }
    if source_revision is not None:
        out["source_revision"] = source_revision
    return out


def version_drift(recorded: dict[str, Any] | None) -> list[tuple[str, str | None, str | None]]:
    """(package, recorded version, installed version) for each relevant package that differs now."""
    if not recorded:
        return []
    versions = recorded.get("versions", {})
    drift = []
    for name in recorded.get("relevant", ()):
        now = package_version(name)
        if versions.get(name) != now:
            drift.append((name, versions.get(name), now))
    return drift
