"""Checkpoints: written atomically, read with ``weights_only=True``, rebuildable without the caller's code.

A checkpoint is a plain dict of tensors and primitive containers, so ``torch.load(weights_only=True)``
(the safe loader, which refuses arbitrary pickled objects) can read it:

    format, version      "srlearn-checkpoint", FORMAT_VERSION
    model                the model's state_dict (raw weights, the ones the optimiser updates)
    ema                  the EMA network's state_dict, or None
    optimizer, scheduler their state_dicts
    step                 optimiser steps done
    history              History.to_dict()
    config               TrainConfig.to_dict()
    rng                  RNG states: torch CPU (uint8 tensor), CUDA (list), numpy (list), python (tuple)
    model_spec           model.srlearn_spec ({"name", "preset", "kwargs"}), or None

Writing: ``torch.save`` into a temporary file in the same directory, flush + fsync, then
``os.replace`` onto the target. ``os.replace`` is atomic on POSIX and Windows when source and target
are on the same file system, so a crash or a full disk mid-write leaves the previous checkpoint intact.
Every load maps to ``map_location`` (CPU by default) so a GPU checkpoint opens on a laptop
[sr-protocol.md §8 item 26].
"""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

FORMAT = "srlearn-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path, **state) -> Path:
    """Write ``state`` (plus ``format`` and ``version``) to ``path`` atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "version": FORMAT_VERSION, **state}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint written by ``save_checkpoint`` (safe loader, tensors mapped to ``map_location``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}: check the path, or train first "
                                f"(train(..., config=TrainConfig(ckpt_path=...)) writes one)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{str(path)!r} is not an srlearn checkpoint: it holds objects the safe loader "
                         f"(weights_only=True) refuses. srlearn checkpoints hold only tensors and plain "
                         f"containers; if you trust the file, open it with torch.load(..., "
                         f"weights_only=False). ({e})") from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{str(path)!r} cannot be read as a checkpoint (truncated or corrupt file?): "
                         f"{e}. Delete it and train again, or resume from an older copy.") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is a PyTorch file but not an srlearn checkpoint (no "
                         f"format={FORMAT!r} entry); for a bare state_dict use "
                         f"model.load_state_dict(torch.load(path, weights_only=True))")
    if state.get("version", 0) > FORMAT_VERSION:
        raise ValueError(f"{str(path)!r} has checkpoint format version {state['version']}, newer than "
                         f"this srlearn reads ({FORMAT_VERSION}): upgrade srlearn")
    return state


def load_model(path, map_location="cpu") -> nn.Module:
    """Rebuild the checkpoint's model from its spec, with the EMA weights if present, in eval mode."""
    from ..models import build_from_spec

    state = load_checkpoint(path, map_location)
    spec = state.get("model_spec")
    if not spec:
        raise ValueError(f"{str(path)!r} has no model_spec (the model was not built with "
                         f"srlearn.models.build): build the model yourself and call "
                         f"model.load_state_dict(load_checkpoint(path)['model'])")
    model = build_from_spec(spec)
    weights = state.get("ema") or state["model"]
    model.load_state_dict(weights)
    if isinstance(map_location, (str, torch.device)):
        model.to(map_location)
    return model.eval()


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
