"""Training the recogniser: schedule, run folder, loss going down on real crops, exact resume, NaN stop,
and (slow) the CLI's train -> evaluate on a store built by the pipeline from real LFW images."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from facerec.errors import ConfigError, TrainingError
from facerec.recognition import train as tr
from facerec.recognition.config import TrainConfig
from facerec.recognition.data import build_data
from facerec.training.devices import resolve_amp
from facerec.training.runs import RunFolder
from facerec.training.schedule import warmup_cosine, warmup_cosine_factor

SIZE = 32


@pytest.fixture(scope="module")
def crops_store(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """32 real LFW crops (8 people x 4, the centre of each photo) at 32 px in a complete feature set,
    written without Spark: the mechanics below need real pixels, not the pipeline."""
    from store_builder import build_feature_set

    zarr_path, _ = build_feature_set(tmp_path_factory.mktemp("rec_store"), lfw_dir, num_identities=8,
                                     per_identity=4, size=SIZE, chunk_rows=8, shard_size=32, invalid_rows=())
    return str(zarr_path)


def _config(store: str, out: Path, **kw) -> TrainConfig:
    base = dict(store=store, out=str(out), backbone="resnet18", embedding_size=32, img_size=SIZE, epochs=2,
                batch_size=8, lr=2e-3, warmup_epochs=0.5, num_workers=0, device="cpu", augment=False,
                holdout_identity_frac=0.2, log_every=1, evaluate_after=False)
    base.update(kw)
    return TrainConfig(**base)


# ------------------------------------------------------------------------------------------- pieces
def test_schedule_warms_up_linearly_then_decays_by_cosine() -> None:
    factors = [warmup_cosine_factor(s, total_steps=10, warmup_steps=4, min_lr_ratio=0.1) for s in range(12)]
    assert factors[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert factors[4] == pytest.approx(1.0)
    assert factors[7] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factors[10] == factors[11] == pytest.approx(0.1)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, 10, 4, 0.1)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2)
    with pytest.raises(ConfigError, match="warmup_steps"):
        warmup_cosine(opt, 10, 11)
    assert "lr_lambdas" in sched.state_dict()


def test_run_folder_round_trips_config_metrics_and_checkpoints(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    saved = run.save_config(_config("store.zarr", tmp_path / "run"))
    assert run.load_config() == saved and saved["backbone"] == "resnet18"
    run.log(3, "train", loss=torch.tensor(1.5), accuracy=0.25)
    run.log(4, "val", accuracy=0.5)
    assert [(m["step"], m["phase"]) for m in run.read_metrics()] == [(3, "train"), (4, "val")]
    assert run.read_metrics()[0]["loss"] == 1.5
    state = {"model": {"w": torch.arange(3.0)}, "loop": {"step": 4}, "config": saved, "names": ["a", "b"]}
    run.save_checkpoint(state, best=True)
    for name in ("last.pt", "best.pt"):
        loaded = run.load_checkpoint(name)
        assert torch.equal(loaded["model"]["w"], torch.arange(3.0)) and loaded["loop"]["step"] == 4
    assert not list((tmp_path / "run" / "checkpoints").glob(".tmp-*"))
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    run.close()
    with pytest.raises(TrainingError, match="--resume"):
        RunFolder(tmp_path / "run")
    with pytest.raises(TrainingError, match="no run"):
        RunFolder(tmp_path / "empty", resume=True)


def test_config_refuses_unknown_choices() -> None:
    with pytest.raises(ConfigError, match="bf16"):
        TrainConfig(store="s", out="o", amp="fp8")
    with pytest.raises(ConfigError, match="resnet18"):
        TrainConfig(store="s", out="o", backbone="vit")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA"):
        resolve_amp("fp16", torch.device("cpu"))
    assert resolve_amp("auto", torch.device("cpu")) is None


# ------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("input_path", ["device", "cpu"])
def test_a_few_epochs_on_real_crops_lower_the_loss(crops_store: str, tmp_path: Path, input_path: str) -> None:
    from facerec.recognition.model import ModelSpec, build_recognizer
    from facerec.store.open_store import open_feature_set

    cfg = dataclasses.replace(_config(crops_store, tmp_path / "run", epochs=5), input_path=input_path)
    torch.manual_seed(0)
    data = build_data(cfg, open_feature_set(crops_store))
    spec = ModelSpec("resnet18", data.num_channels, data.num_classes, img_size=SIZE, embedding_size=32)
    model = build_recognizer(spec)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = len(data.sampler)
    sched = warmup_cosine(opt, cfg.epochs * steps, steps // 2)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    state = tr.LoopState()
    losses = []
    for epoch in range(cfg.epochs):
        data.sampler.set_epoch(epoch)
        state.epoch = epoch
        out = tr.train_one_epoch(model, opt, sched, scaler, data.train_loader, torch.device("cpu"), state=state,
                                 cfg=cfg, run=None, amp_dtype=None, channels_last=False, total_batches=steps,
                                 inputs=data.inputs)
        losses.append(out["loss"])
    assert data.num_channels == 9                        # RGB + 6 heatmaps
    assert data.train.num_channels == (3 if input_path == "device" else 9)   # what crosses the loader
    assert state.step == cfg.epochs * steps
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.8 * losses[0], losses


def _weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)


def test_resume_continues_at_the_same_step_with_identical_state(crops_store: str, tmp_path: Path) -> None:
    straight = tr.main(_config(crops_store, tmp_path / "straight"))
    interrupted = tr.main(_config(crops_store, tmp_path / "split", max_steps=straight.steps // 2 + 1))
    assert interrupted.steps == straight.steps // 2 + 1                # stopped inside the second epoch
    mid = _weights(tmp_path / "split")
    assert mid["loop"]["batch_in_epoch"] == 1 and mid["loop"]["epoch"] == 1
    resumed = tr.main(_config(crops_store, tmp_path / "split", resume=True))
    assert resumed.steps == straight.steps and resumed.epochs_done == 2
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    for key, value in a["model"].items():
        assert torch.allclose(value.float(), b["model"][key].float(), atol=1e-6), key
    assert a["scheduler"] == b["scheduler"]
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    for pid, st in a["optimizer"]["state"].items():
        assert int(st["step"]) == int(b["optimizer"]["state"][pid]["step"])
        assert torch.allclose(st["exp_avg_sq"], b["optimizer"]["state"][pid]["exp_avg_sq"], atol=1e-9)
    assert a["loop"] == b["loop"]
    steps = [m["step"] for m in RunFolder(tmp_path / "split", resume=True).read_metrics() if m["phase"] == "train"]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) == straight.steps
    # The checkpoint holds plain types only (torch.load(weights_only=True) above would have refused others).
    assert b["model_spec"]["backbone"] == "resnet18" and b["config"]["extractor"] == "dlib"
    assert len(b["class_names"]) == b["model_spec"]["num_classes"] >= 2
    # Resuming with a different training setting is refused, naming it.
    with pytest.raises(TrainingError, match="lr: run has 0.002, now 0.1"):
        tr.main(_config(crops_store, tmp_path / "split", resume=True, lr=0.1))


def test_checkpoint_every_n_steps_bounds_what_a_crash_loses(crops_store: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from facerec import faults

    straight = tr.main(_config(crops_store, tmp_path / "straight"))
    crash_at = straight.steps // 2 + 1                  # inside the second epoch, after a mid-epoch checkpoint

    def crash(step: int) -> None:
        if step == crash_at:
            raise RuntimeError("simulated crash")       # no handler saves on this path, as with a killed process

    monkeypatch.setattr(faults, "at_train_step", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        tr.main(_config(crops_store, tmp_path / "crash", checkpoint_every=1))
    kept = _weights(tmp_path / "crash")
    assert kept["loop"]["step"] == crash_at and kept["loop"]["batch_in_epoch"] == 1 and kept["loop"]["epoch"] == 1
    monkeypatch.undo()
    resumed = tr.main(_config(crops_store, tmp_path / "crash", resume=True, checkpoint_every=1))
    assert resumed.steps == straight.steps
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "crash")
    for key, value in a["model"].items():
        assert torch.allclose(value.float(), b["model"][key].float(), atol=1e-6), key
    assert a["loop"] == b["loop"]


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(crops_store: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = tr.F.cross_entropy
    steps_per_epoch = len(build_data(_config(crops_store, tmp_path / "probe"), _open(crops_store)).sampler)

    def poisoned(logits, labels, **kw):
        loss = real(logits, labels, **kw)
        if kw.get("reduction") is not None:       # validation (reduction="sum") stays clean
            return loss
        calls["n"] += 1                           # training: once per step; NaN from epoch 2's second step
        return loss * float("nan") if calls["n"] > steps_per_epoch + 1 else loss

    monkeypatch.setattr(tr.F, "cross_entropy", poisoned)
    with pytest.raises(TrainingError, match="loss is nan"):
        tr.main(_config(crops_store, tmp_path / "run", epochs=3))
    kept = _weights(tmp_path / "run")
    assert kept["loop"]["epoch"] == 1 and kept["loop"]["batch_in_epoch"] == 0 and kept["loop"]["step"] == steps_per_epoch
    assert all(torch.isfinite(v.float()).all() for v in kept["model"].values())


def _open(store: str):
    from facerec.store.open_store import open_feature_set

    return open_feature_set(store)


# ------------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_cli_trains_then_evaluates_on_a_pipeline_store(lfw_dir: Path, tmp_path_factory, tmp_path: Path) -> None:
    """The store comes from C's pipeline (ingest, mediapipe landmarks, features at 112 px) over 64 real
    LFW faces; shared with test_feature_stage so the suite builds it once."""
    from test_feature_stage import build_lfw_store
    from typer.testing import CliRunner

    from facerec.cli import app

    store, _ = build_lfw_store(lfw_dir, tmp_path_factory)
    run = tmp_path / "run"
    args = ["train", "--store", str(store), "--out", str(run), "--backbone", "resnet18", "--stem", "imagenet",
            "--epochs", "2", "--batch-size", "16", "--use-heatmaps", "true", "--add-mask-channel", "true",
            "--use-cosface", "false", "--num-workers", "0", "--device", "cpu", "--holdout-identity-frac", "0.3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["extractor"] == "mediapipe" and config["add_mask_channel"] is True
    report = json.loads((run / "eval.json").read_text())
    assert report["num_test_identities"] >= 2
    assert 0.0 <= report["verification"]["auc"] <= 1.0
    assert set(report["yaw_bins"]["bins"]) == {"0-15", "15-30", "30-45", "45-60", "60-75", "75+"}
    for plot in ("training_curves", "roc"):
        assert (run / "plots" / f"{plot}.png").stat().st_size > 5000
    epochs = [m for m in RunFolder(run, resume=True).read_metrics() if m["phase"] == "val"]
    assert [m["epoch"] for m in epochs] == [1, 2]
    # Re-evaluate through the evaluate command with the best checkpoint and fewer pairs.
    result = CliRunner().invoke(app, ["evaluate", "--run", str(run), "--pairs", "40", "--checkpoint", "best.pt",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "eval.json").read_text())["checkpoint"] == "best.pt"


def test_evaluation_embeddings_are_mirror_invariant(crops_store: str) -> None:
    """normalize(f(x) + f(mirror x)) is the same for a face and its mirror image: the mirror flips every
    channel and swaps the left/right heatmap channels, and mirroring twice gives the face back."""
    from facerec.recognition.inference import embed_batch
    from facerec.recognition.model import ModelSpec, build_recognizer
    from facerec.store.dataset import FaceStoreDataset
    from facerec.store.transforms import RandomHorizontalFlip

    ds = FaceStoreDataset(_open(crops_store), rows=list(range(6)), add_mask_channel=True)
    images = ds.read_rows(list(range(6)))["image"]
    torch.manual_seed(0)
    model = build_recognizer(ModelSpec("resnet18", ds.num_channels, 4, img_size=SIZE, embedding_size=16))
    mirrored = RandomHorizontalFlip(1.0)(images, ds.channel_layout)[0]
    assert not torch.equal(mirrored, images)
    a = embed_batch(model, images, ds.channel_layout, torch.device("cpu"))
    b = embed_batch(model, mirrored, ds.channel_layout, torch.device("cpu"))
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(a.norm(dim=1), torch.ones(6))
    single = embed_batch(model, images, ds.channel_layout, torch.device("cpu"), mirror=False)
    assert not torch.allclose(a, single, atol=1e-3)
