"""`facerec embed` and `facerec export`.

The run folders here hold a freshly initialised recogniser (seeded): what is tested is the path, not
what the model learnt. That embed gives the very embeddings of the training store for the same images,
with a trained model, is checked on the demo's run in tests/test_demo.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from facerec.errors import ConfigError
from test_inspect import write_hand_store

IMG = 32


def _write_run(path: Path, store: Path, *, use_heatmaps: bool, add_mask: bool) -> Path:
    """A run folder as `facerec train` leaves it: config.json and checkpoints/last.pt (seeded weights)."""
    from facerec.recognition.model import ModelSpec, build_recognizer, input_channels
    from facerec.training.runs import RunFolder
    from facerec.recognition.config import TrainConfig

    torch.manual_seed(0)
    cfg = TrainConfig(store=str(store), out=str(path), extractor="template", img_size=IMG, backbone="resnet18",
                      embedding_size=64, use_heatmaps=use_heatmaps, add_mask_channel=add_mask)
    spec = ModelSpec(backbone="resnet18", in_chans=input_channels(use_heatmaps=use_heatmaps, add_mask_channel=add_mask),
                     num_classes=3, img_size=IMG, embedding_size=64)
    model = build_recognizer(spec).eval()
    with torch.no_grad():   # BN running statistics away from their init, so eval-mode BN is not an identity
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    with RunFolder(path) as run:
        run.save_config(cfg)
        run.save_checkpoint({"model": model.state_dict(), "model_spec": spec.to_dict(), "loop": {"step": 0}})
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hand_store(tmp_path_factory.mktemp("embed") / "store", IMG)


def test_export_matches_pytorch_with_a_dynamic_batch(tmp_path: Path, store: Path) -> None:
    import onnx
    import onnxruntime as ort

    from facerec.cli import app
    from facerec.recognition.inference import load_run

    run = _write_run(tmp_path / "run", store, use_heatmaps=True, add_mask=True)
    onnx_path = tmp_path / "model.onnx"
    res = CliRunner().invoke(app, ["export", "--run", str(run), "--onnx", str(onnx_path)])
    assert res.exit_code == 0, res.output
    assert "max |diff|" in res.output

    proto = onnx.load(str(onnx_path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == "batch" and not batch_dim.HasField("dim_value")
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["facerec.model_spec"])["in_chans"] == 10

    model = load_run(run).model
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = torch.rand(5, 10, IMG, IMG) * 2 - 1        # a batch size the export never saw
    with torch.no_grad():
        ref = model(x).numpy()
    got = session.run(None, {"images": x.numpy()})[0]
    assert got.shape == (5, 64)
    assert np.abs(got - ref).max() <= 1e-4
    assert np.abs(ref).max() > 1e-2                # a real output, not zeros matching zeros


def test_export_refuses_an_old_opset(tmp_path: Path, store: Path) -> None:
    from facerec.recognition.export import export_onnx

    run = _write_run(tmp_path / "run", store, use_heatmaps=False, add_mask=False)
    with pytest.raises(ConfigError, match="opset must be >= 17"):
        export_onnx(run, tmp_path / "m.onnx", opset=13)


def _expected_embedding(image: Path, run: Path, store: Path) -> np.ndarray:
    """The oracle: landmarks row -> features row -> [RGB | 6 heatmaps | mask*255] -> embed_batch."""
    from facerec.recognition.inference import embed_batch, load_run
    from facerec.pipeline.extractors.base import get_extractor
    from facerec.pipeline.feature_stage import _row_features
    from facerec.geometry.landmark_sets import landmark_set
    from facerec.pipeline.landmark_stage import extract_landmarks_row
    from facerec.store.open_store import FeatureSet
    from facerec.store.transforms import GROUPS, ChannelLayout

    layout = FeatureSet.open(str(store), "template", IMG).layout
    sample = {"sample_id": "x", "shard": 0, "position": 0, "image": image.read_bytes(), "status": "ok", "error": None}
    lm = extract_landmarks_row(get_extractor("template"), landmark_set("template"), sample)
    status, arrays = _row_features(sample, lm, landmark_set("template"), layout)
    assert status == "ok"
    stacked = np.concatenate([arrays["image"], arrays["heatmaps"], (arrays["mask"] != 0).astype(np.uint8) * 255])
    model = load_run(run).model
    emb = embed_batch(model, torch.from_numpy(stacked[None]), ChannelLayout(6, GROUPS, "template", True),
                      torch.device("cpu"))
    return emb[0].numpy()


def test_embed_images_and_folders_through_the_training_path(tmp_path: Path, lfw_dir: Path, store: Path) -> None:
    from facerec.cli import app

    run = _write_run(tmp_path / "run", store, use_heatmaps=True, add_mask=True)
    folder = tmp_path / "faces"
    folder.mkdir()
    people = sorted((lfw_dir / "lfw-deepfunneled").glob("Ab*/*_0001.jpg"))[:3]
    for p in people[:2]:
        (folder / p.name).symlink_to(p)
    (folder / "notes.txt").write_text("not an image, and not listed: only image suffixes are taken from folders")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "emb.parquet"
    res = CliRunner().invoke(app, ["embed", "--run", str(run), str(folder), str(people[2]), str(broken), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "3 embedded" in res.output and "corrupt: 1" in res.output

    table = pq.read_table(out)
    rows = table.to_pylist()
    assert [Path(r["path"]).name for r in rows] == [people[0].name, people[1].name, people[2].name, "broken.jpg"]
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "corrupt"]
    assert [r["detected"] for r in rows] == [True, True, True, False]
    assert rows[3]["embedding"] is None and "not a readable image" in rows[3]["error"]
    meta = json.loads(table.schema.metadata[b"facerec.recognition.embed"])
    assert meta["run"] == str(run.resolve())
    for r, image in zip(rows[:3], [folder / people[0].name, folder / people[1].name, people[2]]):
        emb = np.asarray(r["embedding"], dtype=np.float32)
        assert emb.shape == (64,)
        assert abs(float(np.linalg.norm(emb)) - 1.0) < 1e-5
        np.testing.assert_allclose(emb, _expected_embedding(image, run, store), atol=1e-5)
    e = np.asarray([r["embedding"] for r in rows[:3]])
    assert np.abs(e[0] - e[1]).max() > 1e-3          # different faces, different embeddings


def test_embed_refuses_missing_inputs_and_other_outputs(tmp_path: Path) -> None:
    from facerec.recognition.embed import EmbedConfig, embed_images, list_images

    with pytest.raises(ConfigError, match="does not exist"):
        list_images([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images under"):
        list_images([tmp_path / "empty"])
    with pytest.raises(ConfigError, match="must be a .parquet file"):
        embed_images(EmbedConfig(run=tmp_path, inputs=(str(tmp_path),), out=tmp_path / "x.csv"))
