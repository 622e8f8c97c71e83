"""A trained run's embeddings of benchmark images that went through exactly the training data path.

The images are built into a store with the run's extractor and crop size
(``facerec.evaluation.lfw.build_lfw_store``), their rows are read with the run's input channels
(``LoadedRun.reader``) and embedded with the mirror convention. ``facerec.recognition.pair_eval`` runs
this on any pair benchmark (LFW, CFP, a ``.bin``); ``benchmarks/ablation.py`` on LFW's test folds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from facerec.recognition.inference import LoadedRun, embed_dataset

log = logging.getLogger(__name__)


def embed_store_images(loaded: LoadedRun, fset, row_of: dict[str, int], relpaths: Sequence[str], *,
                       batch_size: int = 64) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Mirrored embeddings of store images with the run's input channels (``loaded``: a
    ``facerec.recognition.inference.LoadedRun``); returns ({path: vector}, {path: "aligned" | "no_face_centre_crop"})."""
    dataset = loaded.reader(fset, np.unique([row_of[r] for r in relpaths]))
    rows, emb = embed_dataset(loaded.model, dataset, loaded.device, batch_size=batch_size, amp_dtype=loaded.amp_dtype)
    by_row = {int(r): e for r, e in zip(rows, emb)}
    vectors = {rel: by_row[row_of[rel]] for rel in relpaths}
    how = {rel: "aligned" if fset.valid[row_of[rel]] else "no_face_centre_crop" for rel in relpaths}
    return vectors, how
