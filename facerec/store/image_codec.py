"""An image codec for the aligned crops: a Zarr v3 array-to-bytes codec over imagecodecs.

Pixels barely compress losslessly (lz4 keeps 37 KB of the 37.6 KB of a 112 px crop), which is what
makes a store 4-5x its source JPEGs. ``CropImageCodec`` stores an image chunk ``[C, 3, S, S]`` as ONE
image of ``C`` crops stacked vertically in JPEG, WebP or JPEG XL, each crop's rows padded (edge rows
repeated) to a multiple of 16 (``BLOCK``): every crop then covers whole JPEG blocks and whole 4:2:0
macroblocks, so no crop bleeds into its neighbour and the stacked chunk codes each crop as it would
alone, in one encoder call per chunk. At S = 112 there is no padding (112 = 7 x 16).

Codec names in a feature layout (``FeatureLayout.crop_codec``):
- ``lossless``: no image codec; the crop goes through the layout's general compressor (lz4 ...).
- ``jpeg``: libjpeg-turbo at ``crop_quality`` (0-100), 4:4:4 chroma (no subsampling).
- ``webp``: libwebp lossy at ``crop_quality`` (0-100; 101 or more: lossless WebP).
- ``jxl``: libjxl at ``crop_quality`` (0-100, libjxl's quality scale; 100 is lossless), effort 3.
Measured trade-offs (bytes per face, decode rate, accuracy): docs/feature_store.md and the README.

The codec is registered with Zarr under ``facerec.crop_image`` when this module is imported
(``register``); every reader of facerec opens stores through ``facerec.store.feature_arrays``, which
imports it. Other Zarr readers need ``import facerec.store.image_codec`` first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration

from facerec.errors import ConfigError, choice_error

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

CODEC_NAME = "facerec.crop_image"
LOSSLESS = "lossless"
IMAGE_FORMATS = ("jpeg", "webp", "jxl")
CROP_CODECS = (LOSSLESS, *IMAGE_FORMATS)
JXL_EFFORT = 3        # libjxl speed/size knob: 3 encodes a 112 px crop in well under a millisecond
BLOCK = 16            # crop rows are padded to a multiple of this: whole macroblocks per crop


def _encoder(fmt: str, quality: int):
    import imagecodecs

    if fmt == "jpeg":
        return lambda img: imagecodecs.jpeg8_encode(img, level=quality, subsampling="444")
    if fmt == "webp":
        return lambda img: imagecodecs.webp_encode(img, level=min(quality, 100), lossless=quality > 100)
    if fmt == "jxl":
        return lambda img: imagecodecs.jpegxl_encode(img, level=quality, effort=JXL_EFFORT, lossless=quality >= 100)
    raise choice_error("crop image format", fmt, IMAGE_FORMATS)


def _decoder(fmt: str):
    import imagecodecs

    return {"jpeg": imagecodecs.jpeg8_decode, "webp": imagecodecs.webp_decode, "jxl": imagecodecs.jpegxl_decode}[fmt]


def padded_rows(h: int) -> int:
    return -(-h // BLOCK) * BLOCK


def chunk_to_image(chunk: np.ndarray) -> np.ndarray:
    """[C, 3, S, S] uint8 -> [C * Sp, S, 3]: the crops stacked top to bottom, channels last, each padded
    to Sp = ``padded_rows(S)`` rows by repeating its last row."""
    c, ch, h, w = chunk.shape
    hp = padded_rows(h)
    image = np.empty((c, hp, w, ch), dtype=np.uint8)
    image[:, :h] = chunk.transpose(0, 2, 3, 1)
    image[:, h:] = image[:, h - 1 : h]
    return image.reshape(c * hp, w, ch)


def image_to_chunk(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of ``chunk_to_image``, as a (strided) view: [C * Sp, S, 3] -> [C, 3, S, S]."""
    c, ch, h, w = shape
    return image.reshape(c, padded_rows(h), w, ch)[:, :h].transpose(0, 3, 1, 2)


@dataclass(frozen=True)
class CropImageCodec(ArrayBytesCodec):
    """uint8 [C, 3, S, S] chunks <-> one JPEG / WebP / JPEG XL image of the stacked crops."""

    is_fixed_size = False
    format: str = "jpeg"
    quality: int = 95

    def __post_init__(self) -> None:
        check_crop_codec(self.format, self.quality)

    @classmethod
    def from_dict(cls, data: dict) -> "CropImageCodec":
        _, config = parse_named_configuration(data, CODEC_NAME, require_configuration=True)
        return cls(format=str(config["format"]), quality=int(config["quality"]))

    def to_dict(self) -> dict:
        return {"name": CODEC_NAME, "configuration": {"format": self.format, "quality": self.quality}}

    def validate(self, *, shape, dtype, chunk_grid) -> None:
        if np.dtype(dtype.to_native_dtype()) != np.uint8 or len(shape) != 4 or shape[1] != 3:
            raise ConfigError(f"{CODEC_NAME} stores uint8 [N, 3, S, S] crops, not {dtype} {tuple(shape)}")

    def decode_bytes(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        """Chunk bytes -> [C, 3, S, S] uint8 (a strided view of the decoded image)."""
        image = _decoder(self.format)(data)
        if image.shape != (shape[0] * padded_rows(shape[2]), shape[3], shape[1]):
            raise ValueError(f"{CODEC_NAME}: decoded image {image.shape} does not fit chunk {shape}")
        return image_to_chunk(image, shape)

    def encode_array(self, chunk: np.ndarray) -> bytes:
        return bytes(_encoder(self.format, self.quality)(chunk_to_image(chunk)))

    async def _decode_single(self, chunk_bytes: "Buffer", chunk_spec: "ArraySpec") -> "NDBuffer":
        array = self.decode_bytes(chunk_bytes.to_bytes(), tuple(chunk_spec.shape))
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(np.ascontiguousarray(array))

    async def _encode_single(self, chunk_array: "NDBuffer", chunk_spec: "ArraySpec") -> "Buffer | None":
        data = self.encode_array(np.asarray(chunk_array.as_ndarray_like(), dtype=np.uint8))
        return chunk_spec.prototype.buffer.from_bytes(data)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: "ArraySpec") -> int:
        raise NotImplementedError(f"{CODEC_NAME} output size depends on the pixels")


def check_crop_codec(name: str, quality: int) -> None:
    """Refuse an unknown crop codec or a quality outside its range, naming what is allowed."""
    if name not in CROP_CODECS:
        raise choice_error("crop codec", name, CROP_CODECS)
    top = 200 if name == "webp" else 100
    if name != LOSSLESS and not 0 <= quality <= top:
        raise ConfigError(f"crop quality for {name} must be in 0..{top}, got {quality}")


def crop_codecs_for(name: str, quality: int) -> "list | None":
    """The Zarr ``serializer`` for the image array: None (default bytes) for ``lossless``."""
    check_crop_codec(name, quality)
    return None if name == LOSSLESS else CropImageCodec(format=name, quality=quality)


def register() -> None:
    """Make ``facerec.crop_image`` known to Zarr (idempotent)."""
    from zarr.registry import register_codec

    register_codec(CODEC_NAME, CropImageCodec)


register()
