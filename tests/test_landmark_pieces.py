"""Landmark shards cut into pieces (more tasks than shards) give the same bytes as one task per shard."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from facerec.pipeline import landmark_pieces
from facerec.pipeline.ingest import IngestConfig, run_ingest
from facerec.pipeline.landmark_pieces import piece_rows, pieces_per_shard
from facerec.pipeline.landmark_stage import LandmarksConfig, run_landmarks

from store_compare import data_files, debris


def test_pieces_cover_a_shard_and_only_when_shards_are_few() -> None:
    assert [piece_rows(10, p, 3) for p in range(3)] == [(0, 3), (3, 6), (6, 10)]
    assert pieces_per_shard(num_shards=1, parallelism=2, shard_size=1024) == 16     # 400 dlib images: 1 shard
    assert pieces_per_shard(num_shards=13, parallelism=2, shard_size=1024) == 2     # all LFW: 26 tasks, 13 a core
    assert pieces_per_shard(num_shards=16, parallelism=2, shard_size=1024) == 1     # enough shards already
    assert pieces_per_shard(num_shards=1, parallelism=2, shard_size=8) == 1         # never under 16 rows


@pytest.mark.slow
def test_pieces_write_the_same_shards(lfw_small_folder: Path, tmp_path: Path, spark,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run_ingest(IngestConfig(source=str(lfw_small_folder), store=str(whole), shard_size=64, seed=1))
    shutil.copytree(whole, cut)
    monkeypatch.setattr(landmark_pieces, "MIN_PIECE_ROWS", 10_000)      # one task per shard
    run_landmarks(LandmarksConfig(store=str(whole), extractor="template"), spark)
    monkeypatch.setattr(landmark_pieces, "MIN_PIECE_ROWS", 4)           # 2 shards -> 8 pieces each
    result = run_landmarks(LandmarksConfig(store=str(cut), extractor="template"), spark)
    assert result.rows_in == 120 and result.shards_done == 2
    assert data_files(whole) == data_files(cut)
    assert not (cut / "landmarks" / "template" / "_pieces").exists() and debris(cut) == []
