"""Turn the authors' released weight files into srlearn checkpoints: ``srlearn convert``.

    srlearn convert --from official-san  SAN_BIX2.pt          --out san_x2.pt
    srlearn convert --from official-rcan RCAN_BIX4.pt         --out rcan_x4.pt
    srlearn convert --from official-mirnet model_denoising.pth --out mirnet_denoise.pt

    model = srlearn.train.load_model("san_x2.pt")            # srlearn's SAN, [0, 1] RGB in and out

Where the files are: the authors publish them, linked from the README of each official repository
(github.com/daitao/SAN, github.com/yulunzhang/RCAN, github.com/swz30/MIRNet). srlearn does not
redistribute them and downloads nothing: fetch them yourself, under the authors' terms. Each file is read
with ``torch.load(weights_only=True)``, the loader that refuses pickled code.

What changes: names always (by name, never by position); for SAN and RCAN the [0, 255] input range and
the trained mean-shift layers are folded into the first and last convolutions (``srlearn.models.official``);
MIRNet works on [0, 1] already and only its names change (``srlearn.models.mirnet``). The checkpoint
records which file it came from (its SHA-256) in ``converted_from``.
"""
from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path

import torch

__all__ = ["SOURCES", "convert_official", "load_official_file"]

#: ``--from`` names -> (srlearn model name, where the authors publish the files)
SOURCES = {
    "official-san": ("san", "linked from the README of github.com/daitao/SAN (Dai et al., CVPR 2019)"),
    "official-rcan": ("rcan", "linked from the README of github.com/yulunzhang/RCAN (Zhang et al., ECCV 2018)"),
    "official-mirnet": ("mirnet", "linked from the README of github.com/swz30/MIRNet (Zamir et al., ECCV 2020)"),
}


def load_official_file(path) -> dict:
    """Read a released weight file with the safe loader (tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weight file at {str(path)!r}: download the authors' file first (srlearn "
                                f"does not redistribute them; see `srlearn convert --help`)")
    with open(path, "rb") as f:
        head = f.read(4)
    if not (head.startswith(b"PK") or head[:1] == b"\x80"):   # torch.save: a zip, or (before 1.6) a pickle
        raise ValueError(f"{str(path)!r} cannot be read as a PyTorch file: it is neither a zip archive nor a pickle "
                         f"(starts with {head!r}). An incomplete download, or a cloud drive's HTML page saved "
                         f"in place of the file?")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{str(path)!r} holds pickled objects the safe loader (weights_only=True) refuses. "
                         f"If you trust the file, re-save its state dict: torch.save(torch.load(path, "
                         f"weights_only=False).state_dict(), 'plain.pt'), and convert that. ({e})") from e
    except Exception as e:  # zip/EOF/RuntimeError: truncated download, an HTML error page saved as .pt, ...
        raise ValueError(f"{str(path)!r} cannot be read as a PyTorch file (incomplete download? a cloud drive's "
                         f"HTML page saved instead of the file?): {e}") from e


def _mirnet(state: dict) -> tuple[dict, dict]:
    from .models import build
    from .models.mirnet import convert_official_state_dict
    from .models.official import unwrap_official_state
    ours = convert_official_state_dict(unwrap_official_state(state))
    if "conv_in.weight" not in ours:
        raise ValueError("no conv_in.weight: not an official MIRNet state dict (swz30/MIRNet MIRNet)")
    n_feat = ours["conv_in.weight"].shape[0]
    n_rrg = len({m.group(1) for k in ours if (m := re.match(r"body\.(\d+)\.", k))})
    n_mrb = len({m.group(1) for k in ours if (m := re.match(r"body\.0\.body\.(\d+)\.", k))})
    # body.0.body.{0..n_mrb-1} are the MRBs, body.0.body.{n_mrb} the group's closing convolution
    kwargs = {"scale": 1, "n_feat": n_feat, "n_rrg": n_rrg, "n_mrb": n_mrb - 1}
    model = build("mirnet", "paper", **kwargs)
    missing, extra = sorted(set(model.state_dict()) - set(ours)), sorted(set(ours) - set(model.state_dict()))
    if missing or extra:
        raise ValueError(f"official MIRNet file does not match srlearn's MIRNet ({kwargs}): missing {missing[:5]}, "
                         f"unexpected {extra[:5]}")
    return ours, kwargs


def convert_official(source: str, path, out) -> Path:
    """Convert the released file ``path`` (``source`` one of :data:`SOURCES`) into an srlearn checkpoint at
    ``out`` (written atomically); return ``out``. ``srlearn.train.load_model(out)`` rebuilds the model."""
    from .models import build
    from .models.official import convert_official_rcan, convert_official_san
    from .train import save_checkpoint
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}: use one of {', '.join(SOURCES)}")
    name, where = SOURCES[source]
    state = load_official_file(path)
    convert = {"san": convert_official_san, "rcan": convert_official_rcan, "mirnet": _mirnet}[name]
    weights, kwargs = convert(state)
    model = build(name, "paper", **kwargs)
    model.load_state_dict(weights, strict=True)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return save_checkpoint(out, model=model.state_dict(), ema=None, step=0, model_spec=model.srlearn_spec,
                           converted_from={"source": source, "file": Path(path).name, "sha256": digest,
                                           "published": where})
