"""``srlearn bench soca``: what SOCA's numerics cost (measured, never asserted).

Two tables in one list of rows:

* ``part="sqrtm fwd+bwd"``: covariance pooling + matrix square root + row mean, forward and backward,
  by coupled Newton–Schulz (5 iterations as SAN, 15 near convergence) against ``torch.linalg.eigh``;
  ``rel_err_vs_eigh`` is the relative Frobenius error of the square root on the same features (float64).
* ``part="cov-pool memory"``: peak memory of our streaming covariance (centred X·Xᵀ/M) against the
  official X·Ī·Xᵀ with an explicit M×M Ī repeated per sample (SAN ``MPNCOV.Covpool``, papers.md §1.2).
  The explicit one runs only where its analytic size fits ``explicit_limit_gb``; otherwise only the
  analytic size is given.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated``; on a Linux CPU, the process's resident-set
high-water mark (reset through ``/proc/self/clear_refs``) — approximate: it counts touched pages and
depends on the allocator; ``None`` where neither is available.
"""
from __future__ import annotations

import torch

from ..nn.attention import covariance_pool, sqrtm_newton_schulz
from . import register_bench, time_call

MiB = 2 ** 20


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _malloc_trim() -> None:
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)               # glibc: return free heap memory to the OS
    except (OSError, AttributeError):
        pass


def peak_memory_mib(fn, device: torch.device | str = "cpu") -> float | None:
    """Extra memory (MiB) at the peak of ``fn()`` above what was in use before it (see module docstring)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        fn()
        torch.cuda.synchronize(dev)
        return (torch.cuda.max_memory_allocated(dev) - base) / MiB
    _malloc_trim()                                            # freed heap pages would hide new allocations
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                                      # reset the RSS high-water mark (Linux >= 4.0)
    except OSError:
        return None
    base = _rss_kib("VmRSS:")
    fn()
    peak = _rss_kib("VmHWM:")
    return None if base is None or peak is None else max(0.0, (peak - base) / 1024)


def covariance_explicit(x: torch.Tensor) -> torch.Tensor:
    """The official formulation: Ī = −11ᵀ/M² + I/M built as an M×M matrix, repeated per sample, X·Ī·Xᵀ."""
    b, c = x.shape[:2]
    X = x.reshape(b, c, -1)
    m = X.shape[-1]
    i_bar = (-1.0 / m / m) * torch.ones(m, m, device=x.device) + (1.0 / m) * torch.eye(m, device=x.device)
    i_bar = i_bar.view(1, m, m).repeat(b, 1, 1).to(x.dtype)
    return X.bmm(i_bar).bmm(X.transpose(1, 2))


def _sqrtm_eigh(s: torch.Tensor) -> torch.Tensor:
    lam, u = torch.linalg.eigh(s)
    return u @ torch.diag_embed(lam.clamp_min(0).sqrt()) @ u.transpose(-1, -2)


def _features(batch: int, channels: int, size: int, device, seed: int = 0) -> torch.Tensor:
    """ReLU'd outputs of a random 3×3 conv on noise: correlated, non-negative, like a network's features."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(channels, channels, 3, 3, generator=g) / (9 * channels) ** 0.5
    x = torch.randn(batch, channels, size, size, generator=g)
    return torch.relu(torch.nn.functional.conv2d(x, w, padding=1)).to(device)


@register_bench("soca")
def bench_soca(device: str | torch.device = "cpu", channels: int = 64, batch: int = 16, size: int = 48,
               sizes=(48, 96, 128, 256, 512), quick: bool = False, explicit_limit_gb: float | None = None) -> list[dict]:
    """Newton–Schulz vs eigh (fwd+bwd time) and streaming vs explicit-Ī covariance (peak memory)."""
    dev = torch.device(device)
    methods = [("newton-schulz", 5), ("newton-schulz", 15), ("eigh", None)]
    if quick:
        sizes, methods = tuple(s for s in sizes if s <= 48), [methods[0], methods[2]]
    repeat = 1 if quick else 5
    if explicit_limit_gb is None:
        explicit_limit_gb = 2.0 if dev.type == "cpu" else 8.0
    rows: list[dict] = []

    feats = _features(batch, channels, size, dev)
    with torch.no_grad():
        s64 = covariance_pool(feats.double())
        exact = _sqrtm_eigh(s64)
    for name, iters in methods:
        root = (lambda s, n=iters: sqrtm_newton_schulz(s, n)) if iters else _sqrtm_eigh
        x = feats.clone().requires_grad_(True)

        def step():
            root(covariance_pool(x)).mean(dim=1).sum().backward()

        with torch.no_grad():
            approx = root(s64)
        err = (torch.linalg.matrix_norm(approx - exact) / torch.linalg.matrix_norm(exact)).mean().item()
        rows.append({"part": "sqrtm fwd+bwd", "device": dev.type, "method": f"{name}({iters})" if iters else name,
                     "input": f"{batch}x{channels}x{size}x{size}",
                     "ms": time_call(step, dev, repeat=repeat, warmup=1), "rel_err_vs_eigh": err})

    for b, s in [(batch, size)] + [(1, s) for s in sizes]:
        m = s * s
        x = _features(b, channels, s, dev)
        # analytic: the centred copy + Σ; for the official path an upper bound: ones, eye, their sum, b repeats
        analytic = {"streaming": (b * channels * m + b * channels * channels) * 4 / MiB,
                    "explicit Ī": (3 + b) * m * m * 4 / MiB}
        for name, fn in (("streaming", covariance_pool), ("explicit Ī", covariance_explicit)):
            row = {"part": "cov-pool memory", "device": dev.type, "method": name,
                   "input": f"{b}x{channels}x{s}x{s}", "analytic_MiB": analytic[name]}
            if analytic[name] <= explicit_limit_gb * 1024 or name == "streaming":
                row["ms"] = time_call(lambda: fn(x), dev, repeat=1, warmup=0)   # also the warm-up
                row["peak_MiB"] = peak_memory_mib(lambda: fn(x), dev)
            else:
                row["note"] = f"not run: > {explicit_limit_gb:g} GiB"
            rows.append(row)
        del x
    return rows
