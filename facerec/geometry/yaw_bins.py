"""The |yaw| bins every metric, table and plot uses: one definition.

Degrees, ``[lo, hi)``, the last open-ended: 0-15, 15-30, 30-45, 45-60, 60-75, 75+. The last two exist
since profiles are found and posed: with the calibrated yaw (``face_pose``) MediaPipe puts 692 of CFP's
1,962 found profiles at 60-75 and 1,051 at 75+. A bin with too few faces or pairs gets a note from its
consumer instead of a number. Used by the verification and NME metrics, their plots, ``bench_pose``
and the store's |yaw| histogram (``facerec inspect``, the report).
"""

from __future__ import annotations

import math

YAW_BIN_EDGES: tuple[tuple[float, float], ...] = (
    (0.0, 15.0), (15.0, 30.0), (30.0, 45.0), (45.0, 60.0), (60.0, 75.0), (75.0, math.inf),
)


def bin_name(lo: float, hi: float) -> str:
    return f"{lo:g}+" if math.isinf(hi) else f"{lo:g}-{hi:g}"


YAW_BIN_NAMES: tuple[str, ...] = tuple(bin_name(lo, hi) for lo, hi in YAW_BIN_EDGES)
