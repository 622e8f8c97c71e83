"""Rows for the landmark autoencoder: a face's normalised landmarks and pose -> its identity's canonical shape.

Frames and units
- Input points come from the features stage (``landmarks`` array, float32 [N, P, 2], aligned-crop
  pixels); targets from the canonical stage (``IDENTITIES.canonical_points``, the same frame).
- Both are normalised the same way, each shape by itself: centred on the mean of its P points and
  divided by the RMS distance of the points to that centre (``normalise_shapes``). RMS rather than the
  inter-ocular distance because the eyes foreshorten by cos(yaw): dividing a profile face by its small
  inter-ocular distance would blow it up exactly where the model matters most, while the RMS radius
  uses all P points (the vertical extent does not shrink with yaw) and is robust to one noisy point.
  The normalised frame has no units; NME (``facerec.evaluation.nme``) is frame-independent.
- Pose: yaw, pitch, roll in degrees, divided by ``POSE_SCALE_DEG`` (90) for the model input.

Splits are by identity (``identity_holdout``): a seeded hash puts each identity in the training part or
the held-out part, so evaluation is on people never seen in training. Identities are filtered through
the identities table (vectorised joins with pyarrow, no Python loop over rows).

Small stores are read once into RAM (``InMemoryLandmarks``); a store whose landmarks would exceed the
RAM budget is streamed (``StreamingLandmarks``): the index Parquet files are read with
``iter_batches`` and each batch's landmark rows with one contiguous Zarr slice.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from facerec.errors import ConfigError, StageNotReadyError, StoreError
from facerec.geometry.landmark_sets import LandmarkSet, landmark_set
from facerec.pipeline.canonical import read_identities
from facerec.schemas.tables import FEATURE_INDEX, check_table_schema
from facerec.schemas.zarr_layout import LANDMARKS
from facerec.store.feature_arrays import open_feature_group
from facerec.store.layout import StoreLayout
from facerec.store.open_store import find_feature_group, index_location
from facerec.store.splits import unit_hash

log = logging.getLogger(__name__)

POSE_SCALE_DEG = 90.0
TRAIN, HOLDOUT = "train", "holdout"
PARTS = (TRAIN, HOLDOUT)
_INDEX_COLUMNS = ["row", "identity", "valid", "yaw", "pitch", "roll"]
# Reasons a feature-index row is not used; every row is either used or counted under one of these.
EXCLUDED_INVALID = "invalid"                  # no face found / not aligned (index ``valid`` false)
EXCLUDED_NO_POSE = "no_pose"                  # yaw, pitch or roll missing
EXCLUDED_NO_CANONICAL = "no_canonical"        # identity has no canonical shape in the identities table
EXCLUDED_FEW_VALID = "identity_too_few_valid"  # identity has fewer valid samples than asked
EXCLUDED_DEGENERATE = "degenerate_points"     # points non-finite or collapsed (RMS radius ~ 0)
EXCLUDED_UNUSABLE_IDENTITY = "unusable_identity"  # row of an identity excluded from the targets (see above)


# ---------------------------------------------------------------------------------------------------
# Pure functions on arrays
# ---------------------------------------------------------------------------------------------------
def normalise_shapes(points: np.ndarray, min_scale: float = 1e-6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[..., P, 2] pixels -> (normalised [..., P, 2], centre [..., 2] px, scale [...] px).

    ``normalised = (points - centre) / scale`` with centre the mean of the points and scale the RMS
    distance to it. A shape with scale below ``min_scale`` or with non-finite values gets scale NaN
    and NaN points; callers count and exclude those rows (``finite_shapes``).
    """
    points = np.asarray(points, dtype=np.float32)
    centre = points.mean(axis=-2)
    centred = points - centre[..., None, :]
    scale = np.sqrt((centred**2).sum(axis=-1).mean(axis=-1))
    bad = ~np.isfinite(scale) | (scale < min_scale)
    scale = np.where(bad, np.nan, scale).astype(np.float32)
    return centred / scale[..., None, None], centre, scale


def finite_shapes(points: np.ndarray) -> np.ndarray:
    """[N, P, 2] -> [N] bool: every coordinate finite."""
    return np.isfinite(points).all(axis=(-1, -2))


def identity_holdout(identities: Sequence[str], holdout_frac: float, seed: int) -> np.ndarray:
    """[K] identity names -> [K] bool, True for the held-out part.

    The same seeded BLAKE2b identity hash as ``facerec.store.splits.assign_splits`` uses for its
    ``test`` identities: with the same seed and fraction, the autoencoder's held-out people are exactly
    the recogniser's test people, so a recogniser fed predicted canonical landmarks never meets a test
    identity the autoencoder trained on. One hash per identity (not per row), independent of row order.
    """

    if not 0.0 < holdout_frac < 1.0:
        raise ConfigError(f"holdout_identity_frac must be in (0, 1), found {holdout_frac}")
    return unit_hash(list(identities), seed, "identity") < holdout_frac


def pose_input(pose_deg: np.ndarray) -> np.ndarray:
    """[N, 3] degrees -> [N, 3] model input (divided by ``POSE_SCALE_DEG``)."""
    return (np.asarray(pose_deg, dtype=np.float32) / POSE_SCALE_DEG).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# Canonical targets (one row per identity)
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CanonicalTargets:
    """Normalised canonical shapes of the identities that can serve as targets.

    identity: [K] names (pyarrow string array, for vectorised joins); shapes: [K, P, 2] normalised;
    centre: [K, 2] and scale: [K] the aligned-crop pixel frame each shape was normalised from;
    holdout: [K] bool (the identity's part); excluded: identities not usable, by reason.
    """

    identity: pa.Array
    shapes: np.ndarray
    centre: np.ndarray
    scale: np.ndarray
    holdout: np.ndarray
    excluded: dict[str, int] = field(default_factory=dict)

    def part_mask(self, part: str) -> np.ndarray:
        _check_part(part)
        return self.holdout if part == HOLDOUT else ~self.holdout

    def mean_shape(self, part: str = TRAIN) -> np.ndarray:
        """[P, 2] mean normalised canonical shape of the identities of ``part`` (each identity once)."""
        mask = self.part_mask(part)
        if not mask.any():
            raise StoreError(f"no identities in the {part} part; lower or raise holdout_identity_frac")
        return self.shapes[mask].mean(axis=0)

    def mean_frame(self, part: str = TRAIN) -> tuple[np.ndarray, float]:
        """Mean pixel centre [2] and RMS radius of the canonical shapes of ``part``: where a frontal face
        sits in the aligned crop, used to place a predicted normalised shape back in crop pixels."""
        mask = self.part_mask(part)
        if not mask.any():
            raise StoreError(f"no identities in the {part} part; lower or raise holdout_identity_frac")
        return self.centre[mask].mean(axis=0), float(self.scale[mask].mean())


def canonical_targets(
    table: pa.Table, lset: LandmarkSet, holdout_frac: float, seed: int, min_valid: int = 2
) -> CanonicalTargets:
    """Usable identities of an IDENTITIES table, their normalised canonical shapes and their part.

    An identity is usable when it has a canonical shape of 2P finite, non-collapsed numbers and at
    least ``min_valid`` valid samples (with one, the canonical shape is that very sample).
    """
    p = lset.num_points
    excluded: Counter = Counter()
    has_points = pc.is_valid(table["canonical_points"])
    excluded[EXCLUDED_NO_CANONICAL] += int(pc.sum(pc.invert(has_points)).as_py() or 0)
    table = table.filter(has_points)
    lengths = pc.list_value_length(table["canonical_points"]).to_numpy()
    if (lengths != 2 * p).any():
        bad = int((lengths != 2 * p).sum())
        raise StoreError(
            f"identities table: canonical_points must hold 2*{p} = {2 * p} numbers for {lset.name!r}, "
            f"found other lengths ({sorted(set(lengths.tolist()))[:5]}) in {bad} rows; was it built with another extractor?"
        )
    few = table["num_valid"].to_numpy() < min_valid
    excluded[EXCLUDED_FEW_VALID] += int(few.sum())
    table = table.filter(pa.array(~few))
    flat = pc.list_flatten(table["canonical_points"]).to_numpy(zero_copy_only=False)
    shapes, centre, scale = normalise_shapes(flat.reshape(-1, p, 2))
    good = finite_shapes(shapes)
    excluded[EXCLUDED_DEGENERATE] += int((~good).sum())
    table = table.filter(pa.array(good))
    identity = table["identity"].combine_chunks()
    holdout = identity_holdout(identity.to_pylist(), holdout_frac, seed)
    return CanonicalTargets(identity=identity, shapes=shapes[good], centre=centre[good], scale=scale[good],
                            holdout=holdout, excluded={k: v for k, v in excluded.items() if v})


# ---------------------------------------------------------------------------------------------------
# Rows: an index scan joined with the landmarks array and the targets
# ---------------------------------------------------------------------------------------------------
@dataclass
class LandmarkBatch:
    """Rows ready for the model. points, target: [B, P, 2] float32 normalised; pose_deg: [B, 3] float32
    degrees (yaw, pitch, roll); target_index: [B] int64 into ``CanonicalTargets``; row: [B] int64 store rows."""

    points: np.ndarray
    pose_deg: np.ndarray
    target: np.ndarray
    target_index: np.ndarray
    row: np.ndarray

    def __len__(self) -> int:
        return int(self.row.shape[0])

    def take(self, idx: np.ndarray) -> "LandmarkBatch":
        return LandmarkBatch(self.points[idx], self.pose_deg[idx], self.target[idx], self.target_index[idx], self.row[idx])

    @staticmethod
    def concat(batches: Sequence["LandmarkBatch"], num_points: int) -> "LandmarkBatch":
        if not batches:
            empty = np.zeros((0, num_points, 2), np.float32)
            return LandmarkBatch(empty, np.zeros((0, 3), np.float32), empty.copy(), np.zeros(0, np.int64), np.zeros(0, np.int64))
        return LandmarkBatch(*(np.concatenate([getattr(b, f) for b in batches]) for f in
                               ("points", "pose_deg", "target", "target_index", "row")))


class LandmarkReader:
    """Reads (points, pose, target) rows of one feature set, for one part of the identity split.

    Opens ``STORE/features/<extractor>-<size>.zarr`` (landmarks array), the index Parquet files beside
    it, and the canonical-stage identities table. ``excluded[part]`` counts the index rows a full scan of
    ``part`` did not use, by reason; rows of identities that are in no part (``unusable_identity``) are
    counted by the scans of both parts alike.
    """

    def __init__(self, store: str, extractor: str, img_size: int, *, holdout_frac: float, seed: int,
                 min_valid_per_identity: int = 2, index_batch_rows: int = 4096) -> None:
        self.lset = landmark_set(extractor)
        zarr_loc = find_feature_group(store, extractor, img_size)
        index_loc = index_location(zarr_loc)
        if not StoreLayout.is_finished(index_loc):
            raise StageNotReadyError(f"no finished features index at {index_loc}; run `facerec features` first")
        group, flayout = open_feature_group(zarr_loc)
        if flayout.num_points != self.lset.num_points:
            raise StoreError(f"{zarr_loc}: landmarks have {flayout.num_points} points, "
                             f"extractor {extractor!r} gives {self.lset.num_points}")
        self.landmarks = group[LANDMARKS]
        self.index_files = sorted(index_loc.fs.glob(f"{index_loc.path.rstrip('/')}/shard-*.parquet"))
        if not self.index_files:
            raise StoreError(f"{index_loc} is marked finished but holds no shard-*.parquet files")
        self.fs = index_loc.fs
        self.index_batch_rows = index_batch_rows
        self.targets = canonical_targets(read_identities(store, extractor, img_size), self.lset, holdout_frac, seed,
                                         min_valid_per_identity)
        self.excluded: dict[str, Counter] = {part: Counter() for part in PARTS}

    @property
    def num_points(self) -> int:
        return self.lset.num_points

    def total_index_rows(self) -> int:
        """Rows in the index (from Parquet footers only): an upper bound of the usable rows."""
        total = 0
        for path in self.index_files:
            with self.fs.open(path, "rb") as fh:
                total += pq.ParquetFile(fh).metadata.num_rows
        return total

    def scan(self, part: str, shard_order: Sequence[int] | None = None) -> Iterator[LandmarkBatch]:
        """Batches of usable rows of ``part`` in index order (shards in ``shard_order`` if given)."""
        _check_part(part)
        order = range(len(self.index_files)) if shard_order is None else shard_order
        counts: Counter = Counter()
        for i in order:
            path = self.index_files[i]
            with self.fs.open(path, "rb") as fh:
                pf = pq.ParquetFile(fh)
                check_table_schema(pf.schema_arrow, FEATURE_INDEX, where=path)
                for record_batch in pf.iter_batches(batch_size=self.index_batch_rows, columns=_INDEX_COLUMNS):
                    batch = self._rows(record_batch, part, counts)
                    if batch is not None and len(batch):
                        yield batch
        if shard_order is None or len(shard_order) == len(self.index_files):
            self.excluded[part] = counts

    def _rows(self, rb: pa.RecordBatch, part: str, counts: Counter) -> LandmarkBatch | None:
        """One index batch -> its usable rows of ``part``; counts every other row by reason."""
        target_index = pc.index_in(rb.column("identity"), value_set=self.targets.identity)
        has_target = pc.is_valid(target_index).to_numpy(zero_copy_only=False)
        tidx = pc.fill_null(target_index, 0).to_numpy(zero_copy_only=False).astype(np.int64)
        in_part = has_target & self.targets.part_mask(part)[tidx]
        valid = rb.column("valid").to_numpy(zero_copy_only=False).astype(bool)
        pose = np.stack([rb.column(c).to_numpy(zero_copy_only=False) for c in ("yaw", "pitch", "roll")], axis=1)
        pose = np.asarray(pose, dtype=np.float32)
        has_pose = np.isfinite(pose).all(axis=1)
        # Rows of the other part belong to the other part's scan; rows of unusable identities to no part.
        counts[EXCLUDED_UNUSABLE_IDENTITY] += int((~has_target).sum())
        counts[EXCLUDED_INVALID] += int((in_part & ~valid).sum())
        counts[EXCLUDED_NO_POSE] += int((in_part & valid & ~has_pose).sum())
        keep = np.flatnonzero(in_part & valid & has_pose)
        if keep.size == 0:
            return None
        rows = rb.column("row").to_numpy(zero_copy_only=False).astype(np.int64)[keep]
        lo, hi = int(rows.min()), int(rows.max()) + 1
        raw = np.asarray(self.landmarks[lo:hi])[rows - lo]          # one contiguous Zarr read per batch
        points, _, _ = normalise_shapes(raw)
        good = finite_shapes(points)
        counts[EXCLUDED_DEGENERATE] += int((~good).sum())
        keep_t = tidx[keep][good]
        return LandmarkBatch(points=points[good], pose_deg=pose[keep][good], target=self.targets.shapes[keep_t],
                             target_index=keep_t, row=rows[good])

    def load(self, part: str) -> LandmarkBatch:
        """Every usable row of ``part`` in RAM."""
        return LandmarkBatch.concat(list(self.scan(part)), self.num_points)

    def count(self, part: str) -> int:
        """Usable rows of ``part`` (a full scan; reads the landmark rows too, to count degenerate ones)."""
        return sum(len(b) for b in self.scan(part))


# ---------------------------------------------------------------------------------------------------
# Sources: what the training loop iterates
# ---------------------------------------------------------------------------------------------------
class InMemoryLandmarks:
    """All rows of a part in RAM; an epoch is a seeded permutation cut into batches."""

    def __init__(self, rows: LandmarkBatch) -> None:
        self.rows = rows

    @property
    def num_rows(self) -> int:
        return len(self.rows)

    def batches(self, batch_size: int, *, epoch: int = 0, seed: int = 0, shuffle: bool = True) -> Iterator[LandmarkBatch]:
        order = np.random.default_rng([seed, epoch]).permutation(self.num_rows) if shuffle else np.arange(self.num_rows)
        for start in range(0, self.num_rows, batch_size):
            yield self.rows.take(order[start:start + batch_size])


class StreamingLandmarks:
    """Rows of a part streamed from the store: shards in a seeded order, rows mixed in a shuffle buffer.

    Ingest shuffled the source globally, so shard-level order plus a buffer of ``buffer_rows`` rows gives
    batches of mixed identities without holding the part in RAM.
    """

    def __init__(self, reader: LandmarkReader, part: str, num_rows: int, buffer_rows: int = 65536) -> None:
        self.reader, self.part, self.num_rows, self.buffer_rows = reader, part, num_rows, buffer_rows

    def batches(self, batch_size: int, *, epoch: int = 0, seed: int = 0, shuffle: bool = True) -> Iterator[LandmarkBatch]:
        rng = np.random.default_rng([seed, epoch])
        n_shards = len(self.reader.index_files)
        order = rng.permutation(n_shards).tolist() if shuffle else list(range(n_shards))
        pending: list[LandmarkBatch] = []
        held = 0
        for batch in self.reader.scan(self.part, shard_order=order):
            pending.append(batch)
            held += len(batch)
            if held >= self.buffer_rows:
                buffer = LandmarkBatch.concat(pending, self.reader.num_points)
                buffer = buffer.take(rng.permutation(len(buffer))) if shuffle else buffer
                cut = (len(buffer) // batch_size) * batch_size
                for start in range(0, cut, batch_size):
                    yield buffer.take(np.arange(start, start + batch_size))
                pending = [buffer.take(np.arange(cut, len(buffer)))]
                held = len(pending[0])
        if held:
            rest = InMemoryLandmarks(LandmarkBatch.concat(pending, self.reader.num_points))
            yield from rest.batches(batch_size, epoch=epoch, seed=seed, shuffle=shuffle)


def open_source(reader: LandmarkReader, part: str, max_ram_mb: float) -> InMemoryLandmarks | StreamingLandmarks:
    """In RAM when the part's points and targets fit ``max_ram_mb`` (judged on the index size), else streamed."""
    bytes_per_row = 2 * reader.num_points * 2 * 4 + 3 * 4 + 16
    upper = reader.total_index_rows() * bytes_per_row / 2**20
    if upper <= max_ram_mb:
        return InMemoryLandmarks(reader.load(part))
    log.info("%s part: up to %.0f MB of landmarks > %.0f MB budget; streaming from the store", part, upper, max_ram_mb)
    return StreamingLandmarks(reader, part, reader.count(part))


def _check_part(part: str) -> None:
    if part not in PARTS:
        raise ConfigError(f"unknown part {part!r}; expected one of: {', '.join(PARTS)}")


def describe(reader: LandmarkReader, sizes: dict[str, int]) -> dict[str, Any]:
    """A JSON-ready summary of what was used and what was left out, for the run folder."""
    t = reader.targets
    return {
        "extractor": reader.lset.name,
        "num_points": reader.num_points,
        "identities": {TRAIN: int((~t.holdout).sum()), HOLDOUT: int(t.holdout.sum())},
        "identities_excluded": dict(t.excluded),
        "rows": dict(sizes),
        "rows_excluded": {part: {k: v for k, v in c.items() if v} for part, c in reader.excluded.items()},
    }
