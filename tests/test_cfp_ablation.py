"""The CFP ablation trains on LFW people who are not CFP people (no identity in both), on real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.cfp_ablation import cfp_people, training_images

CFP_DIR = Path(os.environ.get("FACEREC_CFP_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "cfp"))


@pytest.fixture(scope="module")
def cfp_dir() -> Path:
    if (CFP_DIR / "cfp-dataset" / "Data" / "list_name.txt").is_file():
        return CFP_DIR
    msg = f"CFP data not found at {CFP_DIR} (set FACEREC_CFP_DIR)"
    if os.environ.get("CI") == "true":
        pytest.fail(msg + ": under CI the real-data tests must run")
    pytest.skip(msg)


def test_no_training_identity_is_a_cfp_identity(lfw_dir: Path, cfp_dir: Path) -> None:
    cfp = cfp_people(cfp_dir)
    images = lfw_dir / "lfw-deepfunneled"
    lfw_people = {p.name for p in images.iterdir() if p.is_dir()}
    shared = cfp & lfw_people
    assert len(cfp) == 500 and len(shared) == 172            # CFP's list; those of them in LFW
    rel = training_images(images, cfp, min_images=2, max_per_identity=6)
    people = {r.split("/", 1)[0] for r in rel}
    assert not people & cfp
    two_plus = {p for p in lfw_people if len(list((images / p).glob("*.jpg"))) >= 2}
    assert people == two_plus - cfp                           # everyone else with 2+ images is in
    assert all(r.endswith(".jpg") and (images / r).is_file() for r in rel[:50])


def test_collapse_verdict_is_the_guards_verdict_plus_the_5x_chance_line() -> None:
    from benchmarks.cfp_ablation_report import collapse_verdict
    from facerec.training.collapse import collapse_plateau

    n = 1553
    plateau = collapse_plateau(n, margin_type="arcface", s=64.0, m=0.5)
    basin = collapse_verdict({"epoch": 6, "loss": plateau, "accuracy": 0.002}, n, recipe="arcface")
    assert basin["on_plateau"] and basin["collapsed"] and basin["plateau"] == round(plateau, 3)
    learning = collapse_verdict({"epoch": 6, "loss": 36.9, "accuracy": 0.0038}, n, recipe="arcface")
    assert not learning["collapsed"] and learning["accuracy_over_chance"] == 5.9
    cosface_flat = collapse_verdict({"epoch": 6, "loss": 17.85, "accuracy": 0.002}, n, recipe="cosface")
    assert not cosface_flat["on_plateau"] and cosface_flat["collapsed"]          # under 5x chance (0.32%)
