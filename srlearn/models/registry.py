"""The model registry: ``build(name, preset="paper" | "mini", **overrides)``.

Each architecture module registers a builder with named presets (torchvision/timm style). A built model
remembers how it was built (``model.srlearn_spec``) so a checkpoint can rebuild it without the caller
repeating the arguments.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from ..registry import Registry


@dataclass
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]
    presets: dict[str, dict] = field(default_factory=dict)
    description: str = ""


#: name -> :class:`ModelSpec` (``srlearn list``); each architecture module registers its builder.
MODELS = Registry("model", "models", help="architectures with named presets: build(name, preset, **overrides)")
_REGISTRY = MODELS


def register(name: str, presets: dict[str, dict], description: str = "", params: dict[str, int] | None = None,
             inputs: tuple[str, ...] = ("lr",)):
    """Decorator: register ``builder`` under ``name`` with its presets (each a dict of keyword args).

    ``params`` states each preset's parameter count (at the preset's own scale): the registry's tests
    build every preset and compare (``tests/test_registry_models.py``), so a new model is tested for
    free. ``inputs`` names the forward's image arguments (``("lr", "ref")`` for reference-based SR).
    """
    def deco(builder):
        doc = description or (builder.__doc__ or "").strip().split("\n")[0]
        missing = sorted(set(params or {}) - set(presets))
        if missing:
            raise ValueError(f"model {name!r}: params given for presets it does not have: {missing}")
        MODELS.register(name, ModelSpec(name, builder, dict(presets), doc), presets=list(presets),
                        description=doc, params=dict(params or {}), inputs=list(inputs))
        return builder
    return deco


def list_models() -> list[str]:
    """Names of the registered models, sorted."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    return MODELS.get(name)


def build(name: str, preset: str = "paper", **overrides) -> nn.Module:
    """Build model ``name`` from ``preset`` with keyword ``overrides`` (e.g. ``scale=4``)."""
    spec = get_spec(name)
    if preset not in spec.presets:
        raise KeyError(f"model {name!r} has no preset {preset!r}; presets: {', '.join(spec.presets)}")
    kwargs = {**spec.presets[preset], **overrides}
    model = spec.builder(**kwargs)
    model.srlearn_spec = {"name": name, "preset": preset, "kwargs": kwargs}
    return model


def build_from_spec(spec: dict) -> nn.Module:
    """Rebuild a model from a ``model.srlearn_spec`` dictionary (as stored in checkpoints)."""
    return build(spec["name"], spec.get("preset", "paper"), **spec.get("kwargs", {}))
