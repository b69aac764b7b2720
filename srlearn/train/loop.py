"""The one training loop, used by the notebooks, ``srlearn replicate``, the campaign and GAN fine-tuning.

    run = _Run(...)                                        # set-up: model, optimiser, scheduler, loss, identity
    run.resume(checkpoint)                                 # optional: every state, exactly
    run.start()                                            # EMA, deterministic batches, progress bar
    while not run.done():                                  # steps, or the time budget
        run.train_step()                                   # batch(seed, t) -> Step: forward, backward, adam
                                                           #   -> scheduler, EMA
        every log_every:  run.log()                        # mean loss since the last log
        every val_every:  run.validate()                   # PSNR by the run's protocol (EMA weights if on)
        every ckpt_every: run.checkpoint()                 # atomic, with the run's identity
    run.finish()                                           # last log, validation, checkpoint

Each part is a method of :class:`_Run`, a screen or less. What one step does is a :class:`Step`: the
default :class:`SupervisedStep` is ``loss(model(lr), hr)``; a GAN step also trains a critic and keeps its
state in the same checkpoints. Which samples a step sees, and the RNG state around them, is
``srlearn.train.determinism``.

Exact resume. Batch ``t`` is a pure function of ``(seed, t)``; before each sample is fetched the global
RNGs are seeded from ``(seed, t, position in the batch)``; the checkpoint holds the model, optimiser,
scheduler, EMA, step and RNG states. So ``N`` straight steps and ``k`` steps + resume + ``N - k`` steps give
bit-identical weights on the CPU (test_train.py).

Validation follows the field's protocol [sr-protocol.md §2, §8 items 8, 10]: full images, one at a
time, eval mode, no grad, float32 (no autocast), output clamped to [0, 1] and rounded half-up to uint8,
then PSNR by the run's ``srlearn.metrics.Protocol`` (by default the SR protocol: Y channel, ``scale``
pixels shaved; an experiment passes its own, the one its results table uses). A model whose output is
not finite is an error, never a score.

Identity. Each checkpoint records what made it (``checkpoint.run_identity``: the model spec, the
resolved config, and the caller's ``identity=`` entries such as the experiment and arm). A resume
compares it with the run asked for and refuses any difference (``CheckpointMismatch``): the optimiser
and scheduler states restored from a checkpoint are only right for the configuration that wrote them.

Divergence. A non-finite loss or gradient stops training with ``TrainingDiverged``, naming the step,
the loss and the last good checkpoint. The check runs on the device and is read at every log,
validation and checkpoint (no extra synchronisation per step), so a checkpoint of NaN weights is never
written and a NaN never reaches the history.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .. import _env
from . import determinism, distributed
from .checkpoint import check_identity, load_checkpoint, run_identity, save_checkpoint
from .config import TrainConfig
from .ema import EMA
from .losses import make_loss
from .schedules import make_scheduler


class TrainingDiverged(RuntimeError):
    """The loss or the gradient became NaN or infinite; the last good checkpoint is left as it was."""


@dataclass
class History:
    """What happened during training, JSON-able (``to_dict`` / ``from_dict``)."""
    step: list[int] = field(default_factory=list)        # steps at which a loss was recorded
    loss: list[float] = field(default_factory=list)      # mean training loss over the last log_every steps
    lr: list[float] = field(default_factory=list)        # lr used by the recorded step
    val_step: list[int] = field(default_factory=list)
    val_psnr: list[float] = field(default_factory=list)  # mean Y-PSNR (dB) over the validation images
    last_step: int = 0                                   # optimiser steps done
    train_time: float = 0.0                              # seconds in training steps (what time_budget counts)
    wall_time: float = 0.0                               # seconds inside train(), validation included
    best_psnr: float | None = None
    best_step: int | None = None
    stopped_by: str | None = None                        # "steps" or "time_budget"
    extra: dict = field(default_factory=dict)            # further logged scalars of the step, e.g. a critic's loss

    @classmethod
    def _fields(cls) -> set:
        return set(cls.__dataclass_fields__)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**{k: v for k, v in d.items() if k in cls._fields()})

    def _add_val(self, step: int, psnr: float) -> None:
        self.val_step.append(step)
        self.val_psnr.append(psnr)
        if self.best_psnr is None or psnr > self.best_psnr:
            self.best_psnr, self.best_step = psnr, step


def train(model: nn.Module, train_set: Dataset, config: TrainConfig | dict, val_data=None,
          resume=None, callbacks=(), identity: dict | None = None, protocol=None, step=None) -> History:
    """Train ``model`` in place on ``train_set`` and return its ``History``.

    model      takes RGB float NCHW in [0, 1], returns NCHW at ``model.scale`` x the size.
    train_set  a map-style Dataset of ``(lr, hr)`` float32 CHW tensors in [0, 1], hr = lr x scale;
               items ``(lr, hr, *extra)`` pass the extra tensors to the model: ``model(lr, *extra)``.
    config     a ``TrainConfig`` (or a dict of its fields).
    val_data   a list of ``(name, lr_uint8 HxWx3, hr_uint8 HxWx3)``; validated every ``val_every`` steps
               and at the end (on the EMA weights when EMA is on).
    resume     None/False: start from scratch; a checkpoint path: continue it exactly; True: continue
               ``config.ckpt_path`` if that file exists, else start from scratch.
    callbacks  functions ``cb(step, history, model)`` called after each validation, with the model
               that was validated (the EMA copy when EMA is on); e.g. live plots in a notebook.
    identity   extra entries of the run's identity stored in the checkpoint and compared on resume,
               e.g. ``{"experiment": ..., "arm": ..., "mode": ...}`` (the model spec and the config are
               always part of it). A resume whose identity differs raises ``CheckpointMismatch``.
    protocol   how validation scores (a ``srlearn.metrics.Protocol``: crop, Y or RGB); default: the SR
               protocol at the model's scale. Experiments pass their own, so that the learning curve
               and the results table of one run are scored the same way.
    step       what one optimisation step does (a :class:`Step`); default :class:`SupervisedStep`, the
               loss between ``model(lr)`` and ``hr``. GAN fine-tuning passes a step that also trains a
               critic (``srlearn.experiments.ssen.GANStep``) and runs through this same loop: the same
               batches, seeds, checkpoints, resume and divergence checks.

    Every sample is fetched with the global RNGs (torch, numpy, random) freshly seeded from
    ``(seed, step, position)`` (``srlearn.train.determinism``), so the global RNG state changes under
    you; resume is bit-exact on the CPU (on a GPU, non-deterministic kernels may make it differ in the
    last bits). When EMA is on, ``model`` holds the EMA weights on return (the weights that were
    validated, as ``load_model`` returns them); the raw weights, needed to resume, are in the checkpoint.
    Under ``torchrun`` the loop runs data-parallel (see ``distributed.py``); only rank 0 validates,
    shows progress and writes checkpoints, and the History of rank 0 is the complete one.
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig or a dict of its fields, got {type(config).__name__}")
    ctx = distributed.setup(_env.device(config.device))
    try:
        run = _Run(model, train_set, config, val_data, tuple(callbacks), ctx, identity or {}, protocol,
                   step if step is not None else SupervisedStep())
        run.resume(_resume_path(resume, config))
        run.start()
        try:
            while not run.done():
                run.train_step()
                n = run.step
                if n % config.log_every == 0:
                    run.log()
                if config.val_every and n % config.val_every == 0:
                    run.validate()
                if config.ckpt_every and n % config.ckpt_every == 0:
                    run.checkpoint()
            run.finish()
        finally:
            run.close()
        return run.history
    finally:
        distributed.teardown(ctx)


class Step:
    """What one optimisation step of :func:`train` does, between fetching a batch and the scheduler.

    ``__call__(run, lr, hr, extra)`` runs the forward and backward passes, steps ``run.optimizer`` and
    returns ``(loss, grad_norm, logs)``: the detached training loss, the generator's gradient norm (both
    checked for NaN/inf by the loop) and a dict of further detached scalars to log (e.g. a critic's loss).
    ``setup(run)`` is called once the model and its optimiser exist; ``state_dict`` / ``load_state_dict``
    carry the step's own state (a critic and its optimiser) through checkpoints; ``identity()`` is part of
    the run's identity, so a resume with other step settings is refused.
    """

    def setup(self, run: "_Run") -> None:
        pass

    def __call__(self, run: "_Run", lr: torch.Tensor, hr: torch.Tensor, extra: list):
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def identity(self) -> dict:
        return {}


class SupervisedStep(Step):
    """The default step: ``loss(model(lr, *extra), hr)`` (under bf16 autocast if asked; the loss in
    float32), backward, optional gradient clipping, one optimiser step."""

    def __call__(self, run, lr, hr, extra):
        with torch.autocast(run.device.type, dtype=run.autocast_dtype or torch.bfloat16,
                            enabled=run.autocast_dtype is not None):
            sr = run.net(lr, *extra)
        loss = run.loss_fn(sr.float(), hr)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = run.clip_and_norm()
        run.optimizer.step()
        return loss.detach(), grad_norm, {}


class _Run:
    """One call of :func:`train`: set-up, then ``train_step`` / ``log`` / ``validate`` / ``checkpoint``."""

    # ------------------------------------------------------------------------------------------ set-up
    def __init__(self, model, train_set, config, val_data, callbacks, ctx, identity, protocol, step_fn):
        self.t_call = time.perf_counter()
        self.model, self.train_set, self.config, self.val_data = model, train_set, config, val_data
        self.callbacks, self.ctx, self.protocol, self.step_fn = callbacks, ctx, protocol, step_fn
        self.device = ctx.device
        self.scale = _check_train_set(train_set, model)
        self.autocast_dtype = _autocast_dtype(config, self.device)
        model.to(self.device)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas,
                                          weight_decay=config.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, config)
        self.loss_fn = make_loss(config.loss)
        step_id = step_fn.identity()
        self.expected = run_identity(config, getattr(model, "srlearn_spec", None), **identity,
                                     **({"step": step_id} if step_id else {}))
        self.history, self.step, self.ema, self.net = History(), 0, None, model
        self.last_good = None                   # (path, step) of the last checkpoint known to be finite
        self._ema_state = None
        step_fn.setup(self)

    def resume(self, path) -> None:
        """Continue the checkpoint at ``path`` exactly (None: start from scratch)."""
        if path is None:
            return
        state = load_checkpoint(path, map_location=self.device)
        check_identity(state, self.expected, path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("step_state"):
            self.step_fn.load_state_dict(state["step_state"])
        self.history = History.from_dict(state["history"])
        self.step, self._ema_state = int(state["step"]), state.get("ema")
        determinism.set_rng_state(state["rng"])
        self.last_good = (str(path), self.step)

    def start(self) -> None:
        """EMA, the data-parallel wrapper, the deterministic batches, the progress bar, the finite watch."""
        config, ctx, device = self.config, self.ctx, self.device
        self.ema = EMA(self.model, config.ema) if config.ema else None
        if self.ema is not None and self._ema_state is not None:
            self.ema.load_state_dict(self._ema_state)
        self.net = distributed.wrap(self.model, ctx)
        self.batches = iter(DataLoader(
            determinism.SeededItems(self.train_set, config.seed),
            batch_sampler=determinism.Batches(len(self.train_set), config.batch_size, config.seed, self.step, ctx),
            num_workers=config.num_workers, pin_memory=device.type == "cuda"))
        self.bar = tqdm(total=config.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True,
                        disable=not (config.progress and ctx.is_main))
        self.loss_sum, self.loss_n, self.lr_used = torch.zeros((), device=device), 0, config.lr
        self.log_sums: dict[str, torch.Tensor] = {}
        # the first non-finite step (-1: none), its loss and gradient norm, kept on the device
        self.bad_step = torch.full((), -1, dtype=torch.long, device=device)
        self.bad_loss = torch.zeros((), device=device)
        self.bad_grad = torch.zeros((), device=device)

    # -------------------------------------------------------------------------------------------- step
    def done(self) -> bool:
        config, history = self.config, self.history
        if config.steps is not None and self.step >= config.steps:
            history.stopped_by = "steps"
            return True
        if config.time_budget is not None and distributed.agree(history.train_time >= config.time_budget, self.ctx):
            history.stopped_by = "time_budget"
            return True
        return False

    def train_step(self) -> None:
        """One batch, one optimisation step (:class:`Step`), the scheduler, the EMA."""
        t0 = time.perf_counter()
        lr_img, hr_img, *extra = next(self.batches)   # extra: further model inputs, e.g. a reference
        lr_img = lr_img.to(self.device, non_blocking=True)
        hr_img = hr_img.to(self.device, non_blocking=True)
        extra = [e.to(self.device, non_blocking=True) for e in extra]
        self.net.train()
        self.lr_used = self.optimizer.param_groups[0]["lr"]
        loss, grad_norm, logs = self.step_fn(self, lr_img, hr_img, extra)
        self._watch(loss, grad_norm)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        self.loss_sum += loss
        for k, v in logs.items():
            self.log_sums[k] = self.log_sums.get(k, 0) + v
        self.loss_n += 1
        self.history.train_time += time.perf_counter() - t0
        self.history.last_step = self.step
        self.bar.update(1)

    def clip_and_norm(self) -> torch.Tensor:
        """Clip the gradients to ``config.grad_clip`` if set; the global gradient norm, on the device."""
        if self.config.grad_clip is not None:
            return nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        return _total_norm([p.grad for p in self.params if p.grad is not None], self.device)

    def _watch(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Remember the first step whose loss or gradient is not finite (no synchronisation)."""
        newly = (self.bad_step < 0) & ~(torch.isfinite(loss) & torch.isfinite(grad_norm))
        self.bad_step.copy_(torch.where(newly, self.step + 1, self.bad_step))
        self.bad_loss.copy_(torch.where(newly, loss, self.bad_loss))
        self.bad_grad.copy_(torch.where(newly, grad_norm.to(self.bad_grad.dtype), self.bad_grad))

    def check_finite(self) -> None:
        if int(self.bad_step.item()) < 0:
            return
        config = self.config
        if self.last_good is not None:
            kept = f"the last good checkpoint is {self.last_good[0]!r} (step {self.last_good[1]}), left unchanged"
        elif config.ckpt_path:
            kept = f"no checkpoint was written by this run yet (ckpt_path={config.ckpt_path!r})"
        else:
            kept = "no checkpoint is written (set TrainConfig(ckpt_path=...) to keep one)"
        raise TrainingDiverged(
            f"training diverged at step {int(self.bad_step.item())}: loss {self.bad_loss.item():.6g}, gradient "
            f"norm {self.bad_grad.item():.6g} (not finite); {kept}. Look for a NaN/inf in the training data, "
            f"or resume with a lower lr, warm-up or grad_clip (a new config: write to another "
            f"ckpt_path or restart).")

    # ---------------------------------------------------------------------- log, validate, checkpoint
    def log(self) -> None:
        self.check_finite()
        history, n = self.history, self.loss_n
        total = self.loss_sum.clone()
        if self.ctx.enabled:        # the global-batch loss, as a single process would record it
            torch.distributed.all_reduce(total)
            total /= self.ctx.world_size
        history.step.append(self.step)
        history.loss.append(total.item() / n)
        history.lr.append(self.lr_used)
        for k, v in self.log_sums.items():
            history.extra.setdefault(k, []).append(float(v) / n)
        self.loss_sum.zero_()
        self.log_sums, self.loss_n = {}, 0
        self.bar.set_postfix(_postfix(history), refresh=False)

    def validate(self) -> None:
        self.check_finite()
        if not (self.val_data and self.ctx.is_main):
            return
        eval_model = self.ema.module if self.ema is not None else self.model
        scores = validate(eval_model, self.val_data, scale=self.scale, device=self.device, protocol=self.protocol)
        self.history._add_val(self.step, float(np.mean(list(scores.values()))))
        self.bar.set_postfix(_postfix(self.history), refresh=False)
        for cb in self.callbacks:
            cb(self.step, self.history, eval_model)

    def checkpoint(self) -> None:
        self.check_finite()
        config = self.config
        if config.ckpt_path and self.ctx.is_main:
            save_checkpoint(config.ckpt_path, model=self.model.state_dict(),
                            ema=self.ema.state_dict() if self.ema is not None else None,
                            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                            step=self.step, history=self.history.to_dict(), config=config.to_dict(),
                            rng=determinism.get_rng_state(), model_spec=getattr(self.model, "srlearn_spec", None),
                            identity=self.expected, step_state=self.step_fn.state_dict() or None)
            self.last_good = (str(config.ckpt_path), self.step)

    def finish(self) -> None:
        """The last log, validation and checkpoint; the EMA weights handed back to the model."""
        self.check_finite()
        if self.loss_n:
            self.log()
        if not self.history.val_step or self.history.val_step[-1] != self.step:
            self.validate()
        self.history.wall_time += time.perf_counter() - self.t_call
        self.checkpoint()
        if self.ema is not None:      # hand back the weights that were validated
            self.model.load_state_dict(self.ema.state_dict())

    def close(self) -> None:
        if hasattr(self, "bar"):
            self.bar.close()
        self.batches = None           # stops DataLoader workers, if any


@torch.no_grad()
def validate(model: nn.Module, val_data, scale: int | None = None, device=None, protocol=None) -> dict[str, float]:
    """PSNR (dB) of ``model`` on each ``(name, lr_uint8, hr_uint8)`` pair, by ``protocol`` (a
    ``srlearn.metrics.Protocol``; default: the field's SR protocol, Y channel with ``scale`` pixels shaved).

    Items may carry further uint8 HxWx3 model inputs after the HR image, ``(name, lr, hr, ref, ...)``:
    they are passed to the model as ``model(lr, ref, ...)`` (reference-based SR).

    Full images one at a time, eval mode, float32, output rounded half-up to uint8, ``scale`` pixels
    shaved (``srlearn.metrics.psnr``). ``scale`` defaults to ``model.scale``; ``device`` to the
    device of the model's parameters. Returns ``{name: psnr}`` in the order given.
    """
    from .. import metrics   # lazy: metrics is a lower floor, but keep `import srlearn.train` cheap

    if protocol is not None:
        if scale is not None and int(scale) != protocol.scale:
            raise ValueError(f"scale={scale} disagrees with the protocol's scale {protocol.scale}")
        scale = protocol.scale
    scale = int(scale if scale is not None else _model_scale(model))
    if protocol is None:
        protocol = metrics.Protocol(scale=scale)
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    scores: dict[str, float] = {}
    try:
        for item in val_data:
            name, lr, hr, *extra = item
            lr, hr = np.asarray(lr), np.asarray(hr)
            if lr.dtype != np.uint8 or hr.dtype != np.uint8 or lr.ndim != 3 or hr.ndim != 3:
                raise ValueError(f"validation pair {name!r}: expected uint8 HxWx3 arrays, got lr "
                                 f"{lr.dtype} {lr.shape} and hr {hr.dtype} {hr.shape}")
            if hr.shape[:2] != (lr.shape[0] * scale, lr.shape[1] * scale):
                raise ValueError(f"validation pair {name!r}: hr {hr.shape[:2]} is not lr {lr.shape[:2]} "
                                 f"x {scale}; mod-crop the HR image to a multiple of {scale} before "
                                 f"making the LR (sr-protocol.md §8 item 4)")
            if name in scores:
                raise ValueError(f"validation image name {name!r} appears twice; names must be unique")
            extra = [_to_tensor(np.asarray(e)).unsqueeze(0).to(device) for e in extra]
            sr = model(_to_tensor(lr).unsqueeze(0).to(device), *extra).float()
            if not bool(torch.isfinite(sr).all()):
                raise ValueError(f"validation image {name!r}: the model's output holds NaN or inf values "
                                 f"(diverged or corrupt weights), so it has no PSNR; nothing was scored")
            scores[name] = float(protocol.psnr(_to_uint8(sr[0]), hr))
    finally:
        model.train(was_training)
    return scores



# ---------------------------------------------------------------------------------------------------
# helpers


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> float32 CHW in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255)


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    """float CHW in [0, 1] -> uint8 HxWx3: clamp, x255, round half up [sr-protocol.md §8 item 10]."""
    return torch.floor(t.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _model_scale(model: nn.Module) -> int:
    scale = getattr(model, "scale", None)
    if scale is None:
        raise ValueError("the model has no `scale` attribute: set model.scale (the up-sampling factor) "
                         "or pass scale= explicitly")
    return int(scale)


def _check_train_set(train_set, model) -> int:
    """Check one training item; return the scale (``model.scale``, else the item's hr/lr ratio)."""
    try:
        n = len(train_set)
    except TypeError:
        raise TypeError(f"train_set must be a map-style Dataset with __len__ and __getitem__, got "
                        f"{type(train_set).__name__}") from None
    if n == 0:
        raise ValueError("train_set is empty: give it at least one (lr, hr) pair")
    item = train_set[0]
    if not (isinstance(item, (tuple, list)) and len(item) >= 2
            and all(isinstance(t, torch.Tensor) and t.ndim == 3 and t.is_floating_point() for t in item[:2])):
        raise TypeError("train_set items must be (lr, hr) float CHW tensors in [0, 1]; got "
                        f"{type(item).__name__} {[getattr(t, 'shape', type(t).__name__) for t in item][:2] if isinstance(item, (tuple, list)) else ''}")
    lr, hr = item[:2]
    h, w = lr.shape[-2:]
    ratio = hr.shape[-2] / h
    scale = getattr(model, "scale", None)
    scale = int(scale) if scale is not None else int(round(ratio))
    if hr.shape[-2:] != (h * scale, w * scale):
        raise ValueError(f"training pairs must have hr = lr x scale; got lr {tuple(lr.shape)} and hr "
                         f"{tuple(hr.shape)} for scale {scale} (model.scale = {getattr(model, 'scale', None)}): "
                         f"build the model and the data with the same scale")
    return scale


def _autocast_dtype(config: TrainConfig, device: torch.device):
    """bf16 autocast when asked for and meaningful; None for float32."""
    if config.amp is False:
        return None
    if config.amp is True and device.type != "cuda":
        warnings.warn(f"amp=True is ignored on {device.type}: bf16 autocast is used on CUDA only. "
                      "Pass amp='bf16' to force CPU bf16 autocast (slow on most CPUs).", stacklevel=3)
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise RuntimeError("this GPU does not support bfloat16; train with amp=False")
    if device.type not in ("cuda", "cpu"):
        warnings.warn(f"bf16 autocast is not used on {device.type}; training in float32", stacklevel=3)
        return None
    return torch.bfloat16


def _resume_path(resume, config: TrainConfig) -> Path | None:
    if resume is None or resume is False:
        return None
    if resume is True:
        if not config.ckpt_path:
            raise ValueError("resume=True continues config.ckpt_path, but ckpt_path is None: set "
                             "TrainConfig(ckpt_path=...) or pass the checkpoint's path as resume=")
        p = Path(config.ckpt_path)
        return p if p.exists() else None
    return Path(resume)


def _total_norm(grads: list, device) -> torch.Tensor:
    """The global L2 norm of the gradients (as ``clip_grad_norm_`` computes it), on the device."""
    if not grads:
        return torch.zeros((), device=device)
    norms = torch._foreach_norm(grads) if hasattr(torch, "_foreach_norm") else [g.norm() for g in grads]
    return torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))


def _postfix(history: History) -> dict:
    out = {}
    if history.loss:
        out["loss"] = f"{history.loss[-1]:.4f}"
    if history.val_psnr:
        out["psnr"] = f"{history.val_psnr[-1]:.2f}"
    return out
