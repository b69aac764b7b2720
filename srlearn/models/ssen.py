"""SSEN (Shim, Park, Kweon, CVPR 2020): reference-based SR with similarity-aware deformable convolution.

    lr  -> MeanShift(-) -> head conv ---------------> extractor (ResBlocks, shared) -> F_lr ---------.
    ref -> MeanShift(-) -> stride-2 convs (HR -> LR) -> extractor (ResBlocks, shared) -> F_ref -> SSEN(F_lr, F_ref) -> R
    [F_lr ; R] -> 1x1 conv -> [ResBlocks -> conv] + skip -> sub-pixel x scale -> conv -> MeanShift(+)
                                                                   (image_skip: -> + bicubic(lr) instead of MeanShift)

SSEN aligns the reference features to the LR content without any flow supervision: ``n_deform``
modulated deformable layers applied one after the other, layer t reading its offsets and masks from a
*dynamic offset estimator* that looks at ``[F_lr ; R_{t-1}]``. The masks are what make it
"similarity-aware": where the reference holds nothing useful they can go to 0 and the network falls back
to single-image SR (the robustness claim, tested in ``srlearn.experiments.ssen``).

No official code was released (papers.md §4.1); the only reimplementation (Slime0519) uses unmodulated
DCNv1, which drops the paper's key point. Every width and depth below that papers.md does not tag [S]/[C]
is our choice, said where it is made. Derived in ``notebooks/05_ssen_deformable_offsets.ipynb``: the
estimator in section 7, the network and its training in section 8.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data.resize import imresize_torch
from ..nn.common import MeanShift, ResBlock, Upsampler, conv3x3
from ..nn.deform import BACKENDS, ModulatedDeformConv2d
from ..nn.non_local import NonLocalBlock2d
from .registry import register

__all__ = ["DynamicOffsetEstimator", "SSEN", "SSENNet", "brute_force_patch_match", "MAX_DEFORM"]

MAX_DEFORM = 5


def _act() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


class DynamicOffsetEstimator(nn.Module):
    r"""The dynamic offset estimator (DOE): an encoder-decoder with a non-local block at each scale.

    .. math::  f_0 = \mathrm{conv}([F_{LR}; R_{t-1}]),\quad f_l = \mathrm{NL}_l(\mathrm{conv}_{s=2}(f_{l-1}))
               \;(l = 1..L),\quad u_L = f_L,\quad u_{l-1} = \mathrm{up}(u_l) + f_{l-1},\quad
               \mathrm{out} = \mathrm{conv}(u_0)

    Three stride-2 3×3 convolutions (+ LeakyReLU 0.1) go to 1/2, 1/4 and 1/8 of the LR size; after each,
    an embedded-Gaussian :class:`~srlearn.nn.non_local.NonLocalBlock2d` (the package's, zero-initialised,
    so it starts as the identity; keys and values 2×2-pooled, the package default) lets every position of
    that scale see every other: an offset can point far away, which a stack of 3×3 convolutions cannot
    reach ("dynamic": the range adapts to the content). The way back up is a 4×4 stride-2 transposed
    convolution at each scale, added to the skip of the same scale (Slime0519 offers addition or
    concatenation [C]; the paper's choice is [M]; we add, which costs nothing). The output is a feature
    map at LR size from which :class:`~srlearn.nn.deform.OffsetMaskHead` predicts offsets and masks.
    ``non_local=False`` replaces the blocks by identities (the ablation of notebook 05, section 10).

    Odd sizes: a stride-2 conv gives ceil(n/2); the up-sampled map is cropped to the skip's size. With
    non-local blocks, the coarsest map must be at least 2×2: LR maps of at least 9×9 for 3 levels.
    """

    def __init__(self, channels: int, in_channels: int | None = None, levels: int = 3, non_local: bool = True):
        super().__init__()
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        self.levels, self.non_local = int(levels), bool(non_local)
        self.inp = conv3x3(in_channels or 2 * channels, channels)
        self.down = nn.ModuleList(nn.Conv2d(channels, channels, 3, stride=2, padding=1) for _ in range(levels))
        self.attend = nn.ModuleList(NonLocalBlock2d(channels) if non_local else nn.Identity() for _ in range(levels))
        self.up = nn.ModuleList(nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1) for _ in range(levels))
        self.out = conv3x3(channels, channels)
        self.act = _act()

    def min_size(self) -> int:
        """Smallest LR side this estimator accepts (2 px at the coarsest scale with non-local blocks)."""
        return 2 ** (self.levels - 1) + 1 if self.non_local else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.non_local and min(x.shape[-2:]) < self.min_size():
            raise ValueError(f"the offset estimator goes down {self.levels} times by 2 and needs at least 2x2 "
                             f"pixels there for its non-local block: give LR inputs of at least "
                             f"{self.min_size()}x{self.min_size()}, got {x.shape[-2]}x{x.shape[-1]}")
        f = self.act(self.inp(x))
        skips = [f]
        for down, attend in zip(self.down, self.attend):
            f = attend(self.act(down(f)))
            skips.append(f)
        skips.pop()                                           # the coarsest map is f itself
        for up in self.up:
            s = skips.pop()
            f = self.act(up(f))[..., :s.shape[-2], :s.shape[-1]] + s
        return self.act(self.out(f))


class SSEN(nn.Module):
    r"""Similarity-aware deformable alignment: ``n_deform`` modulated deformable layers in sequence.

    .. math::  R_0 = F_{Ref},\qquad (\Delta p_t, m_t) = \mathrm{head}_t(\mathrm{DOE}_t([F_{LR}; R_{t-1}])),\qquad
               R_t = \mathrm{DCN}_t(R_{t-1};\, \Delta p_t, m_t)

    Three 3×3 layers were found best in the paper [S: Slime0519's README paraphrasing it]; 1 to 5 are
    accepted (0 is the network without a reference branch, :class:`SSENNet`). Stacking matters because
    each output position of layer 3 reads 9 points of layer 2, each of which read 9 points of layer 1:
    9³ = 729 sampling points in the reference, spread by three independent offset fields (notebook 05,
    section 6). A LeakyReLU (0.1) sits between layers (our choice; [M] in the paper).

    Each layer: :class:`~srlearn.nn.deform.ModulatedDeformConv2d` whose head reads the DOE's output.
    ``modulated=False`` turns the layers into DCNv1 (no masks: what Slime0519 built), the ablation that
    shows what the masks do; ``offset_groups``, ``max_offset``, ``offset_lr_mul`` and ``backend`` are
    passed to every layer.
    """

    def __init__(self, channels: int, n_deform: int = 3, non_local: bool = True, modulated: bool = True,
                 levels: int = 3, offset_groups: int = 1, max_offset: float | None = None,
                 offset_lr_mul: float = 1.0, backend: str = "pure"):
        super().__init__()
        if isinstance(n_deform, bool) or not isinstance(n_deform, int) or not 1 <= n_deform <= MAX_DEFORM:
            raise ValueError(f"SSEN stacks 1 to {MAX_DEFORM} deformable layers, got n_deform={n_deform!r} "
                             f"(n_deform=0 is SSENNet without a reference branch)")
        self.estimators = nn.ModuleList(DynamicOffsetEstimator(channels, 2 * channels, levels, non_local)
                                        for _ in range(n_deform))
        self.deforms = nn.ModuleList(
            ModulatedDeformConv2d(channels, channels, 3, offset_groups=offset_groups, offset_in_channels=channels,
                                  modulated=modulated, max_offset=max_offset, offset_lr_mul=offset_lr_mul,
                                  backend=backend)
            for _ in range(n_deform))
        self.act = _act()

    def forward(self, f_lr: torch.Tensor, f_ref: torch.Tensor) -> torch.Tensor:
        if f_lr.shape != f_ref.shape:
            raise ValueError(f"SSEN aligns reference features of the LR features' shape; got {tuple(f_lr.shape)} "
                             f"and {tuple(f_ref.shape)}")
        r = f_ref
        for t, (estimator, deform) in enumerate(zip(self.estimators, self.deforms)):
            r = deform(r, estimator(torch.cat([f_lr, r], dim=1)))
            if t < len(self.deforms) - 1:
                r = self.act(r)
        return r


class SSENNet(nn.Module):
    r"""The reference-based SR network around SSEN: ``model(lr, ref)`` (RGB, [0, 1]; ``ref`` at HR size).

    .. math::  F_{LR} = E(\mathrm{conv}(x)),\quad F_{Ref} = E(D(\mathrm{ref})),\quad
               z = \mathrm{conv}_{1\times1}([F_{LR}; \mathrm{SSEN}(F_{LR}, F_{Ref})]),\quad
               y = U(z + B(z))

    * E: ``n_extract`` EDSR residual blocks shared by both branches (Slime0519: 5 [C]);
    * D: log2(scale) stride-2 3×3 convs (+ LeakyReLU) bringing the HR reference to LR size (Slime0519
      uses two stride-2 convs at ×4 [C]; the paper's down-scaling is [M]); a learned down-sampling can
      keep the reference's fine detail in its channels, which a bicubic shrink would throw away;
    * B: ``n_resblocks`` EDSR residual blocks without batch norm and a conv, with the global skip; U: the
      sub-pixel up-sampler and a conv (papers.md §4.2; Slime0519: 16 blocks × 64 channels [C]).

    Switches: ``n_deform=0`` builds no reference branch at all — the single-image baseline with the same
    extractor, body and up-sampler; it accepts a reference and ignores it, so it trains and is evaluated on
    exactly the same ``(lr, hr, ref)`` data. ``non_local`` and ``modulated`` go to :class:`SSEN`.
    ``self_similarity=True``: called without a reference, the LR features serve as their own reference
    (F_Ref = F_LR), the paper's mode for SISR on self-similar images (used there with RCAN [M]).
    ``image_skip=True`` adds MATLAB-bicubic up-sampling of the input to the output and zero-initialises
    the last convolution, so the untrained network *is* the bicubic baseline and learns a residual to
    it (VDSR's global residual). Neither EDSR nor, as far as is known, SSEN does this (``"paper"``
    preset: off); the small presets turn it on because a run of a few hundred steps then starts from
    bicubic instead of from a random image.
    The reference must be ``scale`` × the LR size (``srlearn.data.refpairs.fit_reference`` crops or
    pads one that is not).
    """

    def __init__(self, scale: int = 4, n_feats: int = 64, n_resblocks: int = 16, n_extract: int = 5,
                 n_deform: int = 3, non_local: bool = True, modulated: bool = True, levels: int = 3,
                 offset_groups: int = 1, max_offset: float | None = None, offset_lr_mul: float = 1.0,
                 self_similarity: bool = False, image_skip: bool = False, res_scale: float = 1.0,
                 rgb_range: float = 1.0, backend: str = "pure"):
        super().__init__()
        if isinstance(n_deform, bool) or not isinstance(n_deform, int) or not 0 <= n_deform <= MAX_DEFORM:
            raise ValueError(f"n_deform must be an integer in 0..{MAX_DEFORM} (0: single-image baseline), "
                             f"got {n_deform!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.scale, self.n_deform, self.self_similarity = int(scale), n_deform, bool(self_similarity)
        self.image_skip = bool(image_skip)
        self.sub_mean = MeanShift(sign=-1, rgb_range=rgb_range)
        self.add_mean = MeanShift(sign=+1, rgb_range=rgb_range)
        self.head = conv3x3(3, n_feats)
        self.extract = nn.Sequential(*[ResBlock(n_feats, res_scale=res_scale) for _ in range(n_extract)])
        if n_deform > 0:
            steps = math.log2(self.scale)
            if self.scale < 2 or steps != int(steps):
                raise ValueError(f"the reference encoder halves the HR reference log2(scale) times: scale must be "
                                 f"2, 4, 8, ... with a reference branch, got {scale} (n_deform=0 has none)")
            layers: list[nn.Module] = []
            for i in range(int(steps)):
                layers += [nn.Conv2d(3 if i == 0 else n_feats, n_feats, 3, stride=2, padding=1), _act()]
            self.ref_head = nn.Sequential(*layers)
            self.ssen = SSEN(n_feats, n_deform, non_local, modulated, levels, offset_groups, max_offset,
                             offset_lr_mul, backend)
            self.fuse = nn.Conv2d(2 * n_feats, n_feats, 1)
        self.body = nn.Sequential(*[ResBlock(n_feats, res_scale=res_scale) for _ in range(n_resblocks)],
                                  conv3x3(n_feats, n_feats))
        self.tail = nn.Sequential(Upsampler(self.scale, n_feats), conv3x3(n_feats, 3))
        if self.image_skip:                       # start as bicubic: the network adds a residual to it
            nn.init.zeros_(self.tail[-1].weight)
            nn.init.zeros_(self.tail[-1].bias)

    def reference_features(self, lr: torch.Tensor, ref: torch.Tensor | None, f_lr: torch.Tensor) -> torch.Tensor:
        """F_Ref at LR size: the encoded reference, or F_LR itself in self-similarity mode."""
        if ref is None:
            if not self.self_similarity:
                raise ValueError("this SSEN model needs a reference: call model(lr, ref) with ref at "
                                 f"{self.scale}x the LR size, or build it with self_similarity=True")
            return f_lr
        want = (lr.shape[0], 3, lr.shape[-2] * self.scale, lr.shape[-1] * self.scale)
        if ref.dim() != 4 or tuple(ref.shape) != want:
            raise ValueError(f"ref must be {want} (batch, RGB, {self.scale}x the LR size) for lr {tuple(lr.shape)}, "
                             f"got {tuple(ref.shape)}; srlearn.data.refpairs.fit_reference crops/pads one to size")
        return self.extract(self.ref_head(self.sub_mean(ref)))

    def forward(self, lr: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        if lr.dim() != 4 or lr.shape[1] != 3:
            raise ValueError(f"lr must be (B, 3, H, W) RGB in [0, 1], got {tuple(lr.shape)}")
        f_lr = self.extract(self.head(self.sub_mean(lr)))
        z = f_lr
        if self.n_deform > 0:
            aligned = self.ssen(f_lr, self.reference_features(lr, ref, f_lr))
            z = self.fuse(torch.cat([f_lr, aligned], dim=1))
        out = self.tail(z + self.body(z))
        return out + imresize_torch(lr, self.scale) if self.image_skip else self.add_mean(out)


@register("ssen", presets={
    # Slime0519's sizes [C] (16 x 64 body, 5-block extractor); the paper's exact widths are [X]
    "paper": {"scale": 4, "n_feats": 64, "n_resblocks": 16, "n_extract": 5, "n_deform": 3, "image_skip": False},
    # papers.md §6.4's "EDSR-mini ± SSEN" for the one-GPU replication
    "small": {"scale": 4, "n_feats": 64, "n_resblocks": 8, "n_extract": 2, "n_deform": 3, "image_skip": True},
    # a minute on a CPU (notebook 05, quick mode)
    "mini": {"scale": 4, "n_feats": 16, "n_resblocks": 2, "n_extract": 1, "n_deform": 3, "image_skip": True},
}, description="SSEN: reference-based SR, similarity-aware deformable alignment (model(lr, ref))",
   params={"paper": 3_365_484, "small": 2_553_068, "mini": 137_754}, inputs=("lr", "ref"))
def ssen(**kwargs) -> SSENNet:
    return SSENNet(**kwargs)


@torch.no_grad()
def brute_force_patch_match(query: torch.Tensor, key: torch.Tensor, patch: int = 3, chunk: int = 4096):
    r"""SRNTT-style exhaustive matching: for every ``patch``×``patch`` patch of ``query``, the most similar patch
    of ``key`` by normalised cross-correlation.

    .. math::  j^*(i) = \arg\max_j \frac{\langle q_i, k_j \rangle}{\lVert q_i \rVert \lVert k_j \rVert}

    ``query`` (1, C, H, W), ``key`` (1, C, H', W'); returns ``(index, score)``, each (H, W): the flat index
    ``y'·W' + x'`` of the best key patch centre and its correlation. Cost ∝ H·W·H'·W'·C·patch² — quadratic
    in the image area, the cost SSEN's offsets avoid (notebook 05, section 12; ``srlearn bench deform``).
    The similarity matrix is computed ``chunk`` query patches at a time to bound memory.
    """
    if query.dim() != 4 or key.dim() != 4 or query.shape[0] != 1 or key.shape[0] != 1 or query.shape[1] != key.shape[1]:
        raise ValueError(f"query and key must be (1, C, H, W) with the same C, got {tuple(query.shape)} and "
                         f"{tuple(key.shape)}")
    pad = patch // 2
    q = F.normalize(F.unfold(query, patch, padding=pad)[0].T, dim=1)       # (H*W, C*p*p)
    k = F.normalize(F.unfold(key, patch, padding=pad)[0], dim=0)           # (C*p*p, H'*W')
    best_i, best_s = [], []
    for start in range(0, q.shape[0], chunk):
        s, i = (q[start:start + chunk] @ k).max(dim=1)
        best_s.append(s)
        best_i.append(i)
    h, w = query.shape[-2:]
    return torch.cat(best_i).view(h, w), torch.cat(best_s).view(h, w)
