"""Run-time environment: quick/full mode, device choice, seeding.

These live below every floor (``data``, ``metrics``, ...) so any module may use them.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

MODES = ("quick", "full")


def mode(default: str | None = None) -> str:
    """The run mode: ``"quick"`` (a minute on a CPU) or ``"full"`` (the small-scale GPU replication).

    Order of precedence: an explicit ``default`` (``"quick"`` or ``"full"``: a caller's or the command
    line's choice beats the environment); else the ``SRLEARN_MODE`` environment variable; else
    ``"full"`` when a CUDA device is available and ``"quick"`` without one. ``None`` and ``"auto"``
    mean "not chosen".
    """
    explicit = (default or "").strip().lower()
    if explicit and explicit != "auto":
        if explicit not in MODES:
            raise ValueError(f"mode {default!r} is not a mode: use one of {MODES} (or 'auto')")
        return explicit
    value = os.environ.get("SRLEARN_MODE", "").strip().lower()
    if not value or value == "auto":
        return "full" if torch.cuda.is_available() else "quick"
    if value not in MODES:
        raise ValueError(f"SRLEARN_MODE={value!r} is not a mode: use one of {MODES} (or unset it "
                         f"to choose full on a GPU and quick without one)")
    return value


def device(prefer: str | None = None) -> torch.device:
    """The device to compute on: ``prefer`` if given (e.g. ``"cpu"``), else ``SRLEARN_DEVICE``,
    else CUDA when available, else Apple's MPS when available, else the CPU."""
    name = prefer or os.environ.get("SRLEARN_DEVICE")
    if name:
        dev = torch.device(name)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} was asked for but CUDA is not available here; "
                               "use 'cpu' or unset SRLEARN_DEVICE")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU ``torch.Generator`` seeded the same."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g
