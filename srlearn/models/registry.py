"""The model registry: ``build(name, preset="paper" | "mini", **overrides)``.

Each architecture module registers a builder with named presets (torchvision/timm style). A built model
remembers how it was built (``model.srlearn_spec``) so a checkpoint can rebuild it without the caller
repeating the arguments.

``build`` checks what it is given before building: an unknown or mistyped keyword lists the valid
names (with their types), a value of the wrong type names the type wanted, and ``scale`` must be a
positive integer (no model here up-samples by 2.5). A built model also checks its input when called: a
4-D float tensor with the channel count the model takes, in the dtype of its weights (an fp16 batch
into an fp32 model is an error naming the fix, ``x.float()`` or ``model.half()``, not a raw dtype
error deep inside a convolution).
"""
from __future__ import annotations

import difflib
import inspect
import numbers
import types
import typing
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..registry import Registry


@dataclass
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]
    presets: dict[str, dict] = field(default_factory=dict)
    description: str = ""
    accepts: type | None = None          # the class whose __init__ takes the builder's **kwargs
    fixed: tuple[str, ...] = ()          # keywords the builder sets itself (not overridable)

    def parameters(self) -> dict[str, object]:
        """Keyword name -> type annotation (``inspect.Parameter.empty`` when unknown) that ``build`` accepts."""
        out: dict[str, object] = {}
        sig = inspect.signature(self.builder)
        hints = _hints(self.builder)
        var_kw = False
        for p in sig.parameters.values():
            if p.kind is p.VAR_KEYWORD:
                var_kw = True
            elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                out[p.name] = hints.get(p.name, inspect.Parameter.empty)
        target = self.accepts
        if target is None and var_kw:
            ret = hints.get("return")
            target = ret if isinstance(ret, type) and issubclass(ret, nn.Module) and ret is not nn.Module else None
        if target is not None:
            init_hints = _hints(target.__init__)
            for p in list(inspect.signature(target.__init__).parameters.values())[1:]:
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in self.fixed:
                    out.setdefault(p.name, init_hints.get(p.name, inspect.Parameter.empty))
        elif var_kw:   # unknown target: the presets' keys are what is known to be accepted
            for preset in self.presets.values():
                for k in preset:
                    out.setdefault(k, inspect.Parameter.empty)
        return out


#: name -> :class:`ModelSpec` (``srlearn list``); each architecture module registers its builder.
MODELS = Registry("model", "models", help="architectures with named presets: build(name, preset, **overrides)")
_REGISTRY = MODELS


def register(name: str, presets: dict[str, dict], description: str = "", params: dict[str, int] | None = None,
             inputs: tuple[str, ...] = ("lr",), accepts: type | None = None, fixed: tuple[str, ...] = ()):
    """Decorator: register ``builder`` under ``name`` with its presets (each a dict of keyword args).

    ``params`` states each preset's parameter count (at the preset's own scale): the registry's tests
    build every preset and compare (``tests/test_registry_models.py``), so a new model is tested for
    free. ``inputs`` names the forward's image arguments (``("lr", "ref")`` for reference-based SR).
    ``build`` checks overrides against the builder's keywords and, for a builder taking ``**kwargs``, the
    ``__init__`` of ``accepts`` (default: the class in the builder's return annotation), minus ``fixed``.
    """
    def deco(builder):
        doc = description or (builder.__doc__ or "").strip().split("\n")[0]
        missing = sorted(set(params or {}) - set(presets))
        if missing:
            raise ValueError(f"model {name!r}: params given for presets it does not have: {missing}")
        MODELS.register(name, ModelSpec(name, builder, dict(presets), doc, accepts, tuple(fixed)),
                        presets=list(presets), description=doc, params=dict(params or {}), inputs=list(inputs))
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
    _check_kwargs(spec, kwargs)
    model = spec.builder(**kwargs)
    model.srlearn_spec = {"name": name, "preset": preset, "kwargs": kwargs}
    model.register_forward_pre_hook(_check_input)
    return model


def build_from_spec(spec: dict) -> nn.Module:
    """Rebuild a model from a ``model.srlearn_spec`` dictionary (as stored in checkpoints)."""
    return build(spec["name"], spec.get("preset", "paper"), **spec.get("kwargs", {}))


# ------------------------------------------------------------------------------------------------- checks
def _hints(fn) -> dict:
    try:
        return typing.get_type_hints(fn)
    except Exception:   # an annotation that cannot be resolved: no type checks for that callable
        return {}


def _type_name(ann) -> str:
    if ann is inspect.Parameter.empty:
        return "any"
    if isinstance(ann, type):
        return ann.__name__
    return str(ann).replace("typing.", "")


def _matches(value, ann) -> bool:
    """Does ``value`` fit annotation ``ann``? Only int, float, bool, str, None and their unions are
    checked; anything else (tuples, callables, ...) is accepted."""
    if ann is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(ann)
    if origin is typing.Union or isinstance(ann, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(ann))
    if ann is type(None):
        return value is None
    if ann is bool:
        return isinstance(value, bool)
    if ann is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ann is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ann is str:
        return isinstance(value, str)
    return True


def _check_kwargs(spec: ModelSpec, kwargs: dict) -> None:
    """Unknown names, values of the wrong type and a non-integer scale, each with a clear error."""
    params = spec.parameters()
    valid = ", ".join(f"{k} ({_type_name(a)})" for k, a in sorted(params.items()))
    for key, value in kwargs.items():
        if key not in params:
            close = difflib.get_close_matches(key, list(params), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"model {spec.name!r} has no option {key!r}.{hint} Valid options: {valid}")
    scale = kwargs.get("scale")
    if "scale" in kwargs and (isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1):
        raise ValueError(f"model {spec.name!r}: scale must be a positive integer (the up-sampling factor, "
                         f"e.g. 2, 3 or 4), got {scale!r}; fractional scales are not supported")
    for key, value in kwargs.items():
        if not _matches(value, params[key]):
            raise ValueError(f"model {spec.name!r}: {key}={value!r} is a {type(value).__name__}, but {key} "
                             f"takes {_type_name(params[key])}; e.g. {key}=int(...) for a number given "
                             f"as text. Valid options: {valid}")


def _expected_channels(model: nn.Module):
    """Channel counts the model takes: ``model.input_channels`` (a tuple, or None for any), else
    ``model.in_channels``, else the ``in_channels`` it was built with, else 3 (RGB)."""
    if hasattr(model, "input_channels"):
        ch = model.input_channels
        return None if ch is None else tuple(ch) if isinstance(ch, (tuple, list)) else (int(ch),)
    ch = getattr(model, "in_channels", None)
    if isinstance(ch, int):
        return (ch,)
    return (int(getattr(model, "srlearn_spec", {}).get("kwargs", {}).get("in_channels", 3)),)


def _check_input(model: nn.Module, args) -> None:
    """Forward pre-hook of every built model: a clear error for the wrong shape, channels or dtype."""
    if not args or not isinstance(args[0], torch.Tensor):
        return
    x = args[0]
    name = getattr(model, "srlearn_spec", {}).get("name", type(model).__name__)
    channels = _expected_channels(model)
    want = "/".join(map(str, channels)) if channels else "C"
    if x.dim() not in (3, 4):
        raise ValueError(f"model {name!r} takes a (B, {want}, H, W) batch, got shape {tuple(x.shape)}")
    if channels is not None and x.shape[-3] not in channels:
        raise ValueError(f"model {name!r} takes {want}-channel input (B, {want}, H, W), got {x.shape[-3]} "
                         f"channels (shape {tuple(x.shape)}); convert the image (e.g. grey -> RGB with "
                         f"x.expand(-1, 3, -1, -1)) or build the model for {x.shape[-3]} channels")
    ref = next(model.parameters(), None)
    if ref is None:
        ref = next((b for b in model.buffers() if b.is_floating_point()), None)
    for t in args:
        if not isinstance(t, torch.Tensor):
            continue
        if not t.is_floating_point():
            raise ValueError(f"model {name!r} takes float images in [0, 1], got a {t.dtype} tensor; convert with "
                             f"srlearn.data.to_tensor(img) or x.float() / 255")
        if ref is not None and t.dtype != ref.dtype and not torch.is_autocast_enabled(t.device.type):
            raise ValueError(f"model {name!r} has {ref.dtype} weights but got a {t.dtype} input; convert the "
                             f"input with x.to({ref.dtype}) (e.g. x.float()) or the model with "
                             f"model.to({t.dtype})")
