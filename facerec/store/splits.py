"""Deterministic, identity-aware splits of a feature index, and verification pairs from its test part.

- ``train``: images of training identities;
- ``val``: held-out images of training identities (closed-set classification accuracy);
- ``test``: every image of held-out identities (open-set verification pairs).

Membership is a hash of (seed, identity) and (seed, sample_id) through BLAKE2b, so it depends neither
on row order nor on which other rows exist: adding samples never moves an existing one to another split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from facerec.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

TRAIN, VAL, TEST = "train", "val", "test"
SPLITS = (TRAIN, VAL, TEST)


@dataclass(frozen=True)
class SplitConfig:
    """The knobs of ``assign_splits``; frozen so a run can save it beside its outputs."""

    holdout_identity_frac: float = 0.1
    holdout_image_frac: float = 0.1
    min_images_for_holdout: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("holdout_identity_frac", "holdout_image_frac"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value}")
        if self.min_images_for_holdout < 2:
            raise ConfigError(f"min_images_for_holdout must be >= 2 (an identity keeps one training image), got {self.min_images_for_holdout}")


def unit_hash(keys: "np.ndarray | list[str]", seed: int, salt: str) -> np.ndarray:
    """Each key -> a float in [0, 1) from BLAKE2b of ``salt:seed:key``; stable across platforms and versions."""
    prefix = f"{salt}:{seed}:".encode()
    out = np.empty(len(keys), dtype=np.float64)
    for i, key in enumerate(keys):
        digest = hashlib.blake2b(prefix + str(key).encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little") / 2.0**64
    return out


def assign_splits(
    index: "pd.DataFrame",
    *,
    holdout_identity_frac: float = 0.1,
    holdout_image_frac: float = 0.1,
    min_images_for_holdout: int = 2,
    seed: int = 0,
) -> "pd.Series":
    """A ``split`` value per index row ("train" | "val" | "test"), aligned with ``index``.

    ``index`` needs the columns ``identity`` and ``sample_id``. An identity is held out (test) when its
    hash is below ``holdout_identity_frac``. Of a training identity with at least
    ``min_images_for_holdout`` images, an image goes to val when its hash is below
    ``holdout_image_frac``; an identity always keeps at least one training image (the image of largest
    hash goes back to train if all were drawn).
    """
    import pandas as pd

    cfg = SplitConfig(holdout_identity_frac, holdout_image_frac, min_images_for_holdout, seed)
    missing = [c for c in ("identity", "sample_id") if c not in index.columns]
    if missing:
        raise ConfigError(f"assign_splits needs index columns identity and sample_id; missing {missing}")
    identity = index["identity"].to_numpy()
    names, inverse, counts = np.unique(identity, return_inverse=True, return_counts=True)
    held_out = unit_hash(names, cfg.seed, "identity") < cfg.holdout_identity_frac
    image_hash = unit_hash(index["sample_id"].to_numpy(), cfg.seed, "image")
    to_val = (~held_out[inverse]) & (counts[inverse] >= cfg.min_images_for_holdout) & (image_hash < cfg.holdout_image_frac)
    # Keep one training image per training identity: if all of an identity's images went to val,
    # the one of largest hash returns to train (order-independent).
    train_left = np.bincount(inverse, weights=~to_val & ~held_out[inverse], minlength=len(names))
    emptied = np.flatnonzero((train_left == 0) & ~held_out)
    if len(emptied):
        rows = np.flatnonzero(np.isin(inverse, emptied))
        order = np.lexsort((image_hash[rows], inverse[rows]))       # by identity, then hash
        last_of_identity = rows[order][np.r_[np.diff(inverse[rows][order]) != 0, True]]
        to_val[last_of_identity] = False
    split = np.where(held_out[inverse], TEST, np.where(to_val, VAL, TRAIN))
    return pd.Series(split, index=index.index, name="split")


@dataclass(frozen=True)
class ClassMap:
    """Dense training classes 0..C-1 over the training identities (sorted names), as ``str2int``/``int2str``."""

    names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def str2int(self, identities: "np.ndarray | list[str]") -> np.ndarray:
        """Identity names -> class ids (int64); names outside training -> -1."""
        lookup = {name: i for i, name in enumerate(self.names)}
        return np.fromiter((lookup.get(str(n), -1) for n in identities), dtype=np.int64, count=len(identities))

    def int2str(self, classes: "np.ndarray | list[int]") -> list[str]:
        out = []
        for c in classes:
            if not 0 <= int(c) < len(self.names):
                raise ConfigError(f"class id {c} outside 0..{len(self.names) - 1}")
            out.append(self.names[int(c)])
        return out


def training_class_map(index: "pd.DataFrame", split: "pd.Series") -> ClassMap:
    """The classes of a classifier trained on ``split == "train"`` rows: sorted training identities.

    When the index has a ``valid`` column, only identities with at least one valid (face found)
    training image count: a class without a usable image would never be trained. Their rows, like
    test rows, map to -1.
    """
    usable = split.to_numpy() == TRAIN
    if "valid" in index.columns:
        usable &= index["valid"].to_numpy(dtype=bool)
    names = np.unique(index.loc[usable, "identity"].to_numpy())
    return ClassMap(tuple(str(n) for n in names))


def make_verification_pairs(test_index: "pd.DataFrame", num_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced verification pairs among ``test_index`` rows: (row_a int64, row_b int64, same bool).

    ``num_pairs // 2`` same-identity pairs (an identity with 2+ images drawn uniformly, then two
    distinct images) and the rest different-identity pairs (two distinct identities, one image each);
    no unordered pair repeats, and the order is shuffled. Rows are the ``row`` column. The result
    depends on the set of rows and the seed, not on their order. Raises ``ConfigError`` when the rows
    cannot give that many distinct pairs.
    """
    for col in ("row", "identity"):
        if col not in test_index.columns:
            raise ConfigError(f"make_verification_pairs needs index column {col!r}")
    table = test_index[["row", "identity"]].sort_values("row")
    rows = table["row"].to_numpy(np.int64)
    names, ident = np.unique(table["identity"].to_numpy(), return_inverse=True)
    members = [rows[ident == i] for i in range(len(names))]
    rng = np.random.default_rng(seed)
    num_same = num_pairs // 2
    same_a, same_b = _same_pairs(members, num_same, rng)
    diff_a, diff_b = _different_pairs(members, num_pairs - num_same, rng)
    a = np.concatenate([same_a, diff_a])
    b = np.concatenate([same_b, diff_b])
    same = np.r_[np.ones(len(same_a), bool), np.zeros(len(diff_a), bool)]
    order = rng.permutation(len(a))
    return a[order], b[order], same[order]


def _same_pairs(members: list[np.ndarray], count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    multi = [m for m in members if len(m) >= 2]
    possible = sum(len(m) * (len(m) - 1) // 2 for m in multi)
    if count > possible:
        raise ConfigError(f"asked for {count} same-identity pairs, but the test rows allow only {possible}")
    if count == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    if possible <= 4 * count:   # dense: enumerate every pair and draw without replacement
        all_pairs = np.array([(m[i], m[j]) for m in multi for i in range(len(m)) for j in range(i + 1, len(m))])
        pick = all_pairs[rng.choice(len(all_pairs), size=count, replace=False)]
        return pick[:, 0], pick[:, 1]
    seen: set[tuple[int, int]] = set()
    while len(seen) < count:
        m = multi[rng.integers(len(multi))]
        i, j = rng.choice(len(m), size=2, replace=False)
        seen.add((int(min(m[i], m[j])), int(max(m[i], m[j]))))
    pairs = np.array(sorted(seen), dtype=np.int64)
    pairs = pairs[rng.permutation(len(pairs))]
    return pairs[:, 0], pairs[:, 1]


def _different_pairs(members: list[np.ndarray], count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    sizes = np.array([len(m) for m in members], dtype=np.int64)
    possible = (int(sizes.sum()) ** 2 - int((sizes**2).sum())) // 2
    if count > possible:
        raise ConfigError(f"asked for {count} different-identity pairs, but the test rows allow only {possible}")
    if count == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    if possible <= 4 * count:
        all_pairs = np.array([
            (x, y) for i in range(len(members)) for j in range(i + 1, len(members)) for x in members[i] for y in members[j]
        ])
        pick = all_pairs[rng.choice(len(all_pairs), size=count, replace=False)]
        return pick[:, 0], pick[:, 1]
    seen: set[tuple[int, int]] = set()
    while len(seen) < count:
        i, j = rng.choice(len(members), size=2, replace=False)
        x = members[i][rng.integers(sizes[i])]
        y = members[j][rng.integers(sizes[j])]
        seen.add((int(min(x, y)), int(max(x, y))))
    pairs = np.array(sorted(seen), dtype=np.int64)
    pairs = pairs[rng.permutation(len(pairs))]
    return pairs[:, 0], pairs[:, 1]
