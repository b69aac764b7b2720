"""MIRNet — Learning Enriched Features for Real Image Restoration and Enhancement (Zamir et al., ECCV 2020).

    x -> Conv3x3 -> RRG_1 ... RRG_n -> Conv3x3 -> + x          (same size in and out: no up-sampler)

    RRG(u) = u + Conv3x3(MRB_2(MRB_1(u)))                      n_RRG = 3, n_MRB = 2
    MRB    = 3 streams (C, 2C, 4C channels at 1, 1/2, 1/4 resolution) x 2 columns of DAUs, SKFF fusion

[papers.md §3.1–3.3; C: swz30/MIRNet ``networks/MIRNet_model.py``]. Blocks: ``srlearn.nn.fusion`` and
``srlearn.nn.resize``. Inputs and outputs are RGB in [0, 1]. Notebook: ``notebooks/04_mirnet_skff_dau.ipynb``,
"The whole MIRNet, its presets, and two parameter counts" (section 5) and "6. Train it (or load it)".

Parameter counts (``paper`` preset, n_feat 64, 3 RRG × 2 MRB), which configuration produced each:

* ``share_dau_weights=True`` -> **31,787,419**, the released model: each stream's two DAUs are one
  module and one PReLU slope serves every DAU (papers.md §3.3 quirks 1 and 2).
* ``share_dau_weights=False`` -> **42,239,298**, the paper's figure: every DAU is its own module with
  its own PReLU (36 DAUs: 18 more DAUs, 10,451,844 weights, plus 35 more PReLU slopes).
  Untying only the DAUs but keeping the one global PReLU (``share_prelu=True``) gives 42,239,263.

Choices, and why:

* Sizes. Two stride-2 levels need H, W divisible by 4 (2^(height-1)); the official code fails with a
  shape error otherwise (issues #3, #9). Here the input is reflect-padded at the bottom/right up to
  the next multiple and the output cropped back, as the authors advise users to do by hand.
* Super-resolution. MIRNet has no up-sampler: its SR results are on RealSR, whose LR images are
  already HR-sized (papers.md §3.5). For bicubic SR at ``scale > 1`` we offer
  ``upsampler="bicubic"`` (default; faithful: the LR is enlarged by MATLAB bicubic, ``imresize_torch``,
  and the unchanged MIRNet restores it, VDSR-style) or ``"subpixel"`` (the authors' suggestion in
  issue #6: the body runs at LR size and RCAN's sub-pixel ``Upsampler`` + a 3x3 conv make the HR
  output); in both the global residual is the bicubic-enlarged input.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.common import Upsampler, conv
from ..nn.fusion import FUSION
from ..nn.groups import RRG
from .registry import register

#: papers.md §3.1 / §3.3 [R]: the official code's counts, reproduced exactly (tests/test_mirnet.py).
PAPER_PARAMS = {"shared": 31_787_419, "unshared": 42_239_298}
MINI_PARAMS = 2_650_655       # n_feat 32, 1 RRG x 2 MRB (papers.md §6.3 [R])
UPSAMPLERS = ("bicubic", "subpixel")


class MIRNet(nn.Module):
    """MIRNet with the switches of the replication (see the module docstring for the choices).

    Args:
        scale: 1 for same-size restoration (denoising, enhancement); 2, 3, 4 for bicubic SR.
        n_feat, n_rrg, n_mrb, height, width: channels of the full-resolution stream, groups, blocks
            per group, parallel streams (1, 2 or 3 in the ablation), DAU columns per MRB.
        fusion: "skff" (MIRNet), "sum" or "concat" — used for the exchange and the final aggregation.
        share_dau_weights: True = the released model (one DAU per stream, applied ``width`` times);
            False = a DAU per column (the paper's figure).
        share_prelu: one PReLU slope for every DAU of the model; None follows ``share_dau_weights``
            (the combination that reproduces each published count).
        reduction: channel-attention reduction (8); bias: biases in the convolutions (False, official).
        upsampler: for ``scale > 1``, "bicubic" (pre-up-sampled input) or "subpixel" (sub-pixel head).
    """

    def __init__(self, scale: int = 1, n_feat: int = 64, n_rrg: int = 3, n_mrb: int = 2, height: int = 3,
                 width: int = 2, fusion: str = "skff", share_dau_weights: bool = True,
                 share_prelu: bool | None = None, reduction: int = 8, bias: bool = False,
                 upsampler: str = "bicubic", in_channels: int = 3):
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale must be a positive integer (1 = same-size restoration), got {scale!r}")
        fusion = FUSION.resolve(fusion)   # an unknown kind: KeyError listing the registered ones
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"unknown upsampler {upsampler!r}: use one of {UPSAMPLERS}")
        if isinstance(height, bool) or not isinstance(height, int) or not 1 <= height <= 3:
            raise ValueError(f"height (parallel streams) must be 1, 2 or 3, got {height!r}")
        self.scale, self.in_channels, self.height = scale, in_channels, height
        self.upsampler = upsampler if scale > 1 else "none"
        self.multiple = 2 ** (height - 1)
        share_prelu = share_dau_weights if share_prelu is None else share_prelu
        act = nn.PReLU() if share_prelu else None       # quirk 2: one slope for every DAU
        self.conv_in = conv(in_channels, n_feat, 3, bias)
        self.body = nn.Sequential(*[RRG(n_feat, n_mrb, bias, height=height, width=width, fusion=fusion,
                                        share_dau_weights=share_dau_weights, reduction=reduction, act=act)
                                    for _ in range(n_rrg)])
        self.up = Upsampler(scale, n_feat, bias) if self.upsampler == "subpixel" else nn.Identity()
        self.conv_out = conv(n_feat, in_channels, 3, bias)

    def _bicubic(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1:
            return x
        from ..data.resize import imresize_torch  # data is a lower floor
        return imresize_torch(x, self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"MIRNet expects a (B, {self.in_channels}, H, W) image batch in [0, 1], "
                             f"got shape {tuple(x.shape)}")
        skip = self._bicubic(x)
        inp = skip if self.upsampler in ("none", "bicubic") else x
        h, w = inp.shape[-2:]
        inp = _pad_to_multiple(inp, self.multiple)
        feats = self.up(self.body(self.conv_in(inp)))
        s = self.scale if self.upsampler == "subpixel" else 1
        return self.conv_out(feats)[..., :h * s, :w * s] + skip


def _pad_to_multiple(x: torch.Tensor, m: int) -> torch.Tensor:
    """Pad H and W at the bottom/right up to multiples of ``m``: reflect where the map is large enough,
    edge replication where it is not (a 1- or 2-pixel-wide input cannot be reflected by 3)."""
    ph, pw = -x.shape[-2] % m, -x.shape[-1] % m
    if not (ph or pw):
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


_OFFICIAL_RENAMES = (  # (pattern in swz30/MIRNet keys, ours), applied in order
    (r"\.blocks\.(\d+)\.(\d+)\.", r".daus.\1.\2."),
    (r"\.SA\.spatial\.conv\.", ".sa.conv."),
    (r"\.CA\.conv_du\.", ".ca.conv_du."),
    (r"\.last_up\.(\d+)\.body\.", r".last_up.\1."),
    (r"\.(down|up)\.(\d+)_(\d+)\.body\.", r".\1.\2_x\3."),
    (r"\.selective_kernel\.", ".fuse."),
    (r"\.filt$", ".kernel"),
)


def convert_official_state_dict(state: dict, share_dau_weights: bool = True) -> dict:
    """Rename a state dict of the official code (swz30/MIRNet ``MIRNet``) to this implementation's keys.

    Accepts the released checkpoint files' layout too (``{"state_dict": ...}``, keys prefixed with
    ``module.`` by ``DataParallel``). With ``share_dau_weights`` the official file holds each stream's
    shared DAU twice (``blocks.j.0`` and ``blocks.j.1``, identical tensors): the copies are checked to be
    equal and dropped. Checked in a scratch copy of the official code: identical outputs (papers.md §3.3).
    """
    import re
    state = state.get("state_dict", state)
    out = {}
    for key, value in state.items():
        new = key[len("module."):] if key.startswith("module.") else key
        for pattern, repl in _OFFICIAL_RENAMES:
            new = re.sub(pattern, repl, new)
        m = re.search(r"\.daus\.(\d+)\.(\d+)\.", new)
        if share_dau_weights and m and m.group(2) != "0":
            first = new[:m.start()] + f".daus.{m.group(1)}.0." + new[m.end():]
            if first in out and not torch.equal(out[first], value):
                raise ValueError(f"{key}: the DAUs of a stream differ, so this checkpoint has unshared DAUs: "
                                 f"build the model with share_dau_weights=False")
            continue
        out[new] = value
    return out


def load_official_weights(model: "MIRNet", state: dict) -> "MIRNet":
    """Load official MIRNet weights (e.g. the released ``model_denoising.pth``, read with ``torch.load``)
    into ``model`` (strict). The model must be built with the same n_feat/n_rrg/n_mrb/height/width."""
    share = all(mrb.share_dau_weights for mrb in model.modules() if hasattr(mrb, "share_dau_weights"))
    model.load_state_dict(convert_official_state_dict(state, share), strict=True)
    return model


@register("mirnet", presets={
    "paper": {"scale": 1, "n_feat": 64, "n_rrg": 3, "n_mrb": 2, "height": 3, "width": 2, "fusion": "skff",
              "share_dau_weights": True},
    "mini": {"scale": 1, "n_feat": 32, "n_rrg": 1, "n_mrb": 2, "height": 3, "width": 2, "fusion": "skff",
             "share_dau_weights": True},
    # CPU-sized for the quick notebook: one MRB at 8/16/32 channels, same topology
    "tiny": {"scale": 1, "n_feat": 8, "n_rrg": 1, "n_mrb": 1, "height": 3, "width": 2, "fusion": "skff",
             "share_dau_weights": True},
}, description="MIRNet: multi-scale residual blocks with SKFF fusion and dual attention units",
   params={"paper": PAPER_PARAMS["shared"], "mini": MINI_PARAMS, "tiny": 83_888})
def mirnet(**kwargs) -> MIRNet:
    return MIRNet(**kwargs)
