"""Where each stage's output lives inside a store, and the per-stage completion manifest.

    STORE/samples/shard-00000.parquet ...          + _manifest.json
    STORE/landmarks/<extractor>/shard-00000.parquet + _manifest.json
    STORE/features/<extractor>-<size>.zarr/        (Zarr v3 group)
    STORE/features/<extractor>-<size>.index/shard-00000.parquet + _manifest.json
    STORE/identities/<extractor>-<size>/part-00000.parquet      + _manifest.json

A shard holds ``shard_size`` consecutive samples of the globally shuffled order; the same shard number
is carried through every stage, so a stage's unit of work, resume and commit is one shard file.
A stage is finished when its ``_manifest.json`` exists; shards without it are resumed.
"""

from __future__ import annotations

from dataclasses import dataclass

from facerec.schemas.zarr_layout import feature_set_name
from facerec.store.fs import Location, read_json, resolve

MANIFEST = "_manifest.json"


def shard_file(shard: int) -> str:
    return f"shard-{shard:05d}.parquet"


@dataclass(frozen=True)
class StoreLayout:
    root: Location

    @classmethod
    def at(cls, store: str) -> "StoreLayout":
        return cls(resolve(store))

    @property
    def samples(self) -> Location:
        return self.root.child("samples")

    def landmarks(self, extractor: str) -> Location:
        return self.root.child("landmarks", extractor)

    def features_zarr(self, extractor: str, img_size: int) -> Location:
        return self.root.child("features", f"{feature_set_name(extractor, img_size)}.zarr")

    def features_index(self, extractor: str, img_size: int) -> Location:
        return self.root.child("features", f"{feature_set_name(extractor, img_size)}.index")

    def identities(self, extractor: str, img_size: int) -> Location:
        return self.root.child("identities", feature_set_name(extractor, img_size))

    @staticmethod
    def manifest(folder: Location) -> Location:
        return folder.child(MANIFEST)

    @staticmethod
    def is_finished(folder: Location) -> bool:
        return folder.child(MANIFEST).exists()

    @staticmethod
    def read_manifest(folder: Location) -> dict:
        return read_json(folder.child(MANIFEST))
