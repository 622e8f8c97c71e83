"""Create and open the Zarr v3 group of a feature set, checking its layout version.

The group's attributes hold the layout version and the resolved ``FeatureLayout`` as JSON, so a store
describes itself. Local paths and ``file://`` URLs use zarr's LocalStore; other URLs go through fsspec.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from facerec.errors import ConfigError, SchemaMismatchError, StoreError
from facerec.schemas.tables import LAYOUT_VERSION
from facerec.schemas.zarr_layout import ARRAY_NAMES, ATTR_CONFIG, ATTR_LAYOUT_VERSION, FeatureLayout
from facerec.store.fs import Location

if TYPE_CHECKING:
    import zarr

COMPRESSORS = ("none", "zstd", "lz4", "blosc-zstd")


def zarr_store(loc: Location, read_only: bool = False):
    """A zarr Store for a location: LocalStore on local disks, FsspecStore elsewhere."""
    from fsspec.implementations.local import LocalFileSystem
    from zarr.storage import FsspecStore, LocalStore

    from facerec.store.image_codec import register

    register()                     # stores with an image-coded crop array open anywhere zarr_store is used

    if isinstance(loc.fs, LocalFileSystem):
        return LocalStore(loc.path, read_only=read_only)
    return FsspecStore.from_url(loc.url, read_only=read_only)


def compressors_for(name: str, level: int) -> list:
    """Zarr v3 codecs for a compressor name; ``none`` stores raw chunks."""
    from zarr.codecs import BloscCodec, ZstdCodec

    if name == "none":
        return []
    if name == "zstd":
        return [ZstdCodec(level=level)]
    if name == "lz4":
        return [BloscCodec(cname="lz4", clevel=level, shuffle="shuffle")]
    if name == "blosc-zstd":
        return [BloscCodec(cname="zstd", clevel=level, shuffle="bitshuffle")]
    raise ConfigError(f"unknown compressor {name!r}; expected one of: {', '.join(COMPRESSORS)}")


def create_feature_group(loc: Location, layout: FeatureLayout, overwrite: bool = False) -> "zarr.Group":
    """Create every array of the layout (empty, fill 0) and record the layout in the attributes."""
    import zarr

    try:
        group = zarr.open_group(zarr_store(loc), mode="w" if overwrite else "w-", zarr_format=3)
    except (OSError, zarr.errors.ContainsGroupError) as exc:
        raise StoreError(f"cannot create feature group at {loc}: {exc}") from exc
    from facerec.schemas.zarr_layout import IMAGE
    from facerec.store.image_codec import crop_codecs_for

    codecs = compressors_for(layout.compressor, layout.compression_level)
    crop = crop_codecs_for(layout.crop_codec, layout.crop_quality)
    for name, (shape, chunks, dtype) in layout.shapes().items():
        if name == IMAGE and crop is not None:       # an image codec replaces bytes + compressor
            group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, serializer=crop, compressors=None, fill_value=0)
        else:
            group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, compressors=codecs, fill_value=0)
    group.attrs.update({ATTR_LAYOUT_VERSION: LAYOUT_VERSION, ATTR_CONFIG: dataclasses.asdict(layout)})
    return group


def open_feature_group(loc: Location, mode: str = "r") -> tuple["zarr.Group", FeatureLayout]:
    """Open a feature group and refuse one written with another layout version."""
    import zarr

    try:
        group = zarr.open_group(zarr_store(loc, read_only=mode == "r"), mode=mode, zarr_format=3)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
        raise StoreError(f"no feature group at {loc}; run `facerec features` first") from exc
    attrs = dict(group.attrs)
    version = attrs.get(ATTR_LAYOUT_VERSION)
    if version != LAYOUT_VERSION:
        raise SchemaMismatchError(
            f"{loc}: feature layout version {version} but this facerec reads version {LAYOUT_VERSION}; "
            "rebuild with `facerec features --overwrite`"
        )
    layout = FeatureLayout(**attrs[ATTR_CONFIG])
    missing = [name for name in ARRAY_NAMES if name not in group]
    if missing:
        raise SchemaMismatchError(f"{loc}: feature group lacks arrays {missing}")
    return group, layout
