"""Image sources for ingest: a Hugging Face hub id, a local ImageFolder, a saved HF dataset or Parquet.

Every source yields ``SourceRecord``s in a fixed arrival order: the identity name, the ORIGINAL encoded
bytes of the image (never decoded and re-encoded) and a human key for where the row came from.

- Hub id (``owner/name``, default ``logasja/VGGFace2``) and local Parquet / saved datasets go through
  Hugging Face ``datasets`` with the image column cast to ``Image(decode=False)``, so rows carry the
  stored bytes. Columns are detected from the features (an ``Image`` feature; a ``ClassLabel``, int or
  string label) unless ``--image-column`` / ``--label-column`` name them. Identity names come from the
  ClassLabel names where there are some. The HF token is whatever ``datasets`` finds in the environment
  or the HF cache; it is never read or logged here.
- A local ImageFolder (``<identity>/<image>``) is enumerated directly: sorted identity folders, sorted
  files, the file's bytes as they are on disk (a zero-byte or broken file is still a row; ingest gives
  it a status). Hidden files (``.DS_Store``) and files outside identity folders are not rows; they are
  counted in ``ignored``.

A hub id with no network fails in seconds with a ``SourceError`` (not after the hub client's retries).
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from facerec.errors import SourceError

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

DEFAULT_SOURCE = "logasja/VGGFace2"
NETWORK_TIMEOUT_S = 3.0
# Tried in this order when no --label-column is given and no ClassLabel feature exists.
LABEL_COLUMN_NAMES = ("class_id", "label", "labels", "identity", "person", "name", "id")
IMAGE_COLUMN_NAMES = ("image", "img", "jpg", "jpeg", "png", "bytes")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class SourceRecord:
    identity: str            # identity name; "" when the source row has no label
    data: bytes | None       # original encoded bytes; None when the row has none
    source_path: str         # file path or "<split>[<row>]" inside the source, for humans


@dataclass
class OpenedSource:
    """A source ready to read. ``identities`` is the sorted name list when known before reading."""

    kind: str                                   # imagefolder | hub | saved | parquet
    description: str
    identities: list[str] | None
    total: int | None                           # rows records() yields without a filter, if known
    read: Callable[[frozenset[str] | None], Iterator[SourceRecord]]
    columns: dict[str, str] = field(default_factory=dict)   # image/label column names used
    ignored: dict[str, int] = field(default_factory=dict)   # entries that are not rows, by kind
    revision: str | None = None                 # a hub dataset's commit, when known (provenance)

    def records(self, allowed: frozenset[str] | None = None) -> Iterator[SourceRecord]:
        """Rows in arrival order; with ``allowed``, only rows of those identities (filtered early)."""
        return self.read(allowed)

    def info(self) -> dict[str, Any]:
        info = {"kind": self.kind, "description": self.description, "columns": self.columns, "ignored": self.ignored}
        return {**info, "revision": self.revision} if self.kind == "hub" else info


def sort_identities(names: Any) -> list[str]:
    """Identity names in label order: numeric order when all are integers ("2" < "10"), else text order."""
    names = sorted(set(names))
    if names and all(n.isdigit() for n in names):
        return sorted(names, key=lambda n: (int(n), n))
    return names


def open_source(source: str, split: str = "train", *, image_column: str | None = None,
                label_column: str | None = None, streaming: bool = False) -> OpenedSource:
    """Open ``source`` (local path, file:// URL or hub id); raises SourceError naming what was wrong."""
    if "://" in source and not source.startswith("file://"):   # Parquet files behind fsspec (hf://, s3://)
        if source.startswith("hf://"):
            check_hub_reachable(source)
        files = resolve_parquet_files(source, split)
        return _from_hf(_load_parquet(split, files=files), "parquet", source, split, image_column, label_column)
    local = Path(source[len("file://"):] if source.startswith("file://") else source).expanduser()
    if local.exists():
        return _open_local(local, split, image_column, label_column)
    if source.startswith(("/", ".", "~", "file://")) or not _HUB_ID.match(source):
        raise SourceError(f"source {source!r} does not exist: expected an ImageFolder (<identity>/<image>), "
                          "a saved Hugging Face dataset, a folder of Parquet files or a hub id owner/name")
    return _open_hub(source, split, image_column, label_column, streaming)


# ---------------------------------------------------------------------------------------- local
def _open_local(path: Path, split: str, image_column: str | None, label_column: str | None) -> OpenedSource:
    """Local sources are read in place; ``streaming`` only matters for hub ids."""
    if path.is_file():
        if path.suffix != ".parquet":
            raise SourceError(f"source file {path} is not a .parquet file; give a folder or a Parquet file")
        return _from_hf(_load_parquet(split, files=[path]), "parquet", str(path), split, image_column, label_column)
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        import datasets

        try:
            ds = datasets.load_from_disk(str(path))
        except (OSError, ValueError) as exc:
            raise SourceError(f"cannot open the saved Hugging Face dataset at {path}: {exc}") from exc
        return _from_hf(ds, "saved", str(path), split, image_column, label_column)
    if next(path.rglob("*.parquet"), None) is not None:
        return _from_hf(_load_parquet(split, data_dir=path), "parquet", str(path), split, image_column, label_column)
    return _open_image_folder(path)


def _load_parquet(split: str, files: list[Path] | list[str] | None = None, data_dir: Path | None = None) -> Any:
    """Local Parquet through ``datasets`` in streaming mode: read in place, no copy into the HF cache.

    With a folder, ``datasets`` infers splits from the file names (``train-*.parquet``, ``test/``...);
    without such names every file is the ``train`` split.
    """
    import datasets

    try:
        if data_dir is not None:
            return datasets.load_dataset("parquet", data_dir=str(data_dir), streaming=True)
        return datasets.load_dataset("parquet", data_files={split: [str(f) for f in files or []]}, streaming=True)
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as exc:
        raise SourceError(f"cannot read the Parquet source {data_dir or files}: {exc}") from exc


def resolve_parquet_files(base: str, split: str) -> list[str]:
    """The Parquet files of ``split`` under ``base``, in the order ``datasets.load_dataset`` reads them."""
    from datasets.data_files import DataFilesDict, get_data_patterns

    try:
        files = DataFilesDict.from_patterns(get_data_patterns(base), base_path=base)
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise SourceError(f"cannot list the Parquet files under {base}: {exc}") from exc
    if split not in files:
        raise SourceError(f"{base}: no split {split!r}; available splits: {', '.join(files)}")
    return [str(f) for f in files[split] if str(f).endswith(".parquet")]


def image_folder_layout(root: Path) -> tuple[list[Path], list[Path]]:
    """An ImageFolder's identity folders (sorted) and the visible files lying beside them; refuses a
    folder with no identity folders. Shared by the driver and the Spark ingest paths."""
    folders = sorted(identity_folders(root))
    loose = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]
    if not folders:
        raise SourceError(f"{root} is not an ImageFolder: expected one sub-folder per identity holding images, "
                          f"found {len(loose)} files and no folders (nor Parquet files or a saved dataset)")
    return folders, loose


def _open_image_folder(root: Path) -> OpenedSource:
    """``root/<identity>/<image>``: identity = the first-level folder name, files in sorted order."""
    folders, loose = image_folder_layout(root)
    files: dict[str, list[Path]] = {}
    hidden = 0
    for folder in folders:
        files[folder.name], skipped = identity_folder_files(folder)
        hidden += skipped
    ignored = {"hidden_files": hidden, "files_outside_identity_folders": len(loose)}
    if hidden or loose:
        log.warning("%s: ignoring %d hidden files and %d files outside identity folders", root, hidden, len(loose))
    names = sort_identities(files)

    def read(allowed: frozenset[str] | None) -> Iterator[SourceRecord]:
        for name in names:
            if allowed is not None and name not in allowed:
                continue
            for path in files[name]:
                yield SourceRecord(name, read_file(path), str(path.relative_to(root)))

    return OpenedSource("imagefolder", str(root), names, sum(len(v) for v in files.values()), read,
                        ignored={k: v for k, v in ignored.items() if v})


def identity_folders(root: Path) -> list[Path]:
    """The identity folders of an ImageFolder (hidden folders are not identities), unsorted."""
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]


def identity_folder_files(folder: Path) -> tuple[list[Path], int]:
    """(sorted image files of one identity folder, hidden files skipped): the rows of that identity."""
    entries = sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    visible = [p for p in entries if not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return visible, len(entries) - len(visible)


def read_file(path: Path) -> bytes | None:
    """The file's bytes; None for a dangling link or an unreadable file (ingest records it as empty)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None


# ---------------------------------------------------------------------------------------- hub
def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_offline() -> bool:
    return _env_true("HF_HUB_OFFLINE") or _env_true("HF_DATASETS_OFFLINE")


def _no_network_error(hub_id: str, why: str) -> SourceError:
    return SourceError(
        f"cannot load the hub dataset {hub_id!r}: {why}. Without network, ingest a local folder instead: "
        "--source /path/to/ImageFolder (one sub-folder per identity), a folder of Parquet files or a saved "
        "Hugging Face dataset; or set HF_HUB_OFFLINE=1 to use a copy already in the Hugging Face cache"
    )


def check_hub_reachable(hub_id: str, timeout: float = NETWORK_TIMEOUT_S) -> None:
    """Fail within ``timeout`` seconds when the hub endpoint cannot be reached (DNS or TCP)."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise _no_network_error(hub_id, f"no network: {host}:{port} is unreachable ({exc})") from exc


def _open_hub(hub_id: str, split: str, image_column: str | None, label_column: str | None,
              streaming: bool) -> OpenedSource:
    offline = hub_offline()
    if offline and streaming:
        raise _no_network_error(hub_id, "HF_HUB_OFFLINE is set and streaming reads from the network")
    if not offline:
        check_hub_reachable(hub_id)
    import datasets

    saved = datasets.config.HF_HUB_OFFLINE
    # datasets reads HF_HUB_OFFLINE once at import; apply a variable set later (tests, notebooks).
    datasets.config.HF_HUB_OFFLINE = saved or offline
    try:
        ds = datasets.load_dataset(hub_id, split=split, streaming=streaming)
    except (ConnectionError, FileNotFoundError) as exc:
        why = "HF_HUB_OFFLINE is set and it is not in the Hugging Face cache" if offline else str(exc)
        raise _no_network_error(hub_id, why) from exc
    except (datasets.exceptions.DatasetsError, ValueError) as exc:
        raise SourceError(f"cannot load the hub dataset {hub_id!r} split {split!r}: {exc}") from exc
    finally:
        datasets.config.HF_HUB_OFFLINE = saved
    from facerec.pipeline.source_revision import hub_revision

    opened = _from_hf(ds, "hub", hub_id, split, image_column, label_column)
    opened.revision = hub_revision(hub_id, ds)
    return opened


# ---------------------------------------------------------------------------------------- HF rows
def _pick_split(ds: Any, split: str, where: str) -> Any:
    import datasets

    if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        if split not in ds:
            raise SourceError(f"{where}: no split {split!r}; available splits: {', '.join(ds)}")
        return ds[split]
    return ds


def _features(ds: Any, where: str) -> "datasets.Features":
    features = ds.features
    if features is None:  # an IterableDataset whose features are only known after reading a row
        features = ds._resolve_features().features
    if features is None:
        raise SourceError(f"{where}: cannot tell the dataset's columns; name them with --image-column/--label-column")
    return features


def detect_columns(features: "datasets.Features", image_column: str | None, label_column: str | None,
                   where: str) -> tuple[str, str]:
    """(image column, label column): the named ones, else an Image feature and a ClassLabel/int/str column."""
    import datasets

    names = list(features)
    for given, what in ((image_column, "--image-column"), (label_column, "--label-column")):
        if given is not None and given not in features:
            raise SourceError(f"{where}: {what} {given!r} is not a column; columns: {', '.join(names)}")
    if image_column is None:
        images = [n for n, f in features.items() if isinstance(f, datasets.Image)]
        if not images:
            images = [n for n in IMAGE_COLUMN_NAMES if n in features and _is_bytes_like(features[n])][:1]
        if len(images) != 1:
            raise SourceError(f"{where}: expected one image column, found {images or 'none'} among "
                              f"{', '.join(names)}; name it with --image-column")
        image_column = images[0]
    if label_column is None:
        labels = [n for n, f in features.items() if isinstance(f, datasets.ClassLabel)]
        if not labels:
            labels = [n for n in LABEL_COLUMN_NAMES if n in features and _is_label_like(features[n])][:1]
        if len(labels) != 1:
            raise SourceError(f"{where}: expected one label column (a ClassLabel, int or string column), found "
                              f"{labels or 'none'} among {', '.join(names)}; name it with --label-column")
        label_column = labels[0]
    if not (isinstance(features[image_column], datasets.Image) or _is_bytes_like(features[image_column])):
        raise SourceError(f"{where}: image column {image_column!r} holds {features[image_column]}, "
                          "expected an Image feature or encoded bytes")
    if not (isinstance(features[label_column], datasets.ClassLabel) or _is_label_like(features[label_column])):
        raise SourceError(f"{where}: label column {label_column!r} holds {features[label_column]}, "
                          "expected a ClassLabel, an integer or a string")
    return image_column, label_column


def _is_bytes_like(feature: Any) -> bool:
    import datasets

    if isinstance(feature, datasets.Value):
        return feature.dtype in ("binary", "large_binary")
    return isinstance(feature, dict) and "bytes" in feature


def _is_label_like(feature: Any) -> bool:
    import datasets

    return isinstance(feature, datasets.Value) and (
        feature.dtype in ("string", "large_string") or feature.dtype.startswith(("int", "uint"))
    )


def _from_hf(ds: Any, kind: str, where: str, split: str, image_column: str | None,
             label_column: str | None) -> OpenedSource:
    """Wrap a Dataset / IterableDataset: cast the image to undecoded bytes, map labels to names."""
    import datasets

    ds = _pick_split(ds, split, where)
    features = _features(ds, where)
    image_column, label_column = detect_columns(features, image_column, label_column, where)
    if isinstance(features[image_column], datasets.Image):
        ds = ds.cast_column(image_column, datasets.Image(decode=False))
    ds = ds.select_columns([image_column, label_column])
    label_feature = features[label_column]
    class_names = list(label_feature.names) if isinstance(label_feature, datasets.ClassLabel) else None
    identities: list[str] | None = None
    total: int | None = None
    if class_names is not None:
        identities = sort_identities(class_names)
    if isinstance(ds, datasets.Dataset):
        total = len(ds)
        if identities is None:
            identities = sort_identities(_identity(v, None) for v in ds.unique(label_column) if v is not None)

    def read(allowed: frozenset[str] | None) -> Iterator[SourceRecord]:
        rows, selected = ds, None
        if allowed is not None and isinstance(ds, datasets.Dataset):
            labels = ds.data.column(label_column).to_pylist()
            selected = [i for i, v in enumerate(labels) if _identity(v, class_names) in allowed]
            rows = ds.select(selected)
        index = 0
        for batch in rows.iter(batch_size=256):
            for image, label in zip(batch[image_column], batch[label_column]):
                identity = _identity(label, class_names)
                if allowed is None or identity in allowed:
                    # source_path names the row of the source, also when --limit-classes selected rows
                    row = index if selected is None else selected[index]
                    yield record_of(identity, image, f"{split}[{row}]")
                index += 1

    return OpenedSource(kind, where, identities, total, read,
                        columns={"image": image_column, "label": label_column})


def record_of(identity: str, image: Any, where: str) -> SourceRecord:
    """A source row from an undecoded image cell; ``where`` ("<split>[<row>]") when it has no path."""
    data, path = _image_bytes(image)
    return SourceRecord(identity, data, path or where)


def identity_of(label: Any, class_names: list[str] | None) -> str:
    """A label cell -> identity name: the ClassLabel name, else the value as text ("" when missing)."""
    return _identity(label, class_names)


def _identity(label: Any, class_names: list[str] | None) -> str:
    if label is None:
        return ""
    if class_names is not None:
        return class_names[int(label)]
    return str(label)


def _image_bytes(value: Any) -> tuple[bytes | None, str | None]:
    """An undecoded image cell -> (bytes, path). Rows that only hold a local path are read from it."""
    if value is None:
        return None, None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), None
    data, path = value.get("bytes"), value.get("path")
    if data is None and path:
        local = Path(path)
        data = read_file(local) if local.is_file() else None
    return (bytes(data) if data is not None else None), path
