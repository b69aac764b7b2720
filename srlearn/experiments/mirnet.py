"""MIRNet's fusion ablation at small scale (papers.md §3.6, §6.3): SKFF vs sum vs concatenation, and
three streams vs one — two experiments, one per task (notebook 04).

* ``mirnet-fusion``: colour Gaussian denoising, σ = 25 grey levels (MIRNet's own kind of task: same-size
  restoration), scored on RGB without a shaved border (the denoising convention); the baseline row is
  the noisy input itself. Arms: ``skff``, ``sum``, ``concat`` (fusion), ``height1`` (one stream, same
  width: "multi-scale + capacity") and ``height1-wide`` (one stream widened to the same parameter count:
  multi-scale alone).
* ``mirnet-fusion-sr``: bicubic ×2 super-resolution with the LR enlarged by MATLAB bicubic before the
  unchanged MIRNet (``upsampler="bicubic"``: faithful to MIRNet, which has no up-sampler), scored by the
  SR protocol (Y, shave 2) against the bicubic baseline. Arms: ``skff``, ``sum``, ``concat``.

Quick mode trains the ``tiny`` preset (n_feat 8 → streams of 8/16/32 channels, 1 RRG × 1 MRB, 83,888
parameters): the ``mini`` preset of papers.md §6.3 (2,650,655) took 2.4 s per step (32² patches, batch 8,
one thread) on a busy 2-core CPU, far beyond the notebook's minute. Full mode trains ``mini`` (the
budget's ``preset``), with ``height1-wide`` widened to 197 channels (2,648,768 vs 2,650,655 parameters).
The arms of one experiment differ only in the switch they name: same seeds, data, steps and
hyper-parameters. The fusion arms cannot have identical parameter counts — the parameter economy is
SKFF's claim — so the table shows them (sum 82,989; SKFF 83,888; concat 87,021).

Training follows the official recipe where it can (papers.md §3.4): Adam β = (0.9, 0.999), weight decay
1e-8, Charbonnier loss ε = 1e-3, cosine decay to 1e-6 after a linear warm-up, 8 dihedral augmentations.
Not followed: MixUp (off), clamping the prediction before the loss (off), and the learning rate in quick
mode: 5e-3 instead of 2e-4, for a 40-step budget, picked on the ``skff`` denoising arm (2e-3 did not
get past the noisy input in 40 steps; with 1e-2 ``height1-wide`` became unstable and ended below it).
Full mode keeps 2e-4 (papers.md §6.3), which has not been tried on a GPU yet.

The paper's direction (SKFF ≳ concat ≳ sum; multi-scale > single scale) is the claim each comparison
checks; the paper's ablation numbers are not verified (papers.md §3.6 [X]), so none is quoted.
"""
from __future__ import annotations

from ..data import list_images
from ..data.noise import NoisyPatchDataset, noisy_validation_pairs
from ..models.bicubic import NoisyInput  # noqa: F401  (the baseline row; importable from here too)
from .core import Arm, Budget, Comparison, Experiment, register_experiment, sr_train_data
from .published import figures

SIGMA = 25.0
PRESET = "tiny"
#: One stream widened so its parameter count matches the 3-stream tiny model: 83,864 vs 83,888
#: (tests/test_mirnet.py checks that 46 is the closest width).
WIDE_N_FEAT = 46

_COMMON_TRAIN = {"loss": "charbonnier", "schedule": "cosine", "betas": (0.9, 0.999), "weight_decay": 1e-8,
                 "min_lr": 1e-6}


def _denoise_train(exp: Experiment, budget: Budget, seed: int):
    return NoisyPatchDataset(list_images(exp.train_images), patch=budget.lr_patch,
                             length=budget.steps * budget.batch_size, sigma=SIGMA, seed=seed)


def _denoise_val(exp: Experiment, budget: Budget):
    return noisy_validation_pairs(SIGMA, max_size=budget.val_max_size)


def _sr_train(exp: Experiment, budget: Budget, seed: int):
    # DIV2K patches in full mode when DIV2K is here, else the offline images (one dataset per seed, cached)
    return sr_train_data(exp, budget, seed, list_images("train"))


def _fusion_arms() -> list[Arm]:
    return [Arm(kind, "mirnet", PRESET, {"fusion": kind}, control=kind == "sum") for kind in ("skff", "sum", "concat")]


_FUSION_CLAIMS = [Comparison("skff", "sum", "SKFF fusion beats plain summation (paper: SKFF ≳ concat ≳ sum)"),
                  Comparison("skff", "concat", "SKFF beats concatenation + 1×1 conv with ~6× fewer fusion weights"),
                  Comparison("concat", "sum", "learned fusion (concat) beats plain summation")]

MIRNET_FUSION = register_experiment(Experiment(
    name="mirnet-fusion",
    description=(f"MIRNet (tiny preset) for colour Gaussian denoising, σ = {SIGMA:g}: SKFF vs sum vs concat fusion, "
                 "and three streams vs one (same width, and widened to the same parameter count)."),
    scale=1,
    arms=_fusion_arms() + [Arm("height1", "mirnet", PRESET, {"height": 1}, control=True),
                           Arm("height1-wide", "mirnet", PRESET, {"height": 1, "n_feat": WIDE_N_FEAT}, control=True)],
    budgets={
        "quick": Budget(steps=40, batch_size=8, lr_patch=32, seeds=1, val_every=20, val_max_size=128,
                        train={**_COMMON_TRAIN, "lr": 5e-3, "warmup_steps": 4}),
        "full": Budget(steps=8000, batch_size=16, lr_patch=64, seeds=3, val_every=1000, val_max_size=256,
                       train={**_COMMON_TRAIN, "lr": 2e-4, "warmup_steps": 250},
                       preset="mini", overrides={"height1-wide": {"n_feat": 197}}),
    },
    comparisons=[Comparison("skff", "noisy input", "a trained MIRNet removes noise (beats the noisy input)"),
                 *_FUSION_CLAIMS,
                 Comparison("skff", "height1-wide",
                            "multi-scale streams beat one full-resolution stream of equal parameter count"),
                 Comparison("skff", "height1",
                            "multi-scale streams (+ their capacity) beat one stream of the same width")],
    notebook="notebooks/04_mirnet_skff_dau.ipynb",
    make_train_data=_denoise_train,
    make_val_data=_denoise_val,
    baseline_model=lambda exp: NoisyInput(),
    baseline_name="noisy input",
    crop=0,
    y_only=False,
    protocol=f"RGB/shave=0/uint8/AWGN-sigma{SIGMA:g}-clipped",
    # a denoising task (field_data False): its own noisy patches and held-out images in both modes
    train_data_desc=f"noisy patches (σ = {SIGMA:g}) of the offline images",
    test_data_desc=f"the offline held-out images with noise σ = {SIGMA:g}",
))

MIRNET_FUSION_SR = register_experiment(Experiment(
    name="mirnet-fusion-sr",
    description=("MIRNet (tiny preset) for bicubic ×2 super-resolution on a bicubic-enlarged input (MIRNet has no "
                 "up-sampler): SKFF vs sum vs concat fusion."),
    scale=2,
    arms=[Arm(a.name, a.model, a.preset, {**a.overrides, "upsampler": "bicubic"}, control=a.control)
          for a in _fusion_arms()],
    budgets={
        "quick": Budget(steps=40, batch_size=8, lr_patch=16, seeds=1, val_every=20, val_max_size=128,
                        train={**_COMMON_TRAIN, "lr": 5e-3, "warmup_steps": 4}),
        "full": Budget(steps=8000, batch_size=16, lr_patch=32, seeds=3, val_every=1000, val_max_size=256,
                       train={**_COMMON_TRAIN, "lr": 2e-4, "warmup_steps": 250}, preset="mini"),
    },
    comparisons=[Comparison("skff", "bicubic", "a trained MIRNet beats bicubic interpolation"), *_FUSION_CLAIMS],
    notebook="notebooks/04_mirnet_skff_dau.ipynb",
    make_train_data=_sr_train,
    published=figures(2),   # bicubic only: MIRNet publishes no bicubic-SR figures on these sets
    field_data=True,
))
