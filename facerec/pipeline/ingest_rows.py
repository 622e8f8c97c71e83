"""Row-level ingest, shared by the driver ingest and the Spark ingest: ids, order keys, probes, shard tables.

One definition of how a source record becomes a staged row (``validate_record``: ``sample_id``, the
seeded order key, the probe's status) and of how staged rows become a samples shard (``shard_table``),
so ``facerec.pipeline.ingest`` and ``facerec.pipeline.spark_ingest`` write the same bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa

from facerec.pipeline.decode import CORRUPT, EMPTY, ImageRejected, probe_image
from facerec.pipeline.sources import SourceRecord
from facerec.schemas import SAMPLES, STATUS_OK

DUPLICATE = "duplicate"
NO_LABEL = "no_label"
RUN_BYTES = 256 << 20          # image bytes per sorted staging run (the staging memory bound)
_ORDER_KEY = "order_key"
_STAGED_COLUMNS = ("sample_id", "identity", "source_path", "image", "format", "width", "height", "status", "error")
_STAGING_SCHEMA = pa.schema([SAMPLES.field(n) for n in _STAGED_COLUMNS] + [pa.field(_ORDER_KEY, pa.uint64(), False)])


def sample_id(identity: str, data: bytes | None, source_path: str) -> str:
    """Content hash: sha1(identity NUL bytes), hex. Rows without bytes are keyed by their source path."""
    h = hashlib.sha1(identity.encode("utf-8") + b"\0")
    h.update(data if data else b"\0no-bytes\0" + source_path.encode("utf-8"))
    return h.hexdigest()


def _keyed_u64(sid: str, seed: int, person: bytes) -> int:
    digest = hashlib.blake2b(sid.encode(), digest_size=8, key=str(seed).encode(), person=person).digest()
    return int.from_bytes(digest, "big")


def order_key(sid: str, seed: int) -> int:
    """Position of a sample in the shuffled order: a seeded 64-bit hash of its id."""
    return _keyed_u64(sid, seed, b"shuffle")


def keep_sample(sid: str, seed: int, prob: float) -> bool:
    """Seeded Bernoulli(prob) per sample id: the same sample is kept or not whatever the arrival order."""
    return prob >= 1.0 or _keyed_u64(sid, seed, b"sample") < prob * 2.0**64


def validate_record(rec: SourceRecord, seed: int, sid: str | None = None) -> dict[str, Any]:
    """One staged row: ids, the bytes as given, and the probe's verdict (status + message)."""
    sid = sid or sample_id(rec.identity, rec.data, rec.source_path)
    row: dict[str, Any] = {
        "sample_id": sid, "identity": rec.identity, "source_path": rec.source_path, "image": rec.data,
        "format": None, "width": None, "height": None, "status": STATUS_OK, "error": None,
        _ORDER_KEY: order_key(sid, seed),
    }
    if not rec.identity:
        row.update(status=NO_LABEL, error="the source row has no label (identity)")
        return row
    if rec.data is None:
        row.update(status=EMPTY, error="the source row holds no image bytes")
        return row
    try:
        info = probe_image(rec.data)
    except ImageRejected as exc:
        row.update(status=exc.reason, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this row's verdict, not the job's
        row.update(status=CORRUPT, error=f"decoder failed: {type(exc).__name__}: {exc}")
    else:
        row.update(format=info.format, width=info.width, height=info.height)
    return row


def shard_table(staged: pa.Table, shard: int, identities: list[str], split: str) -> pa.Table:
    """Staged rows (``_STAGED_COLUMNS``, in shard order) -> one samples shard table (schema ``SAMPLES``).

    The one place a shard's table is built, by the driver ingest and the Spark ingest alike, so the
    two write the same bytes. ``label`` is the identity's index in ``identities`` (-1 when absent).
    """
    import pyarrow.compute as pc

    n = staged.num_rows
    label = pc.index_in(staged.column("identity"), value_set=pa.array(identities, pa.string()))
    cols = {name: staged.column(name).combine_chunks() for name in _STAGED_COLUMNS}
    cols["label"] = pc.fill_null(label, -1).cast(pa.int32()).combine_chunks()
    cols["split"] = pa.array([split] * n, pa.string())
    cols["shard"] = pa.array([shard] * n, pa.int32())
    cols["position"] = pa.array(range(n), pa.int32())
    return pa.Table.from_pydict({f.name: cols[f.name] for f in SAMPLES}, schema=SAMPLES)
