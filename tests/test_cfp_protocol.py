"""CFP's FF and FP protocols parsed from the real files; malformed files refused clearly."""

from __future__ import annotations

from collections import Counter

import pytest

from facerec.errors import ConfigError, SourceError
from facerec.evaluation.cfp import cfp_images_dir, read_cfp_pairs, read_pair_list


@pytest.mark.parametrize("protocol", ["FF", "FP"])
def test_real_protocol(cfp_dir, protocol):
    pairs = read_cfp_pairs(cfp_dir, protocol)
    assert len(pairs) == 7000
    assert Counter(p.fold for p in pairs) == {k: 700 for k in range(10)}
    assert Counter((p.fold, p.same) for p in pairs)[(3, True)] == 350
    images = cfp_images_dir(cfp_dir)
    keys = {p.path_a for p in pairs} | {p.path_b for p in pairs}
    assert all((images / k).is_file() for k in keys)
    assert all("/frontal/" in p.path_a for p in pairs)
    second = "/frontal/" if protocol == "FF" else "/profile/"
    assert all(second in p.path_b for p in pairs)
    # same pairs show one person (the folder), different pairs two
    assert all((p.path_a[:3] == p.path_b[:3]) == p.same for p in pairs)


def test_first_and_last_pairs_match_the_files(cfp_dir):
    """FP: i indexes the frontal list, j the profile list; the last fold's last line is a different pair."""
    pairs = read_cfp_pairs(cfp_dir, "fp")
    proto = cfp_dir / "cfp-dataset" / "Protocol"
    frontal, profile = read_pair_list(proto / "Pair_list_F.txt"), read_pair_list(proto / "Pair_list_P.txt")
    assert len(frontal) == 5000 and len(profile) == 2000
    i, j = map(int, (proto / "Split/FP/01/same.txt").read_text().split()[0].split(","))
    assert (pairs[0].path_a, pairs[0].path_b, pairs[0].same, pairs[0].fold) == (frontal[i], profile[j], True, 0)
    i, j = map(int, (proto / "Split/FP/10/diff.txt").read_text().split()[-1].split(","))
    assert (pairs[-1].path_a, pairs[-1].path_b, pairs[-1].same, pairs[-1].fold) == (frontal[i], profile[j], False, 9)


def test_malformed(tmp_path):
    with pytest.raises(ConfigError, match="FF, FP"):
        read_cfp_pairs(tmp_path, "PP")
    with pytest.raises(SourceError, match="not a CFP folder"):
        read_cfp_pairs(tmp_path, "FF")
    proto = tmp_path / "Protocol"
    (tmp_path / "Data" / "Images").mkdir(parents=True)
    (proto / "Split" / "FF" / "01").mkdir(parents=True)
    (proto / "Pair_list_F.txt").write_text("1 ../Data/Images/001/frontal/01.jpg\n2 ../Data/Images/001/frontal/02.jpg\n")
    (proto / "Split" / "FF" / "01" / "same.txt").write_text("1,2\n")
    (proto / "Split" / "FF" / "01" / "diff.txt").write_text("1;2\n")
    with pytest.raises(SourceError, match=r"diff.txt line 1: expected 'i,j'"):
        read_cfp_pairs(tmp_path, "FF")
    (proto / "Split" / "FF" / "01" / "diff.txt").write_text("1,9\n")
    with pytest.raises(SourceError, match="missing from the image lists"):
        read_cfp_pairs(tmp_path, "FF")
    (proto / "Split" / "FF" / "01" / "diff.txt").write_text("")
    with pytest.raises(SourceError, match="1 same / 0 different"):
        read_cfp_pairs(tmp_path, "FF")
    (proto / "Pair_list_F.txt").write_text("1 Images/001.jpg\n")
    with pytest.raises(SourceError, match="Pair_list_F.txt line 1"):
        read_cfp_pairs(tmp_path, "FF")
