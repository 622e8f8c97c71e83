"""ChunkReader: the direct chunk decoder returns exactly what Zarr returns, for every compressor."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from facerec.schemas.zarr_layout import ARRAY_NAMES, FeatureLayout
from facerec.store.chunk_reader import ChunkReader
from facerec.store.feature_arrays import COMPRESSORS, create_feature_group
from facerec.store.fs import resolve

from store_builder import build_feature_set


@pytest.mark.parametrize("compressor", COMPRESSORS)
def test_direct_reads_equal_zarr_reads(lfw_dir, tmp_path, compressor):
    heatmap_dtype = "float16" if compressor == "blosc-zstd" else "uint8"
    zarr_path, _ = build_feature_set(tmp_path, lfw_dir, num_identities=3, per_identity=4, compressor=compressor,
                                     chunk_rows=4, shard_size=8, heatmap_dtype=heatmap_dtype, invalid_rows=(1,))
    group = zarr.open_group(str(zarr_path), mode="r")
    rows = np.array([11, 0, 3, 3, 4, 5, 6, 7, 9, 2])                # shuffled, repeats, a whole chunk, the edge chunk
    for name in ARRAY_NAMES:
        reader = ChunkReader(group[name])
        assert reader.direct
        expected = np.asarray(group[name][:])[rows]
        got = reader.read_rows(rows)
        assert got.dtype == expected.dtype and np.array_equal(got, expected, equal_nan=True), name
        assert np.array_equal(reader.read_rows(np.arange(12)), np.asarray(group[name][:]), equal_nan=True)


def test_unwritten_chunks_read_as_the_fill_value_and_bad_rows_are_refused(tmp_path):
    layout = FeatureLayout(extractor="dlib", img_size=16, num_points=68, num_rows=10, shard_size=5, chunk_rows=5, sigma=1.0)
    group = create_feature_group(resolve(str(tmp_path / "f.zarr")), layout)
    reader = ChunkReader(group["image"])
    assert reader.direct and not reader.read_rows(np.array([0, 9])).any()
    with pytest.raises(IndexError, match="0..9"):
        reader.read_rows(np.array([10]))
