"""DDP training: ``facerec train --nproc 2`` on CPU (gloo) over a small store of real LFW crops.

The command re-launches itself under ``torch.distributed.run``; each rank records the store rows it
trained on and its final weights (``FACEREC_TRACE_DIR``). The ranks must have seen disjoint rows that
together make up the epoch, ended with identical parameters, and only rank 0 may have written the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facerec.training.distributed import DistInfo, dist_info_from_env, strip_nproc
from facerec.errors import ConfigError

from conftest import REPO

SIZE, BATCH, MAX_STEPS = 32, 8, 3


def test_rank_and_world_size_come_from_the_environment() -> None:
    assert dist_info_from_env({}) == DistInfo(0, 1, 0)
    info = dist_info_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (info.rank, info.world_size, info.local_rank, info.is_main, info.distributed) == (3, 4, 1, False, True)
    with pytest.raises(ConfigError, match="RANK < WORLD_SIZE"):
        dist_info_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="integers"):
        dist_info_from_env({"RANK": "zero"})
    assert strip_nproc(["train", "--nproc", "2", "--store", "s", "--nproc=3", "--out", "o"]) == \
        ["train", "--store", "s", "--out", "o"]


@pytest.mark.slow
def test_two_gloo_ranks_see_disjoint_rows_and_end_with_identical_weights(lfw_dir: Path, tmp_path: Path) -> None:
    from store_builder import build_feature_set

    from facerec.recognition.config import TrainConfig
    from facerec.recognition.data import open_split
    from facerec.store.open_store import open_feature_set

    zarr_path, _ = build_feature_set(tmp_path / "store", lfw_dir, num_identities=12, per_identity=5, size=SIZE,
                                     chunk_rows=8, shard_size=32, invalid_rows=())
    trace, run = tmp_path / "trace", tmp_path / "run"
    trace.mkdir()
    cmd = [sys.executable, "-m", "facerec.cli", "train", "--store", str(zarr_path), "--out", str(run),
           "--backbone", "resnet18", "--stem", "imagenet", "--img-size", str(SIZE), "--batch-size", str(BATCH), "--epochs", "2",
           "--max-steps", str(MAX_STEPS), "--num-workers", "0", "--device", "cpu", "--augment", "false",
           "--holdout-identity-frac", "0.2", "--nproc", "2"]
    env = {**os.environ, "FACEREC_TRACE_DIR": str(trace), "OMP_NUM_THREADS": "1", "COLUMNS": "250"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]

    # Rows: disjoint across ranks; per epoch, together the first 2 x steps x batch rows of the sampler's order.
    rows = {r: [[int(v) for v in line.split()] for line in (trace / f"rows-rank{r}.txt").read_text().splitlines()]
            for r in (0, 1)}
    assert [len(rows[0]), len(rows[1])] == [MAX_STEPS, MAX_STEPS]
    assert all(len(batch) == BATCH for r in (0, 1) for batch in rows[r])
    cfg = TrainConfig(store=str(zarr_path), out=str(run), backbone="resnet18", stem="imagenet", img_size=SIZE, batch_size=BATCH,
                         epochs=2, augment=False, holdout_identity_frac=0.2, num_workers=0, device="cpu")
    train_rows = set(open_split(cfg, open_feature_set(str(zarr_path)), "train").rows.tolist())
    steps_per_epoch = len(train_rows) // 2 // BATCH
    for epoch_start in range(0, MAX_STEPS, steps_per_epoch):
        seen = [{v for b in rows[r][epoch_start:epoch_start + steps_per_epoch] for v in b} for r in (0, 1)]
        assert not seen[0] & seen[1], "the two ranks trained on the same rows in one epoch"
        assert seen[0] | seen[1] <= train_rows
        assert len(seen[0] | seen[1]) == 2 * BATCH * min(steps_per_epoch, MAX_STEPS - epoch_start)

    # Weights: every parameter identical on both ranks (gradients averaged by DDP) and in rank 0's checkpoint.
    # BatchNorm running statistics are left out: each rank updates them from its own batch (rank 0's are saved).
    w0, w1 = (torch.load(trace / f"weights-rank{r}.pt", weights_only=True) for r in (0, 1))
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    params = [k for k in ckpt["model"] if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert params and all(torch.equal(w0[k], w1[k]) for k in params)
    assert all(torch.equal(w0[k], ckpt["model"][k]) for k in params)
    assert ckpt["world_size"] == 2 and ckpt["loop"]["step"] == MAX_STEPS

    # Only rank 0 wrote the run: every (step, phase) record once, no copies from rank 1.
    records = [(r["step"], r["phase"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]
    assert records and len(records) == len(set(records))
    assert "effective batch 16" in done.stderr + done.stdout
