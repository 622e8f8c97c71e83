"""Decoding source bytes into RGB uint8, with a reason code for every image that cannot be used.

Ingest uses it to validate rows and read their size; the landmark stage to get pixels. Any PIL mode
is brought to RGB: grayscale is replicated, CMYK converted, alpha composited on black, 16-bit
integer images scaled down to 8 bits (not clipped).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from facerec.errors import FacerecError

MIN_SIDE = 32                 # below this no extractor finds a face; reject early with a reason
MAX_PIXELS = 80_000_000       # decompression-bomb guard; 6000x6000 (36 MP) passes

# Reason codes written to the tables' status column.
EMPTY = "empty"
CORRUPT = "corrupt"
TRUNCATED = "truncated"
TOO_SMALL = "too_small"
TOO_LARGE = "too_large"
UNSUPPORTED = "unsupported_mode"


class ImageRejected(FacerecError):
    """An image that cannot be used; ``reason`` is the status code recorded for its row."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    mode: str


def _open(data: bytes | None) -> Image.Image:
    if not data:
        raise ImageRejected(EMPTY, "image has zero bytes")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        # PIL's message names the BytesIO object's address: not part of the row (rows are deterministic)
        raise ImageRejected(CORRUPT, f"not a readable image: no decoder recognises its {len(data)} bytes") from exc
    except Image.DecompressionBombError as exc:
        raise ImageRejected(TOO_LARGE, str(exc)) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected(CORRUPT, f"cannot open image: {exc}") from exc
    w, h = img.size
    if min(w, h) < MIN_SIDE:
        raise ImageRejected(TOO_SMALL, f"image is {w}x{h}; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    if w * h > MAX_PIXELS:
        raise ImageRejected(TOO_LARGE, f"image is {w}x{h} ({w * h} pixels); at most {MAX_PIXELS} are read")
    return img


def _load(img: Image.Image) -> Image.Image:
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        reason = TRUNCATED if "truncated" in str(exc).lower() else CORRUPT
        raise ImageRejected(reason, f"cannot decode image: {exc}") from exc
    except Image.DecompressionBombError as exc:
        raise ImageRejected(TOO_LARGE, str(exc)) from exc
    return img


def probe_image(data: bytes | None) -> ImageInfo:
    """Fully decode once to prove the bytes are usable; returns format and size. Raises ImageRejected."""
    img = _load(_open(data))
    return ImageInfo(format=img.format or "unknown", width=img.size[0], height=img.size[1], mode=img.mode)


def to_rgb(img: Image.Image) -> np.ndarray:
    """Any PIL mode -> [H, W, 3] uint8."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.int64)
        top = 65535 if mode != "I" or arr.max() > 255 else 255
        arr = (arr.clip(0, top) * (255.0 / top) + 0.5).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=-1)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        arr = ((arr - lo) / (hi - lo or 1.0) * 255.0 + 0.5).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=-1)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return np.asarray(Image.alpha_composite(black, rgba).convert("RGB"))
    try:
        return np.asarray(img.convert("RGB"))
    except (ValueError, OSError) as exc:
        raise ImageRejected(UNSUPPORTED, f"cannot convert mode {mode} to RGB: {exc}") from exc


def decode_rgb(data: bytes | None) -> np.ndarray:
    """Encoded bytes -> [H, W, 3] uint8 RGB. Raises ImageRejected with a reason code."""
    return np.ascontiguousarray(to_rgb(_load(_open(data))))
