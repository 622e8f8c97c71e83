"""``build_train_evaluate``: build (or reuse) the store, train, then verify on held-out identities.

``facerec.recognition.train.main`` only trains; this composes the steps around it, as the ``train``
command and the demo need them. Under torchrun rank 0 builds the store before it joins the process
group (the other ranks wait in the rendezvous) and rank 0 alone evaluates once training has ended.
"""

from __future__ import annotations

import dataclasses
import logging

from facerec.pipeline.build import build_store
from facerec.recognition.config import TrainConfig
from facerec.recognition.evaluate import evaluate_run
from facerec.recognition.train import TrainResult, main as train_main
from facerec.training.distributed import dist_info_from_env

log = logging.getLogger(__name__)


def build_train_evaluate(cfg: TrainConfig) -> TrainResult:
    """Build the store from ``cfg.data_root`` when given, train, and (``cfg.evaluate_after``, every epoch
    done) write RUN/eval.json; the result carries that evaluation."""
    info = dist_info_from_env()
    if cfg.data_root is not None and info.is_main:
        log.info("building or reusing store %s from %s", cfg.store, cfg.data_root)
        build_store(cfg.data_root, cfg.store, extractor=cfg.extractor or "mediapipe", img_size=cfg.img_size)
    result = train_main(cfg)
    if cfg.evaluate_after and result.epochs_done >= cfg.epochs and info.is_main:
        evaluation = evaluate_run(result.run_dir, device=cfg.device, num_pairs=cfg.eval_pairs)
        result = dataclasses.replace(result, evaluation=evaluation)
    return result
