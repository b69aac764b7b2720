"""Probes: read the learned parts of a trained network, or replace them, to test what they do.

* SAN (notebook 01, "why does rescaling help?"): :func:`attention_weights` reads the channel weights of
  every LSRAG after a forward; :func:`with_fixed_gates` replaces the adaptive gates by constant ones
  (:class:`FixedGate`).
* SSEN (notebook 05): :func:`modulation_by_level`, the mean modulation mask and offset of each deformable
  layer per reference-similarity level.
"""
from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

__all__ = ["attention_weights", "FixedGate", "with_fixed_gates", "modulation_by_level"]


def _gates(model: nn.Module) -> list[nn.Module]:
    groups = getattr(model, "groups", None)
    if groups is None:
        raise TypeError(f"{type(model).__name__} has no LSRAG `groups`: pass a SAN built by srlearn.models.build('san', ...)")
    gates = [g.attention for g in groups]
    if not all(hasattr(a, "last_weights") for a in gates):
        raise ValueError("this SAN has no channel attention to read (attention='none'); build it with 'se' or 'soca'")
    return gates


def attention_weights(model: nn.Module) -> torch.Tensor:
    """The channel weights w of every LSRAG from the model's latest forward: (G, B, C), detached."""
    gates = _gates(model)
    if any(a.last_weights is None for a in gates):
        raise RuntimeError("run the model once (a forward pass) before reading its attention weights")
    return torch.stack([a.last_weights for a in gates])


class FixedGate(nn.Module):
    """``x * w`` with a constant per-channel ``w``: a channel "attention" that ignores its input."""

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.register_buffer("weights", weights.detach().clone().flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.weights.numel():
            raise ValueError(f"FixedGate holds {self.weights.numel()} weights, got input of shape {tuple(x.shape)}")
        return x * self.weights.to(x.dtype)[None, :, None, None]


def with_fixed_gates(model: nn.Module, weights: torch.Tensor) -> nn.Module:
    """A copy of the SAN ``model`` whose g-th LSRAG gate is the constant ``weights[g]`` (G × C)."""
    gates = _gates(model)
    weights = torch.as_tensor(weights)
    if weights.shape != (len(gates), gates[0].channels):
        raise ValueError(f"weights must be (G, C) = ({len(gates)}, {gates[0].channels}), got {tuple(weights.shape)}")
    fixed = copy.deepcopy(model)
    for group, w in zip(fixed.groups, weights):
        group.attention = FixedGate(w)
    return fixed


@torch.no_grad()
def modulation_by_level(model: torch.nn.Module, pairs, device=None) -> dict:
    """Mean mask m and mean |offset| (LR px) of each deformable layer, per similarity level of ``pairs``.

    ``pairs``: ``(name, lr, hr, ref)`` items named ``"LEVEL/..."``. Returns
    ``{level: {"mask": [per layer], "offset": [per layer]}}``; masks are None for an unmodulated model.
    """
    from ..data import to_tensor
    from .hooks import capture
    if getattr(model, "n_deform", 0) == 0:
        raise ValueError("the model has no deformable layers (n_deform=0)")
    device = device or next(model.parameters()).device
    model.eval()
    acc: dict = OrderedDict()
    for name, lr, _hr, ref in pairs:
        level = name.split("/", 1)[0]
        with capture(model, "ssen.deforms.*.offset_head") as heads:
            model(to_tensor(lr)[None].to(device), to_tensor(ref)[None].to(device))
        a = acc.setdefault(level, {"mask": [], "offset": []})
        a["mask"].append([None if m is None else float(m.mean()) for _, (o, m) in heads.items()])
        a["offset"].append([float(o.abs().mean()) for _, (o, m) in heads.items()])
    out = {}
    for level, a in acc.items():
        masks = a["mask"]
        out[level] = {"mask": None if masks[0][0] is None else np.mean(masks, axis=0).tolist(),
                      "offset": np.mean(a["offset"], axis=0).tolist()}
    return out
