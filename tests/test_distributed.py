"""Data-parallel training: sharding of the global batch, and a 2-process torchrun run (gloo, CPU)
that must end where single-process training on the same global batches ends."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srlearn.train import distributed, load_checkpoint, train

HERE = Path(__file__).parent


def _helper():
    spec = importlib.util.spec_from_file_location("_ddp_train", HERE / "_ddp_train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_shard_splits_the_global_batch_into_disjoint_equal_slices():
    batch = list(range(10, 22))
    parts = [distributed.shard(batch, distributed.DistContext(rank=r, world_size=3)) for r in range(3)]
    assert parts == [batch[0:4], batch[4:8], batch[8:12]]
    assert distributed.shard(batch, distributed.DistContext()) == batch      # single process: everything


def test_shard_refuses_a_batch_that_does_not_divide():
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        distributed.shard(list(range(6)), distributed.DistContext(rank=0, world_size=4))


def test_single_process_context_without_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = distributed.setup(torch.device("cpu"))
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.owns_group) == (0, 1, True, False)


@pytest.mark.slow            # ~15 s on an idle 2-core CPU, 30 s on a busy one
@pytest.mark.distributed
def test_torchrun_two_processes_match_single_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           str(HERE / "_ddp_train.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    helper = _helper()
    model, data, config = helper.make_run()
    single = train(model, data, config)
    B, W = helper.BATCH, 2
    # Every dataset access after the first (train()'s check of item 0) belongs to a batch, in order.
    single_batches = [data.fetched[1 + t * B: 1 + (t + 1) * B] for t in range(helper.STEPS)]
    ranks = [json.loads((tmp_path / f"fetched_rank{r}.json").read_text())[1:] for r in range(W)]
    assert all(len(r) == helper.STEPS * B // W for r in ranks)          # each rank: half of each batch
    for t in range(helper.STEPS):
        per_rank = [r[t * B // W:(t + 1) * B // W] for r in ranks]
        assert per_rank[0] + per_rank[1] == single_batches[t]            # ...and together the global batch

    ddp_state = torch.load(tmp_path / "final.pt", weights_only=True)
    for name, p in model.state_dict().items():
        torch.testing.assert_close(ddp_state[name], p, rtol=1e-5, atol=1e-6)
    assert not all(torch.equal(ddp_state[k], v) for k, v in helper.make_run()[0].state_dict().items())

    hist = json.loads((tmp_path / "history.json").read_text())
    assert hist["step"] == single.step
    torch.testing.assert_close(torch.tensor(hist["loss"]), torch.tensor(single.loss), rtol=1e-5, atol=1e-7)
    ckpt = load_checkpoint(tmp_path / "ddp.pt")                          # written by rank 0 only
    assert ckpt["step"] == helper.STEPS
    assert not list(tmp_path.glob(".ddp.pt.*"))                           # no temp file left behind
