"""Training: the one loop (``train``), its config, losses, lr schedules, EMA, checkpoints, and DDP.

    from srlearn.train import TrainConfig, train, load_model
    history = train(model, train_set, TrainConfig(steps=2000, ckpt_path="run.pt"), val_data=pairs)
    model = load_model("run.pt")          # rebuilt from its spec, EMA weights if any, eval mode
"""
from .checkpoint import (FORMAT_VERSION, CheckpointMismatch, check_identity, load_checkpoint, load_model,
                         run_identity, save_checkpoint)
from .config import TrainConfig
from .ema import EMA
from .losses import CharbonnierLoss, make_loss
from .loop import History, Step, SupervisedStep, TrainingDiverged, train, validate
from .schedules import lr_factor, make_scheduler

__all__ = ["TrainConfig", "History", "train", "validate", "make_loss", "CharbonnierLoss",
           "make_scheduler", "lr_factor", "EMA", "save_checkpoint", "load_checkpoint", "load_model",
           "FORMAT_VERSION", "CheckpointMismatch", "check_identity", "run_identity", "TrainingDiverged", "Step",
           "SupervisedStep"]
