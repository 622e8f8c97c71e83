"""``facerec train``: train the recogniser on a feature store (optionally building the store first)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from facerec.commands.evaluate import print_report
from facerec.commands.options import Device, ImgSize, OutDir, Seed, Store
from facerec.recognition.config import TrainConfig
from facerec.training.distributed import launch_self


def _default(name: str):
    """The ``TrainConfig`` default of a field: the one source of this command's option defaults."""
    return TrainConfig.__dataclass_fields__[name].default


class TrueFalse(str, Enum):
    """An option that takes an explicit value, as the issue writes them: ``--use-heatmaps true``."""

    true = "true"
    false = "false"


def _bool_option(name: str, help_text: str):
    return typer.Option(name, case_sensitive=False, help=help_text)


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        store: Store,
        out: OutDir,
        extractor: Annotated[Optional[str], typer.Option(
            "--extractor", help="Feature set's landmark extractor (mediapipe, dlib, template); default the store's only one.")] = _default("extractor"),
        use_heatmaps: Annotated[TrueFalse, _bool_option("--use-heatmaps", "Add the 6 landmark heatmap channels.")] = TrueFalse(str(_default("use_heatmaps")).lower()),
        add_mask_channel: Annotated[TrueFalse, _bool_option("--add-mask-channel", "Add the face-hull mask channel.")] = TrueFalse(str(_default("add_mask_channel")).lower()),
        use_cosface: Annotated[TrueFalse, _bool_option("--use-cosface", "CosFace (s=30, m=0.35; the default) or ArcFace (false: s=64, m=0.5).")] = TrueFalse(str(_default("use_cosface")).lower()),
        margin: Annotated[Optional[float], typer.Option("--margin", help="Margin m; default 0.5 (ArcFace) or 0.35 (CosFace).")] = _default("margin"),
        scale: Annotated[Optional[float], typer.Option("--scale", help="Logit scale s; default 30 (CosFace) / 64 (ArcFace).")] = _default("scale"),
        margin_warmup_epochs: Annotated[float, typer.Option(
            "--margin-warmup-epochs", help="Ramp the margin from 0 to m over these epochs (0: full margin from the first "
                                           "step). Optional: it did not prevent the small-data collapse in our runs.")] = _default("margin_warmup_epochs"),
        stop_on_collapse: Annotated[bool, typer.Option(
            "--stop-on-collapse", help="Stop when the collapse guard fires (loss on the collapse plateau, accuracy "
                                       "near chance), not only warn.")] = _default("stop_on_collapse"),
        group_all_landmarks: Annotated[bool, typer.Option(
            "--group-all-landmarks", help="One heatmap channel per landmark (478 or 68) instead of 6 groups.")] = _default("group_all_landmarks"),
        img_size: ImgSize = _default("img_size"),
        backbone: Annotated[str, typer.Option("--backbone", help="resnet18, resnet34 or resnet50.")] = _default("backbone"),
        stem: Annotated[str, typer.Option("--stem", help="face (3x3/1, no max-pool) or imagenet (7x7/2 + max-pool).")] = _default("stem"),
        epochs: Annotated[int, typer.Option("--epochs")] = _default("epochs"),
        batch_size: Annotated[int, typer.Option("--batch-size")] = _default("batch_size"),
        lr: Annotated[float, typer.Option("--lr", help="Peak AdamW learning rate (linear warm-up, then cosine).")] = _default("lr"),
        weight_decay: Annotated[float, typer.Option("--weight-decay")] = _default("weight_decay"),
        warmup_epochs: Annotated[float, typer.Option("--warmup-epochs")] = _default("warmup_epochs"),
        grad_clip: Annotated[Optional[float], typer.Option("--grad-clip", help="Max gradient norm; 0 turns clipping off.")] = _default("grad_clip"),
        amp: Annotated[str, typer.Option("--amp", help="auto (bf16, else fp16, on CUDA), bf16, fp16 or off.")] = _default("amp"),
        channels_last: Annotated[str, typer.Option("--channels-last", help="auto (on for CUDA), on or off.")] = _default("channels_last"),
        augment: Annotated[TrueFalse, _bool_option("--augment", "Joint flip + small zoom/shift of all channels.")] = TrueFalse(str(_default("augment")).lower()),
        input_path: Annotated[str, typer.Option("--input-path", help="device (default: ship RGB + landmarks, augment and render heatmaps on the training device; measured 18x the cpu path's loader rate) or cpu (stored heatmaps, augmentation in the workers).")] = _default("input_path"),
        holdout_identity_frac: Annotated[float, typer.Option("--holdout-identity-frac", help="Identities held out for verification.")] = _default("holdout_identity_frac"),
        holdout_image_frac: Annotated[float, typer.Option("--holdout-image-frac", help="Images of training identities held out for validation.")] = _default("holdout_image_frac"),
        device: Device = _default("device"),
        num_workers: Annotated[int, typer.Option("--num-workers", help="DataLoader worker processes.")] = _default("num_workers"),
        max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Stop after this many optimiser steps.")] = _default("max_steps"),
        checkpoint_every: Annotated[Optional[int], typer.Option("--checkpoint-every", min=1, help="Also checkpoint every N steps inside an epoch (a crash loses at most N steps; --resume continues).")] = _default("checkpoint_every"),
        seed: Seed = _default("seed"),
        resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")] = _default("resume"),
        data_root: Annotated[Optional[str], typer.Option(
            "--data-root", help="An ImageFolder to build (or reuse) the store from before training.")] = _default("data_root"),
        nproc: Annotated[int, typer.Option(
            "--nproc", min=1, help="Train with N processes on this machine (DDP, one GPU each, or gloo on CPU): "
                                   "re-launches this command under torch.distributed.run.")] = 1,
    ) -> None:
        """Train the recogniser (ResNet + ArcFace/CosFace) on STORE; writes the run folder --out."""
        if nproc > 1:
            launch_self(nproc)
            return
        from facerec.recognition.workflow import build_train_evaluate   # torch, pyspark: only when training

        cfg = TrainConfig(
            store=store, out=str(out), extractor=extractor, img_size=img_size,
            use_heatmaps=use_heatmaps is TrueFalse.true, add_mask_channel=add_mask_channel is TrueFalse.true,
            use_cosface=use_cosface is TrueFalse.true, margin=margin, scale=scale,
            margin_warmup_epochs=margin_warmup_epochs, stop_on_collapse=stop_on_collapse, group_all_landmarks=group_all_landmarks, backbone=backbone,
            stem=stem, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
            warmup_epochs=warmup_epochs, grad_clip=grad_clip or None, amp=amp, channels_last=channels_last,
            augment=augment is TrueFalse.true, input_path=input_path, holdout_identity_frac=holdout_identity_frac,
            holdout_image_frac=holdout_image_frac, device=device, num_workers=num_workers, max_steps=max_steps,
            checkpoint_every=checkpoint_every,
            seed=seed, resume=resume, data_root=data_root,
        )
        result = build_train_evaluate(cfg)
        _print_result(result)


def _print_result(result) -> None:
    from rich.console import Console

    console = Console()
    console.print(f"run: {result.run_dir}  steps: {result.steps}  epochs: {result.epochs_done}")
    for key, value in result.last_epoch_metrics.items():
        if isinstance(value, float):
            console.print(f"  {key}: {value:.4f}")
    if result.evaluation:
        print_report(result.evaluation)
