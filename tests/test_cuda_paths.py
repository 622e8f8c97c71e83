"""The CUDA-only paths of training: bf16 autocast, fp16 with a GradScaler, channels_last, pinned memory.

They run where CUDA exists and skip with a reason elsewhere (this project's CI has no GPU). The device
-side augmentation on CUDA is tested in tests/test_device_augment.py.
"""

from __future__ import annotations

import pytest
import torch

from facerec.recognition.model import ModelSpec, build_recognizer
from facerec.training.schedule import warmup_cosine
from facerec.recognition.train import train_step

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")


def setup(channels_last: bool):
    torch.manual_seed(0)
    model = build_recognizer(ModelSpec("resnet18", 9, 10, img_size=112, stem="imagenet")).cuda().train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(8, 9, 112, 112, device="cuda") * 2 - 1
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return model, opt, warmup_cosine(opt, 10, 0), x, torch.randint(0, 10, (8,), device="cuda")


@pytest.mark.parametrize("channels_last", [False, True])
def test_bf16_autocast_step_changes_the_weights_and_keeps_fp32_master_weights(channels_last):
    model, opt, sched, x, y = setup(channels_last)
    before = [p.detach().clone() for p in model.parameters()]
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    loss, correct = train_step(model, opt, sched, scaler, x, y, amp_dtype=torch.bfloat16, grad_clip=5.0)
    assert torch.isfinite(loss) and 0 <= int(correct) <= 8
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_fp16_with_grad_scaler_scales_the_loss_and_steps():
    model, opt, sched, x, y = setup(True)
    scaler = torch.amp.GradScaler("cuda", enabled=True, init_scale=2.0**10)
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        loss, _ = train_step(model, opt, sched, scaler, x, y, amp_dtype=torch.float16, grad_clip=5.0)
    assert torch.isfinite(loss) and scaler.get_scale() > 0
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_pinned_loader_batches_move_without_blocking(lfw_dir, tmp_path):
    from facerec.store.dataset import FaceStoreDataset
    from facerec.store.sampler import ChunkShuffleSampler, make_loader

    from store_builder import build_feature_set

    zarr_path, _ = build_feature_set(tmp_path, lfw_dir, num_identities=4, per_identity=4, invalid_rows=(3,))
    ds = FaceStoreDataset(str(zarr_path), use_heatmaps=False, return_landmarks=True)
    loader = make_loader(ds, ChunkShuffleSampler.for_dataset(ds, batch_size=8), 0, pin_memory=True)
    batch = next(iter(loader))
    assert batch["image"].is_pinned() and batch["landmarks"].is_pinned()
    moved = batch["image"].to("cuda", non_blocking=True)
    torch.cuda.synchronize()
    assert torch.equal(moved.cpu(), batch["image"])
