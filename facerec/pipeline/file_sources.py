"""File sources cut into units that Spark tasks read in parallel: ImageFolders, Parquet, saved datasets.

The Spark ingest (``facerec.pipeline.spark_ingest``) needs a source as a list of picklable pieces a
task can read by itself, each yielding exactly the ``SourceRecord``s the driver ingest
(``facerec.pipeline.sources``) yields for those rows: same identity, same bytes, same ``source_path``.

- ImageFolder: one unit per identity folder; the task lists the folder itself (sorted, hidden files
  skipped, as ``sources.identity_folder_files`` does for the driver), so the driver lists identity
  folders only, never every file.
- Parquet (a local folder or file, or any fsspec URL such as ``hf://datasets/<id>/<dir>``): the files
  of ``--split`` as the ``datasets`` library resolves them (``get_data_patterns``), one unit per row
  group; row offsets come from the footers, so rows without a path keep the driver's
  ``"<split>[<row>]"`` name. Columns and ClassLabel names come from the Hugging Face features stored
  in the Parquet schema, detected by ``sources.detect_columns`` as for the driver.
- Saved dataset (``save_to_disk``): its Arrow files in order, one unit per record batch.

Units are grouped into tasks of consecutive units; the grouping never changes the output (the global
order is a hash of each row's content id), only how the work is spread.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facerec.errors import SourceError
from facerec.pipeline.sources import (
    SourceRecord, check_hub_reachable, detect_columns, identity_folder_files, identity_of, image_folder_layout,
    read_file, record_of, resolve_parquet_files, sort_identities,
)

log = logging.getLogger(__name__)

BATCH_ROWS = 256      # rows converted to Python at a time inside a task
UNIT_ROWS = 256       # at most this many rows per unit (a slice of a row group or record batch)


@dataclass(frozen=True)
class Unit:
    """One piece of a file source: an identity folder, a Parquet row group or an Arrow record batch."""

    path: str              # identity folder, Parquet file URL or Arrow file
    part: int = -1         # row group (Parquet) or record batch (Arrow); -1 for a folder
    offset: int = 0        # index of the unit's first row in the split (the "<split>[<row>]" name)
    rows: int = 0          # rows in the unit (0 when unknown: folders)
    identity: str = ""     # ImageFolder: the folder's identity
    skip: int = 0          # rows of the row group / batch before this unit's slice


@dataclass(frozen=True)
class FilePlan:
    """A file source ready for Spark: how to read a unit, and the units in source order."""

    kind: str                          # imagefolder | parquet | saved
    description: str
    root: str                          # ImageFolder root (source_path is relative to it)
    split: str
    units: tuple[Unit, ...]
    identities: tuple[str, ...] | None = None     # sorted names when known before reading
    class_names: tuple[str, ...] | None = None    # ClassLabel names (label value -> name)
    columns: dict[str, str] = field(default_factory=dict)
    total: int | None = None
    loose_files: int = 0               # ImageFolder: files outside identity folders (not rows)

    def info(self, hidden_files: int) -> dict[str, Any]:
        """The manifest's ``source`` entry: the same keys as ``OpenedSource.info``."""
        ignored = {"hidden_files": hidden_files, "files_outside_identity_folders": self.loose_files}
        return {"kind": self.kind, "description": self.description, "columns": self.columns,
                "ignored": {k: v for k, v in ignored.items() if v}}


def is_file_source(source: str) -> bool:
    """True for sources the Spark ingest reads: local paths and fsspec URLs (hf://, s3://, file://)."""
    if "://" in source:
        return True
    return Path(source).expanduser().exists()


def plan_file_source(source: str, split: str, image_column: str | None, label_column: str | None) -> FilePlan:
    """Cut a file source into units; raises SourceError naming what is wrong with it."""
    if "://" in source and not source.startswith("file://"):
        if source.startswith("hf://"):
            check_hub_reachable(source)
        return _plan_parquet(source, resolve_parquet_files(source, split), split, image_column, label_column)
    path = Path(source[len("file://"):] if source.startswith("file://") else source).expanduser()
    if not path.exists():
        raise SourceError(f"source {source!r} does not exist: expected an ImageFolder, a saved Hugging Face "
                          "dataset, a folder of Parquet files or an fsspec URL of Parquet files")
    if path.is_file():
        if path.suffix != ".parquet":
            raise SourceError(f"source file {path} is not a .parquet file; give a folder or a Parquet file")
        return _plan_parquet(str(path), [str(path)], split, image_column, label_column)
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return _plan_saved(path, split, image_column, label_column)
    if next(path.rglob("*.parquet"), None) is not None:
        return _plan_parquet(str(path), resolve_parquet_files(str(path.resolve()), split), split, image_column,
                             label_column)
    return _plan_image_folder(path)


# ---------------------------------------------------------------------------------------- planning
def _plan_image_folder(root: Path) -> FilePlan:
    folders, loose = image_folder_layout(root)
    if loose:
        log.warning("%s: ignoring %d files outside identity folders", root, len(loose))
    names = sort_identities(p.name for p in folders)
    by_name = {p.name: p for p in folders}
    units = tuple(Unit(path=str(by_name[n]), identity=n) for n in names)
    return FilePlan("imagefolder", str(root), str(root), "", units, identities=tuple(names),
                    columns={}, total=None, loose_files=len(loose))


def _columns(schema: Any, image_column: str | None, label_column: str | None, where: str):
    import datasets

    features = datasets.Features.from_arrow_schema(schema)
    image_column, label_column = detect_columns(features, image_column, label_column, where)
    label = features[label_column]
    names = tuple(label.names) if isinstance(label, datasets.ClassLabel) else None
    return image_column, label_column, names


def _plan_parquet(where: str, files: list[str], split: str, image_column: str | None,
                  label_column: str | None) -> FilePlan:
    import fsspec
    import pyarrow.parquet as pq

    if not files:
        raise SourceError(f"{where}: no Parquet files for split {split!r}")
    units: list[Unit] = []
    offset = 0
    columns = None
    for url in files:
        fs, path = fsspec.core.url_to_fs(url)
        with fs.open(path, "rb") as fh:
            meta = pq.ParquetFile(fh).metadata
            if columns is None:
                columns = _columns(meta.schema.to_arrow_schema(), image_column, label_column, where)
        for rg in range(meta.num_row_groups):
            units += _slices(url, rg, offset, meta.row_group(rg).num_rows)
            offset += meta.row_group(rg).num_rows
    image, label, names = columns
    return FilePlan("parquet", where, where, split, tuple(units),
                    identities=tuple(sort_identities(names)) if names is not None else None,
                    class_names=names, columns={"image": image, "label": label}, total=offset)


def _plan_saved(path: Path, split: str, image_column: str | None, label_column: str | None) -> FilePlan:
    import pyarrow as pa

    folder = path
    if (path / "dataset_dict.json").exists():
        splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        if split not in splits:
            raise SourceError(f"{path}: no split {split!r}; available splits: {', '.join(splits)}")
        folder = path / split
    state = json.loads((folder / "state.json").read_text())
    if state.get("_indices_data_files"):
        raise SourceError(f"{folder} holds an indices mapping; read it with --engine driver")
    units: list[Unit] = []
    offset = 0
    columns = None
    for entry in state["_data_files"]:
        arrow = str(folder / entry["filename"])
        with pa.memory_map(arrow) as source:
            reader = pa.ipc.open_stream(source)
            if columns is None:
                columns = _columns(reader.schema, image_column, label_column, str(path))
            for i, batch in enumerate(reader):
                units += _slices(arrow, i, offset, batch.num_rows)
                offset += batch.num_rows
    if columns is None:
        raise SourceError(f"{folder}: the saved dataset lists no data files")
    image, label, names = columns
    return FilePlan("saved", str(path), str(path), split, tuple(units),
                    identities=tuple(sort_identities(names)) if names is not None else None,
                    class_names=names, columns={"image": image, "label": label}, total=offset)


def _slices(path: str, part: int, offset: int, rows: int) -> list[Unit]:
    """A row group / record batch cut into units of at most ``UNIT_ROWS`` rows, so that files with few,
    large row groups still spread over every core (a unit reads its row group and keeps its slice)."""
    return [Unit(path=path, part=part, offset=offset + start, rows=min(UNIT_ROWS, rows - start), skip=start)
            for start in range(0, max(rows, 1), UNIT_ROWS)]


def group_units(units: tuple[Unit, ...], tasks: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` unit ranges, about ``tasks`` of them with similar row counts."""
    if not units:
        return []
    weights = [u.rows or 1 for u in units]
    target = max(1, -(-sum(weights) // max(1, tasks)))
    groups, start, acc = [], 0, 0
    for i, w in enumerate(weights):
        acc += w
        if acc >= target:
            groups.append((start, i + 1))
            start, acc = i + 1, 0
    if start < len(units):
        groups.append((start, len(units)))
    return groups


# ---------------------------------------------------------------------------------------- reading
def read_units(plan: FilePlan, units: tuple[Unit, ...], allowed: frozenset[str] | None,
               hidden: list[int]) -> Iterator[SourceRecord]:
    """The records of ``units`` in source order; ``hidden`` gets the count of hidden files skipped."""
    for unit in units:
        if plan.kind == "imagefolder":
            files, skipped = identity_folder_files(Path(unit.path))
            hidden[0] += skipped          # counted for every folder, as the driver's listing does
            if allowed is not None and unit.identity not in allowed:
                continue
            root = Path(plan.root)
            for f in files:
                yield SourceRecord(unit.identity, read_file(f), str(f.relative_to(root)))
        else:
            yield from _table_records(plan, unit, allowed)


def _unit_batches(plan: FilePlan, unit: Unit) -> Iterator[Any]:
    """The unit's rows (image, label columns) as record batches."""
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = [plan.columns["image"], plan.columns["label"]]
    if plan.kind == "parquet":
        fs, path = fsspec.core.url_to_fs(unit.path)
        with fs.open(path, "rb") as fh:
            table = pq.ParquetFile(fh).read_row_group(unit.part, columns=cols)
        yield from table.slice(unit.skip, unit.rows).to_batches(max_chunksize=BATCH_ROWS)
        return
    with pa.memory_map(unit.path) as source:      # the batches point into the map: use them inside it
        for i, batch in enumerate(pa.ipc.open_stream(source)):
            if i == unit.part:
                table = pa.Table.from_batches([batch.select(cols)])
                yield from table.slice(unit.skip, unit.rows).to_batches(max_chunksize=BATCH_ROWS)
                return


def _table_records(plan: FilePlan, unit: Unit, allowed: frozenset[str] | None) -> Iterator[SourceRecord]:
    names = list(plan.class_names) if plan.class_names is not None else None
    index = unit.offset
    for batch in _unit_batches(plan, unit):
        images = batch.column(0).to_pylist()
        labels = batch.column(1).to_pylist()
        for image, label in zip(images, labels):
            identity = identity_of(label, names)
            if allowed is None or identity in allowed:
                yield record_of(identity, image, f"{plan.split}[{index}]")
            index += 1
