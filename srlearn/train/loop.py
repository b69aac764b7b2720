"""The one training loop, used by the notebooks, ``srlearn replicate`` and the CLI.

    for step in range(start, steps):                      # or until the time budget is spent
        lr, hr = batch(seed, step)                        # deterministic in (seed, step)
        loss = loss_fn(model(lr), hr)                     # optionally under bf16 autocast
        loss.backward(); clip; adam.step(); scheduler.step(); ema.update(model)
        every val_every steps: Y-PSNR on the validation images (EMA weights when EMA is on)
        every ckpt_every steps: atomic checkpoint

Exact resume. Batch ``t`` is a pure function of ``(seed, t)``: the loop walks an endless sequence of
epochs, each a permutation of the training set drawn from ``(seed, epoch)``, and batch ``t`` takes
positions ``t*B ... t*B+B-1``. Before each sample is fetched, the global RNGs (``torch``, ``numpy``,
``random``) are seeded from ``(seed, t, position in the batch)``, so random crops and flips drawn from
them are reproducible too, whether the sample is loaded here or in a worker process. Together with
the model, optimiser, scheduler, EMA and RNG states in the checkpoint this makes ``N`` straight steps
and ``k`` steps + resume + ``N - k`` steps give bit-identical weights on the CPU (test_train.py).
A dataset that keeps its own random generator between calls breaks this; draw from the global RNGs.

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

import random
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
from . import distributed
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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**d)

    def _add_val(self, step: int, psnr: float) -> None:
        self.val_step.append(step)
        self.val_psnr.append(psnr)
        if self.best_psnr is None or psnr > self.best_psnr:
            self.best_psnr, self.best_step = psnr, step


def train(model: nn.Module, train_set: Dataset, config: TrainConfig | dict, val_data=None,
          resume=None, callbacks=(), identity: dict | None = None, protocol=None) -> History:
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

    Every sample is fetched with the global RNGs (torch, numpy, random) freshly seeded from
    ``(seed, step, position)``, so the global RNG state changes under you; resume is bit-exact on the
    CPU (on a GPU, non-deterministic kernels may make it differ in the last bits).
    When EMA is on, ``model`` holds the EMA weights on return (the weights that were validated, as
    ``load_model`` returns them); the raw weights, needed to resume, are in the checkpoint.
    Under ``torchrun`` the loop runs data-parallel (see ``distributed.py``); only rank 0 validates,
    shows progress and writes checkpoints, and the History of rank 0 is the complete one.
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig or a dict of its fields, got {type(config).__name__}")
    ctx = distributed.setup(_env.device(config.device))
    try:
        return _train(model, train_set, config, val_data, resume, tuple(callbacks), ctx, identity or {}, protocol)
    finally:
        distributed.teardown(ctx)


def _train(model, train_set, config, val_data, resume, callbacks, ctx, identity, protocol=None) -> History:
    t_call = time.perf_counter()
    device = ctx.device
    scale = _check_train_set(train_set, model)
    autocast_dtype = _autocast_dtype(config, device)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas,
                                 weight_decay=config.weight_decay)
    scheduler = make_scheduler(optimizer, config)
    loss_fn = make_loss(config.loss)
    history, start, ema_state = History(), 0, None
    expected = run_identity(config, getattr(model, "srlearn_spec", None), **identity)
    last_good = None                           # (path, step) of the last checkpoint known to be finite

    path = _resume_path(resume, config)
    if path is not None:
        state = load_checkpoint(path, map_location=device)
        check_identity(state, expected, path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = History.from_dict(state["history"])
        start, ema_state = int(state["step"]), state.get("ema")
        _set_rng_state(state["rng"])
        last_good = (str(path), start)
    ema = EMA(model, config.ema) if config.ema else None
    if ema is not None and ema_state is not None:
        ema.load_state_dict(ema_state)
    net = distributed.wrap(model, ctx)

    batches = iter(DataLoader(_SeededItems(train_set, config.seed),
                              batch_sampler=_Batches(len(train_set), config.batch_size, config.seed, start, ctx),
                              num_workers=config.num_workers, pin_memory=device.type == "cuda"))
    bar = tqdm(total=config.steps, initial=start, desc="train", unit="step", dynamic_ncols=True,
               disable=not (config.progress and ctx.is_main))
    step, loss_sum, loss_n, lr_used = start, torch.zeros((), device=device), 0, config.lr
    # the first non-finite step (-1: none), its loss and gradient norm, kept on the device
    bad_step = torch.full((), -1, dtype=torch.long, device=device)
    bad_loss = torch.zeros((), device=device)
    bad_grad = torch.zeros((), device=device)
    params = [p for p in model.parameters() if p.requires_grad]

    def check_finite():
        if int(bad_step.item()) < 0:
            return
        if last_good is not None:
            kept = f"the last good checkpoint is {last_good[0]!r} (step {last_good[1]}), left unchanged"
        elif config.ckpt_path:
            kept = f"no checkpoint was written by this run yet (ckpt_path={config.ckpt_path!r})"
        else:
            kept = "no checkpoint is written (set TrainConfig(ckpt_path=...) to keep one)"
        raise TrainingDiverged(
            f"training diverged at step {int(bad_step.item())}: loss {bad_loss.item():.6g}, gradient "
            f"norm {bad_grad.item():.6g} (not finite); {kept}. Look for a NaN/inf in the training data, "
            f"or resume with a lower lr, warm-up or grad_clip (a new config: write to another "
            f"ckpt_path or restart).")

    def checkpoint():
        nonlocal last_good
        check_finite()
        if config.ckpt_path and ctx.is_main:
            save_checkpoint(config.ckpt_path, model=model.state_dict(),
                            ema=ema.state_dict() if ema is not None else None,
                            optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                            step=step, history=history.to_dict(), config=config.to_dict(),
                            rng=_get_rng_state(), model_spec=getattr(model, "srlearn_spec", None),
                            identity=expected)
            last_good = (str(config.ckpt_path), step)

    def log():
        nonlocal loss_n
        check_finite()
        total = loss_sum.clone()
        if ctx.enabled:        # the global-batch loss, as a single process would record it
            torch.distributed.all_reduce(total)
            total /= ctx.world_size
        history.step.append(step)
        history.loss.append(total.item() / loss_n)
        history.lr.append(lr_used)
        loss_sum.zero_()
        loss_n = 0
        bar.set_postfix(_postfix(history), refresh=False)

    def validation():
        check_finite()
        if not (val_data and ctx.is_main):
            return
        eval_model = ema.module if ema is not None else model
        scores = validate(eval_model, val_data, scale=scale, device=device, protocol=protocol)
        history._add_val(step, float(np.mean(list(scores.values()))))
        bar.set_postfix(_postfix(history), refresh=False)
        for cb in callbacks:
            cb(step, history, eval_model)

    try:
        while True:
            if config.steps is not None and step >= config.steps:
                history.stopped_by = "steps"
                break
            if config.time_budget is not None and distributed.agree(history.train_time >= config.time_budget, ctx):
                history.stopped_by = "time_budget"
                break
            t0 = time.perf_counter()
            lr_img, hr_img, *extra = next(batches)   # extra: further model inputs, e.g. a reference
            lr_img = lr_img.to(device, non_blocking=True)
            hr_img = hr_img.to(device, non_blocking=True)
            extra = [e.to(device, non_blocking=True) for e in extra]
            net.train()
            with torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16,
                                enabled=autocast_dtype is not None):
                sr = net(lr_img, *extra)
            loss = loss_fn(sr.float(), hr_img)      # the loss itself in float32
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grads = [p.grad for p in params if p.grad is not None]
            if config.grad_clip is not None:
                grad_norm = nn.utils.clip_grad_norm_(params, config.grad_clip)
            else:
                grad_norm = _total_norm(grads, device)
            detached = loss.detach()
            newly = (bad_step < 0) & ~(torch.isfinite(detached) & torch.isfinite(grad_norm))
            bad_step.copy_(torch.where(newly, step + 1, bad_step))
            bad_loss.copy_(torch.where(newly, detached, bad_loss))
            bad_grad.copy_(torch.where(newly, grad_norm.to(bad_grad.dtype), bad_grad))
            lr_used = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update(model)
            step += 1
            loss_sum += detached
            loss_n += 1
            history.train_time += time.perf_counter() - t0
            history.last_step = step
            bar.update(1)
            if step % config.log_every == 0:
                log()
            if config.val_every and step % config.val_every == 0:
                validation()
            if config.ckpt_every and step % config.ckpt_every == 0:
                checkpoint()
        check_finite()
        if loss_n:
            log()
        if not history.val_step or history.val_step[-1] != step:
            validation()
        history.wall_time += time.perf_counter() - t_call
        checkpoint()
    finally:
        bar.close()
        del batches          # stops DataLoader workers, if any
    if ema is not None:      # hand back the weights that were validated
        model.load_state_dict(ema.state_dict())
    return history


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
# deterministic batches


def _mix(*keys: int) -> int:
    """A 64-bit seed from integer keys; different keys give independent streams (numpy SeedSequence)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0])


class _Batches:
    """Batch index lists for steps ``start, start+1, ...``: epoch ``e`` is a permutation of the training
    set drawn from ``(seed, e)``; batch ``t`` is positions ``t*B ... t*B+B-1`` of the concatenated epochs
    (so a batch may straddle two epochs). Each item is keyed ``(step, position, index)``; under
    ``torchrun`` each rank keeps its slice of the global batch."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int, ctx):
        self.n, self.batch_size, self.seed, self.start, self.ctx = n, batch_size, seed, start, ctx
        distributed.shard(list(range(batch_size)), ctx)   # fail early if B is not divisible by the world size
        self._perms: dict[int, torch.Tensor] = {}

    def indices(self, step: int) -> list[int]:
        out = []
        for pos in range(step * self.batch_size, (step + 1) * self.batch_size):
            epoch, i = divmod(pos, self.n)
            out.append(int(self._perm(epoch)[i]))
        return out

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.pop(min(self._perms))
            g = torch.Generator().manual_seed(_mix(self.seed, 0, epoch))
            self._perms[epoch] = torch.randperm(self.n, generator=g)
        return self._perms[epoch]

    def __iter__(self):
        step = self.start
        while True:
            keys = [(step, pos, idx) for pos, idx in enumerate(self.indices(step))]
            yield distributed.shard(keys, self.ctx)
            step += 1


class _SeededItems(Dataset):
    """``dataset[index]`` with the global RNGs seeded from ``(seed, step, position)`` first."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        step, pos, index = key
        s = _mix(self.seed, 1, step, pos)
        # the CPU generator, which datasets draw from: the same stream as torch.manual_seed(s), without
        # re-seeding every device's generator (0.17 ms -> 0.005 ms per item, measured on a 2-core CPU)
        torch.default_generator.manual_seed(s)
        np.random.seed(s % 2**32)
        random.seed(s)
        return self.dataset[index]


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


def _get_rng_state() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _postfix(history: History) -> dict:
    out = {}
    if history.loss:
        out["loss"] = f"{history.loss[-1]:.4f}"
    if history.val_psnr:
        out["psnr"] = f"{history.val_psnr[-1]:.2f}"
    return out
