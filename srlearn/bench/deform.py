"""``srlearn bench deform``: what the pure-PyTorch deformable convolution costs (measured, never asserted).

Two tables in one list of rows:

* ``part="op fwd"`` / ``"op fwd+bwd"``: one 3×3 layer, ``B×C×H×W`` → ``C`` channels, as
  ``F.conv2d`` (no offsets: the floor), srlearn's pure path (random offsets of a few pixels and a mask),
  and ``torchvision.ops.deform_conv2d`` when torchvision can be imported (its CUDA kernel on a GPU).
  Time (median ms) and peak memory above the inputs (MiB; ``peak_memory_mib`` of ``srlearn bench soca``).
  The pure path materialises the sampled columns (``B·C·9·H·W`` values, as torchvision's im2col does)
  plus the ``grid_sample`` grid; its backward goes through ``grid_sample``'s.
* ``part="alignment"``: SSEN's alignment (3 deformable layers with their offset estimators) against
  an SRNTT-style brute-force search (every 3×3 patch of the LR features against every patch of the
  reference features, :func:`srlearn.models.ssen.brute_force_patch_match`) on the same features, at
  growing image sizes: SSEN's cost grows with the area, the search's with its square (notebook 05,
  section 12). Forward only, no gradients.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.ssen import SSEN, brute_force_patch_match
from ..nn.deform import deform_conv2d
from . import register_bench, time_call
from .soca import peak_memory_mib


def _torchvision_op():
    try:
        from torchvision.ops import deform_conv2d as tv
        return tv
    except Exception:   # a broken torchvision raises RuntimeError/OSError at import, not only ImportError
        return None


def _op_rows(dev, b, c, size, repeat) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, c, size, size, generator=g).to(dev)
    w = (torch.randn(c, c, 3, 3, generator=g) / (9 * c) ** 0.5).to(dev)
    bias = torch.zeros(c, device=dev)
    off = (torch.randn(b, 18, size, size, generator=g) * 2).to(dev)
    mask = torch.rand(b, 9, size, size, generator=g).to(dev)
    impls = {"conv2d (no offsets)": lambda x, w, o, m: F.conv2d(x, w, bias, padding=1),
             "srlearn pure": lambda x, w, o, m: deform_conv2d(x, o, w, bias, padding=1, mask=m)}
    tv = _torchvision_op()
    if tv is not None:
        impls["torchvision"] = lambda x, w, o, m: tv(x, o, w, bias, padding=(1, 1), mask=m)
    rows = []
    for name, fn in impls.items():
        def fwd():
            with torch.no_grad():
                fn(x, w, off, mask)

        xs, ws, offs, masks = (t.clone().requires_grad_() for t in (x, w, off, mask))

        def fwd_bwd():
            fn(xs, ws, offs, masks).sum().backward()

        for part, call in (("op fwd", fwd), ("op fwd+bwd", fwd_bwd)):
            rows.append({"part": part, "device": dev.type, "impl": name, "input": f"{b}x{c}x{size}x{size}",
                         "ms": time_call(call, dev, repeat=repeat, warmup=1), "peak_MiB": peak_memory_mib(call, dev)})
    return rows


def _alignment_rows(dev, c, sizes, repeat) -> list[dict]:
    torch.manual_seed(0)
    ssen = SSEN(c, n_deform=3).to(dev).eval()
    rows = []
    for lr_side in sizes:
        g = torch.Generator().manual_seed(lr_side)
        f_lr = torch.randn(1, c, lr_side, lr_side, generator=g).to(dev)
        f_ref = torch.randn(1, c, lr_side, lr_side, generator=g).to(dev)
        calls = {"SSEN (3 DCN + offset estimators)": lambda: ssen(f_lr, f_ref),
                 "brute-force 3x3 patch search": lambda: brute_force_patch_match(f_lr, f_ref)}
        for name, fn in calls.items():
            def call(fn=fn):
                with torch.no_grad():
                    fn()
            rows.append({"part": "alignment", "device": dev.type, "impl": name,
                         "input": f"LR {lr_side}² (HR {4 * lr_side}²), C={c}",
                         "ms": time_call(call, dev, repeat=repeat, warmup=1), "peak_MiB": peak_memory_mib(call, dev)})
    return rows


@register_bench("deform")
def bench_deform(device: str | torch.device = "cpu", quick: bool = False, channels: int = 64,
                 shapes=((8, 40), (4, 96)), sizes=(40, 80, 160)) -> list[dict]:
    """Deformable conv (pure vs conv2d vs torchvision) and SSEN alignment vs brute-force patch search."""
    dev = torch.device(device)
    if quick:
        channels, shapes, sizes = 16, ((2, 24),), (24, 48)
    repeat = 2 if quick else 5
    rows: list[dict] = []
    for b, size in shapes:
        rows += _op_rows(dev, b, channels, size, repeat)
    rows += _alignment_rows(dev, channels, sizes, 1 if quick else 3)
    return rows
