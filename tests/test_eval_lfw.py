"""LFW View 2: the pairs parser on the real file, the 10-fold protocol end to end on a hand-made pair
set, and (slow) real runs of the dlib reference embedder and of a trained run's path."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from facerec.errors import SourceError
from facerec.evaluation.lfw import lfw_report, pair_images, read_pairs, score_lfw_pairs, subset_pairs


def test_parser_reads_the_real_view2_file(lfw_dir: Path) -> None:
    pairs = read_pairs(lfw_dir / "pairs.txt")
    assert len(pairs) == 6000
    per_fold = Counter((p.fold, p.same) for p in pairs)
    assert sorted({f for f, _ in per_fold}) == list(range(10))
    assert set(per_fold.values()) == {300}
    assert all(p.name_a == p.name_b for p in pairs if p.same)
    assert all(p.name_a != p.name_b for p in pairs if not p.same)
    # Folds are disjoint in people, as View 2 promises.
    people = [{n for p in pairs if p.fold == k for n in (p.name_a, p.name_b)} for k in range(10)]
    assert all(not (people[i] & people[j]) for i in range(10) for j in range(i + 1, 10))
    images = pair_images(pairs)
    assert all((lfw_dir / "lfw-deepfunneled" / rel).is_file() for rel in images[:50] + images[-50:])
    first = pairs[0]
    assert first.path_a == f"{first.name_a}/{first.name_a}_{first.num_a:04d}.jpg"


@pytest.mark.parametrize("text,match", [
    ("", "header"),
    ("2\t1\nA\t1\t2\nA\t1\tB\t1\nC\t1\t2\n", "2 folds x 2 pairs = 4 lines, found 3"),
    ("1\t1\nA\t1\tB\t2\nA\t1\tB\t1\n", "line 2: expected a same-person"),
    ("1\t1\nA\t1\t2\nA\tone\tB\t1\n", "integers"),
])
def test_parser_refuses_a_broken_layout(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(SourceError, match=match):
        read_pairs(path)


def test_ten_folds_from_a_pairs_file_with_a_known_answer(tmp_path: Path) -> None:
    """10 folds of 2 same + 2 different pairs. Embeddings are 2-D unit vectors at chosen angles, so the
    cosine score of a pair is the cosine of its angle. Folds 2-10 separate at any threshold in
    (0.2, 0.8); fold 1 holds same-pair scores {0.6, 0.45} and different-pair scores {0.3, 0.49}."""
    lines = ["10\t2"]
    vectors: dict[str, np.ndarray] = {}

    def person(name: str, angles: list[float]) -> None:
        for i, a in enumerate(angles, start=1):
            vectors[f"{name}/{name}_{i:04d}.jpg"] = np.array([np.cos(a), np.sin(a)], dtype=np.float32)

    for k in range(10):
        same_scores, diff_scores = ([0.6, 0.45], [0.3, 0.49]) if k == 0 else ([0.8, 0.9], [0.1, 0.2])
        for j, s in enumerate(same_scores):
            person(f"S{k}_{j}", [0.0, np.arccos(s)])
            lines.append(f"S{k}_{j}\t1\t2")
        for j, s in enumerate(diff_scores):
            person(f"D{k}_{j}a", [0.0])
            person(f"D{k}_{j}b", [np.arccos(s)])
            lines.append(f"D{k}_{j}a\t1\tD{k}_{j}b\t1")
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    pairs = read_pairs(tmp_path / "pairs.txt")
    report, _ = lfw_report(pairs, score_lfw_pairs(pairs, vectors, "cosine"))
    tf = report["ten_fold"]
    assert tf["fold_accuracies"] == pytest.approx([0.75] + [1.0] * 9)
    assert tf["fold_thresholds"][0] == pytest.approx(0.5)
    assert tf["mean"] == pytest.approx(0.975) and tf["std"] == pytest.approx(0.075)
    assert report["verification"]["num_pairs"] == 40
    # Euclidean scores of unit vectors order pairs exactly as cosine does: same accuracies.
    euclid, _ = lfw_report(pairs, score_lfw_pairs(pairs, vectors, "euclidean"))
    assert euclid["ten_fold"]["fold_accuracies"] == pytest.approx(tf["fold_accuracies"])
    assert len(subset_pairs(pairs, 1)) == 20


@pytest.mark.slow
def test_dlib_on_forty_real_pairs_is_far_above_chance(lfw_dir: Path, tmp_path: Path) -> None:
    """2 same + 2 different pairs of each fold (40 pairs, about 80 images) through the CLI."""
    from typer.testing import CliRunner

    from facerec.cli import app

    out = tmp_path / "dlib"
    result = CliRunner().invoke(app, ["eval-lfw", "--lfw-dir", str(lfw_dir), "--embedder", "dlib",
                                      "--per-fold", "2", "--out", str(out), "--yaw-from", "none"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "pairs_dlib.json").read_text())["benchmarks"]["lfw"]
    assert report["num_pairs"] == 40 and len(report["ten_fold"]["fold_accuracies"]) == 10
    assert report["ten_fold"]["mean"] >= 0.9, report["ten_fold"]
    assert report["verification"]["auc"] >= 0.95 and 0 <= report["eer"] < 0.1
    assert report["yaw_bins"] is None and report["yaw_source"] is None      # --yaw-from none: no store built
    assert not (out / "work").exists()
    alignment = report["alignment"]
    assert sum(alignment["images"].values()) == alignment["num_images"]
    assert (out / "roc_lfw_dlib.png").stat().st_size > 5000
    assert np.load(out / "embeddings-lfw-dlib-up1-cnn.npz")["embeddings"].shape == (alignment["num_images"], 128)


@pytest.mark.slow
def test_a_trained_run_goes_through_the_training_data_path(lfw_dir: Path, tmp_path: Path) -> None:
    """A run trained one step (on a 32 px dlib feature set), then LFW through ingest -> dlib landmarks ->
    32 px features -> the run's channels -> mirrored embeddings; 1 + 1 pairs per fold."""
    from store_builder import build_feature_set

    from facerec.recognition import train as tr
    from facerec.recognition.config import TrainConfig
    from facerec.evaluation.benchmarks import open_benchmark
    from facerec.recognition.pair_eval import eval_pairs_run

    zarr_path, _ = build_feature_set(tmp_path / "train_store", lfw_dir, num_identities=8, per_identity=4, size=32,
                                     chunk_rows=8, shard_size=32, invalid_rows=())
    cfg = TrainConfig(store=str(zarr_path), out=str(tmp_path / "run"), backbone="resnet18", embedding_size=32,
                         img_size=32, epochs=1, batch_size=8, num_workers=0, device="cpu", max_steps=1,
                         evaluate_after=False, holdout_identity_frac=0.2)
    tr.main(cfg)
    bench = open_benchmark("lfw", lfw_dir=lfw_dir)
    report = eval_pairs_run([bench], tmp_path / "run", per_fold=1, device="cpu")["lfw"]
    assert report["num_pairs"] == 20 and report["mirror"] is True and report["metric"] == "cosine"
    faces = report["alignment"]["images"]
    assert sum(faces.values()) == report["alignment"]["num_images"] == 40
    assert faces.get("aligned", 0) >= 35          # dlib finds nearly every LFW face
    assert 0.0 <= report["ten_fold"]["mean"] <= 1.0 and report["yaw_bins"] is not None
    assert report["yaw_source"].startswith("mediapipe landmarks")      # a dlib run, binned by MediaPipe's pose
    cached = np.load(tmp_path / "run" / "pairs" / "embeddings-lfw-run-last-step1.npz")
    assert cached["embeddings"].shape == (40, 32)
    again = eval_pairs_run([bench], tmp_path / "run", per_fold=1, device="cpu")["lfw"]   # all from the cache
    assert again["ten_fold"] == report["ten_fold"]
