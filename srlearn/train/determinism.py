"""Determinism for the training loop: which samples each step sees, and the random state around them.

Batch ``t`` is a pure function of ``(seed, t)``: :class:`Batches` walks an endless sequence of epochs, each a
permutation of the training set drawn from ``(seed, epoch)``, and batch ``t`` takes positions
``t*B ... t*B+B-1``. :class:`SeededItems` seeds the global RNGs (``torch``'s CPU generator, ``numpy``,
``random``) from ``(seed, t, position in the batch)`` before each sample is fetched, so random crops and
flips drawn from them are reproducible too, in this process or a DataLoader worker. With the model,
optimiser, scheduler, EMA and RNG states (:func:`get_rng_state`) in the checkpoint, ``N`` straight steps and
``k`` steps + resume + ``N - k`` steps give bit-identical weights on the CPU (tests/test_train.py).
A dataset that keeps its own random generator between calls breaks this; draw from the global RNGs.
"""
from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import Dataset

from . import distributed

__all__ = ["mix", "Batches", "SeededItems", "get_rng_state", "set_rng_state"]


def mix(*keys: int) -> int:
    """A 64-bit seed from integer keys; different keys give independent streams (numpy SeedSequence)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0])


class Batches:
    """Batch index lists for steps ``start, start+1, ...``: epoch ``e`` is a permutation of the training
    set drawn from ``(seed, e)``; batch ``t`` is positions ``t*B ... t*B+B-1`` of the concatenated epochs
    (so a batch may straddle two epochs). Each item is keyed ``(step, position, index)``; under
    ``torchrun`` each rank keeps its slice of the global batch."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int, ctx):
        self.n, self.batch_size, self.seed, self.start, self.ctx = n, batch_size, seed, start, ctx
        distributed.shard(list(range(batch_size)), ctx)   # fail early if B is not divisible by the world size
        self._perms: dict[int, torch.Tensor] = {}

    def indices(self, step: int) -> list[int]:
        out = []
        for pos in range(step * self.batch_size, (step + 1) * self.batch_size):
            epoch, i = divmod(pos, self.n)
            out.append(int(self._perm(epoch)[i]))
        return out

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.pop(min(self._perms))
            g = torch.Generator().manual_seed(mix(self.seed, 0, epoch))
            self._perms[epoch] = torch.randperm(self.n, generator=g)
        return self._perms[epoch]

    def __iter__(self):
        step = self.start
        while True:
            keys = [(step, pos, idx) for pos, idx in enumerate(self.indices(step))]
            yield distributed.shard(keys, self.ctx)
            step += 1


class SeededItems(Dataset):
    """``dataset[index]`` with the global RNGs seeded from ``(seed, step, position)`` first."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        step, pos, index = key
        s = mix(self.seed, 1, step, pos)
        # the CPU generator, which datasets draw from: the same stream as torch.manual_seed(s), without
        # re-seeding every device's generator (0.17 ms -> 0.005 ms per item, measured on a 2-core CPU)
        torch.default_generator.manual_seed(s)
        np.random.seed(s % 2**32)
        random.seed(s)
        return self.dataset[index]


def get_rng_state() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
