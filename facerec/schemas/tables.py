"""Arrow schemas of every Parquet table in a store: the one place a column name is spelled.

Every table carries its name and the layout version in the Parquet schema metadata
(``facerec.table``, ``facerec.layout_version``); readers refuse a mismatch via ``check_table_schema``.
Spark schemas are derived from these (``facerec.pipeline.spark.spark_schema``), never re-declared.
"""

from __future__ import annotations

import pyarrow as pa

from facerec.errors import SchemaMismatchError

LAYOUT_VERSION = 2      # 2: landmarks.detector (which detection path found the face)
META_TABLE = b"facerec.table"
META_VERSION = b"facerec.layout_version"

# Row status values shared by all stages: "ok" or a short reason code; `error` holds the human message.
STATUS_OK = "ok"


def _schema(name: str, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(fields, metadata={META_TABLE: name.encode(), META_VERSION: str(LAYOUT_VERSION).encode()})


SAMPLES = _schema(
    "samples",
    [
        pa.field("sample_id", pa.string(), nullable=False),   # content hash of identity + encoded bytes
        pa.field("identity", pa.string(), nullable=False),    # identity name as in the source
        pa.field("label", pa.int32(), nullable=False),        # dense integer label, sorted identity names
        pa.field("split", pa.string(), nullable=False),
        pa.field("shard", pa.int32(), nullable=False),        # shard file this row lives in
        pa.field("position", pa.int32(), nullable=False),     # row within the shard (global row = shard*R+pos)
        pa.field("source_path", pa.string()),                 # path or key inside the source, for humans
        pa.field("image", pa.binary()),                       # original encoded bytes, never re-encoded
        pa.field("format", pa.string()),                      # PIL format name (JPEG, PNG, ...)
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("status", pa.string(), nullable=False),      # "ok" or a reason code
        pa.field("error", pa.string()),                       # message for a rejected row
    ],
)

LANDMARKS = _schema(
    "landmarks",
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("shard", pa.int32(), nullable=False),
        pa.field("position", pa.int32(), nullable=False),
        pa.field("extractor", pa.string(), nullable=False),
        pa.field("num_points", pa.int32(), nullable=False),   # P; points holds 2P floats
        pa.field("points", pa.list_(pa.float32())),           # [x0, y0, x1, y1, ...] source pixels
        pa.field("detected", pa.bool_(), nullable=False),
        pa.field("detector", pa.string()),                    # detection path that found it, null if none
        pa.field("num_faces", pa.int32(), nullable=False),
        pa.field("score", pa.float32()),
        pa.field("bbox", pa.list_(pa.float32())),             # [x0, y0, x1, y1] source pixels
        pa.field("yaw", pa.float32()),                        # degrees, see facerec.geometry.pose
        pa.field("pitch", pa.float32()),
        pa.field("roll", pa.float32()),
        pa.field("placeholder", pa.bool_(), nullable=False),  # True only for --extractor template
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
    ],
)

FEATURE_INDEX = _schema(
    "feature_index",
    [
        pa.field("row", pa.int64(), nullable=False),          # row in every Zarr array of the store
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("identity", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("valid", pa.bool_(), nullable=False),        # a face was found and aligned
        pa.field("yaw", pa.float32()),
        pa.field("pitch", pa.float32()),
        pa.field("roll", pa.float32()),
        pa.field("status", pa.string(), nullable=False),
    ],
)

IDENTITIES = _schema(
    "identities",
    [
        pa.field("identity", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("num_samples", pa.int32(), nullable=False),  # samples of the identity in the feature index
        pa.field("num_valid", pa.int32(), nullable=False),    # of which a face was found
        pa.field("num_canonical", pa.int32(), nullable=False),  # k samples averaged into the canonical shape
        pa.field("canonical_points", pa.list_(pa.float32())), # [x0, y0, ...] aligned-crop pixels
        pa.field("canonical_pose_deviation", pa.float32()),   # mean |yaw|+|pitch|+|roll| of those k, degrees
        pa.field("mean_pose_deviation", pa.float32()),        # the same over all valid samples
    ],
)

# Output of `facerec embed` (not part of a store): one row per input image, in input order.
EMBEDDINGS = _schema(
    "embeddings",
    [
        pa.field("path", pa.string(), nullable=False),        # the input file as given
        pa.field("detected", pa.bool_(), nullable=False),     # a face was found and aligned
        pa.field("embedding", pa.list_(pa.float32())),        # L2-normalised, mirror-summed; null without a face
        pa.field("status", pa.string(), nullable=False),      # "ok" or a reason code
        pa.field("error", pa.string()),
        pa.field("yaw", pa.float32()),                        # degrees, as in the landmarks table
        pa.field("pitch", pa.float32()),
        pa.field("roll", pa.float32()),
    ],
)

TABLES: dict[str, pa.Schema] = {
    "samples": SAMPLES,
    "landmarks": LANDMARKS,
    "feature_index": FEATURE_INDEX,
    "identities": IDENTITIES,
    "embeddings": EMBEDDINGS,
}


def table_schema(name: str) -> pa.Schema:
    try:
        return TABLES[name]
    except KeyError:
        raise SchemaMismatchError(f"unknown table {name!r}; known tables: {', '.join(TABLES)}") from None


def check_table_schema(schema: pa.Schema, expected: pa.Schema, where: str) -> None:
    """Refuse a table of another layout version, another table kind, or missing columns."""
    meta = schema.metadata or {}
    name = expected.metadata[META_TABLE].decode()
    found_name = meta.get(META_TABLE, b"<none>").decode()
    found_version = meta.get(META_VERSION, b"<none>").decode()
    if found_name != name:
        raise SchemaMismatchError(f"{where}: expected a {name!r} table, found table {found_name!r}")
    if found_version != str(LAYOUT_VERSION):
        raise SchemaMismatchError(
            f"{where}: layout version {found_version} but this facerec reads version {LAYOUT_VERSION}; "
            "rebuild the store with this version (rerun the stage with --overwrite)"
        )
    missing = [f.name for f in expected if f.name not in schema.names]
    if missing:
        raise SchemaMismatchError(f"{where}: {name} table lacks columns {missing}")


def empty_table(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()
