"""Landmark tasks smaller than a shard, so every core stays busy to the end of the stage.

One task per shard leaves cores idle whenever there are few shards per core: 400 dlib images in one
1,024-row shard ran on one of two cores (0.53 of the bare extractor), and 13 LFW shards on 2 cores end
with one core idle for the last shard (7 shards on one core, 6 on the other: up to 1/7 of the stage).
So when there are fewer than ``TASKS_PER_CORE`` shards per core, each shard is cut into ``pieces`` equal
row ranges (13 shards on 2 cores: 26 tasks, 13 a core; the idle tail is at most about 1/8 of a core's
work and usually a fraction of that), computed as separate Spark tasks that commit piece
files (``_pieces/shard-N-KK.parquet``), and a second, light job joins each shard's pieces into the
shard file (whole table, one chunk: the same bytes as a shard computed in one task) and removes them.
With many shards (a cluster's usual case) ``pieces`` is 1 and nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from facerec.schemas import LANDMARKS
from facerec.store import fs
from facerec.store.fs import Location
from facerec.store.integrity import write_recorded_parquet
from facerec.store.layout import shard_file

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PIECES_DIR = "_pieces"
TASKS_PER_CORE = 8      # aim for at least this many tasks per Spark core
MAX_PIECES = 16         # never cut a shard finer than this
MIN_PIECE_ROWS = 16     # nor into pieces smaller than this (per-task cost stays small)


def pieces_per_shard(num_shards: int, parallelism: int, shard_size: int) -> int:
    """How many tasks each shard is cut into: 1 when there are already enough shards per core."""
    wanted = -(-TASKS_PER_CORE * max(1, parallelism) // max(1, num_shards))
    return max(1, min(wanted, MAX_PIECES, shard_size // MIN_PIECE_ROWS))


def piece_rows(num_rows: int, piece: int, pieces: int) -> tuple[int, int]:
    """Row range ``[start, stop)`` of ``piece`` among ``pieces`` near-equal ranges of a shard."""
    return num_rows * piece // pieces, num_rows * (piece + 1) // pieces


def piece_file(out: Location, shard: int, piece: int) -> Location:
    return out.child(PIECES_DIR, f"{shard_file(shard)[:-len('.parquet')]}-{piece:02d}.parquet")


@dataclass(frozen=True)
class JoinPieces:
    """Join one shard's committed piece files into its shard file (a light task: no images)."""

    out: str
    pieces: int

    def __call__(self, shard: int) -> dict[str, Any]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        out = fs.resolve(self.out)
        parts = []
        for piece in range(self.pieces):
            loc = piece_file(out, shard, piece)
            with loc.fs.open(loc.path, "rb") as fh:
                parts.append(pq.ParquetFile(fh).read())
        joined = pa.concat_tables(parts).combine_chunks()
        # the schema object itself, not the one read back (its serialised form differs in the footer)
        table = pa.Table.from_arrays([joined.column(f.name) for f in LANDMARKS], schema=LANDMARKS)
        write_recorded_parquet(table, out.child(shard_file(shard)))   # with its commit record (integrity)
        for piece in range(self.pieces):
            loc = piece_file(out, shard, piece)
            loc.fs.rm(loc.path)
        return {}


def run_pieces(spark: "SparkSession", shards: list[int], task: Any, *, folder: Location, shard_size: int,
               description: str, max_parallel: int | None) -> list[dict[str, Any]]:
    """Run ``task`` over ``shards`` (cut into pieces when that keeps more cores busy); summaries per piece.

    ``task`` is a ``LandmarkShardTask`` (a dataclass with a ``pieces`` field); ``folder`` its output folder.
    """
    from dataclasses import replace

    from facerec.pipeline.spark import run_shards

    parallelism = spark.sparkContext.defaultParallelism if max_parallel is None else max_parallel
    pieces = pieces_per_shard(len(shards), parallelism, shard_size)
    if pieces == 1:
        return run_shards(spark, shards, task, description=description, max_parallel=max_parallel)
    items = [shard * pieces + piece for shard in shards for piece in range(pieces)]
    summaries = run_shards(spark, items, replace(task, pieces=pieces),
                           description=f"{description} ({pieces} pieces per shard)", max_parallel=max_parallel)
    run_shards(spark, shards, JoinPieces(str(folder), pieces), description=f"{description}: join pieces",
               max_parallel=max_parallel)
    pieces_dir = folder.child(PIECES_DIR)
    if pieces_dir.exists():
        pieces_dir.fs.rm(pieces_dir.path, recursive=True)
    return summaries
