"""The authors' released SAN and RCAN weights, renamed and rescaled for srlearn's SAN and RCAN.

The official files are published by the authors, not by srlearn: the README of each official repository
links them (github.com/daitao/SAN, github.com/yulunzhang/RCAN: e.g. ``RCAN_BIX2.pt``, the name its
``TrainRCAN_scripts.sh`` loads). srlearn does not redistribute them; download them yourself under their
terms, then ``srlearn convert --from official-san|official-rcan FILE --out CHECKPOINT`` (``srlearn.convert``).
MIRNet's converter is :func:`srlearn.models.mirnet.convert_official_state_dict`.

Two things differ between an official file and srlearn's model, and both are handled here:

1. **Names.** Official keys (EDSR-PyTorch layout: ``sub_mean``, ``head.0``, ``body.N.body.M...``,
   ``tail``, ``add_mean``; SAN: ``RG.i.rcab.j.conv_first``, ``non_local.non_local.{g.0, W, theta, phi.0}``)
   are mapped **by name**, never by position: the official non-local block registers g, W, θ, φ in
   that order, srlearn's θ, φ, g, W, and θ, φ, g have the same shape, so matching by order would load
   g's weights into θ without any error (``tests/test_convert.py`` shows that it would). Every official
   key must be either mapped or on a short list of parameters the official forward never uses
   (SAN's ``conv_last``, per-group ``gamma``, the SOCA inside ``Nonlocal_CA``); anything else is an error.

2. **Range and mean shift.** The released models take RGB in [0, 255] (``rgb_range=255``) and their
   ``MeanShift`` layers are 1×1 convolutions whose 24 weights were trained (papers.md §0: the freeze is set
   on the module, not on its parameters), so they need not be the identity and the DIV2K mean any more.
   srlearn's models take [0, 1] and shift by a fixed per-channel mean (a buffer). The official network is

       f(X) = A_add( T( H( A_sub(X) ) ) ),   X = 255·x,   A_sub(v) = W_s v + b_s,   A_add(t) = W_a t + b_a

   with H the head convolution and T everything up to the last convolution. We want f(255·x)/255 for x in
   [0, 1], exactly, with srlearn's layers only:

   * input: A_sub(255·x) = 255·W_s·(x − m) with m = −W_s⁻¹ b_s / 255. The shift by m is srlearn's
     ``sub_mean`` (its buffer set to m); the linear map 255·W_s is folded into the head convolution's
     input channels. Exact, borders included: the head's zero padding pads (x − m), and a linear map
     sends zeros to zeros.
   * output: A_add(t)/255 = (W_a/255)·t + b_a/255. W_a/255 is folded into the last convolution's
     output channels (weights and bias); b_a/255 becomes srlearn's ``add_mean`` buffer.

   With the official defaults (W = I, b = ∓255·mean) this gives back m = the DIV2K mean and a head scaled
   by 255. The head weights of a converted checkpoint are therefore not the official tensors but the
   official tensors times 255·W_s (a 3×3 matrix); every other tensor is copied unchanged. Computed in
   float64, stored in float32.
"""
from __future__ import annotations

import re

import torch

__all__ = ["convert_official_san", "convert_official_rcan", "unwrap_official_state", "OFFICIAL_RGB_RANGE"]

#: The released SAN/RCAN models take RGB in [0, 255] (papers.md §0, [C: SAN & RCAN common.py]).
OFFICIAL_RGB_RANGE = 255.0


def unwrap_official_state(state) -> dict:
    """The tensor dict inside a loaded official file: accepts a bare state dict, ``{"state_dict": ...}`` or
    ``{"model": ...}``, and strips the ``module.`` prefix ``DataParallel`` adds."""
    if not isinstance(state, dict):
        raise ValueError(f"expected a state dict (a dict of tensors), got {type(state).__name__}")
    for key in ("state_dict", "model", "params"):
        if key in state and isinstance(state[key], dict) and not isinstance(state[key], torch.Tensor):
            state = state[key]
            break
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue                      # epoch counters, optimizer state and the like
        out[key[len("module."):] if key.startswith("module.") else key] = value
    if not out:
        raise ValueError("the file holds no tensors: is it a model's state dict?")
    return out


# ----------------------------------------------------------------------------------------- mean shift

def _mean_shift(state: dict, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    for suffix in ("weight", "bias"):
        if f"{prefix}.{suffix}" not in state:
            raise ValueError(f"no {prefix}.{suffix} in the official state dict: an official SAN/RCAN file has "
                             f"its MeanShift 1x1 convolution as {prefix}.weight (3,3,1,1) and {prefix}.bias (3,)")
    w, b = state[f"{prefix}.weight"].double(), state[f"{prefix}.bias"].double()
    if tuple(w.shape) != (3, 3, 1, 1) or tuple(b.shape) != (3,):
        raise ValueError(f"{prefix}: expected weight (3, 3, 1, 1) and bias (3,), got {tuple(w.shape)} and "
                         f"{tuple(b.shape)}")
    return w.view(3, 3), b


def fold_input_shift(w_s: torch.Tensor, b_s: torch.Tensor, head_weight: torch.Tensor,
                     rgb_range: float = OFFICIAL_RGB_RANGE) -> tuple[torch.Tensor, torch.Tensor]:
    """(srlearn ``sub_mean`` buffer m, head weight) equivalent to ``head(W_s·(rgb_range·x) + b_s)``."""
    cond = torch.linalg.cond(w_s).item()
    if not cond < 1e6:
        raise ValueError(f"the official sub_mean weight is (nearly) singular (condition number {cond:.3g}): "
                         f"it cannot be written as a mean shift; is this really a SAN/RCAN file?")
    mean = -torch.linalg.solve(w_s, b_s) / rgb_range
    head = torch.einsum("ojhw,ji->oihw", head_weight.double(), rgb_range * w_s)
    return mean.view(1, 3, 1, 1).float(), head.float()


def fold_output_shift(w_a: torch.Tensor, b_a: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                      rgb_range: float = OFFICIAL_RGB_RANGE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(last conv weight, its bias, srlearn ``add_mean`` buffer) equivalent to ``(W_a·conv(z) + b_a)/rgb_range``."""
    mix = w_a / rgb_range
    new_w = torch.einsum("oj,jihw->oihw", mix, weight.double())
    new_b = mix @ bias.double()
    return new_w.float(), new_b.float(), (b_a / rgb_range).view(1, 3, 1, 1).float()


def _finish(state: dict, renamed: dict, head_key: str, last_key: str) -> dict:
    """Fold both mean shifts (see the module docstring) into ``renamed`` (srlearn keys)."""
    w_s, b_s = _mean_shift(state, "sub_mean")
    w_a, b_a = _mean_shift(state, "add_mean")
    renamed["sub_mean.mean"], renamed[f"{head_key}.weight"] = fold_input_shift(w_s, b_s, renamed[f"{head_key}.weight"])
    w, b, renamed["add_mean.mean"] = fold_output_shift(w_a, b_a, renamed[f"{last_key}.weight"],
                                                       renamed[f"{last_key}.bias"])
    renamed[f"{last_key}.weight"], renamed[f"{last_key}.bias"] = w, b
    return renamed


def _rename(state: dict, rules, unused) -> dict:
    """Apply the first matching (pattern, replacement) rule to every key; keys matching ``unused`` are
    dropped; any other key is an error naming it."""
    out, unknown = {}, []
    for key, value in state.items():
        if key in ("sub_mean.weight", "sub_mean.bias", "add_mean.weight", "add_mean.bias"):
            continue
        if any(re.fullmatch(p, key) for p in unused):
            continue
        for pattern, repl in rules:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, repl, key)] = value.detach().clone().float()
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"{len(unknown)} key(s) of the official file have no counterpart in srlearn's model, e.g. "
                         f"{unknown[:5]}: is the file of the architecture you named (--from)?")
    return out


def _count(state: dict, pattern: str) -> int:
    return len({m.group(1) for k in state if (m := re.fullmatch(pattern, k))})


def _scale_from_tail(state: dict, n_feats: int) -> int:
    """The up-sampling factor from the sub-pixel stages ``tail.0.{0,2,...}``: ×2 per 4C stage, ×3 for one 9C."""
    stages = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"tail\.0\.(\d+)\.weight", k)))
    if not stages:
        raise ValueError("no up-sampler (tail.0.N.weight) in the official file")
    outs = [state[f"tail.0.{i}.weight"].shape[0] for i in stages]
    if outs == [9 * n_feats]:
        return 3
    if all(o == 4 * n_feats for o in outs):
        return 2 ** len(outs)
    raise ValueError(f"cannot read the scale from the up-sampler's output channels {outs} (n_feats {n_feats})")


def _shape_check(ours: dict, model_state: dict, name: str) -> None:
    missing = sorted(set(model_state) - set(ours))
    extra = sorted(set(ours) - set(model_state))
    if missing or extra:
        raise ValueError(f"official {name} file does not match srlearn's {name}: missing {missing[:5]}, "
                         f"unexpected {extra[:5]}")
    for key, value in ours.items():
        if tuple(value.shape) != tuple(model_state[key].shape):
            raise ValueError(f"official {name} file: {key} has shape {tuple(value.shape)}, srlearn's model "
                             f"expects {tuple(model_state[key].shape)}")


# --------------------------------------------------------------------------------------------- RCAN

_RCAN_RULES = (
    (r"head\.0\.(weight|bias)", r"head.\1"),
    (r"(body\.\d+\.body\.\d+\.body\.[023](\.conv_du\.[02])?\.(weight|bias))", r"\1"),
    (r"(body\.\d+\.body\.\d+\.(weight|bias))", r"\1"),
    (r"(body\.\d+\.(weight|bias))", r"\1"),
    (r"(tail\.\d+(\.\d+)?\.(weight|bias))", r"\1"),
)


def convert_official_rcan(state: dict) -> tuple[dict, dict]:
    """An official RCAN state dict (yulunzhang/RCAN, [0, 255]) -> (srlearn state dict, ``build("rcan")`` kwargs).

    The architecture (groups, blocks, channels, reduction, scale) is read from the tensors' names and
    shapes; the result loads strictly into ``build("rcan", "paper", **kwargs)`` and runs on [0, 1] images
    (module docstring, point 2).
    """
    from . import build
    state = unwrap_official_state(state)
    if "head.0.weight" not in state:
        raise ValueError("no head.0.weight: not an official RCAN/SAN state dict (EDSR-PyTorch layout)")
    n_feats = state["head.0.weight"].shape[0]
    n_resgroups = _count(state, r"body\.(\d+)\.body\.\d+\.body\.0\.weight")
    n_resblocks = _count(state, r"body\.0\.body\.(\d+)\.body\.0\.weight")
    if not n_resgroups or not n_resblocks:
        raise ValueError("no residual groups (body.N.body.M.body.0.weight): not an official RCAN file "
                         "(for SAN use --from official-san)")
    reduction = n_feats // state["body.0.body.0.body.3.conv_du.0.weight"].shape[0]
    kwargs = {"scale": _scale_from_tail(state, n_feats), "n_resgroups": n_resgroups, "n_resblocks": n_resblocks,
              "n_feats": n_feats, "reduction": reduction}
    ours = _finish(state, _rename(state, _RCAN_RULES, ()), "head", "tail.1")
    _shape_check(ours, build("rcan", "paper", **kwargs).state_dict(), "RCAN")
    return ours, kwargs


# ---------------------------------------------------------------------------------------------- SAN

_SAN_RULES = (
    (r"gamma", "gamma"),
    (r"head\.0\.(weight|bias)", r"head.\1"),
    (r"RG\.(\d+)\.rcab\.(\d+)\.conv_first\.([02])\.(weight|bias)", r"groups.\1.blocks.\2.body.\3.\4"),
    (r"RG\.(\d+)\.soca\.conv_du\.([02])\.(weight|bias)", r"groups.\1.attention.conv_du.\2.\3"),
    (r"RG\.(\d+)\.conv_last\.(weight|bias)", r"groups.\1.conv.\2"),
    # the non-local block, by name: official order g, W, theta, phi; ours theta, phi, g, W
    (r"non_local\.non_local\.theta\.(weight|bias)", r"non_local.block.theta.\1"),
    (r"non_local\.non_local\.phi\.0\.(weight|bias)", r"non_local.block.phi.\1"),
    (r"non_local\.non_local\.g\.0\.(weight|bias)", r"non_local.block.g.\1"),
    (r"non_local\.non_local\.W\.(weight|bias)", r"non_local.block.W.\1"),
    (r"(tail\.\d+(\.\d+)?\.(weight|bias))", r"\1"),
)

#: created by the official SAN but never used by its forward (papers.md §1.1, §1.6; srlearn.models.san)
_SAN_UNUSED = (r"conv_last\.(weight|bias)", r"RG\.\d+\.gamma", r"non_local\.soca\.conv_du\.\d+\.(weight|bias)")


def convert_official_san(state: dict) -> tuple[dict, dict]:
    """An official SAN state dict (daitao/SAN, [0, 255]) -> (srlearn state dict, ``build("san")`` kwargs).

    Matched by name (module docstring, point 1); the parameters the official forward never uses are
    dropped. The result loads strictly into ``build("san", "paper", **kwargs)`` and runs on [0, 1] images.
    One difference is left as it is: the official SOCA pools only the central 1000×1000 crop of larger
    feature maps (``srlearn.nn.attention``, ``max_side``); srlearn's SAN pools the whole map, so the two
    agree for inputs (or tiles) under 1000 pixels a side.
    """
    from . import build
    state = unwrap_official_state(state)
    if "head.0.weight" not in state or not any(k.startswith("RG.") for k in state):
        raise ValueError("no head.0.weight / RG.N...: not an official SAN state dict (for RCAN use "
                         "--from official-rcan)")
    n_feats = state["head.0.weight"].shape[0]
    n_resgroups = _count(state, r"RG\.(\d+)\.conv_last\.weight")
    n_resblocks = _count(state, r"RG\.0\.rcab\.(\d+)\.conv_first\.0\.weight")
    reduction = n_feats // state["RG.0.soca.conv_du.0.weight"].shape[0]
    kwargs = {"scale": _scale_from_tail(state, n_feats), "n_resgroups": n_resgroups, "n_resblocks": n_resblocks,
              "n_feats": n_feats, "reduction": reduction}
    ours = _finish(state, _rename(state, _SAN_RULES, _SAN_UNUSED), "head", "tail.1")
    _shape_check(ours, build("san", "paper", **kwargs).state_dict(), "SAN")
    return ours, kwargs
