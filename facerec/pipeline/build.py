"""One-shot store building: ingest -> landmarks -> features -> canonical, reusing every finished stage.

The store is the cache: a stage whose ``_manifest.json`` exists is skipped, an interrupted one resumes
from its missing shards, so ``build_store`` is cheap to call before every training run
(``facerec build``, ``facerec train --data-root``). All Spark stages share one session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from facerec.pipeline.canonical import CanonicalConfig, run_canonical
from facerec.pipeline.feature_stage import FeaturesConfig, run_features
from facerec.pipeline.report import StageResult
from facerec.pipeline.spark import spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


def build_store(
    data_root: str,
    store: str,
    *,
    extractor: str = "mediapipe",
    img_size: int = 112,
    seed: int = 0,
    shard_size: int = 1024,
    k: int = 5,
    master: str | None = None,
    conf: dict[str, str] | None = None,
    spark: "SparkSession | None" = None,
    on_result: Callable[[StageResult], None] | None = None,
) -> list[StageResult]:
    """Build (or finish) every stage of ``store`` from the source ``data_root``; returns their results.

    ``data_root`` is anything ``facerec ingest --source`` reads (a local ImageFolder, usually).
    ``on_result`` is called with each stage's result as soon as it is done (the CLI prints it).
    Settings of stages already finished win: a finished ingest is reused even if ``seed`` differs
    (ingest logs a warning); rebuild a stage with its own command and ``--overwrite``.
    """
    from facerec.pipeline.ingest import IngestConfig, run_ingest
    from facerec.pipeline.landmark_stage import LandmarksConfig, run_landmarks

    conf = dict(conf or {})
    results: list[StageResult] = []

    def done(result: StageResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    done(run_ingest(IngestConfig(source=str(data_root), store=store, seed=seed, shard_size=shard_size)))
    spark = spark or spark_session(master, conf, app_name="facerec-build")
    done(run_landmarks(LandmarksConfig(store=store, extractor=extractor, master=master, conf=conf), spark))
    done(run_features(FeaturesConfig(store=store, extractor=extractor, img_size=img_size, master=master, conf=conf), spark))
    done(run_canonical(CanonicalConfig(store=store, extractor=extractor, img_size=img_size, k=k, master=master, conf=conf), spark))
    return results
