"""The run report: HTML with embedded PNGs, Markdown with linked PNGs, and a real browser loading it.

The store is the hand-written one of tests/test_inspect.py with real LFW faces in its crop array; the
run folders hold metrics and plots written by the training code's own RunFolder and plot functions.
The report built from a real demo run is checked in tests/test_demo.py.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from facerec.errors import ConfigError
from facerec.report import build_report
from facerec.report.browser import check_images, find_browser
from facerec.report.document import PNG_MAGIC, png_data_uri
from test_inspect import write_hand_store

IMG = 64
DATA_URI = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _lfw_crops(lfw_dir: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n real LFW faces centre-cropped to IMG, and 6 heatmaps at the ArcFace template points + chin."""
    from facerec.geometry.alignment import center_crop, template_for
    from facerec.pipeline.decode import decode_rgb
    from facerec.geometry.heatmaps import quantize, render_heatmaps

    files = sorted((lfw_dir / "lfw-deepfunneled").glob("A*/*_0001.jpg"))[:n]
    crops = np.stack([center_crop(decode_rgb(f.read_bytes())[60:190, 60:190], IMG) for f in files])
    points = np.vstack([template_for(IMG), [[IMG / 2, IMG * 0.95]]])
    heat = quantize(render_heatmaps(points, IMG, 1.5), "uint8")
    return crops, np.repeat(heat[None], n, axis=0)


def _write_run(path: Path, config: dict, plots: bool) -> Path:
    from facerec.evaluation.plots import plot_roc, plot_training_curves, plot_yaw_bins
    from facerec.training.runs import RunFolder

    with RunFolder(path) as run:
        run.save_config(config)
        for step, loss in enumerate([9.0, 7.5, 6.1, 5.2], start=1):
            run.log(step * 10, "train", loss=loss, acc=0.1 * step)
            if step % 2 == 0:
                run.log(step * 10, "train_epoch", epoch=step // 2, loss=loss, accuracy=0.1 * step)
                run.log(step * 10, "val", epoch=step // 2, loss=loss + 1, accuracy=0.05 * step)
        if plots:
            plot_training_curves(run.read_metrics(), run.plot_path("training_curves"))
            plot_roc({"held-out pairs": ([0.0, 0.01, 0.1, 1.0], [0.0, 0.4, 0.8, 1.0], 0.87)}, run.plot_path("roc"))
            plot_yaw_bins({"AUC": {"0-15": 0.9, "15-30": 0.85, "30-45": None, "45+": None}},
                          run.plot_path("yaw_bins"), "AUC")
    return path


NUM_PAIRS = 200
# What the autoencoder writes (facerec.frontalization.data.describe, facerec.evaluation.nme.summarise_by_yaw)
AE_DATA = {"extractor": "template", "num_points": 68, "identities": {"train": 2, "holdout": 1},
           "identities_excluded": {}, "rows": {"train": 4, "holdout": 2},
           "rows_excluded": {"train": {"no_face": 1}, "holdout": {}}}
AE_EVAL = {"split": "held-out identities", "normaliser": "target inter-ocular distance",
           "count": {"0-15": 1, "15-30": 1, "30-45": 0, "all": 2},          # key order as written: sorted
           "nme": {"input": {"0-15": 0.05, "15-30": 0.07, "30-45": None, "all": 0.06},
                   "mean": {"0-15": 0.03, "15-30": 0.04, "30-45": None, "all": 0.035},
                   "model": {"0-15": 0.02, "15-30": 0.042, "30-45": None, "all": 0.031}}}


def _fake_results(run: Path) -> None:
    """eval.json and reference_dlib.json (+ plots) written by the evaluation code itself from synthetic
    scores: the run weakly separates same from different pairs, the reference strongly."""
    from facerec.evaluation.pairs import VerificationPair
    from facerec.recognition.evaluate import pair_report
    from facerec.recognition.reference import side_by_side, write_reference

    rng = np.random.default_rng(0)
    same = np.arange(NUM_PAIRS) % 2 == 0
    folds = np.arange(NUM_PAIRS) % 10
    run_scores, dlib_scores = rng.normal(0, 1, NUM_PAIRS) + 0.7 * same, rng.normal(0, 1, NUM_PAIRS) + 3.0 * same
    yaw_a, yaw_b = rng.uniform(-40, 40, NUM_PAIRS), rng.uniform(-40, 40, NUM_PAIRS)
    report, _ = pair_report(run_scores, same, yaw_a, yaw_b, folds)
    report.update(num_test_identities=9, num_test_images=60, training_data={"images": 30, "identities": 3},
                  head={"type": "arcface", "s": 64.0, "m": 0.5})
    (run / "eval.json").write_text(json.dumps(report, default=float))
    keys = [VerificationPair(f"{i}a", f"{i}b", bool(s), int(f)) for i, (s, f) in enumerate(zip(same, folds))]
    images = [k for p in keys for k in (p.path_a, p.path_b)]
    dlib_how = {k: "no_face_whole_image" if i < 3 else "detected" for i, k in enumerate(images)}
    result, rocs = side_by_side(keys, run_scores, dlib_scores, dict.fromkeys(images, "aligned"), dlib_how, yaw_a, yaw_b)
    result.update(num_images=len(images), num_identities=9)
    result["models"]["dlib ResNet"]["seconds"] = 12.0
    write_reference(run, result, rocs)


@pytest.fixture(scope="module")
def report(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("report")
    crops, heat = _lfw_crops(lfw_dir, 7)
    store = write_hand_store(tmp / "store", IMG, crops, heat)
    run = _write_run(tmp / "run", {"extractor": "template", "img_size": IMG, "backbone": "resnet18",
                                   "embedding_size": 64, "use_heatmaps": True, "epochs": 1, "batch_size": 8,
                                   "lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 1.0}, plots=True)
    _fake_results(run)
    ae = _write_run(tmp / "ae", {"extractor": "template", "code_size": 32}, plots=True)
    (ae / "data.json").write_text(json.dumps(AE_DATA))
    (ae / "eval.json").write_text(json.dumps(AE_EVAL))
    timings = {"ingest": 2.0, "landmarks": 3.0, "train": 5.0}
    return build_report(run, str(store), autoencoder_run=ae, timings=timings)


def test_html_embeds_every_figure_as_its_png(report) -> None:
    html = report.html.read_text()
    embedded = [base64.b64decode(m) for m in DATA_URI.findall(html)]
    assert len(embedded) == len(report.figures) == html.count("<img ")
    assert embedded == [Path(p).read_bytes() for p in report.figures]
    assert all(png.startswith(PNG_MAGIC) for png in embedded)
    # store figures drawn here + 3 recogniser plots + 3 autoencoder plots
    names = {Path(p).name for p in report.figures}
    assert {"pose_histogram.png", "aligned_crops.png", "training_curves.png", "roc.png", "yaw_bins.png",
            "roc_vs_dlib.png", "yaw_auc_vs_dlib.png"} <= names
    assert len(report.figures) == 2 + 3 + 3
    assert "<script" not in html and "http://" not in html and "https://" not in html
    for section in ("Dataset", "Head pose", "Aligned crops and heatmaps", "Recogniser training", "Verification",
                    "Metrics by yaw", "Landmark autoencoder", "Timings"):
        assert f"<h2>{section}</h2>" in html
    assert "corrupt 1" in html and "no_face 1" in html          # rejects by reason, from the tables
    assert "<td>total</td><td class=\"num\">10.0</td>" in html   # timings add up


def test_aligned_crop_grid_holds_the_stored_faces(report) -> None:
    from PIL import Image

    grid = np.asarray(Image.open(next(p for p in report.figures if Path(p).name == "aligned_crops.png")))
    # 6 valid samples (3 identities, one per identity first, then the rest): 4 pairs on the first row
    assert grid.shape[1] == 4 * (2 * IMG * 2 + 6) + 5 * 12
    assert grid.shape[0] == 2 * IMG * 2 + 3 * 12
    assert grid.std() > 20                                       # real faces, not an empty canvas


def test_markdown_links_existing_pngs(report) -> None:
    md = report.markdown.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == len(report.figures)
    for link in links:
        target = (report.markdown.parent / link).resolve()
        assert target.read_bytes().startswith(PNG_MAGIC), link
    assert "## Timings" in md and "| total | 10.0 |" in md


def _table(html: str, caption_start: str) -> tuple[list[str], list[list[str]]]:
    """Headers and body cells of the HTML table whose caption starts with ``caption_start``."""
    import html as htmlmod

    for m in re.finditer(r"<table><caption>(.*?)</caption>(.*?)</table>", html, re.S):
        if htmlmod.unescape(m.group(1)).startswith(caption_start):
            cells = lambda tag, text: [htmlmod.unescape(c) for c in re.findall(rf"<{tag}(?: [^>]*)?>(.*?)</{tag}>", text, re.S)]
            head, body = m.group(2).split("</thead>")
            return cells("th", head), [cells("td", r) for r in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
    raise AssertionError(f"no table captioned {caption_start!r}")


def test_verification_puts_the_run_beside_dlib_on_the_same_pairs(report) -> None:
    html = report.html.read_text()
    ref = json.loads((report.html.parent / "reference_dlib.json").read_text())
    headers, rows = _table(html, f"The same {NUM_PAIRS:,} held-out pairs for both models")
    assert headers == ["model", "trained on", "10-fold accuracy (%)", "AUC", "TAR @ FAR 1e-2 (%)", "EER (%)",
                       "images aligned by a fall-back"]
    assert [r[0] for r in rows] == ["this run", "dlib ResNet"]
    for row in rows:                                         # the cells are the JSON's numbers, formatted
        rep = ref["models"][row[0]]
        t, v = rep["ten_fold"], rep["verification"]
        assert row[2] == f"{100 * t['mean']:.1f} ± {100 * t['std']:.1f}"
        assert row[3] == f"{v['auc']:.3f}" and row[4] == f"{100 * v['tar_at_far']['0.01']:.1f}"
        assert row[5] == f"{100 * rep['eer']:.1f}"
    assert rows[0][1] == "30 images of 3 people, 1 epoch" and "7,485 people" in rows[1][1]
    assert rows[1][6] == f"3 of {2 * NUM_PAIRS:,}" and rows[0][6] == f"0 of {2 * NUM_PAIRS:,}"
    names = [Path(p).name for p in report.figures]
    assert "roc_vs_dlib.png" in names and "yaw_auc_vs_dlib.png" in names
    # the single-model ROC of the run is not shown beside the one with both models
    assert sum(n.startswith("roc") for n in names) == 2    # roc_vs_dlib + the autoencoder run's roc.png


def test_verification_says_what_the_budget_can_reach(report) -> None:
    import html as htmlmod

    text = htmlmod.unescape(report.html.read_text())
    ref = json.loads((report.html.parent / "reference_dlib.json").read_text())
    mine, dlib = (ref["models"][k]["ten_fold"]["mean"] for k in ("this run", "dlib ResNet"))
    assert "trained for 1 epoch on 30 images of 3 people" in text
    assert f"Here it reaches {100 * mine:.1f}% against dlib's {100 * dlib:.1f}% on the same pairs" in text
    assert f"{100 * (dlib - mine):.1f} points below it" in text
    assert "README.md, section Benchmarks" in text and "GPU figures" in text


def test_results_are_designed_tables_not_json_keys(report) -> None:
    html = report.html.read_text()
    for key in ("best_threshold", "num_pairs_requested", "tar_at_far", "fold_accuracies", "eval.json:",
                "accuracy_pairs_touching_fallback", "rows_excluded"):
        assert key not in html, key
    headers, rows = _table(html, "By the larger |yaw|")
    assert headers[:3] == ["|yaw| bin (degrees)", "pairs", "same person"]
    assert headers[3:] == ["this run: AUC", "this run: accuracy (%)", "dlib ResNet: AUC", "dlib ResNet: accuracy (%)"]
    assert sum(int(r[1].replace(",", "")) for r in rows) == NUM_PAIRS
    headers, rows = _table(html, "Per epoch")
    assert [r[:2] for r in rows] == [["1", "20"], ["2", "40"]] and rows[1][3] == "40.0"   # accuracy 0.4 in %
    headers, rows = _table(html, "Mean NME on held-out identities")
    assert headers == ["method", "all |yaw|", "|yaw| 0-15°", "|yaw| 15-30°", "|yaw| 30-45°"]
    assert rows[0] == ["faces", "2", "1", "1", "0"]
    assert rows[1] == ["autoencoder", "0.0310", "0.0200", "0.0420", "—"]
    assert [r[0] for r in rows[2:]] == ["input unchanged", "mean canonical shape"]
    assert "it beats both baselines" in html
    _, rows = _table(html, "Data (data.json)")
    assert rows == [["training", "2", "4", "no_face 1"], ["held out", "1", "2", "none"]]


def test_verification_without_a_reference_shows_the_run_alone() -> None:
    from facerec.report.recogniser import verification_blocks
    from facerec.report.document import Paragraph, Table

    ev = {"verification": {"num_pairs": 40, "auc": 0.61, "tar_at_far": {"0.01": None}},
          "ten_fold": {"mean": 0.575, "std": 0.05}, "training_data": {"images": 12, "identities": 2},
          "num_test_images": 10, "num_test_identities": 2}
    blocks = verification_blocks({"epochs": 2}, ev, None, {}, None)
    table = next(b for b in blocks if isinstance(b, Table))
    assert table.rows == [["this run", "12 images of 2 people, 2 epochs", "57.5 ± 5.0", "0.610", "—", "—", "—"]]
    text = " ".join(b.text for b in blocks if isinstance(b, Paragraph))
    assert "Here it reaches 57.5%." in text and "dlib" not in text
    assert "A budget this small teaches a face recogniser little" in text
    big = {**ev, "training_data": {"images": 500_000, "identities": 10_000}}     # no small-budget caveat at scale
    text = " ".join(b.text for b in verification_blocks({"epochs": 20}, big, None, {}, None) if isinstance(b, Paragraph))
    assert "trained for 20 epochs on 500,000 images of 10,000 people" in text and "budget this small" not in text
    assert verification_blocks({}, None, None, {}, None)[0].text.startswith("No evaluation was recorded")


def test_png_data_uri_refuses_other_files(tmp_path: Path) -> None:
    fake = tmp_path / "x.png"
    fake.write_bytes(b"GIF89a....")
    with pytest.raises(ConfigError, match="not a PNG"):
        png_data_uri(fake)


def _browser_or_skip() -> str:
    browser = find_browser()
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no chromium found: under CI the browser check must run (.ci/run installs chromium)")
        pytest.skip("no chromium/chrome on PATH (apt-get install chromium)")
    return browser


def test_every_image_loads_in_a_real_browser(report, tmp_path: Path) -> None:
    browser = _browser_or_skip()
    check = check_images(report.html, browser)
    assert check.total == len(report.figures)
    assert check.broken == 0, check.broken_alts
    # the check can fail: a copy with one image's data cut short shows as one broken image
    html = report.html.read_text()
    first = DATA_URI.search(html)
    broken_copy = tmp_path / "broken.html"
    broken_copy.write_text(html[: first.start(1)] + first.group(1)[:64] + html[first.end(1):])
    bad = check_images(broken_copy, browser)
    assert (bad.total, bad.broken) == (len(report.figures), 1)
