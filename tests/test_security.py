"""Secrets, pickles and paths: an HF token never reaches a log or a store, checkpoints refuse pickled
objects, and identity names taken from a dataset never steer where anything is written."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from facerec.errors import SourceError, TrainingError
from facerec.pipeline.ingest import IngestConfig, run_ingest
from facerec.pipeline.sources import open_source
from facerec.store.layout import StoreLayout

from conftest import REPO, make_image_folder
from store_compare import read_shards

TOKEN = "hf_facerecSecurityTestTokenDoNotLeak0123456789"


def _all_bytes(folder: Path) -> list[tuple[str, bytes]]:
    return [(p.relative_to(folder).as_posix(), p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()]


def test_hf_token_is_never_logged_or_written_to_the_store(lfw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture,
                                                          capfd: pytest.CaptureFixture) -> None:
    from typer.testing import CliRunner

    from facerec.cli import app

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.setenv(name, TOKEN)
    monkeypatch.setenv("FACEREC_VERBOSE", "1")
    source = make_image_folder(tmp_path / "src", lfw_dir, 3, 2)
    store = tmp_path / "store"
    with caplog.at_level(logging.DEBUG):
        result = CliRunner().invoke(app, ["ingest", "--store", str(store), "--source", str(source), "--shard-size", "4"])
        assert result.exit_code == 0, result.output
        # A hub id without network (offline mode): the refusal must not quote the token either.
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(SourceError) as refused:
            open_source("facerec-test/does-not-exist")
    assert StoreLayout.is_finished(StoreLayout.at(str(store)).samples)
    written = _all_bytes(store)
    assert written and not [name for name, data in written if TOKEN.encode() in data]
    manifest = json.loads((store / "samples" / "_manifest.json").read_text())
    assert not [key for key in _keys(manifest) if "token" in key.lower()]     # no token field at all
    captured = capfd.readouterr()
    for text in (result.output, caplog.text, captured.out, captured.err, str(refused.value)):
        assert TOKEN not in text


def test_checkpoints_refuse_pickled_objects(tmp_path: Path) -> None:
    from facerec.training.runs import RunFolder

    run = RunFolder(tmp_path / "run")
    marker = tmp_path / "code_ran"
    run.save_checkpoint({"model": {"w": torch.zeros(2)}, "loop": {"step": 1}})
    assert run.load_checkpoint()["loop"] == {"step": 1}
    # A checkpoint holding an object whose unpickling would run code (here: create a file).
    torch.save({"model": {"w": torch.zeros(2)}, "payload": _Payload(str(marker))}, run.checkpoint_path("last.pt"))
    with pytest.raises(TrainingError, match="cannot load checkpoint"):
        run.load_checkpoint()
    assert not marker.exists()


def _keys(obj) -> list[str]:
    if isinstance(obj, dict):
        return [k for k in obj] + [k2 for v in obj.values() for k2 in _keys(v)]
    if isinstance(obj, list):
        return [k for v in obj for k in _keys(v)]
    return []


class _Payload:
    """Unpickling this calls ``Path.touch``: what a malicious checkpoint would do with ``os.system``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_every_torch_load_in_facerec_is_weights_only() -> None:
    calls = []
    for path in sorted((REPO / "facerec").rglob("*.py")):
        text = path.read_text()
        for match in re.finditer(r"torch\.load\(", text):
            call = text[match.start(): text.find(")", match.end()) + 1]
            calls.append((path.relative_to(REPO).as_posix(), call))
    assert calls, "expected the checkpoint loader to call torch.load"
    assert [c for c in calls if "weights_only=True" not in c[1]] == []


def test_identity_names_from_a_dataset_never_escape_the_store(lfw_dir: Path, tmp_path: Path) -> None:
    """Names with ``..``, slashes, an absolute path or control characters are data, not paths."""
    hostile = ["../../escape", "a/b/../../../c", "/etc/facerec-test", "..", "name\twith\ttabs", "C:\\windows"]
    images = sorted((lfw_dir / "lfw-deepfunneled").glob("A*/*_0001.jpg"))[: len(hostile) * 2]
    rows = {"image": [{"bytes": p.read_bytes(), "path": f"{hostile[i % len(hostile)]}/{p.name}"} for i, p in enumerate(images)],
            "identity": [hostile[i % len(hostile)] for i in range(len(images))]}
    sandbox = tmp_path / "sandbox"
    source_dir = sandbox / "source"
    source_dir.mkdir(parents=True)
    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])), ("identity", pa.string())])
    pq.write_table(pa.table(rows, schema=schema), source_dir / "train-00000.parquet")
    store = sandbox / "deep" / "store"
    before = {p for p in tmp_path.rglob("*")}

    result = run_ingest(IngestConfig(source=str(source_dir), store=str(store), image_column="image",
                                     label_column="identity", shard_size=4))
    assert result.ok == len(images)
    created = {p for p in tmp_path.rglob("*")} - before
    outside = sorted(str(p) for p in created if store not in p.parents and p != store and p not in store.parents)
    assert outside == []
    assert not Path("/etc/facerec-test").exists()
    table = read_shards(store / "samples")
    assert sorted(set(table.column("identity").to_pylist())) == sorted(hostile)   # kept verbatim, as data
