"""The whole system in miniature: source -> store -> recogniser + autoencoder -> evaluation -> report.

Stages, each timed (wall seconds) and announced to an observer (the CLI draws them with rich):
ingest, landmarks, features, canonical (``facerec.pipeline.build.build_store``, one Spark session),
recogniser training (``facerec.recognition.train.main``, with TrainConfig's recipe: loss, margin, scale,
learning rate and warm-ups are its defaults, only the budget is the demo's), its verification on held-out
identities (``facerec.recognition.evaluate.evaluate_run``), dlib's pretrained embedder on the same pairs
(``facerec.recognition.reference.compare_with_dlib``), the landmark autoencoder (``train_autoencoder.main``, which
evaluates itself on held-out identities), and the report (``facerec.report.build_report``).

Sources:
- default: a streamed subset of the Hugging Face dataset ``logasja/VGGFace2`` (the first
  ``max_identities`` identities, at most ``max_images`` rows). Without network this stops at once and
  says how to run on local images instead.
- ``source=DIR``, an ImageFolder (``DIR/<identity>/<image>``): the demo picks identities with at least
  ``min_images`` images (sorted names), at most ``max_per_identity`` images each, ``max_identities``
  identities and ``max_images`` images in all, and ingests a folder of symlinks to them
  (``OUT/source``), so nothing is copied. Any other source (Parquet, a saved dataset) is ingested
  with ``max_identities`` / ``max_images`` as ingest's ``limit_classes`` / ``max_samples``.

Layout of ``OUT``: ``store/`` (the feature store; a rerun reuses its finished stages), ``recognizer/``
and ``autoencoder/`` (run folders), ``demo.json`` (the resolved config and timings), ``report.html``,
``report.md`` and ``report_files/``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from facerec.errors import ConfigError, SourceError
from facerec.frontalization.train import AutoencoderConfig, main
from facerec.pipeline.build import build_store
from facerec.pipeline.sources import DEFAULT_SOURCE, check_hub_reachable, hub_offline
from facerec.recognition.config import TrainConfig
from facerec.report import build_report
from facerec.report.recogniser import LOSS_NAMES
from facerec.store.layout import StoreLayout

log = logging.getLogger(__name__)

DEMO_FILE = "demo.json"
LFW_HINT = "make demo SOURCE=../shared/data/lfw/lfw-deepfunneled"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Config fields that decide the data: a rerun into the same OUT must keep them (or pass overwrite).
_DATA_FIELDS = ("source", "max_images", "max_identities", "min_images", "max_per_identity", "extractor",
                "img_size", "seed", "shard_size")


@dataclass(frozen=True)
class DemoConfig:
    """The demo's knobs. Defaults fit the whole run in under 15 minutes on 2 CPU cores with LFW."""

    source: str | None = None          # None: the hub default (logasja/VGGFace2), streamed
    out: Path = Path("runs/demo")
    max_images: int = 800
    max_identities: int = 200
    min_images: int = 6                # ImageFolder: identities with fewer images are left out
    max_per_identity: int = 12         # ImageFolder: at most this many images of one identity
    extractor: str = "mediapipe"
    img_size: int = 112
    backbone: str = "resnet18"
    embedding_size: int = 512
    epochs: int = 2
    batch_size: int = 32
    lr: float | None = None            # None: TrainConfig's default, part of the recipe the demo does not change
    use_heatmaps: bool = True
    ae_epochs: int = 200
    eval_pairs: int = 1000
    compare_dlib: bool = True          # dlib's pretrained embedder on the same held-out pairs, as a reference
    holdout_identity_frac: float = 0.15   # identities kept out of training for verification (both models)
    shard_size: int = 128
    device: str = "auto"
    master: str | None = None
    num_workers: int = 0
    seed: int = 0
    overwrite: bool = False

    def __post_init__(self) -> None:
        for name in ("max_images", "max_identities", "min_images", "max_per_identity", "epochs", "batch_size",
                     "ae_epochs", "eval_pairs", "shard_size", "img_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"demo: {name} must be >= 1, found {getattr(self, name)}")
        if not 0.0 < self.holdout_identity_frac < 1.0:
            raise ConfigError(f"demo: holdout_identity_frac must be in (0, 1), found {self.holdout_identity_frac}")
        if self.min_images < 2:
            raise ConfigError(f"demo: min_images must be >= 2 (verification needs pairs), found {self.min_images}")

    @property
    def store(self) -> str:
        return str(Path(self.out) / "store")

    @property
    def recognizer_run(self) -> Path:
        return Path(self.out) / "recognizer"

    @property
    def autoencoder_run(self) -> Path:
        return Path(self.out) / "autoencoder"


@dataclass(frozen=True)
class Stage:
    name: str
    what: str                   # one line for the user
    output: str                 # where its result goes
    own_progress: bool = False  # the stage draws its own progress bar (ingest, training)


class DemoObserver(Protocol):
    """What the demo tells its user; the CLI implements it with rich."""

    def stage_started(self, stage: Stage, index: int, total: int) -> None: ...

    def stage_finished(self, stage: Stage, seconds: float, lines: list[str]) -> None: ...


class LogObserver:
    """The default observer: one log line per stage start and end."""

    def stage_started(self, stage: Stage, index: int, total: int) -> None:
        log.info("[%d/%d] %s: %s", index, total, stage.name, stage.what)

    def stage_finished(self, stage: Stage, seconds: float, lines: list[str]) -> None:
        log.info("%s done in %.1f s -> %s", stage.name, seconds, stage.output)
        for line in lines:
            log.info("  %s", line)


@dataclass
class DemoResult:
    out: Path
    store: str
    recognizer_run: Path
    autoencoder_run: Path
    report_html: Path
    report_md: Path
    timings: dict[str, float] = field(default_factory=dict)   # stage -> wall seconds
    evaluation: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(self.timings.values())


# source --------------------------------------------------------------------------------------------
def _is_image_folder(path: Path) -> bool:
    return path.is_dir() and any(
        p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for d in path.iterdir() if d.is_dir() for p in d.iterdir()
    )


def select_image_folder(root: Path, dest: Path, *, min_images: int, max_per_identity: int, max_identities: int,
                        max_images: int) -> dict[str, Any]:
    """Symlink a subset of an ImageFolder into ``dest`` (rebuilt each time); returns what was chosen.

    Identities in sorted order with at least ``min_images`` images; each contributes its first
    ``max_per_identity`` images (sorted names); stop at ``max_identities`` identities or ``max_images``
    images (an identity that would not fit with ``min_images`` images is left out).
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    chosen: list[tuple[str, list[Path]]] = []
    total = 0
    for person in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        images = sorted(p for p in person.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if len(images) < min_images:
            continue
        take = images[: min(max_per_identity, max_images - total)]
        if len(take) < min_images:
            break
        chosen.append((person.name, take))
        total += len(take)
        if len(chosen) >= max_identities or total >= max_images:
            break
    if len(chosen) < 2:
        raise SourceError(f"{root}: fewer than 2 identities have {min_images}+ images; the demo needs more "
                          "(lower --min-images or point --source at a larger ImageFolder)")
    for name, images in chosen:
        (dest / name).mkdir()
        for img in images:
            (dest / name / img.name).symlink_to(img.resolve())
    return {"identities": len(chosen), "images": total, "folder": str(dest), "from": str(root)}


def check_default_source() -> str:
    """The hub default when it is reachable; otherwise stop with what to do instead."""

    why = "Hugging Face offline mode is on (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)" if hub_offline() else None
    if why is None:
        try:
            check_hub_reachable(DEFAULT_SOURCE)
        except SourceError as exc:
            why = f"the hub cannot be reached from here ({exc.__cause__ or exc})"
    if why is not None:
        raise SourceError(
            f"the demo streams {DEFAULT_SOURCE} from Hugging Face by default, but {why}. Run it on local "
            f"images instead: `{LFW_HINT}` (or `facerec demo --source DIR`, DIR holding one sub-folder of "
            "face images per identity)"
        )
    return DEFAULT_SOURCE


def _ingest_config(cfg: DemoConfig, source: str, hub: bool, folder: bool):
    from facerec.pipeline.ingest import IngestConfig

    limits = {} if folder else {"limit_classes": cfg.max_identities, "max_samples": cfg.max_images}
    return IngestConfig(source=source, store=cfg.store, streaming=hub, seed=cfg.seed, shard_size=cfg.shard_size,
                        **limits)


# bookkeeping -----------------------------------------------------------------------------------------
def _prepare_out(cfg: DemoConfig) -> None:
    """Refuse to mix a previous demo's data with other data settings; clear the run folders."""
    out = Path(cfg.out)
    previous = out / DEMO_FILE
    if previous.exists() and not cfg.overwrite:
        old = json.loads(previous.read_text()).get("config", {})
        now = _config_dict(cfg)
        differ = {k: (old.get(k), now[k]) for k in _DATA_FIELDS if old.get(k) != now[k]}
        if differ:
            detail = ", ".join(f"{k}: was {a!r}, now {b!r}" for k, (a, b) in differ.items())
            raise ConfigError(f"{out} holds a demo built with other data settings ({detail}); "
                              "pass --overwrite to rebuild it or choose another --out")
    if cfg.overwrite and Path(cfg.store).exists():
        shutil.rmtree(cfg.store)
    for run in (cfg.recognizer_run, cfg.autoencoder_run):
        if run.exists():
            shutil.rmtree(run)      # run folders are the demo's own output, retrained on every demo
    out.mkdir(parents=True, exist_ok=True)


def _config_dict(cfg: DemoConfig) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def _write_demo_file(cfg: DemoConfig, result: DemoResult) -> None:
    data = {"config": _config_dict(cfg), "timings_s": {k: round(v, 2) for k, v in result.timings.items()},
            "total_s": round(result.total_seconds, 2), "selection": result.selection,
            "report": str(result.report_html)}
    (Path(cfg.out) / DEMO_FILE).write_text(json.dumps(data, indent=2))


# the run ---------------------------------------------------------------------------------------------
class _Clock:
    """Announces stages to the observer and records their wall time."""

    def __init__(self, stages: list[Stage], observer: DemoObserver) -> None:
        self.stages = {s.name: s for s in stages}
        self.order = [s.name for s in stages]
        self.observer = observer
        self.timings: dict[str, float] = {}
        self._current: str | None = None
        self._t0 = 0.0

    def start(self, name: str) -> None:
        self._current, self._t0 = name, time.perf_counter()
        self.observer.stage_started(self.stages[name], self.order.index(name) + 1, len(self.order))

    def finish(self, lines: list[str]) -> None:
        seconds = time.perf_counter() - self._t0
        self.timings[self._current] = seconds
        self.observer.stage_finished(self.stages[self._current], seconds, lines)
        self._current = None

    def run(self, name: str, fn: Callable[[], Any], lines: Callable[[Any], list[str]]) -> Any:
        self.start(name)
        value = fn()
        self.finish(lines(value))
        return value


def run_demo(cfg: DemoConfig, observer: DemoObserver | None = None) -> DemoResult:
    """Run every stage; returns where everything is and the wall seconds per stage."""

    observer = observer or LogObserver()
    if cfg.source is None:
        source, hub, folder = check_default_source(), True, False
    else:
        path = Path(cfg.source)
        if not path.exists():
            raise SourceError(f"demo source {path} does not exist; for LFW run `{LFW_HINT}`")
        source, hub, folder = str(path), False, _is_image_folder(path)
    _prepare_out(cfg)
    layout = StoreLayout.at(cfg.store)
    tcfg = _train_config(cfg)
    stages = [
        Stage("ingest", "read the source, validate, shuffle, write samples shards", str(layout.samples), True),
        Stage("landmarks", f"{cfg.extractor} landmarks and head pose per image (Spark)", str(layout.landmarks(cfg.extractor))),
        Stage("features", "aligned crops, heatmaps, masks into Zarr (Spark)", str(layout.features_zarr(cfg.extractor, cfg.img_size))),
        Stage("canonical", "canonical landmarks per identity (Spark groupBy)", str(layout.identities(cfg.extractor, cfg.img_size))),
        Stage("train recogniser", f"{cfg.backbone} + {_loss_label(tcfg)}, RGB{' + heatmaps' if cfg.use_heatmaps else ''}, "
                                  f"{cfg.epochs} epochs", str(cfg.recognizer_run), True),
        Stage("evaluate recogniser", "verification on held-out identities, by yaw", str(cfg.recognizer_run / "eval.json")),
        *([Stage("compare with dlib", "dlib's pretrained embedder on the same held-out pairs",
                 str(cfg.recognizer_run / "reference_dlib.json"), True)] if cfg.compare_dlib else []),
        Stage("train autoencoder", f"landmark autoencoder, {cfg.ae_epochs} epochs, held-out NME", str(cfg.autoencoder_run),
              True),
        Stage("report", "report.html and report.md", str(Path(cfg.out) / "report.html")),
    ]
    clock = _Clock(stages, observer)
    selection: dict[str, Any] = {}

    clock.start("ingest")
    if folder:
        selection = select_image_folder(path, Path(cfg.out) / "source", min_images=cfg.min_images,
                                        max_per_identity=cfg.max_per_identity, max_identities=cfg.max_identities,
                                        max_images=cfg.max_images)
        source = selection["folder"]
    from facerec.pipeline.ingest import run_ingest

    ingest = run_ingest(_ingest_config(cfg, source, hub, folder))
    clock.finish(ingest.lines())
    _build_rest(cfg, source, clock)

    evaluation = _train_and_evaluate(cfg, tcfg, clock)
    if cfg.compare_dlib:
        from facerec.recognition.reference import compare_with_dlib

        clock.run("compare with dlib", lambda: compare_with_dlib(cfg.recognizer_run, cfg.store), _reference_lines)
    clock.run("train autoencoder", lambda: _train_autoencoder(cfg), _autoencoder_lines)

    paths = clock.run("report", lambda: build_report(
        cfg.recognizer_run, cfg.store, autoencoder_run=cfg.autoencoder_run, extractor=cfg.extractor,
        img_size=cfg.img_size, timings=dict(clock.timings), out_dir=Path(cfg.out),
        title=f"facerec demo: {source if hub else Path(cfg.source).resolve().name}"), lambda p: [f"{p.html}", f"{p.markdown}"])
    result = DemoResult(Path(cfg.out), cfg.store, cfg.recognizer_run, cfg.autoencoder_run, paths.html, paths.markdown,
                        dict(clock.timings), evaluation, selection)
    _write_demo_file(cfg, result)
    return result


def _build_rest(cfg: DemoConfig, source: str, clock: _Clock) -> None:
    """landmarks, features, canonical through build_store (its ingest finds the samples finished)."""

    names = iter(["landmarks", "features", "canonical"])
    first = {"seen_ingest": False}

    def on_result(result) -> None:
        if not first["seen_ingest"]:          # build_store reports the (already finished) ingest first
            first["seen_ingest"] = True
            clock.start(next(names))
            return
        clock.finish(result.lines())
        following = next(names, None)
        if following is not None:
            clock.start(following)

    build_store(source, cfg.store, extractor=cfg.extractor, img_size=cfg.img_size, seed=cfg.seed,
                shard_size=cfg.shard_size, master=cfg.master, on_result=on_result)


def _train_config(cfg: DemoConfig) -> TrainConfig:
    """The demo's budget (data, backbone, epochs, batch) on TrainConfig's recipe (loss, margin, lr, warm-ups)."""
    recipe = {} if cfg.lr is None else {"lr": cfg.lr}
    return TrainConfig(store=cfg.store, out=str(cfg.recognizer_run), extractor=cfg.extractor, img_size=cfg.img_size,
                       use_heatmaps=cfg.use_heatmaps, backbone=cfg.backbone, embedding_size=cfg.embedding_size,
                       epochs=cfg.epochs, batch_size=cfg.batch_size, device=cfg.device,
                       num_workers=cfg.num_workers, seed=cfg.seed, evaluate_after=False, eval_pairs=cfg.eval_pairs,
                       holdout_identity_frac=cfg.holdout_identity_frac, **recipe)


def _loss_label(tcfg: TrainConfig) -> str:
    return LOSS_NAMES.get(tcfg.margin_type, tcfg.margin_type)


def _train_and_evaluate(cfg: DemoConfig, tcfg: TrainConfig, clock: _Clock) -> dict[str, Any]:
    from facerec.recognition.evaluate import evaluate_run
    from facerec.recognition.train import main

    clock.run("train recogniser", lambda: main(tcfg), lambda r: [
        f"{r.epochs_done} epochs, {r.steps} steps: " + ", ".join(
            f"{k} {v:.3f}" for k, v in r.last_epoch_metrics.items() if isinstance(v, float))])
    return clock.run("evaluate recogniser", lambda: evaluate_run(cfg.recognizer_run, cfg.store, device=cfg.device,
                                                                  num_pairs=cfg.eval_pairs), _evaluation_lines)


def _evaluation_lines(report: dict) -> list[str]:
    v, tf = report["verification"], report["ten_fold"]
    return [f"{v['num_pairs']} pairs of {report['num_test_identities']} held-out identities: AUC {v['auc']:.3f}, "
            f"best accuracy {v['best_accuracy']:.3f}, 10-fold {tf['mean']:.3f} +- {tf['std']:.3f}"]


def _reference_lines(result: dict) -> list[str]:
    return [f"{label}: 10-fold accuracy {rep['ten_fold']['mean']:.3f}, AUC "
            f"{rep['verification']['auc'] if rep['verification'] else float('nan'):.3f}"
            for label, rep in result["models"].items()]


def _train_autoencoder(cfg: DemoConfig) -> dict[str, Any]:
    return main(AutoencoderConfig(store=cfg.store, extractor=cfg.extractor, out=str(cfg.autoencoder_run),
                                  img_size=cfg.img_size, epochs=cfg.ae_epochs, device=cfg.device, seed=cfg.seed,
                                  holdout_identity_frac=cfg.holdout_identity_frac))


def _autoencoder_lines(summary: dict) -> list[str]:
    nme = summary.get("nme", {})
    parts = [f"{method} {row.get('all'):.4f}" for method, row in nme.items() if isinstance(row, dict) and row.get("all") is not None]
    return [f"held-out NME (all yaws): {', '.join(parts)}"] if parts else []
