"""Benchmark images -> (embedding, how it was aligned), in this process or in a pool of worker processes.

Why a pool: dlib's CNN face detector, the fall-back for profiles, costs 0.4-4 s per CFP profile on one
core (by machine load), so CFP-FP (7,000 pairs) can take over an hour in one process. Workers are
started with the "spawn" method (dlib's models are C++ objects that cannot be pickled, and forking a
parent that holds threads is unsafe): each one builds its own embedder from ``make_embedder``, a
picklable factory (the class, or a ``functools.partial`` of it), and reads and decodes its images
itself, so only relative paths go out and (vector, how) pairs come back, in order
(``ProcessPoolExecutor.map``, chunks of one image). The executor rather than ``multiprocessing.Pool``:
when a worker dies (out of memory, a crash in C++, a script without a ``__main__`` guard) it fails at
once, where ``Pool`` starts replacements and waits forever. One worker (the default) runs in this
process and starts no pool. Either way an image is embedded by ``embed_file``, so both give the same
result.
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np

from facerec.errors import ConfigError, FacerecError, SourceError


class ImageEmbedder(Protocol):
    def embed(self, rgb: np.ndarray) -> tuple[np.ndarray, str]:
        """(vector, how the face was found and aligned) of one RGB uint8 image."""


EmbedderFactory = Callable[[], ImageEmbedder]


def embed_file(images_dir: Path, rel: str, embedder: ImageEmbedder) -> tuple[np.ndarray, str]:
    """Read, decode and embed ``images_dir/rel``; an unreadable or undecodable file is a SourceError."""
    from facerec.pipeline.decode import ImageRejected, decode_rgb

    path = images_dir / rel
    try:
        rgb = decode_rgb(path.read_bytes())
    except (OSError, ImageRejected) as exc:
        raise SourceError(f"cannot read benchmark image {path} (named by the pairs): {exc}; "
                          f"check the dataset folder passed to the command") from exc
    return embedder.embed(rgb)


@contextmanager
def embedded_images(images_dir: Path, todo: Sequence[str], make_embedder: EmbedderFactory,
                    workers: int = 1) -> Iterator[Iterator[tuple[np.ndarray, str]]]:
    """Yields an iterator of (vector, how) for each path of ``todo``, in order; the pool, if any, is
    closed when the block ends (also on an error or Ctrl-C)."""
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if workers == 1 or len(todo) <= 1:
        yield _embed_here(images_dir, todo, make_embedder)
        return
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx, initializer=_init_worker,
                               initargs=(images_dir, make_embedder))
    try:
        yield _unbroken(pool.map(_embed_in_worker, todo, chunksize=1))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _unbroken(results: Iterator[tuple[np.ndarray, str]]) -> Iterator[tuple[np.ndarray, str]]:
    """The pool's results; a worker that died is a clear error (``multiprocessing.Pool`` would hang)."""
    try:
        yield from results
    except BrokenProcessPool as exc:
        raise FacerecError("an embedding worker process died (out of memory, a crash inside dlib, or a calling "
                           "script without an `if __name__ == '__main__':` guard, which the 'spawn' start "
                           "method needs); rerun: the embedding cache keeps what was saved") from exc


def _embed_here(images_dir: Path, todo: Sequence[str], make_embedder: EmbedderFactory
                ) -> Iterator[tuple[np.ndarray, str]]:
    """The serial path: the embedder is built only when there is something to embed."""
    if not todo:
        return
    embedder = make_embedder()
    for rel in todo:
        yield embed_file(images_dir, rel, embedder)


# ------------------------------------------------------------------------------------------- in a worker
_worker: tuple[Path, ImageEmbedder] | BaseException | None = None


def _init_worker(images_dir: Path, make_embedder: EmbedderFactory) -> None:
    """Build this worker's embedder. A failure is kept and raised by the first task, so the parent gets
    the error itself (an initializer that raises only marks the executor broken)."""
    global _worker
    try:
        _worker = (images_dir, make_embedder())
    except Exception as exc:   # noqa: BLE001 - re-raised in the parent by _embed_in_worker
        _worker = exc


def _embed_in_worker(rel: str) -> tuple[np.ndarray, str]:
    if isinstance(_worker, BaseException):
        raise _worker
    images_dir, embedder = _worker
    try:
        return embed_file(images_dir, rel, embedder)
    except Exception as exc:
        raise _picklable(exc) from None


def _picklable(exc: Exception) -> Exception:
    """``exc`` itself if it survives the trip to the parent, else a FacerecError naming it (an exception
    whose constructor takes other arguments than its ``args`` cannot be unpickled there)."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:   # noqa: BLE001 - any failure to round-trip
        return FacerecError(f"{type(exc).__name__} in an embedding worker: {exc}")
