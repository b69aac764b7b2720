"""Benchmarks (``srlearn bench NAME``): speed and memory are measured here, never asserted in tests.

A benchmark is a function returning a list of row dicts (one table); register it with
``@register_bench("name")``. The CLI prints the table; notebooks show it with ``srlearn.viz``.
Counts, unlike times, are deterministic: ``srlearn.bench.counting`` (FLOPs, activation memory kept for
the backward, receptive fields, sampling paths) is tested exactly, and the notebooks assert its numbers.
"""
from __future__ import annotations

import importlib
import pkgutil
import time
from typing import Callable

import torch

from ..registry import Registry

#: name -> benchmark function (returns a list of row dicts). Filled by importing this package's modules.
BENCHES = Registry("benchmark", "benchmarks", help="speed and memory tables (srlearn bench NAME)")
_BENCHES = BENCHES


def register_bench(name: str, **info):
    """Decorator: register a benchmark function under ``name``."""
    return BENCHES.register(name, **info)


def _load_all():
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def list_benches() -> list[str]:
    _load_all()
    return sorted(_BENCHES)


def run_bench(name: str, **kwargs) -> list[dict]:
    _load_all()
    return BENCHES.get(name)(**kwargs)


def time_call(fn: Callable[[], object], device: torch.device | str = "cpu", repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds (CUDA synchronised when on a GPU)."""
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return times[len(times) // 2]


def format_table(rows: list[dict]) -> str:
    """Rows of dicts as an aligned plain-text table."""
    if not rows:
        return "(no rows)"
    cols = list(rows[0])
    for r in rows[1:]:
        cols += [c for c in r if c not in cols]
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)
    cells = [[fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths))
    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(r) for r in cells])
