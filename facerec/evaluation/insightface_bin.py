"""Insightface verification sets (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``, ...), read safely.

A ``.bin`` is a pickle of ``(bins, issame)``: ``bins`` a list of 2N encoded JPEG files of aligned
112x112 crops, each a numpy uint8 array (or plain bytes), ``issame`` a list of N bools, pair k being
images 2k and 2k+1. Unpickling runs whatever code a pickle names, so ``read_bin`` uses an unpickler
that admits only what these files hold: containers, bools, bytes, and numpy's array reconstruction
restricted to ``ndarray`` of dtype uint8. Any other global (``os.system``, ``builtins.eval``, another
dtype) is refused with ``UnsafeBinError`` before it is called, and the result's structure is checked.

Folds follow insightface's own evaluation (``sklearn.model_selection.KFold(10)`` without shuffling):
fold k holds the k-th contiguous tenth of the pairs. Image keys are ``"000123"`` (index into ``bins``).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerec.errors import SourceError
from facerec.evaluation.pairs import VerificationPair

NUM_FOLDS = 10
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class UnsafeBinError(SourceError):
    """A ``.bin`` names something a verification set never holds; it is not loaded."""


def _reconstruct(cls, shape, dtype_code):
    from numpy.core.multiarray import _reconstruct as numpy_reconstruct

    if cls is not np.ndarray:
        raise UnsafeBinError(f"array reconstruction of {cls!r} refused; only numpy.ndarray is allowed")
    return numpy_reconstruct(cls, shape, dtype_code)


def _dtype(code, align=False, copy=False):
    if code not in ("u1", "uint8", "|u1"):
        raise UnsafeBinError(f"numpy dtype {code!r} refused; a .bin holds only uint8 arrays of JPEG bytes")
    return np.dtype(code, align, copy)


class _BinUnpickler(pickle.Unpickler):
    def __init__(self, fh, where: str) -> None:
        super().__init__(fh)
        self.where = where

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise UnsafeBinError(f"{self.where}: refuses pickle global '{module}.{name}'; an insightface .bin holds "
                                 "only lists, bools, bytes and numpy uint8 arrays (is this file what it claims to be?)")
        if name == "_reconstruct":
            return _reconstruct
        return _dtype if name == "dtype" else np.ndarray


@dataclass(frozen=True)
class BinSet:
    """The decoded-to-bytes content of a ``.bin``: 2N encoded images and N same/different flags."""

    images: list[bytes]
    issame: list[bool]
    path: str

    def pairs(self) -> list[VerificationPair]:
        n = len(self.issame)
        return [VerificationPair(image_key(2 * k), image_key(2 * k + 1), bool(same), k * NUM_FOLDS // n)
                for k, same in enumerate(self.issame)]

    def image(self, key: str) -> bytes:
        return self.images[int(key)]


def image_key(index: int) -> str:
    return f"{index:06d}"


def _as_bytes(item, index: int, where: str) -> bytes:
    if isinstance(item, bytes | bytearray):
        return bytes(item)
    if isinstance(item, np.ndarray) and item.dtype == np.uint8:
        return item.tobytes()
    raise SourceError(f"{where}: image {index} is a {type(item).__name__}; expected bytes or a uint8 array")


def read_bin(path: Path | str) -> BinSet:
    """Load a ``.bin`` with the restricted unpickler and check its structure (see the module docstring)."""
    path = Path(path)
    where = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read insightface .bin {path}: {exc}") from exc
    try:
        obj = _BinUnpickler(io.BytesIO(data), where).load()
    except UnsafeBinError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged pickle fails in many ways, each one clear here
        raise SourceError(f"{where}: not a readable insightface .bin ({type(exc).__name__}: {exc}); "
                          "the file is truncated or damaged, download it again") from exc
    if not isinstance(obj, tuple | list) or len(obj) != 2:
        raise SourceError(f"{where}: expected a pickled (bins, issame) pair, found {type(obj).__name__}")
    bins, issame = obj
    if not isinstance(bins, list | tuple) or not isinstance(issame, list | tuple):
        raise SourceError(f"{where}: bins and issame must be lists, found {type(bins).__name__} and "
                          f"{type(issame).__name__}")
    if not all(isinstance(s, bool) for s in issame):
        raise SourceError(f"{where}: issame must hold only bools")
    if len(bins) != 2 * len(issame) or not issame:
        raise SourceError(f"{where}: {len(bins)} images for {len(issame)} pairs; expected two images per pair")
    return BinSet([_as_bytes(b, i, where) for i, b in enumerate(bins)], list(issame), where)


def write_bin(path: Path | str, images: Sequence[bytes], issame: Sequence[bool]) -> Path:
    """Write a ``.bin`` in insightface's layout (protocol 3, uint8 arrays of the encoded bytes)."""
    if len(images) != 2 * len(issame):
        raise SourceError(f"write_bin: {len(images)} images for {len(issame)} pairs; expected two per pair")
    bins = [np.frombuffer(b, dtype=np.uint8).reshape(1, -1).copy() for b in images]
    path = Path(path)
    with open(path, "wb") as fh:
        pickle.dump((bins, [bool(s) for s in issame]), fh, protocol=3)
    return path
