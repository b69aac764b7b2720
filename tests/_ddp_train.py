"""Helper for test_distributed.py: the same tiny run, in one process or under torchrun.

Run as ``python -m torch.distributed.run --nproc_per_node 2 --standalone tests/_ddp_train.py OUT_DIR``:
each rank trains with srlearn.train.train (gloo, CPU) and writes the dataset indices it fetched;
rank 0 also writes its final parameters and History. test_distributed.py imports this module to run
the same configuration in a single process and compares.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from srlearn.train import TrainConfig, train

STEPS, BATCH = 6, 4


class TinySR(nn.Module):
    """conv -> pixel shuffle: the smallest model with the srlearn model contract (scale x, NCHW)."""

    def __init__(self, scale: int = 2):
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        self.up = nn.PixelShuffle(scale)

    def forward(self, x):
        return self.up(self.conv(x))


class SmoothPairs(torch.utils.data.Dataset):
    """n smooth random HR images (bilinear-upsampled noise); LR = 2x2 average pool. Records fetches."""

    def __init__(self, n: int = 10, lr_size: int = 8, scale: int = 2, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        coarse = torch.rand(n, 3, lr_size // 2, lr_size // 2, generator=g)
        self.hr = F.interpolate(coarse, size=(lr_size * scale,) * 2, mode="bilinear", align_corners=False)
        self.lr = F.avg_pool2d(self.hr, scale)
        self.fetched: list[int] = []

    def __len__(self):
        return len(self.hr)

    def __getitem__(self, i):
        self.fetched.append(int(i))
        return self.lr[i], self.hr[i]


def make_run(ckpt_path=None):
    torch.manual_seed(0)
    model = TinySR()
    data = SmoothPairs()
    config = TrainConfig(steps=STEPS, batch_size=BATCH, lr=1e-2, schedule="step", log_every=2,
                         val_every=0, ckpt_path=ckpt_path, ckpt_every=0, seed=3, device="cpu",
                         progress=False)
    return model, data, config


def main(out: Path) -> None:
    model, data, config = make_run(ckpt_path=str(out / "ddp.pt"))
    history = train(model, data, config)
    rank = int(os.environ["RANK"])
    (out / f"fetched_rank{rank}.json").write_text(json.dumps(data.fetched))
    if rank == 0:
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / "final.pt")
        (out / "history.json").write_text(json.dumps(history.to_dict()))
    assert not torch.distributed.is_initialized(), "train() must destroy the group it created"


if __name__ == "__main__":
    main(Path(sys.argv[1]))
