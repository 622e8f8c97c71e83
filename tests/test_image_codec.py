"""The crop image codec: stores real LFW crops as JPEG / WebP / JPEG XL chunks that every reader opens."""

from __future__ import annotations

import numpy as np
import pytest

from facerec.errors import ConfigError
from facerec.schemas.zarr_layout import IMAGE
from facerec.store.dataset import FaceStoreDataset
from facerec.store.image_codec import CropImageCodec, check_crop_codec, chunk_to_image, image_to_chunk
from facerec.store.open_store import FeatureSet

from store_builder import build_feature_set


@pytest.mark.parametrize("codec", ["jpeg", "webp", "jxl"])
def test_a_store_with_an_image_codec_reads_back_close_to_its_pixels(codec, lfw_dir, tmp_path):
    zarr_path, truth = build_feature_set(tmp_path / codec, lfw_dir, num_identities=4, per_identity=4, crop_codec=codec, invalid_rows=(3,))
    fs = FeatureSet.open(str(zarr_path))
    assert fs.layout.crop_codec == codec and fs.reader(IMAGE).direct       # decoded here, not through zarr's loop
    ds = FaceStoreDataset(str(zarr_path), add_mask_channel=True)
    got = ds.read_rows(ds.rows)["image"].numpy()
    err = np.abs(got[:, :3].astype(int) - truth["images"])
    assert err.mean() < 2.5 and np.percentile(err, 99) < 16                 # quality 95: close, not exact
    assert np.array_equal(got[:, 3:9], truth["heatmaps"])                    # other arrays stay lossless
    via_zarr = np.asarray(fs.array(IMAGE)[:])
    assert np.array_equal(via_zarr, got[:, :3])                              # both read paths decode the same


def test_stacked_crops_code_like_single_crops(lfw_dir, tmp_path):
    """Whole JPEG blocks per crop: a crop decodes the same alone or stacked with its chunk neighbours."""
    zarr_path, truth = build_feature_set(tmp_path / "s", lfw_dir, num_identities=2, per_identity=4, invalid_rows=(3,))
    chunk = truth["images"][:4]
    codec = CropImageCodec(format="jpeg", quality=90)
    stacked = codec.decode_bytes(codec.encode_array(chunk), chunk.shape)
    alone = np.concatenate([codec.decode_bytes(codec.encode_array(chunk[i : i + 1]), (1, *chunk.shape[1:])) for i in range(4)])
    assert np.abs(stacked.astype(int) - alone).max() <= 1
    assert np.array_equal(image_to_chunk(chunk_to_image(chunk), chunk.shape), chunk)
    odd = chunk[:, :, :40, :40]                                      # 40 rows: padded to 48 per crop
    assert chunk_to_image(odd).shape == (4 * 48, 40, 3)
    back = codec.decode_bytes(codec.encode_array(np.ascontiguousarray(odd)), odd.shape)
    assert back.shape == odd.shape and np.abs(back.astype(int) - odd).mean() < 2.5


def test_bad_codec_settings_are_refused():
    with pytest.raises(ConfigError, match="crop codec"):
        check_crop_codec("png", 95)
    with pytest.raises(ConfigError, match="0..100"):
        check_crop_codec("jpeg", 120)
    with pytest.raises(ConfigError, match="0..100"):
        CropImageCodec(format="jxl", quality=-1)
