"""``sr-basics``: bicubic vs a small EDSR at ×2 — the foundation's replication (notebook 00).

Claim: even a tiny residual network trained for a minute on a CPU beats MATLAB bicubic up-sampling on
a held-out image (Y-PSNR, shave = scale).
"""
from .core import Arm, Budget, Comparison, Experiment, register_experiment
from .published import figures

SR_BASICS = register_experiment(Experiment(
    name="sr-basics",
    description="Bicubic vs EDSR-mini at ×2 (quick mode: the offline images; full mode: DIV2K, then Set5, Set14, "
                "B100 and Urban100, when they are on this machine).",
    scale=2,
    arms=[Arm("edsr-mini", "edsr", "mini")],
    budgets={
        "quick": Budget(steps=200, batch_size=16, lr_patch=32, seeds=1, val_every=100, val_max_size=256,
                        train={"lr": 2e-3, "schedule": "cosine"}),
        "full": Budget(steps=20000, batch_size=16, lr_patch=48, seeds=3, val_every=2000,
                       train={"lr": 2e-4, "schedule": "cosine"}),
    },
    comparisons=[Comparison("edsr-mini", "bicubic", "a learned network beats bicubic interpolation")],
    notebook="notebooks/00_super_resolution_basics.ipynb",
    published=figures(2),   # bicubic only: EDSR-mini is no paper's model
    field_data=True,
))
