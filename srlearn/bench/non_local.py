"""``srlearn bench non-local``: global vs region-level non-local attention as the image grows (measured).

For each square size: forward+backward time and peak memory of SAN's non-local block on the whole map
("global") and of the region-level module on 2×2 regions ("region k=2"), with keys and values
2×2-max-pooled as SAN runs it (``subsample_kv=True``) and, while the matrix fits ``limit_gb``, without.
``attn_MiB`` is the analytic size of the softmax matrices of one forward (batch × queries × keys × 4
bytes, summed over regions): region-level attention divides it by k² = 4. Peak memory is measured as
in ``srlearn.bench.soca.peak_memory_mib`` (CUDA allocator, or the CPU resident-set high-water mark).
"""
from __future__ import annotations

import torch

from ..nn.non_local import NonLocalBlock2d, RegionNonLocal
from . import register_bench, time_call
from .soca import MiB, peak_memory_mib


def _attention_mib(batch: int, h: int, w: int, regions: int, subsample_kv: bool) -> float:
    total = 0
    for a in range(regions):
        for b in range(regions):
            rh = (a + 1) * h // regions - a * h // regions
            rw = (b + 1) * w // regions - b * w // regions
            keys = (rh // 2) * (rw // 2) if subsample_kv else rh * rw
            total += rh * rw * keys
    return batch * total * 4 / MiB


@register_bench("non-local")
def bench_non_local(device: str | torch.device = "cpu", channels: int = 64, batch: int = 1,
                    sizes=(24, 48, 96, 128, 192), quick: bool = False, limit_gb: float | None = None) -> list[dict]:
    """Global vs region-level (k = 2) non-local: fwd+bwd ms and peak MiB per image size."""
    dev = torch.device(device)
    variants = (True, False)
    if quick:
        sizes, variants = tuple(s for s in sizes if s <= 48), (True,)
    if limit_gb is None:
        limit_gb = 1.0 if dev.type == "cpu" else 8.0
    repeat = 1 if quick else 2
    torch.manual_seed(0)
    modules = {(kind, kv): (NonLocalBlock2d(channels, subsample_kv=kv) if kind == "global"
                            else RegionNonLocal(channels, regions=2, subsample_kv=kv)).to(dev)
               for kind in ("global", "region k=2") for kv in variants}
    rows: list[dict] = []
    for s in sizes:
        x = torch.randn(batch, channels, s, s, device=dev, requires_grad=True)
        for (kind, kv), module in modules.items():
            attn = _attention_mib(batch, s, s, 1 if kind == "global" else 2, kv)
            row = {"size": f"{s}x{s}", "module": kind, "subsample_kv": kv, "attn_MiB": attn}
            # the backward keeps the softmax and its gradient: budget ~3 matrices
            if 3 * attn <= limit_gb * 1024:
                step = lambda m=module: m(x).sum().backward()
                row["peak_MiB"] = peak_memory_mib(step, dev)           # also the warm-up call
                row["ms_fwd_bwd"] = time_call(step, dev, repeat=repeat, warmup=0)
            else:
                row["note"] = f"not run: > {limit_gb:g} GiB"
            rows.append(row)
        del x
    return rows
