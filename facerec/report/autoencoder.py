"""The landmark autoencoder's results as designed tables: the data it used and held-out NME by |yaw|.

Reads ``data.json`` (``facerec.frontalization.data.describe``) and ``eval.json``
(``facerec.evaluation.nme.summarise_by_yaw`` plus the split's description) of its run folder.
"""

from __future__ import annotations

from collections.abc import Mapping

from facerec.report.document import Paragraph, Table
from facerec.report.recogniser import count, num

PARTS = {"train": "training", "holdout": "held out"}


def data_table(data: Mapping) -> Table:
    rows = []
    excluded = data.get("rows_excluded") or {}
    for part, label in PARTS.items():
        left = excluded.get(part) or {}
        rows.append([label, count((data.get("identities") or {}).get(part)), count((data.get("rows") or {}).get(part)),
                     ", ".join(f"{reason} {n:,}" for reason, n in sorted(left.items())) or "none"])
    return Table(["part", "people", "faces", "faces left out, by reason"], rows,
                 f"Data (data.json): {data.get('extractor')} landmarks, {count(data.get('num_points'))} points; "
                 "split by person")


def nme_table(ev: Mapping) -> Table:
    from facerec.frontalization.evaluate import METHOD_LABELS, METHODS

    counts = ev.get("count") or {}
    bins = sorted(counts, key=lambda b: b != "all")          # all faces first, then the bins in their order
    rows = [["faces", *(count(counts[b]) for b in bins)]]
    nme = ev.get("nme") or {}
    for method in sorted(nme, key=lambda m: METHODS.index(m) if m in METHODS else len(METHODS)):
        rows.append([METHOD_LABELS.get(method, method), *(num(nme[method].get(b), 4) for b in bins)])
    headers = ["method", *("all |yaw|" if b == "all" else f"|yaw| {b}°" for b in bins)]
    return Table(headers, rows, f"Mean NME on {ev.get('split', 'held-out faces')}, normalised by the "
                                f"{ev.get('normaliser', 'inter-ocular distance')} (lower is better; — : no face in the bin)")


def autoencoder_blocks(results: Mapping[str, Mapping]) -> list:
    """Tables for the files the autoencoder writes; other JSON files in its folder are named, not dumped."""
    blocks: list = []
    if isinstance(results.get("data.json"), Mapping):
        blocks.append(data_table(results["data.json"]))
    ev = results.get("eval.json")
    if isinstance(ev, Mapping) and ev.get("nme"):
        nme = ev["nme"]
        blocks.append(nme_table(ev))
        if all(isinstance(nme.get(k), Mapping) for k in ("model", "input", "mean")):
            m, i, s = (nme[k].get("all") for k in ("model", "input", "mean"))
            if None not in (m, i, s):
                blocks.append(Paragraph(
                    f"Over all held-out faces the autoencoder's error is {num(m, 4)}, against {num(i, 4)} for the "
                    f"posed input unchanged and {num(s, 4)} for the mean canonical shape: "
                    + ("it beats both baselines." if m < min(i, s) else
                       "it does not beat " + " and ".join(n for n, v in (("the input", i), ("the mean shape", s))
                                                            if m >= v) + " here.")))
    others = sorted(k for k in results if k not in ("data.json", "eval.json"))
    if others:
        blocks.append(Paragraph("Also in the run folder: " + ", ".join(others) + ".", muted=True))
    return blocks
