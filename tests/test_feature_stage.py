"""The features stage: face mask, per-row rules, and the whole stage on real LFW images through the real
ingest and landmarks stages (shapes, heatmap peaks, no-face rows, resume, rerun, file:// URLs, layout)."""

from __future__ import annotations

import dataclasses
import io
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from facerec.errors import ConfigError, SchemaMismatchError, StageNotReadyError, StoreError
from facerec.geometry.alignment import center_crop, template_for
from facerec.pipeline.decode import decode_rgb
from facerec.geometry.face_mask import face_mask
from facerec.pipeline.feature_stage import FeaturesConfig, ShardJob, _row_features, compute_shard, run_features
from facerec.geometry.heatmaps import dequantize, subpixel_peak
from facerec.geometry.landmark_sets import DLIB_68, MEDIAPIPE_478
from facerec.schemas import FEATURE_INDEX, check_table_schema
from facerec.schemas import zarr_layout as zl
from facerec.store.layout import StoreLayout

from conftest import make_image_folder

SHARD_SIZE = 24
K = 3            # canonical k of the shared store (8 images per identity: the 3 least vs 3 most posed)


# ------------------------------------------------------------------------------------------ face mask
def test_face_mask_fills_the_convex_hull():
    pts = np.array([[10, 10], [30, 10], [30, 40], [10, 40], [20, 25]], np.float32)   # a rectangle + inner point
    m = face_mask(pts, 50)
    assert m.shape == (1, 50, 50) and m.dtype == np.uint8
    assert m[0, 11:40, 11:30].all() and m[0, 25, 20] == 1
    assert not m[0, :9].any() and not m[0, :, 32:].any() and not m[0, 42:].any()
    assert set(np.unique(m)) == {0, 1}


def test_face_mask_sub_pixel_and_degenerate_points():
    tri = np.array([[5.5, 5.5], [44.5, 5.5], [5.5, 44.5], [np.nan, 3.0]])
    m = face_mask(tri, 50)[0]
    assert m[10, 10] == 1 and m[40, 40] == 0 and m[6, 43] == 1      # NaN point ignored, the hull kept
    assert not face_mask(np.array([[1.0, 1.0], [5.0, 5.0]]), 20).any()
    with pytest.raises(ConfigError, match=r"\[P, 2\]"):
        face_mask(np.zeros((5, 3)), 20)


# ------------------------------------------------------------------------------------------ one row
def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _layout(size: int = 64, dtype: str = "uint8") -> zl.FeatureLayout:
    return zl.FeatureLayout(extractor="dlib", img_size=size, num_points=68, num_rows=8, shard_size=8,
                            chunk_rows=4, sigma=2.0, heatmap_dtype=dtype)


def test_row_rules_for_each_status():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, size=(120, 90, 3), dtype=np.uint8)
    sample = {"status": "ok", "image": _jpeg(rgb)}
    five = template_for(112) * 0.8 + [5, 10]
    points = np.repeat(five.mean(axis=0, keepdims=True), 68, axis=0)
    for g, members in enumerate(DLIB_68.groups[:5]):
        points[list(members)] = five[g]
    points[8] = five[3:].mean(axis=0) + [0, 15]                         # chin below the mouth
    lm_ok = {"status": "ok", "detected": True, "points": points.reshape(-1).tolist()}
    layout = _layout()

    status, arrays = _row_features(sample, lm_ok, DLIB_68, layout)
    assert status == "ok"
    assert arrays[zl.IMAGE].shape == (3, 64, 64) and arrays[zl.LANDMARKS].shape == (68, 2)
    np.testing.assert_allclose(DLIB_68.five_points(arrays[zl.LANDMARKS]), template_for(64), atol=1e-3)
    assert arrays[zl.HEATMAPS].shape == (6, 64, 64) and arrays[zl.HEATMAPS].dtype == np.uint8
    assert arrays[zl.MASK].shape == (1, 64, 64) and arrays[zl.MASK].any()

    assert _row_features({"status": "corrupt", "image": b"x"}, None, DLIB_68, layout) == ("corrupt", None)
    status, arrays = _row_features(sample, {"status": "no_face", "detected": False, "points": None}, DLIB_68, layout)
    assert status == "no_face" and set(arrays) == {zl.IMAGE}
    np.testing.assert_array_equal(arrays[zl.IMAGE], center_crop(decode_rgb(sample["image"]), 64))
    collapsed = {"status": "ok", "detected": True, "points": [7.0] * 136}
    status, arrays = _row_features(sample, collapsed, DLIB_68, layout)
    assert status == "degenerate_landmarks" and set(arrays) == {zl.IMAGE}


def test_config_is_checked():
    for bad, match in [({"heatmap_dtype": "int8"}, "uint8"), ({"compressor": "gzip"}, "zstd"),
                       ({"extractor": "openpose"}, "mediapipe"), ({"sigma": -1.0}, "sigma")]:
        with pytest.raises(ConfigError, match=match):
            FeaturesConfig(**{"store": "x", "extractor": "dlib", **bad}).validate()
    assert FeaturesConfig(store="x", extractor="dlib", img_size=224).resolved_sigma == 4.0


def test_features_need_finished_landmarks(tmp_path):
    with pytest.raises(StageNotReadyError, match="facerec landmarks --store"):
        run_features(FeaturesConfig(store=str(tmp_path), extractor="mediapipe"))


# ------------------------------------------------------------------------------------------ the real store
_BUILT: dict[str, Path] = {}


def build_lfw_store(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """64 real LFW faces (8 identities x 8) + one face-less picture + one corrupt file, through every
    stage (ingest, mediapipe landmarks, features 112, canonical k=3). Built once per test session."""
    if "store" not in _BUILT:
        from facerec.pipeline.build import build_store

        root = tmp_path_factory.mktemp("feature_store")
        images = make_image_folder(root / "images", lfw_dir, 8, 8, min_images=8)
        (images / "zz_no_face").mkdir()
        ramp = np.tile(np.linspace(0, 255, 200).astype(np.uint8), (160, 1))
        Image.fromarray(np.stack([ramp, ramp[::-1], 255 - ramp], axis=-1)).save(images / "zz_no_face" / "ramp.jpg")
        (images / "zz_corrupt").mkdir()
        (images / "zz_corrupt" / "broken.jpg").write_bytes(b"not a jpeg at all")
        results = build_store(str(images), str(root / "store"), shard_size=SHARD_SIZE, k=K)
        assert [r.stage for r in results] == ["ingest", "landmarks", "features", "canonical"]
        _BUILT.update(store=root / "store", images=images)
    return _BUILT["store"], _BUILT["images"]


@pytest.fixture(scope="module")
def lfw_store(lfw_dir, tmp_path_factory) -> Path:
    return build_lfw_store(lfw_dir, tmp_path_factory)[0]


def _open(store: Path, size: int = 112):
    import zarr

    return zarr.open_group(str(store / "features" / f"mediapipe-{size}.zarr"), mode="r")


def _index(store: Path, size: int = 112) -> pa.Table:
    files = sorted((store / "features" / f"mediapipe-{size}.index").glob("shard-*.parquet"))
    parts = [pq.read_table(f) for f in files]
    for f, t in zip(files, parts):
        check_table_schema(t.schema, FEATURE_INDEX, str(f))
    return pa.concat_tables(parts).sort_by("row")


@pytest.mark.slow
def test_arrays_and_index_cover_every_sample(lfw_store):
    g, index = _open(lfw_store), _index(lfw_store)
    n = 66
    assert index.num_rows == n and index.column("row").to_pylist() == list(range(n))
    assert g[zl.IMAGE].shape == (n, 3, 112, 112) and g[zl.IMAGE].dtype == np.uint8
    assert g[zl.LANDMARKS].shape == (n, 478, 2) and g[zl.LANDMARKS].dtype == np.float32
    assert g[zl.HEATMAPS].shape == (n, 6, 112, 112) and g[zl.HEATMAPS].dtype == np.uint8
    assert g[zl.MASK].shape == (n, 1, 112, 112) and g[zl.MASK].dtype == np.uint8
    assert g[zl.VALID].shape == (n,) and g[zl.VALID].dtype == bool
    valid = g[zl.VALID][:]
    np.testing.assert_array_equal(valid, index.column("valid").to_numpy())
    assert valid.sum() == 64
    samples = pa.concat_tables(pq.read_table(f) for f in sorted((lfw_store / "samples").glob("shard-*.parquet")))
    by_id = {r["sample_id"]: r["shard"] * SHARD_SIZE + r["position"] for r in samples.to_pylist()}
    assert {r["sample_id"]: r["row"] for r in index.to_pylist()} == by_id
    manifest = StoreLayout.read_manifest(StoreLayout.at(str(lfw_store)).features_index("mediapipe", 112))
    assert manifest["counts"]["rows_in"] == n and manifest["counts"]["ok"] == 64
    assert manifest["layout"]["chunk_rows"] == SHARD_SIZE and manifest["layout"]["sigma"] == 2.0


@pytest.mark.slow
def test_heatmaps_peak_on_the_aligned_group_points(lfw_store):
    g, valid = _open(lfw_store), _open(lfw_store)[zl.VALID][:]
    rows = np.flatnonzero(valid)
    points = g[zl.LANDMARKS].get_orthogonal_selection((rows, slice(None), slice(None)))
    groups = MEDIAPIPE_478.group_points(points)                                  # [n, 6, 2]
    peaks = subpixel_peak(dequantize(g[zl.HEATMAPS].get_orthogonal_selection((rows,))))
    inside = ((groups > 1) & (groups < 110)).all(axis=-1)
    assert inside[:, :5].all()                       # eyes, nose, mouth corners: always in the crop
    assert (groups[:, 5, 1] > 95).all()              # the chin sits at (or below) the crop's bottom edge
    assert np.abs(peaks[inside] - groups[inside]).max() < 0.1
    below = ~inside[:, 5]                            # a chin outside the crop leaves a truncated tail
    assert (dequantize(g[zl.HEATMAPS].get_orthogonal_selection((rows[below], [5]))).max(axis=(1, 2, 3)) < 1).all()
    # The aligned eyes sit on the template (the 5-point fit), and the mask covers the face centre.
    np.testing.assert_allclose(np.median(groups[:, :2], axis=0), template_for(112)[:2], atol=2.5)
    masks = g[zl.MASK].get_orthogonal_selection((rows,))[:, 0]
    nose = np.round(groups[:, 2]).astype(int)
    assert masks[np.arange(len(rows)), nose[:, 1], nose[:, 0]].all()
    assert not masks[:, 0, 0].any() and 0.3 < masks.mean() < 0.9


@pytest.mark.slow
def test_face_less_and_rejected_rows(lfw_store):
    g, index = _open(lfw_store), _index(lfw_store).to_pylist()
    by_status = {r["status"]: r for r in index if r["status"] != "ok"}
    assert set(by_status) == {"no_face", "corrupt"}
    for status, r in by_status.items():
        row = r["row"]
        assert not r["valid"] and r["identity"] == f"zz_{'no_face' if status == 'no_face' else 'corrupt'}"
        assert not g[zl.HEATMAPS][row].any() and not g[zl.MASK][row].any() and not g[zl.LANDMARKS][row].any()
    face_less = g[zl.IMAGE][by_status["no_face"]["row"]]
    assert face_less.std() > 10                                              # the centre crop is kept
    assert not g[zl.IMAGE][by_status["corrupt"]["row"]].any()


@pytest.mark.slow
def test_rerun_is_a_no_op_and_other_settings_are_refused(lfw_store):
    config = FeaturesConfig(store=str(lfw_store), extractor="mediapipe")
    result = run_features(config)
    assert result.skipped_stage and result.rows_in == 66 and result.ok == 64
    with pytest.raises(StoreError, match="--overwrite"):
        run_features(dataclasses.replace(config, sigma=3.0))


@pytest.mark.slow
def test_resume_recomputes_only_the_lost_shard(lfw_store):
    store = StoreLayout.at(str(lfw_store))
    index_dir = Path(store.features_index("mediapipe", 112).path)
    before = {name: _open(lfw_store)[name][:] for name in zl.ARRAY_NAMES}
    index_before = _index(lfw_store)
    # An interrupted run: no manifest, shard 1's index lost and its region half written.
    (index_dir / "_manifest.json").unlink()
    (index_dir / "shard-00001.parquet").unlink()
    import zarr

    writable = zarr.open_group(str(lfw_store / "features" / "mediapipe-112.zarr"), mode="r+")
    writable[zl.IMAGE][SHARD_SIZE : 2 * SHARD_SIZE] = 0
    writable[zl.HEATMAPS][SHARD_SIZE : SHARD_SIZE + 5] = 7
    result = run_features(FeaturesConfig(store=str(lfw_store), extractor="mediapipe"))
    assert (result.shards_done, result.shards_skipped) == (1, 2)
    assert result.rows_in == 66 and result.ok == 64 and StoreLayout.is_finished(store.features_index("mediapipe", 112))
    for name, value in before.items():
        np.testing.assert_array_equal(_open(lfw_store)[name][:], value)
    assert _index(lfw_store).equals(index_before)


@pytest.mark.slow
def test_a_file_url_store_and_other_storage_options(lfw_store):
    from facerec.pipeline.canonical import CanonicalConfig, read_identities, run_canonical

    url = f"file://{lfw_store}"
    result = run_features(FeaturesConfig(store=url, extractor="mediapipe", img_size=64, heatmap_dtype="float16",
                                         compressor="lz4"))
    assert result.rows_in == 66 and result.ok == 64 and not result.skipped_stage
    g = _open(lfw_store, 64)
    assert g[zl.HEATMAPS].dtype == np.float16 and g[zl.IMAGE].shape == (66, 3, 64, 64)
    rows = np.flatnonzero(g[zl.VALID][:])
    groups = MEDIAPIPE_478.group_points(g[zl.LANDMARKS].get_orthogonal_selection((rows, slice(None), slice(None))))
    np.testing.assert_allclose(np.median(groups[:, :2], axis=0), template_for(64)[:2], atol=1.5)
    peaks = subpixel_peak(g[zl.HEATMAPS].get_orthogonal_selection((rows,)))
    inside = ((groups > 1) & (groups < 62)).all(axis=-1)
    assert inside[:, :5].all()
    assert np.abs(peaks[inside] - groups[inside]).max() < 0.05
    canon = run_canonical(CanonicalConfig(store=url, extractor="mediapipe", img_size=64, k=K))
    assert canon.rows_in == 10 and canon.ok == 8
    assert read_identities(url, "mediapipe", 64).num_rows == 10


@pytest.mark.slow
def test_a_store_of_another_layout_version_is_refused(lfw_store):
    import zarr

    config = FeaturesConfig(store=str(lfw_store), extractor="mediapipe", img_size=48)
    run_features(config)
    group = zarr.open_group(str(lfw_store / "features" / "mediapipe-48.zarr"), mode="r+")
    group.attrs[zl.ATTR_LAYOUT_VERSION] = 99
    with pytest.raises(SchemaMismatchError, match="layout version 99"):
        run_features(config)
    result = run_features(dataclasses.replace(config, overwrite=True))
    assert result.shards_done == 3 and result.ok == 64


@pytest.mark.slow
def test_shards_are_written_chunk_by_chunk(lfw_store, tmp_path):
    """compute_shard with chunks smaller than the shard writes each chunk-sized block in place."""
    from facerec.pipeline.feature_stage import plan_layout
    from facerec.store.feature_arrays import create_feature_group

    store = StoreLayout.at(str(lfw_store))
    layout = dataclasses.replace(plan_layout(FeaturesConfig(store=str(lfw_store), extractor="mediapipe", img_size=40), store),
                                 chunk_rows=8)
    zloc = store.features_zarr("mediapipe", 40)
    create_feature_group(zloc, layout, overwrite=True)
    try:
        summary = compute_shard(ShardJob(str(lfw_store), layout), 1)
        assert summary["rows_in"] == SHARD_SIZE
        import zarr

        g = zarr.open_group(zloc.path, mode="r")
        assert g[zl.IMAGE].chunks == (8, 3, 40, 40)
        image = g[zl.IMAGE][SHARD_SIZE : 2 * SHARD_SIZE]
        assert image.reshape(SHARD_SIZE, -1).any(axis=1).sum() >= SHARD_SIZE - 2     # every block written
        assert not g[zl.IMAGE][:SHARD_SIZE].any()                                   # other shards untouched
    finally:
        shutil.rmtree(zloc.path)
        shutil.rmtree(store.features_index("mediapipe", 40).path, ignore_errors=True)


@pytest.mark.slow
def test_build_and_cli_reuse_the_finished_store(lfw_dir, tmp_path_factory, lfw_store):
    from typer.testing import CliRunner

    from facerec.cli import app

    _, images = build_lfw_store(lfw_dir, tmp_path_factory)
    out = CliRunner().invoke(app, ["build", "--data-root", str(images), "--store", str(lfw_store),
                                   "--shard-size", str(SHARD_SIZE), "--k", str(K)])
    assert out.exit_code == 0, out.output
    assert out.output.count("already finished") == 4
    out = CliRunner().invoke(app, ["features", "--store", str(lfw_store), "--extractor", "mediapipe"])
    assert out.exit_code == 0 and "features: already finished" in out.output
