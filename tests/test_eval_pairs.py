"""eval-pairs on real data: CFP-FF and CFP-FP through dlib (a few pairs per fold), and a .bin through
the same harness; every image embedded and its alignment path counted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.mark.slow
def test_cfp_both_protocols_through_dlib(cfp_dir: Path, tmp_path: Path) -> None:
    """1 same + 1 different pair per fold of FF and of FP (40 pairs, about 75 images, ~20 profiles), in two
    worker processes (``--workers 2``; the LFW test in test_eval_lfw.py takes the one-process path), the
    pairs binned by MediaPipe's yaw (the default ``--yaw-from``): FP pairs reach the profile bins."""
    from typer.testing import CliRunner

    from facerec.cli import app

    out = tmp_path / "pairs"
    result = CliRunner().invoke(app, ["eval-pairs", "--benchmark", "cfp", "--embedder", "dlib", "--cfp-dir",
                                      str(cfp_dir), "--per-fold", "1", "--out", str(out), "--workers", "2"])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "pairs_dlib.json").read_text())
    ff, fp = doc["benchmarks"]["cfp-ff"], doc["benchmarks"]["cfp-fp"]
    for report in (ff, fp):
        a = report["alignment"]
        assert report["num_pairs"] == 20 and len(report["ten_fold"]["fold_accuracies"]) == 10
        assert sum(a["images"].values()) == a["num_images"]           # every image, counted once
        assert report["verification"]["auc"] > 0.8 and 0 <= report["eer"] < 0.5
    assert ff["ten_fold"]["mean"] >= 0.85
    assert fp["alignment"]["images"].get("cnn_detected", 0) >= 5      # profiles: HOG misses, the CNN finds
    for report in (ff, fp):
        assert report["yaw_source"].startswith("mediapipe landmarks, calibrated yaw")
        bins = report["yaw_bins"]["bins"]
        assert sum(b["num_pairs"] for b in bins.values()) + report["yaw_bins"]["num_unknown_pose"] == 20
    assert bins["60-75"]["num_pairs"] + bins["75+"]["num_pairs"] >= 10     # FP: each pair holds a profile
    assert ff["yaw_bins"]["bins"]["0-15"]["num_pairs"] + ff["yaw_bins"]["bins"]["15-30"]["num_pairs"] >= 15
    assert doc["cfp_ff_minus_fp"]["accuracy"] == pytest.approx(ff["ten_fold"]["mean"] - fp["ten_fold"]["mean"])
    cache = np.load(out / "embeddings-cfp-dlib-up1-cnn.npz")
    assert len(cache["paths"]) == len(set(cache["paths"])) >= ff["alignment"]["num_images"]
    assert (out / "roc_cfp-fp_dlib.png").stat().st_size > 5000
    assert (out / "yaw_auc_dlib.png").stat().st_size > 5000          # AUC by |yaw| bin, FF and FP side by side


@pytest.mark.slow
def test_bin_through_dlib(small_lfw_bin: Path, tmp_path: Path) -> None:
    from facerec.evaluation.benchmarks import open_benchmark
    from facerec.evaluation.pair_eval import eval_pairs_dlib

    bench = open_benchmark(f"bin:{small_lfw_bin}", work=tmp_path / "work")
    assert bench.prealigned and len(bench.pairs) == 10 and all((bench.images_dir / k).is_file() for k in bench.keys)
    report = eval_pairs_dlib([bench], tmp_path / "out", yaw_from=None)["bin-small_lfw"]
    assert sum(report["alignment"]["images"].values()) == 20
    assert report["verification"] is None and "only same pairs" in report["note"]    # the file has no different pair
    assert report["ten_fold"]["mean"] >= 0.9
