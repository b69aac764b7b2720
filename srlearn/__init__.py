"""srlearn: learn image super-resolution papers by building them.

The package holds every reusable piece (data protocol, metrics, blocks, models, training loop,
experiments, plots); the notebooks in ``notebooks/`` derive each piece step by step and assert that
their derivation equals the package's.

Imports go one way: ``data``, ``metrics`` -> ``nn`` -> ``models`` -> ``train`` -> ``experiments`` -> ``cli``;
``viz`` may look at any of them. Submodules are imported lazily so ``import srlearn`` stays cheap.
"""
from __future__ import annotations

import importlib

from ._env import device, mode, seed_everything

__version__ = "0.1.0"

__all__ = ["__version__", "device", "mode", "seed_everything", "load_pretrained",
           "data", "metrics", "nn", "models", "train", "experiments", "viz", "weights"]

_SUBMODULES = {"data", "metrics", "nn", "models", "train", "experiments", "viz", "bench", "cli", "exercise",
               "weights"}


def __getattr__(name):  # PEP 562: srlearn.models etc. on first use
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "check":  # srlearn.check(name, mine, reference): the student copies' checker (srlearn.exercise)
        return importlib.import_module(f"{__name__}.exercise").check
    if name == "load_pretrained":   # the shipped weights (srlearn/weights.py), loaded on first use
        return importlib.import_module(f"{__name__}.weights").load_pretrained
    raise AttributeError(f"module 'srlearn' has no attribute {name!r}")
