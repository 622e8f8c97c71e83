"""dlib embeddings in a pool of worker processes (``--workers``): the same keys, vectors and alignment
paths as in one process, on real LFW images; a bad path is a clear error from either path."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

from facerec.errors import SourceError


def _six_images(lfw_dir: Path) -> tuple[Path, list[str]]:
    from conftest import lfw_identities

    images_dir = lfw_dir / "lfw-deepfunneled"
    rels = [str(p.relative_to(images_dir)) for _, paths in lfw_identities(lfw_dir, 3)[:2] for p in paths[:3]]
    return images_dir, rels


def _dlib_factory():
    from facerec.evaluation.dlib_embedder import DlibEmbedder
    from facerec.evaluation.lfw import LFW_MEDIAN_FACE_BOX

    return partial(DlibEmbedder, fallback_box=LFW_MEDIAN_FACE_BOX, cnn_fallback=True)


def _no_pool(*args, **kwargs):
    raise AssertionError("workers=1 must not start a pool")


def test_two_workers_give_what_one_process_gives(lfw_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from facerec.evaluation import embed_workers
    from facerec.evaluation.lfw import EmbeddingCache, embed_images_one_by_one

    images_dir, rels = _six_images(lfw_dir)
    caches = {}
    for workers in (1, 2):
        cache = caches[workers] = EmbeddingCache(tmp_path / f"w{workers}.npz")
        with monkeypatch.context() as m:
            if workers == 1:     # one worker embeds here: no pool started
                m.setattr(embed_workers, "ProcessPoolExecutor", _no_pool)
            embed_images_one_by_one(images_dir, rels, cache, _dlib_factory(), workers=workers, save_every=4)
    one, two = caches[1], caches[2]
    assert sorted(one.vectors) == sorted(two.vectors) == sorted(rels)
    assert all(np.array_equal(one.vectors[k], two.vectors[k]) for k in rels)
    assert one.how == two.how and set(one.how.values()) <= {"detected", "multiple_faces", "cnn_detected"}
    assert all(v.shape == (128,) and 1.0 < np.linalg.norm(v) < 2.0 for v in two.vectors.values())
    # what was saved is what a resumed run reads back
    again = EmbeddingCache(tmp_path / "w2.npz")
    assert again.how == two.how and all(np.array_equal(again.vectors[k], two.vectors[k]) for k in rels)


@pytest.mark.parametrize("workers", [1, 2])
def test_an_unreadable_image_is_a_source_error(lfw_dir: Path, tmp_path: Path, workers: int) -> None:
    """The error names the file, from the parent process as from a worker; what came before is saved."""
    from facerec.evaluation.lfw import EmbeddingCache, embed_images_one_by_one

    images_dir, rels = _six_images(lfw_dir)
    cache = EmbeddingCache(tmp_path / "c.npz")
    with pytest.raises(SourceError, match=r"cannot read benchmark image .*Nobody/Nobody_0001\.jpg"):
        embed_images_one_by_one(images_dir, rels[:2] + ["Nobody/Nobody_0001.jpg"], cache, _dlib_factory(),
                                workers=workers, save_every=1)
    assert sorted(EmbeddingCache(tmp_path / "c.npz").vectors) == sorted(rels[:2])


def test_a_file_that_is_not_an_image_is_a_source_error_from_a_worker(tmp_path: Path) -> None:
    """decode's ImageRejected (which would not survive pickling) becomes a SourceError naming the file."""
    from facerec.evaluation.embed_workers import embedded_images

    (tmp_path / "a").mkdir()
    for name in ("x.jpg", "y.jpg"):
        (tmp_path / "a" / name).write_bytes(b"not a jpeg")
    with embedded_images(tmp_path, ["a/x.jpg", "a/y.jpg"], _dlib_factory(), workers=2) as results:
        with pytest.raises(SourceError, match=r"cannot read benchmark image .*a/x\.jpg"):
            next(results)


def test_an_exception_that_cannot_be_unpickled_reaches_the_parent_as_a_facerec_error() -> None:
    from facerec.errors import FacerecError
    from facerec.evaluation.embed_workers import _picklable
    from facerec.pipeline.decode import ImageRejected

    plain = SourceError("gone")
    assert _picklable(plain) is plain
    odd = _picklable(ImageRejected("decode_failed", "cannot identify image"))
    assert type(odd) is FacerecError and "ImageRejected in an embedding worker: cannot identify image" in str(odd)


def test_a_worker_that_dies_is_an_error_not_a_hang(tmp_path: Path) -> None:
    import os

    from facerec.errors import FacerecError
    from facerec.evaluation.embed_workers import embedded_images

    die = partial(os._exit, 3)           # the "embedder factory" kills its worker process
    with embedded_images(tmp_path, ["a.jpg", "b.jpg"], die, workers=2) as results:
        with pytest.raises(FacerecError, match="an embedding worker process died"):
            list(results)


def test_workers_must_be_positive(tmp_path: Path) -> None:
    from facerec.errors import ConfigError
    from facerec.evaluation.embed_workers import embedded_images

    with pytest.raises(ConfigError, match="at least 1"):
        with embedded_images(tmp_path, ["a.jpg"], _dlib_factory(), workers=0):
            pass


def test_the_cli_takes_workers_and_refuses_it_with_a_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from facerec.cli import app

    runner = CliRunner()
    for command in ("eval-pairs", "eval-lfw"):
        help_text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
        assert "--workers" in help_text and "own dlib models" in help_text, help_text
    result = runner.invoke(app, ["eval-pairs", "--benchmark", "lfw", "--run", str(tmp_path), "--workers", "2"])
    assert result.exit_code != 0
    assert "--workers 2 applies to --embedder dlib" in repr(result.exception) + result.output
    result = runner.invoke(app, ["eval-pairs", "--benchmark", "lfw", "--embedder", "dlib", "--workers", "0"])
    assert result.exit_code == 2 and "greater than or equal to 1" in result.output      # typer's min=1


def test_yaw_from_is_checked(tmp_path: Path) -> None:
    from facerec.commands.eval_pairs import check_choice
    from facerec.errors import ConfigError

    assert check_choice("eval-pairs", None, "dlib", 1) == "mediapipe"               # the default
    assert check_choice("eval-pairs", None, "dlib", 1, "none") is None
    with pytest.raises(ConfigError, match="unknown --yaw-from 'dlib'"):
        check_choice("eval-pairs", None, "dlib", 1, "dlib")
    assert check_choice("eval-pairs", tmp_path, None, 1, "none") is None           # a run may opt out too
