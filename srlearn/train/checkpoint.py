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
    identity             what made the run (``run_identity``): model spec, resolved config and, for a
                         replication, experiment / arm / seed / mode. Compared with ``check_identity``
                         before a checkpoint is resumed or reused, so one run never continues another.

Writing: ``torch.save`` into a temporary file in the same directory, flush + fsync, then
``os.replace`` onto the target. ``os.replace`` is atomic on POSIX and Windows when source and target
are on the same file system, so a crash or a full disk mid-write leaves the previous checkpoint intact.
The file gets the process's normal mode (0666 minus the umask), not ``mkstemp``'s 0600, and temporary
files left by a killed writer are removed by the next save to the same path. A write that fails (a
full disk makes ``torch.save`` report "unexpected pos ...") raises ``OSError`` naming the file and the
free space. Every load maps to ``map_location`` (CPU by default) so a GPU checkpoint opens on a laptop
[sr-protocol.md §8 item 26].
"""
from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from pathlib import Path

import torch
from torch import nn

from .. import _files

FORMAT = "srlearn-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path, **state) -> Path:
    """Write ``state`` (plus ``format`` and ``version``) to ``path`` atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "version": FORMAT_VERSION, **state}

    def write(f):
        try:
            torch.save(state, f)
        except RuntimeError as e:   # torch's zip writer reports a full disk as "unexpected pos ..."
            raise OSError(f"could not write checkpoint {str(path)!r} ({e}); "
                          f"{_free_space(path.parent)}. The previous checkpoint, if any, is unchanged: "
                          f"free some space or write elsewhere, then run again to resume") from e

    return _files.atomic_write(path, write, fsync=True)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint written by ``save_checkpoint`` (safe loader, tensors mapped to ``map_location``).

    A file that is not a PyTorch checkpoint at all (empty, a few bytes, text, a git-LFS pointer, random
    bytes, a truncated archive) gets a message saying what it is; only a readable PyTorch file that holds
    objects the safe loader refuses gets the ``weights_only=False`` hint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}: check the path, or train first "
                                f"(train(..., config=TrainConfig(ckpt_path=...)) writes one)")
    _sniff(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if not _is_torch_archive(path):
            raise ValueError(f"{str(path)!r} is not a readable PyTorch checkpoint (corrupt or not written "
                             f"by torch.save): {e}. Delete it and train again, or resume from an older "
                             f"copy.") from e
        raise ValueError(f"{str(path)!r} is not an srlearn checkpoint: it holds objects the safe loader "
                         f"(weights_only=True) refuses. srlearn checkpoints hold only tensors and plain "
                         f"containers; if you trust the file, open it with torch.load(..., "
                         f"weights_only=False). ({e})") from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, IndexError, KeyError, ValueError) as e:
        raise ValueError(f"{str(path)!r} cannot be read as a checkpoint (truncated or corrupt file?): "
                         f"{type(e).__name__}: {e}. Delete it and train again, or resume from an older "
                         f"copy.") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is a PyTorch file but not an srlearn checkpoint (no "
                         f"format={FORMAT!r} entry); for a bare state_dict use "
                         f"model.load_state_dict(torch.load(path, weights_only=True))")
    if state.get("version", 0) > FORMAT_VERSION:
        raise ValueError(f"{str(path)!r} has checkpoint format version {state['version']}, newer than "
                         f"this srlearn reads ({FORMAT_VERSION}): upgrade srlearn")
    return state


_ZIP_MAGIC = b"PK\x03\x04"
_LFS_HEAD = b"version https://git-lfs"
_LEGACY_HEAD = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"   # pickle of torch's legacy magic number


def _sniff(path: Path) -> None:
    """Raise ``ValueError`` saying what ``path`` is when it cannot be a PyTorch file at all."""
    with open(path, "rb") as f:
        head = f.read(512)
    size = path.stat().st_size
    where = str(path)
    if size == 0:
        raise ValueError(f"{where!r} is empty (0 bytes), not a checkpoint: a write that never finished "
                         f"or a placeholder. Delete it and train again, or resume from an older copy.")
    if head.startswith(_LFS_HEAD):
        raise ValueError(f"{where!r} is a git-LFS pointer (a small text file standing for the real "
                         f"checkpoint), not the checkpoint itself: fetch the content with `git lfs pull` "
                         f"(git-lfs installed) or download the file itself.")
    if head.startswith(_ZIP_MAGIC) or head.startswith(_LEGACY_HEAD):   # torch.save's zip, or its legacy format
        return
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        first = text.strip().splitlines()[0][:80] if text.strip() else ""
        raise ValueError(f"{where!r} is a text file ({size} bytes, starting {first!r}), not a checkpoint: "
                         f"check the path (a checkpoint is the .pt file written by srlearn training).")
    if size < 64:
        raise ValueError(f"{where!r} is only {size} bytes, too short to be a checkpoint (truncated, or "
                         f"not a checkpoint). Delete it and train again, or resume from an older copy.")
    raise ValueError(f"{where!r} is not a PyTorch checkpoint: it starts with neither a zip archive "
                     f"(torch.save) nor a pickle header (random or foreign bytes, e.g. {head[:8]!r}). "
                     f"Check the path; delete it and train again if it was a checkpoint.")


def _is_torch_archive(path: Path) -> bool:
    """A readable torch.save zip archive (``.../data.pkl`` inside) or a legacy pickle-format file."""
    with open(path, "rb") as f:
        head = f.read(len(_LEGACY_HEAD))
    if head == _LEGACY_HEAD:
        return True
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("data.pkl") for n in zf.namelist()) and zf.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def _free_space(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free:,} bytes free on that disk (full?)"
    except OSError:
        return "the free space could not be read"


# ------------------------------------------------------------------------------------------ run identity
class CheckpointMismatch(ValueError):
    """A checkpoint was made by a different run than the one asked for (see ``check_identity``)."""


#: TrainConfig fields that do not change what is trained (where and how verbosely it runs), ignored by
#: ``run_identity``: a run may resume on another device, with other workers or another checkpoint path.
RUNTIME_FIELDS = ("progress", "device", "num_workers", "ckpt_path", "ckpt_every")

#: The ways out named by a mismatch when the caller does not give its own.
TRAIN_WAYS_OUT = ("give TrainConfig(ckpt_path=...) another file to keep the old checkpoint, or pass "
                  "resume=False (resume=None) to train from scratch, which replaces it")


def run_identity(config=None, model_spec=None, **extra) -> dict:
    """A run's identity as stored in its checkpoint: the model spec, the resolved training configuration
    (``TrainConfig``, milestones filled in, runtime-only fields dropped) and any ``extra`` entries such as
    ``experiment``, ``arm``, ``seed``, ``mode``. Values are normalised to JSON (tuples become lists)."""
    ident = {}
    if config is not None:
        cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        if cfg.get("schedule") == "step" and cfg.get("milestones") is None and cfg.get("steps") is not None:
            cfg["milestones"] = [cfg["steps"] // 2, (3 * cfg["steps"]) // 4]
        for k in RUNTIME_FIELDS:
            cfg.pop(k, None)
        ident["config"] = cfg
    ident["model_spec"] = model_spec
    ident.update(extra)
    return _plain(ident)


def stored_identity(state: dict) -> dict:
    """The identity recorded in a loaded checkpoint; for one written before identities existed, what
    can be rebuilt from its ``config`` and ``model_spec`` entries (other entries then read None)."""
    if isinstance(state.get("identity"), dict):
        return state["identity"]
    return run_identity(state.get("config"), state.get("model_spec")) if state.get("config") else \
        {"model_spec": state.get("model_spec")}


def identity_diff(stored: dict, expected: dict) -> list[tuple[str, object, object]]:
    """``(key, stored value, expected value)`` for every entry of ``expected`` that ``stored`` does not
    match; nested dicts (config, model_spec) are compared entry by entry with dotted keys."""
    out = []

    def walk(prefix, a, b):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                walk(f"{prefix}.{k}" if prefix else str(k), a.get(k), b.get(k))
        elif a != b:
            out.append((prefix, a, b))

    stored, expected = _plain(stored), _plain(expected)
    for key in expected:
        walk(key, stored.get(key), expected[key])
    return out


def check_identity(state: dict, expected: dict, path=None, ways_out: str | None = None) -> None:
    """Raise ``CheckpointMismatch`` unless checkpoint ``state`` was made by the run ``expected``
    describes (a dict from :func:`run_identity`). Only the keys of ``expected`` are compared; the error
    names each differing entry with both values, the checkpoint, and ``ways_out`` (what to do)."""
    diffs = identity_diff(stored_identity(state), expected)
    if not diffs:
        return
    where = f"checkpoint {str(path)!r}" if path is not None else "the checkpoint"
    shown = "; ".join(f"{k}: checkpoint has {a!r}, this run has {b!r}" for k, a, b in diffs[:8])
    more = f" (and {len(diffs) - 8} more)" if len(diffs) > 8 else ""
    raise CheckpointMismatch(f"{where} was made by a different run, so it is neither resumed nor reused. "
                             f"{shown}{more}. Either {ways_out or TRAIN_WAYS_OUT}.")


def _plain(obj):
    """JSON-normalised copy (tuples -> lists, numpy/torch scalars -> numbers) for comparisons."""
    return json.loads(json.dumps(obj, default=_json_default))


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


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


