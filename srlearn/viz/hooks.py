"""Looking inside a model: record what its submodules output during a forward pass.

``capture`` is the one hook API of srlearn. Every "look inside" cell of the notebooks goes through it:
feature maps here, and later attention weights (SAN, MIRNet), fusion weights (SKFF) and deformable
offsets (SSEN), which are simply the outputs of small submodules.

    >>> model = srlearn.models.build("edsr", "mini")
    >>> with capture(model, "body.*") as feats:
    ...     model(x)
    >>> {name: tuple(t.shape) for name, t in feats.items()}

PyTorch calls a *forward hook* ``hook(module, inputs, output)`` right after ``module.forward`` returns;
``capture`` registers one per chosen module and removes all of them when the ``with`` block ends, also
when it ends with an exception, so a model is never left with hooks attached.
"""
from __future__ import annotations

import difflib
import fnmatch
from collections import OrderedDict
from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn

_GLOB_CHARS = set("*?[")


class UnknownModuleError(KeyError):
    """A name or pattern given to ``capture`` matches no submodule of the model."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


@contextmanager
def capture(model: nn.Module, names: str | Iterable[str] | None = None,
            detach: bool = True) -> Iterator[OrderedDict]:
    """Record the outputs of submodules of ``model`` while the ``with`` block runs.

    Args:
        model: any ``nn.Module``.
        names: which submodules, by their names in ``model.named_modules()`` (``"body.0"``,
            ``"tail.0.1"``): one name, a list of names, or glob patterns matched segment by segment
            on the dots: ``*`` matches within one segment, ``**`` any number of segments. So
            ``"body.*"`` is the direct children of ``body`` (``body.0`` ... ``body.4`` in EDSR-mini),
            ``"body.*.body.0"`` the first conv of each residual block, ``"**.body.0"`` every such conv
            at any depth. ``None`` (the default) selects every leaf module (one with no children).
        detach: ``True`` (default) stores detached copies, cut from the autograd graph; ``False``
            stores copies that keep the graph, so you can back-propagate through a captured feature.

    Yields:
        An ``OrderedDict`` ``name -> output``, filled as the forward pass runs, so its order is the
        order in which the modules ran. An output is stored as a *copy* (``clone``): a later in-place
        operation, such as EDSR's ``ReLU(inplace=True)`` right after a conv, cannot overwrite what was
        recorded. Tuple, list and dict outputs keep their structure with each tensor copied.

        One entry holds one forward pass: each call of ``model`` itself empties the dict first, so
        after several calls inside the block it shows the last one. A module that runs several times
        within one forward pass (a shared layer, a recurrent block) is stored as a *list* of its
        outputs, in call order; a module that runs once is stored as the output itself.

    Raises:
        UnknownModuleError: a name or pattern matches no submodule; the message lists close matches.
    """
    selected = _select_modules(model, names)
    records: OrderedDict = OrderedDict()
    handles = [model.register_forward_pre_hook(lambda module, inputs: records.clear())]
    try:
        for name, module in selected.items():
            handles.append(module.register_forward_hook(_recorder(records, name, detach)))
        yield records
    finally:
        for handle in handles:
            handle.remove()


def _recorder(records: OrderedDict, name: str, detach: bool):
    """The forward hook that stores ``module``'s output under ``name`` (a list if it runs again)."""
    def hook(module, inputs, output):
        value = _copy_output(output, detach)
        if name not in records:
            records[name] = value
        elif isinstance(records[name], _Calls):
            records[name].append(value)
        else:
            records[name] = _Calls([records[name], value])
    return hook


class _Calls(list):
    """The outputs of a module that ran several times in one forward pass (a plain list to the user)."""


def _copy_output(output, detach: bool):
    """Copy every tensor in ``output`` (a tensor, or a tuple/list/dict of them); leave the rest alone."""
    if isinstance(output, torch.Tensor):
        return output.detach().clone() if detach else output.clone()
    if isinstance(output, (tuple, list)):
        items = [_copy_output(o, detach) for o in output]
        return type(output)(*items) if hasattr(output, "_fields") else type(output)(items)  # namedtuple
    if isinstance(output, dict):
        return type(output)((k, _copy_output(v, detach)) for k, v in output.items())
    return output


def _select_modules(model: nn.Module, names) -> "OrderedDict[str, nn.Module]":
    """The submodules named or matched by ``names``, in ``named_modules`` order (see ``capture``)."""
    modules = OrderedDict(model.named_modules())
    if names is None:
        return OrderedDict((n, m) for n, m in modules.items() if next(m.children(), None) is None)
    if isinstance(names, str):
        names = [names]
    wanted: set[str] = set()
    for pattern in names:
        if not isinstance(pattern, str):
            raise TypeError(f"module names must be strings, got {pattern!r} ({type(pattern).__name__})")
        matched = [n for n in modules if _matches(pattern, n)]
        if not matched:
            raise UnknownModuleError(_unknown_message(model, pattern, list(modules)))
        wanted.update(matched)
    return OrderedDict((n, m) for n, m in modules.items() if n in wanted)


def _matches(pattern: str, name: str) -> bool:
    """Whether module ``name`` matches ``pattern``: exact, or a dot-segment glob (``*``, ``**``)."""
    if not _GLOB_CHARS & set(pattern):
        return pattern == name
    return _match_segments(pattern.split("."), name.split(".") if name else [])


def _match_segments(pat: list[str], parts: list[str]) -> bool:
    """Segment-wise glob: ``**`` eats zero or more segments, other segments go through ``fnmatch``."""
    if not pat:
        return not parts
    if pat[0] == "**":
        return any(_match_segments(pat[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pat[0]) and _match_segments(pat[1:], parts[1:])


def _unknown_message(model: nn.Module, pattern: str, available: list[str]) -> str:
    """The error text for a name that matches nothing: close matches, then how to list the names."""
    named = [n for n in available if n]
    close = difflib.get_close_matches(pattern, named, n=5, cutoff=0.5)
    hint = f"close matches: {', '.join(repr(c) for c in close)}" if close else \
        f"top-level modules: {', '.join(repr(n) for n in named if '.' not in n)}"
    kind = "pattern" if _GLOB_CHARS & set(pattern) else "name"
    return (f"{kind} {pattern!r} matches no submodule of {type(model).__name__}; {hint}. "
            f"List every name with [n for n, _ in model.named_modules()]; patterns match dot by dot "
            f"('body.*' = children of body, '**' = any depth)")
