"""Attention layers, side by side: channel attention of first order (SE / RCAN's CA) and second order
(SAN's SOCA), and MIRNet's spatial attention and dual attention unit (:class:`SpatialAttention`,
:class:`ChannelAttention`, :class:`DAU`; papers.md §3.2, notebook 04 section "3. Dual attention").

Both layers compute one weight per channel, ``w = sigmoid(W_U · ReLU(W_D · z))``, and return
``x * w``. They differ only in the channel descriptor ``z``:

* SE (first order): ``z_c`` = the spatial *mean* of channel ``c``;
* SOCA (second order): ``z_c`` = the mean of column ``c`` of ``Σ^{1/2}``, the square root of the
  channel covariance — so every channel's descriptor depends on how it co-varies with all others.

Derived step by step in ``notebooks/01_san_se_vs_soca.ipynb``: section "2. First-order attention
(SE)", "3. Covariance pooling", "4. Newton-Schulz square root", "5. SOCA" and "6. Look inside".

Numerics follow sr-protocol.md §6 and §8 items 21, 24, 25: the covariance is computed from centred
features (O(C·H·W) memory, never the (H·W)×(H·W) matrix the official code builds), the square root by
plain-autograd Newton–Schulz, both in float32 with autocast disabled, with an ε on the trace.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import _checks
from ..registry import Registry
from .common import conv

__all__ = ["SE", "SOCA", "NoAttention", "SpatialAttention", "ChannelAttention", "DAU", "covariance_pool", "sqrtm_newton_schulz", "sigma_power", "channel_attention", "ATTENTION"]

#: Channel-attention kinds by name. An entry is a module class built as ``cls(channels, reduction)``
#: (plus ``iters=`` when its constructor takes it, as SOCA's does); SAN's LSRAG and RCAN's RCAB build
#: whatever kind their ``attention=`` argument names, so ``@ATTENTION.register("my-gate")`` on a class is
#: all a new arm needs.
_RESHAPE = "; build the layer with channels= the input's channel count, or reshape the input"

ATTENTION = Registry("attention kind", "attention",
                     help="channel attention at the tail of SAN's LSRAG and inside RCAN's RCAB")


def _excitation(channels: int, reduction: int, bias: bool = True) -> nn.Sequential:
    """W_U · ReLU(W_D · z) then sigmoid: 1×1 convs C → C/r → C, with biases in RCAN and SAN
    (``bias=False`` for MIRNet's DAU)."""
    if channels // reduction < 1:
        raise ValueError(f"reduction={reduction} leaves no hidden channel for {channels} channels "
                         f"(C // r must be >= 1): use reduction <= {channels}")
    hidden = channels // reduction
    return nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=bias), nn.ReLU(inplace=True),
                         nn.Conv2d(hidden, channels, 1, bias=bias), nn.Sigmoid())


def _wide(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32; float32/float64 unchanged (float64 keeps gradcheck exact)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


@ATTENTION.register("se", order="first")
class SE(nn.Module):
    r"""First-order channel attention (Squeeze-and-Excitation with 1×1 convs) — RCAN's ``CALayer``.

    .. math::  z_c = \frac{1}{HW}\sum_{i,j} x_c(i,j), \qquad
               w = \sigma\big(W_U\,\mathrm{ReLU}(W_D z)\big), \qquad \hat x_c = w_c\, x_c

    with W_D: C → C/r and W_U: C/r → C, biases on, r = 16 in RCAN and SAN [papers.md §1.7;
    C: RCAN ``rcan.py``]. Used as SAN's "FOCA" ablation arm, placed exactly where SAN puts SOCA.
    Not the ``CALayer`` inside SAN's ``san.py``: that leftover has no sigmoid and returns the weights
    instead of the rescaled features (papers.md §1.7).

    After each forward the layer keeps, detached (no autograd graph is held), ``last_descriptor``
    (z, shape B×C) and ``last_weights`` (w, shape B×C), so a notebook can look at them after a model
    forward without hooks; each forward overwrites them. Notebook: section "2. First-order attention (SE)".
    ``bias=False`` removes the two bias vectors (MIRNet's ``ca_layer``, :class:`ChannelAttention`).
    """

    def __init__(self, channels: int, reduction: int = 16, bias: bool = True):
        super().__init__()
        self.channels, self.reduction = channels, reduction
        self.conv_du = _excitation(channels, reduction, bias)
        self.last_descriptor: torch.Tensor | None = None
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _checks.batch(x, self.channels, "SE", "feature map", _RESHAPE)
        z = x.mean(dim=(2, 3), keepdim=True)
        w = self.conv_du(z)
        self.last_descriptor, self.last_weights = z.detach().flatten(1), w.detach().flatten(1)
        return x * w


def covariance_pool(x: torch.Tensor) -> torch.Tensor:
    r"""Channel covariance Σ = X Ī Xᵀ, Ī = (I − 11ᵀ/M)/M, M = H·W  →  (B, C, C).

    Computed as (X − mean)(X − mean)ᵀ / M: the same *biased* covariance (divisor M, not M − 1) as
    SAN's ``Covpool`` [papers.md §1.2; C: ``MPNCOV.py``], but O(C·M) memory instead of the explicit
    M×M matrix Ī that the official code builds per sample (4·M² bytes: 1 GiB at 128², ~275 GB at 512²;
    the cause of SAN issues #22, #39, #50). Runs in float32 (float64 if given float64) with autocast
    disabled, because fp16 sums of M products overflow (sr-protocol.md §6.2). Input (B, C, H, W) or
    (B, C, M). Notebook: section "3. Covariance pooling".
    """
    if x.dim() not in (3, 4):
        raise ValueError(f"covariance_pool expects (B, C, H, W) or (B, C, M), got shape {tuple(x.shape)}")
    with torch.autocast(device_type=x.device.type, enabled=False):
        xs = _wide(x).flatten(2)                               # (B, C, M)
        xc = xs - xs.mean(dim=2, keepdim=True)                 # centring = multiplying by (I − 11ᵀ/M)
        return xc @ xc.transpose(1, 2) / xs.shape[2]


def sqrtm_newton_schulz(a: torch.Tensor, iters: int = 5, eps: float = 1e-10) -> torch.Tensor:
    r"""Approximate Σ^{1/2} of symmetric PSD matrices (..., C, C) by coupled Newton–Schulz (iSQRT-COV).

    .. math::  A = \Sigma / (\operatorname{tr}\Sigma + \varepsilon), \quad Y_0 = A,\ Z_0 = I, \\
               T_k = \tfrac12 (3I - Z_{k-1} Y_{k-1}),\ Y_k = Y_{k-1} T_k,\ Z_k = T_k Z_{k-1}
               \quad (k = 1 \dots N-1), \\
               Y_N = \tfrac12 Y_{N-1}(3I - Z_{N-1} Y_{N-1}), \qquad
               \Sigma^{1/2} \approx \sqrt{\operatorname{tr}\Sigma + \varepsilon}\; Y_N

    [papers.md §1.2; C: SAN ``MPNCOV.Sqrtm``]. SAN uses N = 5, which is *not* converged: about 24 %
    relative error from the eigen-decomposition root on real 64-channel features (papers.md §1.2 [R]);
    it acts as a spectrum-compressing normalisation. Only N ≳ 10–15 approaches the true root on
    well-conditioned matrices. Notebook: section "4. Newton-Schulz square root".

    Choices, and why:
    * plain autograd through the matmuls, no hand-written backward: the official custom backward
      matches autograd to 3.5e-7 (papers.md §1.2 [R]) and its ``iterN = 1`` path is broken
      (sr-protocol.md §6.2); for N = 1 the official forward also returns T_1 instead of A·T_1 —
      we follow the recurrence above, Y_1 = ½·A(3I − A).
    * ε on the trace (default 1e-10): a spatially flat feature map has Σ = 0 and the official code
      divides 0/0 → NaN (papers.md §1.2 [R]); here A = 0, the result is 0 and the gradient finite.
      ε enters the √ compensation too, so d√(tr + ε)/dtr stays finite at tr = 0.
    * float32 (float64 if given float64) with autocast disabled; returns that dtype.
    """
    if a.dim() < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"sqrtm_newton_schulz expects square matrices (..., C, C), got shape {tuple(a.shape)}")
    if int(iters) != iters or iters < 1:
        raise ValueError(f"iters must be a positive integer, got {iters!r} (SAN uses 5)")
    with torch.autocast(device_type=a.device.type, enabled=False):
        a = _wide(a)
        eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        trace = a.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None] + eps
        y, z = a / trace, eye
        for _ in range(int(iters) - 1):
            t = 0.5 * (3 * eye - z @ y)
            y, z = y @ t, t @ z
        y = 0.5 * y @ (3 * eye - z @ y)
        return y * trace.sqrt()


@ATTENTION.register("soca", order="second")
class SOCA(nn.Module):
    r"""Second-order channel attention (SAN, Dai et al. CVPR 2019).

    .. math::  \Sigma = X \bar I X^\top,\quad \hat Y = \Sigma^{1/2}\ (\text{Newton–Schulz, } N = 5), \quad
               z_c = \frac1C \sum_i \hat Y_{i c},\quad w = \sigma\big(W_U\,\mathrm{ReLU}(W_D z)\big),
               \quad \hat x_c = w_c\, x_c

    W_D: C → C/r, W_U: C/r → C with biases, r = 16 in SAN [papers.md §1.2; C: ``san.py`` SOCA].
    Pooling, normalisation and the descriptor run in a float32 island (autocast disabled, ``.float()``
    inputs; sr-protocol.md §8 item 21); the gate runs in the weights' dtype; the output has ``x``'s dtype.

    ``max_side``: the official SOCA pools only the central 1000×1000 crop of larger maps, to bound
    its M×M memory. Our pooling is O(C·M), so the default ``None`` pools the whole map; pass
    ``max_side=1000`` to reproduce the official crop (identical below 1000 pixels a side, e.g. on
    every 48×48 training patch).

    Like :class:`SE`, keeps ``last_descriptor`` (z) and ``last_weights`` (w), detached, B×C, from the
    latest forward, so notebooks can compare first- and second-order descriptors on the same features.
    Notebook: section "5. SOCA" and "6. Look inside".
    """

    def __init__(self, channels: int, reduction: int = 16, iters: int = 5, eps: float = 1e-10,
                 max_side: int | None = None):
        super().__init__()
        if int(iters) != iters or iters < 1:
            raise ValueError(f"iters must be a positive integer, got {iters!r} (SAN uses 5)")
        self.channels, self.reduction, self.iters, self.eps, self.max_side = channels, reduction, int(iters), eps, max_side
        self.conv_du = _excitation(channels, reduction)
        self.last_descriptor: torch.Tensor | None = None
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _checks.batch(x, self.channels, "SOCA", "feature map", _RESHAPE)
        xs = x
        if self.max_side is not None:                      # official central crop (see docstring)
            h, w = x.shape[-2:]
            top, left = max(0, (h - self.max_side) // 2), max(0, (w - self.max_side) // 2)
            xs = x[..., top:top + self.max_side, left:left + self.max_side]
        with torch.autocast(device_type=x.device.type, enabled=False):
            sigma = covariance_pool(xs)
            root = sqrtm_newton_schulz(sigma, self.iters, self.eps)
            z = root.mean(dim=1)                               # (B, C): mean over rows i of Ŷ_{i,c}
            gate_dtype = self.conv_du[0].weight.dtype
            w = self.conv_du(z.to(gate_dtype)[:, :, None, None])
        self.last_descriptor, self.last_weights = z.detach(), w.detach().flatten(1)
        return x * w.to(x.dtype)


def sigma_power(sigma: torch.Tensor, alpha: float) -> torch.Tensor:
    r"""Σ^α = U Λ^α Uᵀ for symmetric PSD ``sigma`` (..., C, C), by ``torch.linalg.eigh``.

    The paper motivates SOCA's normalisation with this eigen-decomposition (α = ½) and computes it by
    Newton–Schulz instead [papers.md §1.2]: eigh has no fast GPU kernel and its gradient is undefined
    for repeated eigenvalues (sr-protocol.md §6.2). Eigenvalues below 0 (rounding) are clamped to 0;
    0^α is taken as 0 for α > 0 and 1 for α = 0.
    """
    if sigma.dim() < 2 or sigma.shape[-1] != sigma.shape[-2]:
        raise ValueError(f"sigma_power expects square matrices (..., C, C), got shape {tuple(sigma.shape)}")
    if not (isinstance(alpha, (int, float)) and 0 <= alpha <= 1):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    lam, u = torch.linalg.eigh(sigma)
    lam = lam.clamp_min(0)
    powered = lam.pow(alpha) if alpha > 0 else torch.ones_like(lam)
    return (u * powered.unsqueeze(-2)) @ u.transpose(-1, -2)


# ------------------------------------------------------------------------------------------------------
# Spatial attention beside channel attention: MIRNet's dual attention unit (Zamir et al., ECCV 2020).
class SpatialAttention(nn.Module):
    r"""Spatial attention: one weight per pixel from the channel-wise max and mean.

    .. math::  \mathrm{SA}(M) = M \odot \sigma\big(W_{5×5} * [\max_c M;\ \mathrm{mean}_c M]\big)

    W: 2 → 1 channels, 5×5, no bias, no batch norm, no ReLU (50 weights) [papers.md §3.2; C:
    ``spatial_attn_layer``]. Keeps ``last_map`` (σ(·), B×1×H×W, detached). Notebook: section
    "3. Dual attention: where, and what".
    """

    def __init__(self, kernel_size: int = 5, bias: bool = False):
        super().__init__()
        self.conv = conv(2, 1, kernel_size, bias=bias)
        self.last_map: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"SpatialAttention expects a (B, C, H, W) map, got {tuple(x.shape)}")
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        m = torch.sigmoid(self.conv(pooled))
        self.last_map = m.detach()
        return x * m


class ChannelAttention(SE):
    r"""MIRNet's channel attention: the package's :class:`~srlearn.nn.attention.SE` with reduction 8
    and, by default, **no biases**.

    .. math::  \mathrm{CA}(M) = M \odot \sigma\big(W_2\,\mathrm{ReLU}(W_1\,\mathrm{GAP}(M))\big),
               \quad W_1: C \to C/8,\ W_2: C/8 \to C

    MIRNet's ``ca_layer`` is RCAN's CA layer (same pooling, same gate) except that the DAU builds it
    with ``bias=False`` [papers.md §3.2; C: ``ca_layer(..., bias=bias)`` in ``DAU``]. So this class
    *is* SE (its forward, ``last_descriptor`` and ``last_weights`` are inherited unchanged) with the two
    bias vectors left out (``SE(..., bias=False)``); ``bias=True`` gives plain SE. Notebook: section
    "3. Dual attention: where, and what".
    """

    def __init__(self, channels: int, reduction: int = 8, bias: bool = False):
        super().__init__(channels, reduction, bias)


class DAU(nn.Module):
    r"""Dual attention unit: spatial and channel attention side by side, merged, plus the input.

    .. math::  M = W_{3×3}\,\phi(W_{3×3}\,x),\qquad
               \mathrm{DAU}(x) = x + W_{1×1}\,[\mathrm{SA}(M);\ \mathrm{CA}(M)]\quad (2C \to C)

    φ = PReLU, no biases [papers.md §3.2; C: ``DAU``]. ``act`` lets a model pass one PReLU shared by
    every DAU: the official code does that by accident (a default argument ``act=nn.PReLU()`` is
    evaluated once), papers.md §3.3 quirk 2; ``None`` gives the unit its own. Notebook: section
    "3. Dual attention: where, and what".
    """

    def __init__(self, channels: int, kernel_size: int = 3, reduction: int = 8, sa_kernel: int = 5,
                 bias: bool = False, act: nn.Module | None = None):
        super().__init__()
        self.channels = channels
        self.body = nn.Sequential(conv(channels, channels, kernel_size, bias), act if act is not None else nn.PReLU(),
                                  conv(channels, channels, kernel_size, bias))
        self.sa = SpatialAttention(sa_kernel)              # official: always bias-free
        self.ca = ChannelAttention(channels, reduction, bias)
        self.conv1x1 = nn.Conv2d(2 * channels, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"DAU expects a (B, {self.channels}, H, W) map, got {tuple(x.shape)}")
        m = self.body(x)
        return x + self.conv1x1(torch.cat([self.sa(m), self.ca(m)], dim=1))


@ATTENTION.register("none", order=None)
class NoAttention(nn.Identity):
    """No channel attention: the features pass unchanged (the ablation's "w/o attention" arm)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.channels, self.reduction = channels, reduction


def channel_attention(kind: str, channels: int, reduction: int = 16, **options) -> nn.Module:
    """Build the channel attention registered as ``kind`` in :data:`ATTENTION` (``"none"``, ``"se"``,
    ``"soca"`` or any kind registered later) as ``cls(channels, reduction, **options)``.

    ``options`` the kind's constructor does not take are an error (``iters`` belongs to SOCA, say); a
    model with a knob for one kind only (SAN's ``ns_iters``) filters it with ``ATTENTION.accepted``.
    """
    cls = ATTENTION.get(kind)
    allowed = set(ATTENTION.options(kind)) - {"channels", "reduction"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"{unknown} do not apply to attention={kind!r}; its options: {sorted(allowed) or 'none'}")
    return cls(channels, reduction, **options)
