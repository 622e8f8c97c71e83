"""Identity-aware splits and verification pairs, on the real LFW identity distribution (lfw-names.txt)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from facerec.errors import ConfigError
from facerec.store.splits import (
    TEST,
    TRAIN,
    VAL,
    SplitConfig,
    assign_splits,
    make_verification_pairs,
    training_class_map,
)


@pytest.fixture(scope="module")
def lfw_index(lfw_dir) -> pd.DataFrame:
    """One index row per LFW image (13,233 rows of 5,749 identities), rows in identity order."""
    names, rows = [], []
    for line in (lfw_dir / "lfw-names.txt").read_text().split("\n"):
        parts = line.split()
        if len(parts) == 2:
            name, count = parts[0], int(parts[1])
            for k in range(1, count + 1):
                names.append(name)
                rows.append(hashlib.sha1(f"{name}_{k:04d}".encode()).hexdigest())
    return pd.DataFrame({"row": np.arange(len(names), dtype=np.int64), "sample_id": rows, "identity": names})


def test_split_fractions_and_identity_rules(lfw_index):
    split = assign_splits(lfw_index, holdout_identity_frac=0.1, holdout_image_frac=0.1, seed=0)
    assert len(lfw_index) == 13233 and set(split) == {TRAIN, VAL, TEST}
    per_identity = pd.crosstab(lfw_index["identity"], split)
    test_ids = per_identity.index[per_identity[TEST] > 0]
    # a held-out identity has all its images in test, none in train/val
    assert (per_identity.loc[test_ids, [TRAIN, VAL]].sum(axis=1) == 0).all()
    assert abs(len(test_ids) / len(per_identity) - 0.1) < 0.02
    train_ids = per_identity.index[per_identity[TEST] == 0]
    # every training identity keeps a training image; single-image identities never lose theirs to val
    assert (per_identity.loc[train_ids, TRAIN] >= 1).all()
    counts = lfw_index.groupby("identity").size()
    singles = counts.index[counts == 1].intersection(train_ids)
    assert (per_identity.loc[singles, VAL] == 0).all()
    eligible = counts.loc[train_ids][counts.loc[train_ids] >= 2].index
    val_frac = per_identity.loc[eligible, VAL].sum() / counts.loc[eligible].sum()
    assert 0.08 < val_frac < 0.12


def test_split_independent_of_row_order_and_depends_on_seed(lfw_index):
    base = assign_splits(lfw_index, seed=3)
    shuffled = lfw_index.sample(frac=1.0, random_state=1)
    again = assign_splits(shuffled, seed=3)
    assert (again.loc[base.index] == base).all()
    other = assign_splits(lfw_index, seed=4)
    assert (other != base).mean() > 0.05


def test_every_image_of_an_identity_drawn_to_val_gives_one_back(lfw_index):
    # with a 0.99 image fraction nearly every image is drawn; each identity must keep exactly one
    split = assign_splits(lfw_index, holdout_identity_frac=0.0, holdout_image_frac=0.99, seed=0)
    train_per_identity = lfw_index.loc[split == TRAIN].groupby("identity").size()
    assert train_per_identity.index.nunique() == lfw_index["identity"].nunique()
    multi = lfw_index.groupby("identity").size()
    assert (train_per_identity.loc[multi.index[multi >= 5]] == 1).mean() > 0.9


def test_class_map_is_dense_over_training_identities(lfw_index):
    split = assign_splits(lfw_index, seed=0)
    cmap = training_class_map(lfw_index, split)
    train_names = set(lfw_index.loc[split == TRAIN, "identity"])
    assert cmap.num_classes == len(train_names) and list(cmap.names) == sorted(train_names)
    classes = cmap.str2int(lfw_index["identity"].to_numpy())
    assert set(classes[(split == TRAIN).to_numpy()]) == set(range(cmap.num_classes))
    assert (classes[(split == VAL).to_numpy()] >= 0).all()          # val identities are training identities
    assert (classes[(split == TEST).to_numpy()] == -1).all()
    some = list(cmap.names[:3])
    assert cmap.int2str(cmap.str2int(some)) == some
    with pytest.raises(ConfigError, match="class id"):
        cmap.int2str([cmap.num_classes])


def test_identities_without_a_valid_training_image_get_no_class(lfw_index):
    split = assign_splits(lfw_index, seed=0)
    index = lfw_index.assign(valid=lfw_index["identity"] != "Colin_Powell")
    assert "Colin_Powell" in set(lfw_index.loc[split == TRAIN, "identity"])
    cmap = training_class_map(index, split)
    assert "Colin_Powell" not in cmap.names
    assert cmap.num_classes == training_class_map(lfw_index, split).num_classes - 1
    assert cmap.str2int(["Colin_Powell"]).tolist() == [-1]


def test_verification_pairs_balanced_distinct_and_deterministic(lfw_index):
    split = assign_splits(lfw_index, seed=0)
    test_rows = lfw_index.loc[split == TEST]
    a, b, same = make_verification_pairs(test_rows, 600, seed=7)
    assert len(a) == len(b) == len(same) == 600 and same.sum() == 300
    identity = lfw_index.set_index("row")["identity"]
    assert (identity.loc[a].to_numpy() == identity.loc[b].to_numpy()).tolist() == same.tolist()
    assert set(a) | set(b) <= set(test_rows["row"])
    assert (a != b).all()
    unordered = {(min(x, y), max(x, y)) for x, y in zip(a, b)}
    assert len(unordered) == 600
    a2, b2, s2 = make_verification_pairs(test_rows.sample(frac=1.0, random_state=0), 600, seed=7)
    assert (a2 == a).all() and (b2 == b).all() and (s2 == same).all()
    a3, _, _ = make_verification_pairs(test_rows, 600, seed=8)
    assert not (a3 == a).all()


def test_verification_pairs_refuse_more_than_possible(lfw_index):
    five = lfw_index[lfw_index["identity"] == "Colin_Powell"].head(5)
    # 5 images of one person give C(5, 2) = 10 same pairs; 50 are asked for
    with pytest.raises(ConfigError, match="same-identity pairs"):
        make_verification_pairs(five, 100, seed=0)


def test_split_config_refuses_bad_fractions():
    with pytest.raises(ConfigError, match="holdout_identity_frac"):
        SplitConfig(holdout_identity_frac=1.5)
    with pytest.raises(ConfigError, match="min_images_for_holdout"):
        SplitConfig(min_images_for_holdout=1)
