"""ArcFace's collapse: the plateau the guard looks for, the margin warm-up that avoids the basin, and the
guard's warning/stop inside training (docs/training.md, Optimisation)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from facerec.errors import TrainingError
from facerec.recognition import train as tr
from facerec.recognition.config import TrainConfig
from facerec.recognition.heads import MarginHead
from facerec.training.collapse import CollapseGuard, collapse_plateau

SIZE = 32


def test_plateau_is_the_heads_loss_when_every_embedding_is_opposite_every_centre() -> None:
    n = 283
    head = MarginHead(16, n)
    direction = F.normalize(torch.randn(16), dim=0)
    with torch.no_grad():
        head.weight.copy_(direction.expand(n, 16) + 1e-4 * torch.randn(n, 16))
    emb = -direction.expand(64, 16)
    labels = torch.randint(0, n, (64,))
    loss = F.cross_entropy(head(emb, labels), labels).item()
    plateau = collapse_plateau(n, margin_type="arcface", s=64.0, m=0.5)
    assert plateau == pytest.approx(21.0, abs=0.05)           # the figure docs/training.md derives
    assert loss == pytest.approx(plateau, rel=1e-3)
    # lower than the loss at a random start (all cosines ~0): gradient descent can fall into it
    assert plateau < 64 * math.sin(0.5) + math.log(n - 1)


def test_margin_fraction_scales_the_margin_and_zero_is_plain_softmax() -> None:
    torch.manual_seed(0)
    full, half = MarginHead(8, 5, m=0.5), MarginHead(8, 5, m=0.25)
    half.weight.data.copy_(full.weight.data)
    emb, labels = torch.randn(6, 8), torch.randint(0, 5, (6,))
    full.set_margin_fraction(0.5)
    assert torch.allclose(full(emb, labels), half(emb, labels))
    full.set_margin_fraction(0.0)
    assert torch.allclose(full(emb, labels), 64.0 * full.cosine(emb))
    with pytest.raises(Exception, match="margin fraction"):
        full.set_margin_fraction(1.5)


def test_guard_flags_the_ablations_collapsed_runs_and_not_its_healthy_ones() -> None:
    """Final epochs of the 20-epoch ablation (benchmarks/results/ablation_e20.json, 283 classes)."""
    guard = CollapseGuard.for_run(283, margin_type="arcface", s=64.0, m=0.5, margin_warmup_epochs=0.0,
                                  warmup_epochs=0.5)
    collapsed = [(19.817, 0.0156), (19.836, 0.0489), (19.158, 0.0129)]     # seed 1, every arm
    healthy = [(24.76, 0.7996), (20.606, 0.4416), (26.326, 0.2289)]        # seed 0, every arm
    assert all(guard.check(20, loss, acc) for loss, acc in collapsed)
    assert not any(guard.check(20, loss, acc) for loss, acc in healthy)
    assert guard.check(1, 19.8, 0.01) is None                             # still warming up: not judged
    cosface = CollapseGuard.for_run(283, margin_type="cosface", s=64.0, m=0.35, margin_warmup_epochs=0.0,
                                    warmup_epochs=0.5)
    assert cosface.check(20, cosface.plateau, 0.0) is None                # no basin below CosFace's start
    assert "collapsed" in CollapseGuard.message(guard.check(20, 19.8, 0.01))


@pytest.fixture(scope="module")
def crops_store(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    from store_builder import build_feature_set

    zarr_path, _ = build_feature_set(tmp_path_factory.mktemp("collapse_store"), lfw_dir, num_identities=8,
                                     per_identity=4, size=SIZE, chunk_rows=8, shard_size=32, invalid_rows=())
    return str(zarr_path)


def _config(store: str, out: Path, **kw) -> TrainConfig:
    base = dict(store=store, out=str(out), backbone="resnet18", stem="imagenet", embedding_size=32, img_size=SIZE,
                epochs=2, batch_size=8, lr=2e-3, warmup_epochs=0.0, num_workers=0, device="cpu", augment=False,
                use_heatmaps=False, holdout_identity_frac=0.0, holdout_image_frac=0.0, log_every=1,
                evaluate_after=False, use_cosface=False)       # ArcFace unless a test says otherwise
    base.update(kw)
    return TrainConfig(**base)


def _records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]


def test_margin_ramps_from_zero_to_m_over_the_warmup_epochs(crops_store: str, tmp_path: Path) -> None:
    tr.main(_config(crops_store, tmp_path / "run", margin_warmup_epochs=1.0))
    margins = [r["margin"] for r in _records(tmp_path / "run") if r["phase"] == "train"]
    assert margins[0] == 0.0                                  # first step: plain (scaled) softmax
    assert margins == sorted(margins) and margins[-1] == pytest.approx(0.5)
    assert 0.0 < margins[len(margins) // 4] < 0.5             # a ramp, not a switch


def test_guard_warns_records_and_stops_inside_training(crops_store: str, tmp_path: Path, monkeypatch) -> None:
    """Wiring: a guard whose thresholds take any epoch as collapsed must warn, write the evidence to
    metrics.jsonl and, with stop_on_collapse, stop with a TrainingError after the first judged epoch."""
    real = CollapseGuard.for_run

    def anything_collapses(num_classes, **kw):
        guard = real(num_classes, **kw)
        return CollapseGuard(num_classes, guard.plateau, guard.start_epoch, chance_factor=1e9, max_accuracy=2.0,
                             tolerance=1e9)

    monkeypatch.setattr(tr.CollapseGuard, "for_run", staticmethod(anything_collapses))
    with pytest.raises(TrainingError, match="collapsed at epoch 1.*--stop-on-collapse"):
        tr.main(_config(crops_store, tmp_path / "run", margin_warmup_epochs=0.0, stop_on_collapse=True))
    warnings = [r for r in _records(tmp_path / "run") if r["phase"] == "collapse_warning"]
    assert len(warnings) == 1 and warnings[0]["plateau"] == pytest.approx(
        collapse_plateau(8, margin_type="arcface", s=64.0, m=0.5), abs=1e-3)


class _InputBlind(torch.nn.Module):
    """A backbone that ignores its input: one learned embedding for every face."""

    def __init__(self, embedding_size: int) -> None:
        super().__init__()
        self.embedding = torch.nn.Parameter(torch.randn(embedding_size))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embedding.expand(images.shape[0], -1)


def test_guard_fires_on_a_run_built_to_collapse(crops_store: str, tmp_path: Path, monkeypatch) -> None:
    """A real ArcFace run (s=64, m=0.5, the guard's real thresholds) started in the basin: a backbone that
    cannot see the faces and every class centre opposite its one embedding. Training cannot leave it (the
    loss stays on the plateau the docs derive, accuracy at chance) and the guard stops the run at the first
    judged epoch."""
    real_build = tr.build_recognizer

    def in_the_basin(spec):
        model = real_build(spec)
        model.backbone = _InputBlind(spec.embedding_size)
        with torch.no_grad():
            opposite = -model.backbone.embedding.expand_as(model.head.weight)
            model.head.weight.copy_(opposite + 0.01 * torch.randn_like(model.head.weight))
        return model

    monkeypatch.setattr(tr, "build_recognizer", in_the_basin)
    cfg = _config(crops_store, tmp_path / "run", use_cosface=False, scale=64.0, margin=0.5, epochs=4,
                  stop_on_collapse=True)
    with pytest.raises(TrainingError, match="collapsed at epoch 1"):
        tr.main(cfg)
    records = _records(tmp_path / "run")
    warning = [r for r in records if r["phase"] == "collapse_warning"][0]
    plateau = collapse_plateau(8, margin_type="arcface", s=64.0, m=0.5)
    assert warning["loss"] == pytest.approx(plateau, rel=0.01) and warning["accuracy"] <= 0.25
    assert all(r["loss"] == pytest.approx(plateau, rel=0.01) for r in records if r["phase"] == "train")


@pytest.mark.slow
def test_the_default_recipe_learns_and_does_not_collapse_on_real_faces(lfw_dir: Path, tmp_path: Path) -> None:
    """The default recipe on 64 real LFW crops of 16 people: the guard stays quiet and training accuracy
    ends well above chance (6.25%): the run learns identities instead of settling in the basin."""
    from store_builder import build_feature_set

    store, _ = build_feature_set(tmp_path / "store", lfw_dir, num_identities=16, per_identity=4, size=SIZE,
                                 chunk_rows=8, shard_size=64, invalid_rows=())
    defaults = {f: TrainConfig.__dataclass_fields__[f].default
                for f in ("margin_warmup_epochs", "use_cosface", "scale", "margin")}
    cfg = _config(str(store), tmp_path / "run", stem="face", epochs=8, warmup_epochs=0.5, **defaults)
    result = tr.main(cfg)
    records = _records(tmp_path / "run")
    assert not [r for r in records if r["phase"] == "collapse_warning"]
    assert result.last_epoch_metrics["train_accuracy"] > 5 / 16, result.last_epoch_metrics
