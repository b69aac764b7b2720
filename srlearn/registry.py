"""One small registry for every kind of named thing: models, experiments, benchmarks, datasets,
attention kinds, fusion kinds.

A :class:`Registry` is a dictionary from name to entry with three additions: registering twice is an
error, looking up an unknown name is an error that lists the registered names (and the closest one, for a
typo), and each entry may carry a small dict of facts (``info``) that ``srlearn list --json`` prints.
Adding a thing is one decorator::

    from srlearn.nn import ATTENTION

    @ATTENTION.register("my-gate")
    class MyGate(nn.Module):
        def __init__(self, channels, reduction=16): ...

after which ``build("san", "mini", attention="my-gate")`` and ``build("rcan", "mini", attention="my-gate")``
build it. This module imports nothing from srlearn, so every floor of the package may use it.
"""
from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable, Iterator

__all__ = ["Registry", "UnknownName", "all_registries"]


class UnknownName(KeyError, ValueError):
    """An unknown name in a registry. A ``KeyError`` (a failed look-up) and a ``ValueError`` (a bad
    argument value, as ``build(..., attention="foca")`` is), so code catching either sees it."""

    def __str__(self) -> str:   # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ""

_ALL: dict[str, "Registry"] = {}


class Registry(dict):
    """Name -> entry (a class, a builder function or a spec object), plus ``info`` per name.

    ``kind`` is a singular noun used in error messages ("attention kind", "model", ...); ``key`` is the
    registry's plural name in ``srlearn list`` ("attention", "models", ...). Names are case-sensitive
    and stored as given; :meth:`get` also accepts a name in another case when it is unambiguous.
    """

    def __init__(self, kind: str, key: str | None = None, help: str = ""):
        super().__init__()
        self.kind, self.key, self.help = kind, key or kind + "s", help
        self.info: dict[str, dict] = {}
        if self.key in _ALL:
            raise ValueError(f"a registry named {self.key!r} already exists")
        _ALL[self.key] = self

    # ---------------------------------------------------------------------------------- adding
    def register(self, name: str, obj: Any = None, **info) -> Any:
        """Register ``obj`` under ``name`` (or, without ``obj``, return a decorator that does).
        Keyword arguments are facts about the entry kept in ``self.info[name]``."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a {self.kind} needs a non-empty string name, got {name!r}")

        def add(entry):
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is registered twice; choose another name "
                                 f"(registered: {', '.join(self.names())})")
            self[name] = entry
            self.info[name] = dict(info)
            return entry

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests and notebooks that register a throw-away entry clean up with this)."""
        self.pop(name, None)
        self.info.pop(name, None)

    # --------------------------------------------------------------------------------- looking up
    def get(self, name: str, default: Any = ...) -> Any:  # type: ignore[override]
        """The entry called ``name``; an unknown name is an :class:`UnknownName` error naming the registered ones."""
        if name in self:
            return self[name]
        if isinstance(name, str):
            folded = [n for n in self if n.lower() == name.lower()]
            if len(folded) == 1:
                return self[folded[0]]
        if default is not ...:
            return default
        raise UnknownName(self.unknown(name))

    def unknown(self, name: Any) -> str:
        """The message for an unknown ``name``: what is registered, and the closest name."""
        close = difflib.get_close_matches(str(name), list(self), n=1) if isinstance(name, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown {self.kind} {name!r}{hint}; registered: {', '.join(self.names()) or 'none'}"

    def resolve(self, name: str) -> str:
        """The registered spelling of ``name`` (see :meth:`get`), or the :class:`UnknownName` error."""
        if name in self:
            return name
        if isinstance(name, str):
            folded = [n for n in self if n.lower() == name.lower()]
            if len(folded) == 1:
                return folded[0]
        raise UnknownName(self.unknown(name))

    def options(self, name: str) -> list[str]:
        """The keyword arguments entry ``name`` accepts (its constructor's or function's parameters)."""
        entry = self.get(name)
        fn = entry.__init__ if isinstance(entry, type) else entry
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            return []
        return [p.name for p in params if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    def accepted(self, name: str, **options) -> dict:
        """The subset of ``options`` that entry ``name`` accepts: a model with a knob that matters to one
        kind only (SAN's ``ns_iters`` for SOCA, MIRNet's ``skff_reduction`` for SKFF) passes it this way."""
        keep = set(self.options(name))
        return {k: v for k, v in options.items() if k in keep}

    def names(self) -> list[str]:
        return sorted(self)

    def describe(self, describe_entry: Callable[[str, Any], dict] | None = None) -> dict[str, dict]:
        """``{name: facts}`` for ``srlearn list --json``: the ``info`` given at registration, updated
        with ``describe_entry(name, entry)`` when given, plus the first docstring line."""
        out = {}
        for name in self.names():
            entry = self[name]
            doc = (getattr(entry, "__doc__", None) or "").strip().split("\n")[0]
            facts = {"doc": doc} if doc and not isinstance(entry, (str, int, float)) else {}
            facts.update(self.info.get(name, {}))
            if describe_entry is not None:
                facts.update(describe_entry(name, entry))
            out[name] = facts
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(list(dict.keys(self)))

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"


def all_registries() -> dict[str, Registry]:
    """Every registry created so far, by its plural name. Import ``srlearn.models``,
    ``srlearn.experiments``, ``srlearn.bench`` and ``srlearn.data.registry`` first to fill them."""
    return dict(_ALL)
