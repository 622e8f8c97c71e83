"""CFP (Celebrities in Frontal-Profile, Sengupta et al. 2016): the FF and FP verification protocols.

Layout (``cfp-dataset/``): ``Data/Images/<NNN>/{frontal,profile}/<NN>.jpg``;
``Protocol/Pair_list_F.txt`` and ``Pair_list_P.txt`` map an image number to a path relative to
``Protocol/`` (``k ../Data/Images/001/frontal/01.jpg``); ``Protocol/Split/{FF,FP}/<01..10>/{same,diff}.txt``
hold 10 folds of ``i,j`` lines. In FF both numbers index the frontal list; in FP ``i`` indexes the
frontal list and ``j`` the profile list. Image keys are paths relative to ``Data/Images``
(``001/profile/02.jpg``). Accuracy: threshold on 9 folds, applied to the 10th (``ten_fold_accuracy``).
"""

from __future__ import annotations

from pathlib import Path

from facerec.errors import ConfigError, SourceError
from facerec.evaluation.pairs import VerificationPair, check_balanced_folds

PROTOCOLS = ("FF", "FP")
_LIST_PREFIX = "../Data/Images/"


def cfp_root(path: Path | str) -> Path:
    """The ``cfp-dataset`` folder: ``path`` itself or its ``cfp-dataset`` child."""
    path = Path(path)
    for cand in (path, path / "cfp-dataset"):
        if (cand / "Protocol").is_dir() and (cand / "Data" / "Images").is_dir():
            return cand
    raise SourceError(f"{path}: not a CFP folder (expected Protocol/ and Data/Images/ in it or in cfp-dataset/)")


def cfp_images_dir(path: Path | str) -> Path:
    return cfp_root(path) / "Data" / "Images"


def read_pair_list(path: Path) -> dict[int, str]:
    """``Pair_list_F.txt``/``Pair_list_P.txt``: image number -> key relative to ``Data/Images``."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise SourceError(f"cannot read CFP image list {path}: {exc}") from exc
    out: dict[int, str] = {}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[0].isdigit() or not fields[1].startswith(_LIST_PREFIX):
            raise SourceError(f"{path} line {n}: expected '<number> {_LIST_PREFIX}NNN/<frontal|profile>/NN.jpg', "
                              f"found {line!r}")
        out[int(fields[0])] = fields[1][len(_LIST_PREFIX):]
    if not out:
        raise SourceError(f"{path}: no images listed")
    return out


def _read_split(path: Path) -> list[tuple[int, int]]:
    try:
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise SourceError(f"cannot read CFP split file {path}: {exc}") from exc
    pairs = []
    for n, line in enumerate(lines, start=1):
        a, sep, b = line.partition(",")
        if not sep or not a.strip().isdigit() or not b.strip().isdigit():
            raise SourceError(f"{path} line {n}: expected 'i,j' (two image numbers), found {line!r}")
        pairs.append((int(a), int(b)))
    return pairs


def read_cfp_pairs(path: Path | str, protocol: str) -> list[VerificationPair]:
    """All pairs of protocol ``FF`` or ``FP``, fold by fold (same pairs first within a fold)."""
    protocol = protocol.upper()
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown CFP protocol {protocol!r}; expected one of: {', '.join(PROTOCOLS)}")
    root = cfp_root(path) / "Protocol"
    frontal = read_pair_list(root / "Pair_list_F.txt")
    second = frontal if protocol == "FF" else read_pair_list(root / "Pair_list_P.txt")
    split = root / "Split" / protocol
    folds = sorted(p for p in split.iterdir() if p.is_dir()) if split.is_dir() else []
    if not folds:
        raise SourceError(f"{split}: no fold folders (expected 01..10 holding same.txt and diff.txt)")
    pairs: list[VerificationPair] = []
    for fold, folder in enumerate(folds):
        for name, same in (("same.txt", True), ("diff.txt", False)):
            for i, j in _read_split(folder / name):
                if i not in frontal or j not in second:
                    raise SourceError(f"{folder / name}: pair {i},{j} names an image number missing from the "
                                      f"image lists ({len(frontal)} frontal, {len(second)} in the second list)")
                pairs.append(VerificationPair(frontal[i], second[j], same, fold))
    check_balanced_folds(pairs, str(split))
    return pairs
