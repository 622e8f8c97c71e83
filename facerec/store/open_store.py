"""Open a feature set for reading: its Zarr group, its index table, and the per-row facts readers need.

A ``FeatureSet`` is what every torch reader holds. It is cheap to pickle: its pickled state is the
location, the layout and a few small per-row NumPy arrays (label, valid, pose), never an open Zarr
array nor the string columns of the index. Zarr v3 runs its I/O on an asyncio loop in a background
thread, so an array opened in one process must not be used in a forked child: arrays are opened
lazily, on first use, in the process that reads them, and reopened when the process id changes.
DataLoader workers should still be started with ``spawn`` or ``forkserver`` (``make_loader`` does).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from facerec.errors import SchemaMismatchError, StageNotReadyError, StoreError
from facerec.schemas.tables import FEATURE_INDEX, check_table_schema
from facerec.schemas.zarr_layout import ARRAY_NAMES, FeatureLayout, VALID
from facerec.store.chunk_reader import ChunkReader
from facerec.store.feature_arrays import open_feature_group
from facerec.store.fs import Location, resolve
from facerec.store.integrity import manifest_integrity
from facerec.store.layout import StoreLayout
from facerec.store.table_check import read_recorded_table

if TYPE_CHECKING:
    import pandas as pd
    import zarr

    from facerec.store.chunk_check import ChunkExpectations
    from facerec.store.chunk_reader import ChunkReader

log = logging.getLogger(__name__)

ZARR_SUFFIX = ".zarr"
INDEX_SUFFIX = ".index"
NO_LABEL = -1


def index_location(zarr_loc: Location) -> Location:
    """The index folder beside a ``<name>.zarr`` group: ``<name>.index``."""
    if not zarr_loc.path.rstrip("/").endswith(ZARR_SUFFIX):
        raise StoreError(f"{zarr_loc}: a feature group path must end in {ZARR_SUFFIX!r}")
    path = zarr_loc.path.rstrip("/")[: -len(ZARR_SUFFIX)] + INDEX_SUFFIX
    url = zarr_loc.url.rstrip("/")[: -len(ZARR_SUFFIX)] + INDEX_SUFFIX
    return Location(zarr_loc.fs, path, url)


def find_feature_group(store: str, extractor: str | None = None, img_size: int | None = None) -> Location:
    """Where a feature group is: a ``.zarr`` path as given, or the one group of a store root.

    With a store root and no extractor/size, the store must hold exactly one feature set.
    """
    loc = resolve(store)
    if loc.path.rstrip("/").endswith(ZARR_SUFFIX):
        return loc
    layout = StoreLayout(loc)
    if extractor is not None and img_size is not None:
        return layout.features_zarr(extractor, img_size)
    features = loc.child("features")
    found = sorted(
        p.rstrip("/").rpartition("/")[2]
        for p in (features.fs.ls(features.path, detail=False) if features.exists() else [])
        if p.rstrip("/").endswith(ZARR_SUFFIX)
    )
    wanted = [
        name for name in found
        if (extractor is None or name.startswith(f"{extractor}-"))
        and (img_size is None or name.endswith(f"-{img_size}{ZARR_SUFFIX}"))
    ]
    if len(wanted) != 1:
        raise StoreError(
            f"{loc}: expected exactly one feature set matching extractor={extractor} img_size={img_size}, "
            f"found {wanted or 'none'} (all: {found or 'none'}); pass --extractor and --img-size"
        )
    return features.child(wanted[0])


def store_root_of(zarr_loc: Location) -> str:
    """The store root a ``STORE/features/<name>.zarr`` group belongs to (for repair commands)."""
    url = zarr_loc.url.rstrip("/")
    return url.rsplit("/features/", 1)[0] if "/features/" in url else url


def read_index_table(index_loc: Location, num_threads: int = 8) -> pa.Table:
    """Every shard of a feature index, schema-checked, concatenated and sorted by row.

    With commit records in the manifest, every recorded shard must be there with its recorded bytes
    (size and CRC32C) and row count; a missing or damaged shard raises ``DamagedStoreError``.
    """
    if not StoreLayout.is_finished(index_loc):
        raise StageNotReadyError(
            f"{index_loc}: feature index has no {StoreLayout.manifest(index_loc).path.rpartition('/')[2]}; "
            "the features stage has not finished (run `facerec features`)"
        )
    records = (manifest_integrity(StoreLayout.read_manifest(index_loc)) or {}).get("files")
    if records:
        files = [f"{index_loc.path}/{name}" for name in sorted(records)]
    else:
        files = sorted(
            p for p in index_loc.fs.ls(index_loc.path, detail=False)
            if p.rstrip("/").rpartition("/")[2].startswith("shard-") and p.endswith(".parquet")
        )
    if not files:
        raise StoreError(f"{index_loc}: feature index holds no shard-*.parquet files")

    def read_one(path: str) -> pa.Table:
        name = path.rpartition("/")[2]
        record = (records or {}).get(name, {}).get("file")
        table = read_recorded_table(index_loc, name, record, store_root_of(index_loc))
        check_table_schema(table.schema, FEATURE_INDEX, where=f"{index_loc.url}/{name}")
        return table.select(FEATURE_INDEX.names).cast(FEATURE_INDEX)

    with ThreadPoolExecutor(max_workers=min(num_threads, len(files))) as pool:
        tables = list(pool.map(read_one, files))
    table = pa.concat_tables(tables)
    return table.sort_by("row")


class FeatureSet:
    """A feature set opened for reading: layout, index, per-row lookups and lazily opened arrays.

    Per-row lookup arrays are indexed by store row ``r`` (0..num_rows-1): ``labels`` int64 (store
    labels, ``NO_LABEL`` for rows absent from the index), ``valid`` bool, ``pose`` float32 [N, 3]
    (yaw, pitch, roll in degrees, NaN when unknown), ``in_index`` bool.
    """

    def __init__(self, zarr_loc: Location, layout: FeatureLayout, index: pa.Table,
                 integrity: dict[str, Any] | None = None) -> None:
        self.location = zarr_loc
        self.layout = layout
        self.expected = chunk_expectations(zarr_loc, layout, integrity)
        self._index: pa.Table | None = index
        self._index_df: "pd.DataFrame | None" = None
        self._arrays: dict[str, Any] = {}
        self._readers: dict[str, Any] = {}
        self._pid = os.getpid()
        n = layout.num_rows
        rows = index.column("row").to_numpy()
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            raise SchemaMismatchError(
                f"{zarr_loc}: index rows must lie in 0..{n - 1} (the arrays' length), found {rows.min()}..{rows.max()}"
            )
        if len(np.unique(rows)) != len(rows):
            raise SchemaMismatchError(f"{zarr_loc}: the feature index lists some rows more than once")
        self.in_index = np.zeros(n, dtype=bool)
        self.in_index[rows] = True
        self.labels = np.full(n, NO_LABEL, dtype=np.int64)
        self.labels[rows] = index.column("label").to_numpy()
        self.valid = np.zeros(n, dtype=bool)
        self.valid[rows] = index.column("valid").to_numpy(zero_copy_only=False)
        self.pose = np.full((n, 3), np.nan, dtype=np.float32)
        for j, name in enumerate(("yaw", "pitch", "roll")):
            self.pose[rows, j] = index.column(name).to_numpy(zero_copy_only=False).astype(np.float32)

    @classmethod
    def open(cls, store: str, extractor: str | None = None, img_size: int | None = None, *, check_valid: bool = True) -> "FeatureSet":
        """Open ``STORE`` (with extractor/size, or its only feature set) or a ``<name>.zarr`` path.

        Refuses a group or index of another layout version (``SchemaMismatchError``) and an
        unfinished features stage (``StageNotReadyError``). With ``check_valid`` the index's valid
        column is compared with the group's ``valid`` array.
        """
        zarr_loc = find_feature_group(store, extractor, img_size)
        _, layout = open_feature_group(zarr_loc)
        index = read_index_table(index_location(zarr_loc))
        manifest = StoreLayout.read_manifest(index_location(zarr_loc))
        integrity = manifest_integrity(manifest)
        if integrity is None and manifest.get("stage") == "features":
            log.warning("%s: the features stage recorded no checksums (built before integrity records); "
                        "damage cannot be detected while reading, rebuild with `facerec features --overwrite`", zarr_loc)
        fset = cls(zarr_loc, layout, index, integrity)
        if check_valid:
            rows = np.flatnonzero(fset.in_index)
            stored = np.zeros(fset.num_rows, dtype=bool)
            stored[rows] = fset.reader(VALID).read_rows(rows)
            bad = np.flatnonzero(stored[rows] != fset.valid[rows])
            if len(bad):
                raise SchemaMismatchError(
                    f"{zarr_loc}: index column 'valid' disagrees with the {VALID!r} array on {len(bad)} rows "
                    f"(first row {rows[bad[0]]}); the store is inconsistent, rebuild the features stage"
                )
        log.info("opened %s: %d rows (%d valid), %d classes", zarr_loc, layout.num_rows, int(fset.valid.sum()), fset.num_classes)
        return fset

    # --- the index -------------------------------------------------------------------------------
    @property
    def index_table(self) -> pa.Table:
        """The whole index as Arrow, sorted by row (re-read from the store after unpickling)."""
        if self._index is None:
            self._index = read_index_table(index_location(self.location))
        return self._index

    @property
    def index(self) -> "pd.DataFrame":
        """The whole index as pandas, sorted by row (converted once per process)."""
        if self._index_df is None:
            self._index_df = self.index_table.to_pandas()
        return self._index_df

    @property
    def num_rows(self) -> int:
        return self.layout.num_rows

    @property
    def num_classes(self) -> int:
        """Store labels are dense over sorted identity names: max label + 1."""
        present = self.labels[self.in_index]
        return int(present.max()) + 1 if len(present) else 0

    # --- arrays ----------------------------------------------------------------------------------
    def array(self, name: str) -> "zarr.Array":
        """One Zarr array, opened in this process on first use."""
        if self._pid != os.getpid():
            self._arrays = {}
            self._pid = os.getpid()
        if not self._arrays:
            group, _ = open_feature_group(self.location)
            self._arrays = {n: group[n] for n in ARRAY_NAMES}
        return self._arrays[name]

    def reader(self, name: str) -> "ChunkReader":
        """A ChunkReader of one array, created in this process on first use."""

        array = self.array(name)
        if name not in self._readers or self._readers[name].array is not array:
            self._readers[name] = ChunkReader(array, self.expected.get(name), self.location.child(name))
        return self._readers[name]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_arrays"] = {}
        state["_readers"] = {}
        state["_index"] = None
        state["_index_df"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"FeatureSet({self.location.url!r}, rows={self.num_rows}, classes={self.num_classes})"


def chunk_expectations(zarr_loc: Location, layout: FeatureLayout,
                       integrity: dict[str, Any] | None) -> dict[str, "ChunkExpectations"]:
    """Per array, what its chunks must be (empty without commit records)."""
    from facerec.store.chunk_check import ChunkExpectations

    if not integrity:
        return {}
    out = {}
    for name, (shape, chunks, _) in layout.shapes().items():
        out[name] = ChunkExpectations.from_integrity(
            integrity, name, num_chunks=-(-shape[0] // chunks[0]), chunk_rows=chunks[0], shard_size=layout.shard_size,
            num_rows=layout.num_rows, where=str(zarr_loc), store_root=store_root_of(zarr_loc))
    return out


def open_feature_set(store: "str | FeatureSet", extractor: str | None = None, img_size: int | None = None) -> FeatureSet:
    """A FeatureSet as given, or opened from a store root / ``.zarr`` path."""
    if isinstance(store, FeatureSet):
        return store
    return FeatureSet.open(str(store), extractor, img_size)
