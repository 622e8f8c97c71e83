"""The run report: HTML with embedded PNGs, Markdown with linked PNGs, and a real browser loading it.

The store is the hand-written one of tests/test_inspect.py with real LFW faces in its crop array; the
run folders hold metrics and plots written by the training code's own RunFolder and plot functions.
The report built from a real demo run is checked in tests/test_demo.py.
"""

from __future__ import annotations

import base64
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
        run.log(40, "val", acc=0.35)
        if plots:
            plot_training_curves(run.read_metrics(), run.plot_path("training_curves"))
            plot_roc({"held-out pairs": ([0.0, 0.01, 0.1, 1.0], [0.0, 0.4, 0.8, 1.0], 0.87)}, run.plot_path("roc"))
            plot_yaw_bins({"AUC": {"0-15": 0.9, "15-30": 0.85, "30-45": None, "45+": None}},
                          run.plot_path("yaw_bins"), "AUC")
    return path


@pytest.fixture(scope="module")
def report(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("report")
    crops, heat = _lfw_crops(lfw_dir, 7)
    store = write_hand_store(tmp / "store", IMG, crops, heat)
    run = _write_run(tmp / "run", {"extractor": "template", "img_size": IMG, "backbone": "resnet18",
                                   "use_heatmaps": True, "epochs": 1}, plots=True)
    (run / "eval.json").write_text('{"verification": {"auc": 0.87, "best_accuracy": 0.8}}')
    ae = _write_run(tmp / "ae", {"extractor": "template", "code_size": 32}, plots=True)
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
    assert {"pose_histogram.png", "aligned_crops.png", "training_curves.png", "roc.png", "yaw_bins.png"} <= names
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


def test_json_results_become_tables() -> None:
    from facerec.report.builder import json_blocks

    data = {
        "split": "held-out", "count": {"0-15": 9, "all": 12}, "nme": {"model": {"0-15": 0.1, "all": 0.2},
                                                                        "input": {"0-15": 0.3, "all": None}},
        "rows": {"train": 30, "holdout": 10}, "identities": {"train": 6, "holdout": 2},
        "ten_fold": {"mean": 0.8, "fold_accuracies": [0.7, 0.9]}, "plots": ["a.png"],
    }
    tables = {t.caption: t for t in json_blocks(data, "eval.json")}
    assert tables["eval.json"].rows == [["split", "held-out", "", ""]]
    assert tables["eval.json: nme"].headers == ["", "0-15", "all"]
    assert tables["eval.json: nme"].rows == [["model", "0.1000", "0.2000"], ["input", "0.3000", "—"]]
    assert tables["eval.json: rows, identities"].rows == [["rows", "30", "10"], ["identities", "6", "2"]]
    assert tables["eval.json: count"].rows == [["count", "9", "12"]]
    assert tables["eval.json: ten_fold: fold_accuracies"].rows == [["fold_accuracies", "0.7000", "0.9000"]]
    assert not any("plots" in c for c in tables)


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
