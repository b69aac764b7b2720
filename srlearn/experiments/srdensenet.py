"""``srdensenet-variants``: SRDenseNet's H vs HL vs All, a plain stack, and a residual network of the
same size, at ×4 on the Y channel (papers.md §2, §6.2; notebook 03).

Claims checked (the paper's direction, papers.md §2.4 — its variant numbers are [X], not verified):
All > HL > H; any skip beats none (H > plain); dense beats residual at equal parameters (All > residual,
the paper's motivation; its tables compare with other published networks, not with a matched ResNet);
and the network beats bicubic.

Training follows the paper where it is known (papers.md §2.3, §6.2): Y channel, 25×25 LR patches
(×4: 100×100 HR), MSE loss, Adam, batch 32, dihedral augmentation; the lr decays by cosine instead of
the paper's one ×0.1 step (a short budget). The model is trained on **Y planes** (``YPatches``: the Y of
the uint8 LR patch and of the HR patch, as yjn870's ``prepare.py`` takes Y after resizing), so the loss is
the paper's MSE on Y; validation and the results table run the same model on RGB images through its
Y-channel pipeline (``srlearn.models.ycbcr.YChannelSR``) and score Y-PSNR by the protocol.

Budgets. Both modes train the ``mini`` networks (4 blocks × 4 layers, growth 8; All and the residual
control hold 51,009 parameters each): SRDenseNet registers no preset between ``mini`` and the 2-million
parameter ``paper`` one, and a mode could choose another through its budget's ``preset``. ``full``: 3 seeds ×
5 arms × 10,000 steps, batch 32, 25×25 LR patches, lr 1e-3 → cosine, 4 loader workers — estimated at
15–25 min on one GPU (the mini networks are launch- and loader-bound, about 5–8 ms a step), **not
measured**: no GPU was lent when this was written. ``quick``: 1 seed, 60 steps of batch 8 on 12×12 LR
patches, 128×128 validation crops — a smoke test of the code path that fits the notebook's ~90 s on
a 2-core CPU. Its verdicts say "1 seed: no noise estimate" and are not evidence; at that budget no
arm reaches bicubic yet.
"""
from __future__ import annotations

from torch.utils.data import Dataset

from ..models.ycbcr import rgb_to_luma
from .core import Arm, Budget, Comparison, Experiment, register_experiment, sr_train_data
from .published import SRDENSENET_ALL_X4, figures

__all__ = ["YPatches", "make_y_train_data", "ARMS", "SRDENSENET_VARIANTS"]


class YPatches(Dataset):
    """``(lr, hr)`` RGB items of ``dataset`` → their BT.601 Y planes, ``(1, h, w)`` and ``(1, s·h, s·w)``
    in [0, 1] (studio swing: 16/255 .. 235/255). Deterministic whenever ``dataset`` is."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        lr, hr, *extra = self.dataset[i]
        if extra:
            raise ValueError("YPatches takes (lr, hr) items; extra inputs have no Y-channel meaning here")
        return rgb_to_luma(lr), rgb_to_luma(hr)


def make_y_train_data(exp: Experiment, budget: Budget, seed: int) -> YPatches:
    """The experiment's training set as Y planes: random aligned patches of DIV2K in full mode when it is on
    this machine, else of the offline training images (:func:`srlearn.experiments.core.sr_train_data`)."""
    return YPatches(sr_train_data(exp, budget, seed))


ARMS = [
    Arm("plain", "srdensenet", "mini", {"connectivity": "plain"}, control=True),   # no skips at all
    Arm("h", "srdensenet", "mini", {"connectivity": "h"}),
    Arm("hl", "srdensenet", "mini", {"connectivity": "hl"}),
    Arm("all", "srdensenet", "mini", {"connectivity": "all"}),
    Arm("residual", "residual-sr", "mini", control=True),   # not the paper's: a matched-size ResNet
]


SRDENSENET_VARIANTS = register_experiment(Experiment(
    name="srdensenet-variants",
    description="SRDenseNet x4 on Y: plain vs H vs HL vs All (dense skips) vs a residual network of matched size.",
    scale=4,
    arms=ARMS,
    budgets={
        "quick": Budget(steps=60, batch_size=8, lr_patch=12, seeds=1, val_every=20, val_max_size=128,
                        train={"loss": "mse", "lr": 2e-3, "schedule": "cosine", "min_lr": 1e-5,
                               "log_every": 5}),
        "full": Budget(steps=10_000, batch_size=32, lr_patch=25, seeds=3, val_every=1000,
                       train={"loss": "mse", "lr": 1e-3, "schedule": "cosine", "min_lr": 1e-6, "num_workers": 4}),
    },
    comparisons=[
        Comparison("all", "hl", "All > HL: dense skips from every block beat low + high features only"),
        Comparison("hl", "h", "HL > H: adding the low-level features helps"),
        Comparison("h", "plain", "H > plain: skips (dense blocks) beat a plain stack of the same layers"),
        Comparison("all", "residual", "dense beats residual at (about) the same parameter count"),
        Comparison("all", "bicubic", "SRDenseNet_All beats bicubic"),
    ],
    notebook="notebooks/03_srdensenet_dense_vs_residual.ipynb",
    make_train_data=make_y_train_data,
    published=figures(4, {"all": SRDENSENET_ALL_X4}),
    field_data=True,
))
