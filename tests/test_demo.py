"""`facerec demo` end to end on a few real LFW faces, and what it promises around that.

The slow test runs the whole chain (ingest, landmarks, features, canonical, recogniser training and
evaluation, autoencoder, report) on ~40 LFW images with a tiny training budget, then checks the stage
outputs, the report in a real browser, that `facerec embed` reproduces the store's embeddings of the
same images, and that the trained model exports to ONNX.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from facerec.demo import DemoConfig, run_demo, select_image_folder
from facerec.errors import ConfigError, SourceError

STAGES = ["ingest", "landmarks", "features", "canonical", "train recogniser", "evaluate recogniser",
          "compare with dlib", "train autoencoder", "report"]


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def stage_started(self, stage, index: int, total: int) -> None:
        self.events.append(("start", stage.name))

    def stage_finished(self, stage, seconds: float, lines: list[str]) -> None:
        self.events.append(("done", stage.name))


@pytest.fixture(scope="module")
def demo(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("demo") / "out"
    cfg = DemoConfig(source=str(lfw_dir / "lfw-deepfunneled"), out=out, max_images=40, max_identities=10,
                     min_images=4, max_per_identity=4, img_size=64, epochs=1, batch_size=8, ae_epochs=2,
                     eval_pairs=20, holdout_identity_frac=0.3, shard_size=16, embedding_size=64, device="cpu")
    recorder = Recorder()
    return cfg, run_demo(cfg, recorder), recorder


@pytest.mark.slow
def test_demo_runs_every_stage_and_leaves_its_outputs(demo) -> None:
    from facerec.store.layout import StoreLayout

    cfg, result, recorder = demo
    assert recorder.events == [(kind, s) for s in STAGES for kind in ("start", "done")]
    assert list(result.timings) == STAGES and all(t >= 0 for t in result.timings.values())
    assert result.selection == {"identities": 10, "images": 40, "folder": str(cfg.out / "source"),
                                "from": cfg.source}
    layout = StoreLayout.at(cfg.store)
    for folder in (layout.samples, layout.landmarks("mediapipe"), layout.features_index("mediapipe", 64),
                   layout.identities("mediapipe", 64)):
        assert StoreLayout.is_finished(folder), folder
    assert (result.recognizer_run / "checkpoints" / "last.pt").exists()
    ev = json.loads((result.recognizer_run / "eval.json").read_text())
    assert ev["verification"]["num_pairs"] >= 20 and 0.0 <= ev["verification"]["auc"] <= 1.0
    assert (result.autoencoder_run / "eval.json").exists()
    saved = json.loads((cfg.out / "demo.json").read_text())
    assert list(saved["timings_s"]) == STAGES and saved["report"] == str(result.report_html)


@pytest.mark.slow
def test_dlib_is_scored_on_the_same_held_out_pairs(demo) -> None:
    """dlib on the run's own pairs: same pair count and folds, and a high AUC, which it reaches only if
    every pair's rows were mapped back to the right source photos."""
    _, result, _ = demo
    ev = json.loads((result.recognizer_run / "eval.json").read_text())
    ref = json.loads((result.recognizer_run / "reference_dlib.json").read_text())
    pairs = np.load(result.recognizer_run / ev["pairs_file"])
    assert ref["num_pairs"] == ev["verification"]["num_pairs"] == len(pairs["score"])
    assert ref["num_identities"] == ev["num_test_identities"]
    run, dlib = ref["models"]["this run"], ref["models"]["dlib ResNet"]
    # the run's row recomputes eval.json's numbers from the saved scores: the pairs file is the evaluated set
    assert run["verification"]["auc"] == pytest.approx(ev["verification"]["auc"], abs=1e-12)
    assert run["ten_fold"]["mean"] == pytest.approx(ev["ten_fold"]["mean"], abs=1e-12)
    assert dlib["verification"]["auc"] > 0.9, dlib
    assert sum(dlib["alignment"]["images"].values()) == ref["num_images"]
    html = result.report_html.read_text()
    assert "dlib ResNet" in html and "roc_vs_dlib" in " ".join(ref["plots"])


def test_demo_trains_with_train_configs_recipe(tmp_path: Path) -> None:
    """The demo sets the budget (data, backbone, epochs, batch) and nothing of the recipe: a new default
    loss, margin, scale, learning rate or warm-up in TrainConfig reaches the demo unchanged."""
    import dataclasses

    from facerec.demo import _train_config
    from facerec.recognition.config import TrainConfig

    budget = {"store", "out", "extractor", "img_size", "use_heatmaps", "backbone", "embedding_size", "epochs",
              "batch_size", "device", "num_workers", "seed", "evaluate_after", "eval_pairs", "holdout_identity_frac"}
    tcfg = _train_config(DemoConfig(out=tmp_path / "out"))
    for f in dataclasses.fields(TrainConfig):
        if f.name not in budget and f.default is not dataclasses.MISSING:
            assert getattr(tcfg, f.name) == f.default, f.name


@pytest.mark.slow
def test_demo_report_holds_valid_pngs_that_load_in_a_browser(demo) -> None:
    from PIL import Image

    from facerec.report.browser import check_images, find_browser

    _, result, _ = demo
    html = result.report_html.read_text()
    uris = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(uris) >= 8      # pose, crops, curves, ROC, 2 yaw plots, autoencoder plots
    for data in uris:
        import io

        with Image.open(io.BytesIO(base64.b64decode(data))) as img:
            img.verify()
            assert img.format == "PNG" and min(img.size) > 50
    md = result.report_md.read_text()
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (result.report_md.parent / link).is_file(), link
    for stage in STAGES[:-1]:                 # timings of every stage before the report itself
        assert f"<td>{stage}</td>" in html
    browser = find_browser()
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no chromium found: under CI the browser check must run (.ci/run installs chromium)")
        pytest.skip("no chromium/chrome on PATH (apt-get install chromium)")
    check = check_images(result.report_html, browser)
    assert (check.total, check.broken) == (len(uris), 0), check.broken_alts


@pytest.mark.slow
def test_embed_reproduces_the_store_embeddings_and_the_model_exports(demo, tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    import torch

    from facerec.recognition.embed import EmbedConfig, embed_images
    from facerec.recognition.export import export_onnx
    from facerec.recognition.inference import embed_dataset, load_run
    from facerec.store.dataset import FaceStoreDataset
    from facerec.store.open_store import FeatureSet

    cfg, result, _ = demo
    people = sorted((cfg.out / "source").iterdir())[:2]
    out = tmp_path / "emb.parquet"
    res = embed_images(EmbedConfig(run=result.recognizer_run, inputs=tuple(map(str, people)), out=out, device="cpu"))
    assert res.images == 8
    rows = pq.read_table(out).to_pylist()

    fset = FeatureSet.open(cfg.store, "mediapipe", 64)
    samples = pq.read_table(Path(cfg.store) / "samples", columns=["sample_id", "source_path"]).to_pandas()
    index = fset.index.merge(samples, on="sample_id")
    by_name = {Path(p).name: int(r) for p, r in zip(index["source_path"], index["row"])}
    model = load_run(result.recognizer_run).model
    ds = FaceStoreDataset(fset, rows=[by_name[Path(r["path"]).name] for r in rows], use_heatmaps=True)
    store_rows, store_emb = embed_dataset(model, ds, torch.device("cpu"))
    lookup = dict(zip(store_rows.tolist(), store_emb))
    compared = 0
    for r in rows:
        row = by_name[Path(r["path"]).name]
        assert r["detected"] == bool(fset.valid[row])
        if r["detected"]:
            np.testing.assert_allclose(np.asarray(r["embedding"]), lookup[row], atol=1e-5)
            compared += 1
    assert compared >= 6

    exported = export_onnx(result.recognizer_run, tmp_path / "demo.onnx")
    assert exported.max_abs_diff <= 1e-4 and exported.in_chans == 9 and exported.img_size == 64


def test_demo_without_network_or_source_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SourceError, match=re.escape("make demo SOURCE=../shared/data/lfw/lfw-deepfunneled")):
        run_demo(DemoConfig(out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()      # stopped before writing anything
    with pytest.raises(SourceError, match="does not exist"):
        run_demo(DemoConfig(source=str(tmp_path / "nowhere"), out=tmp_path / "out"))


def test_select_image_folder_links_a_subset(lfw_dir: Path, tmp_path: Path) -> None:
    root = lfw_dir / "lfw-deepfunneled"
    chosen = select_image_folder(root, tmp_path / "src", min_images=10, max_per_identity=12, max_identities=3,
                                 max_images=100)
    folders = sorted((tmp_path / "src").iterdir())
    assert chosen["identities"] == len(folders) == 3
    for f in folders:
        files = sorted(f.iterdir())
        originals = sorted((root / f.name).glob("*.jpg"))
        assert len(originals) >= 10 and len(files) == min(12, len(originals))
        assert all(p.is_symlink() and p.resolve() == (root / f.name / p.name).resolve() for p in files)
    assert chosen["images"] == sum(len(list(f.iterdir())) for f in folders)
    with pytest.raises(SourceError, match="fewer than 2 identities"):
        select_image_folder(root, tmp_path / "none", min_images=10_000, max_per_identity=12, max_identities=3,
                            max_images=100)


def test_demo_refuses_other_data_settings_in_the_same_folder(tmp_path: Path) -> None:
    from facerec.demo import DEMO_FILE, _prepare_out

    out = tmp_path / "out"
    out.mkdir()
    old = DemoConfig(source="x", out=out, max_images=40)
    (out / DEMO_FILE).write_text(json.dumps({"config": {**json.loads(json.dumps(old.__dict__, default=str))}}))
    with pytest.raises(ConfigError, match="max_images: was 40, now 50"):
        _prepare_out(DemoConfig(source="x", out=out, max_images=50))
    _prepare_out(DemoConfig(source="x", out=out, max_images=40, epochs=7))   # training settings may change
