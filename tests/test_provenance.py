"""Provenance in manifests: installed versions, drift warnings, a hub dataset's revision (no network)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from facerec.pipeline.source_revision import cached_revision, revision_in
from facerec.store.provenance import package_version, provenance, stage_packages, version_drift

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_versions_are_the_installed_ones() -> None:
    prov = provenance("landmarks", "mediapipe")
    assert prov["versions"]["numpy"] == metadata.version("numpy")
    assert prov["versions"]["zarr"] == metadata.version("zarr")
    assert prov["versions"]["mediapipe"] == metadata.version("mediapipe")
    assert prov["versions"]["dlib"] == package_version("dlib") is not None      # dlib-bin provides it
    assert "mediapipe" in prov["relevant"] and "dlib" not in prov["relevant"]
    assert "dlib" in stage_packages("landmarks", "dlib") and "zarr" in stage_packages("features")
    assert "source_revision" not in prov and provenance("ingest", source_revision=SHA)["source_revision"] == SHA


def test_drift_lists_only_relevant_packages_that_changed() -> None:
    prov = provenance("features")
    assert version_drift(prov) == []
    prov["versions"]["zarr"] = "2.0.0"
    prov["versions"]["mediapipe"] = "0.1"                  # not relevant to features: no warning
    assert version_drift(prov) == [("zarr", "2.0.0", metadata.version("zarr"))]
    assert version_drift(None) == []


@pytest.mark.parametrize("text, expected", [
    (f"hf://datasets/logasja/VGGFace2@{SHA}/data/train-00000.parquet", SHA),
    (f"/root/.cache/huggingface/datasets/logasja___vgg_face2/default/0.0.0/{SHA}/vgg_face2-train.arrow", SHA),
    ("hf://datasets/logasja/VGGFace2@main/data/train-00000.parquet", None),
])
def test_revision_found_in_the_paths_datasets_uses(text: str, expected: str | None) -> None:
    assert revision_in([text]) == expected


def test_revision_from_the_hub_cache(tmp_path: Path) -> None:
    ref = tmp_path / "datasets--logasja--VGGFace2" / "refs" / "main"
    assert cached_revision("logasja/VGGFace2", cache=str(tmp_path)) is None
    ref.parent.mkdir(parents=True)
    ref.write_text(SHA + "\n")
    assert cached_revision("logasja/VGGFace2", cache=str(tmp_path)) == SHA
    ref.write_text("not a commit")
    assert cached_revision("logasja/VGGFace2", cache=str(tmp_path)) is None
