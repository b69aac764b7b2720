"""Replications: an experiment is arms × seeds × budget, run the same way by the CLI and the notebooks.

``run(name, mode="quick" | "full", seeds=None, out=DIR)`` trains every arm for every seed with the one
training loop (:func:`srlearn.train.train`), evaluates each on the held-out images with the field's
protocol (uint8 MATLAB LR, Y-channel PSNR/SSIM, shave = scale), adds the bicubic baseline, and writes

* ``DIR/results.json``: experiment, mode, device, torch version, commit, wall time, protocol, the
  baseline, and per arm and seed the metrics, parameter count and learning curve;
* ``DIR/report.md`` with the results table, the verdicts and the figures (``DIR/*.png``);
* ``DIR/checkpoints/ARM-seedK.pt`` (atomic; a run that finds a finished checkpoint reuses it, and an
  unfinished one is resumed exactly).

A checkpoint records the run that made it (experiment, arm, seed, mode, model spec, resolved training
config); before one is reused or resumed it is compared with the run asked for, and any difference is a
``CheckpointMismatch`` naming both values: write to another ``out`` or pass ``restart=True`` (CLI
``--restart``) to train again. All checkpoints are checked before anything trains, so a mismatch costs
seconds, not hours. A ``DIR/results.json`` of another experiment is never overwritten without ``restart``.
"""
from __future__ import annotations

import functools
import json
import math
import numbers
import os
import platform
import subprocess
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import _env, _files
from ..data import PairedPatchDataset, list_images, to_tensor, to_uint8, validation_pairs
from ..data import field as _field
from ..metrics import Protocol
from ..models import build
from ..nn import count_parameters
from ..registry import Registry
from ..train import TrainConfig, check_identity, load_checkpoint, run_identity, train
from ..train.checkpoint import CheckpointMismatch

RESULTS_VERSION = 1
#: Default minimum detectable difference of an experiment, in dB of PSNR (``Experiment.min_detectable_db``).
MIN_DETECTABLE_DB = 0.05
#: The verdict when a comparison has one run per arm: there is no seed-noise estimate to test against.
ONE_SEED = "1 seed: no noise estimate, no verdict"
NO_DIFFERENCE = "no measurable difference"


@dataclass
class Arm:
    """One configuration to train: a registered model, a preset and keyword overrides."""
    name: str
    model: str
    preset: str = "mini"
    overrides: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)  # TrainConfig overrides for this arm only
    control: bool = False   # a deliberate control (e.g. a plain stack, a known-bad schedule), not a proposal


@dataclass
class Budget:
    """How much training one arm gets in one mode."""
    steps: int
    batch_size: int = 16
    lr_patch: int = 48
    seeds: int = 1
    val_every: int = 0          # 0: validate only at the end
    val_max_size: int | None = None   # centre-crop validation HR images to this size (CPU speed)
    train: dict = field(default_factory=dict)  # TrainConfig fields shared by all arms in this mode
    preset: str | None = None   # build every arm from this preset in this mode (None: the arm's own)
    overrides: dict = field(default_factory=dict)  # arm name -> model overrides in this mode only
    arm_train: dict = field(default_factory=dict)  # arm name -> TrainConfig fields in this mode only
    max_train_images: int | None = None   # full mode on DIV2K: use only the first N training images (None: all)


@dataclass
class Comparison:
    """A claim of the paper: ``better`` should beat ``worse`` (higher PSNR)."""
    better: str
    worse: str
    claim: str = ""


@dataclass
class Experiment:
    """A replication. The defaults are single-image SR with the package's offline images; a paper whose
    task differs (denoising, reference-based SR) supplies its own data and evaluation through the hooks:

    * ``make_train_data(exp, budget, seed)`` -> a Dataset of ``(lr, hr, *extra)`` items (see ``srlearn.train``);
    * ``make_val_data(exp, budget)`` -> a list of ``(name, lr_uint8, hr_uint8, *extra_uint8)``;
    * ``baseline_model(exp)`` -> the parameter-free model every table starts with (default: bicubic);
      ``baseline_name`` names its row.
    Evaluation always runs the model on each validation item and scores it with the protocol.

    The field's data (``field_data=True``: single-image SR experiments opt in): in ``full`` mode the training data
    is DIV2K's 800 HR images and the default test data Set5, Set14, B100 and Urban100 (whole images), when
    they are on this machine (:mod:`srlearn.data.field`: ``SRLEARN_DIV2K``, ``SRLEARN_BENCHMARK`` or the
    registry's cache); otherwise, and in ``quick`` mode, the offline images, and ``results.json`` says
    which (``train_data``, ``test_data``). A ``make_train_data`` hook of such an experiment must get its
    patches from :func:`sr_train_data` (e.g. wrapped as Y planes); ``train_data_desc`` / ``test_data_desc``
    describe the data of the hooks of other experiments. ``published`` holds the papers' figures per arm and
    test set (text with the source tag), shown beside ours in the per-set tables.
    """
    name: str
    description: str
    scale: int
    arms: list[Arm]
    budgets: dict[str, Budget]
    comparisons: list[Comparison] = field(default_factory=list)
    train_images: str = "train"
    notebook: str = ""
    make_train_data: Callable | None = None
    make_val_data: Callable | None = None
    baseline_model: Callable | None = None
    baseline_name: str = "bicubic"
    crop: int | None = None   # border shaved before scoring; None: the scale (the SR protocol)
    y_only: bool = True       # score the BT.601 Y channel (SR papers) or all RGB channels (denoising papers)
    protocol: str | None = None   # the protocol string of the results; None: srlearn.metrics.protocol(scale)
    #: The smallest PSNR difference (dB) this experiment claims to detect: a gap between two arms' means
    #: below it is "no measurable difference" whatever the seeds say (see :func:`verdict`). 0.05 dB by
    #: default: the size of SAN's margins over RCAN (papers.md §1.9) and of typical seed spreads.
    min_detectable_db: float = MIN_DETECTABLE_DB
    field_data: bool = False  # single-image SR: DIV2K / Set5, Set14, B100, Urban100 in full mode when available
    train_data_desc: str | None = None   # what a make_train_data hook trains on (for results.json and captions)
    test_data_desc: str | None = None    # what a make_val_data hook tests on
    published: dict = field(default_factory=dict)   # arm -> {test set -> "figure [source tag]"}

    @property
    def scoring(self) -> Protocol:
        """How this experiment is scored: one :class:`srlearn.metrics.Protocol` for training-time
        validation, evaluation, the results table, the report's curves and the CLI."""
        return Protocol(scale=self.scale, crop=self.crop, y_only=self.y_only, baseline=self.baseline_name,
                        name=self.protocol)

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(f"experiment {self.name!r} has no arm {name!r}; arms: {[a.name for a in self.arms]}")


#: name -> :class:`Experiment` (``srlearn list``); filled by this package's modules.
EXPERIMENTS = Registry("experiment", "experiments", help="replications: arms x seeds x budget")
_EXPERIMENTS = EXPERIMENTS


def register_experiment(exp: Experiment) -> Experiment:
    return EXPERIMENTS.register(exp.name, exp)


def list_experiments() -> list[str]:
    return sorted(_EXPERIMENTS)


def get_experiment(name: str) -> Experiment:
    return EXPERIMENTS.get(name)


# --------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def super_resolve(model: torch.nn.Module, lr_uint8: np.ndarray, *extra_uint8, device=None) -> np.ndarray:
    """Run ``model`` on one uint8 HxWx3 LR image (and any extra uint8 inputs, e.g. a reference);
    return the uint8 SR image (clamped, rounded half up)."""
    device = device or next((p.device for p in model.parameters()), torch.device("cpu"))
    model.eval()
    inputs = [to_tensor(np.asarray(a)).unsqueeze(0).to(device) for a in (lr_uint8, *extra_uint8)]
    out = model(*inputs)[0].float().cpu()
    if not bool(torch.isfinite(out).all()):   # never round NaN to a black image and score it
        raise ValueError("the model's output holds NaN or inf values (diverged or corrupt weights); "
                         "it is not scored")
    return to_uint8(out)


def evaluate_model(model: torch.nn.Module, pairs, scale: int | None = None, device=None, crop: int | None = None,
                   y_only: bool = True, protocol: Protocol | None = None) -> dict:
    """PSNR / SSIM of ``model`` on ``(name, lr, hr, *extra)`` uint8 items, per image and mean, by ``protocol``
    (an experiment passes ``exp.scoring``). Without one it is built from ``scale``, ``crop`` (the shaved
    border, default ``scale``: the SR protocol) and ``y_only``; a same-size task such as denoising passes
    ``scale=1`` and its own crop (0 by its protocol).
    """
    if protocol is None:
        if scale is None:
            raise ValueError("evaluate_model needs the scale (or a protocol=srlearn.metrics.Protocol(...))")
        protocol = Protocol(scale=int(scale), crop=crop, y_only=y_only)
    scale = protocol.scale
    images = []
    for name, lr, hr, *extra in pairs:
        sr = super_resolve(model, lr, *extra, device=device)
        if sr.shape != hr.shape:
            raise ValueError(f"{name}: SR shape {sr.shape} != HR shape {hr.shape}; is the model's scale {scale}?")
        images.append({"name": name, **protocol.score(sr, hr)})
    mean = {k: float(np.mean([im[k] for im in images])) for k in ("psnr", "ssim")}
    return {"images": images, "mean": mean, "protocol": str(protocol)}


# ------------------------------------------------------------------------------------------------ running
def _commit() -> str:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        sha = out.stdout.strip()
        if out.returncode != 0 or not sha:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(dev)}"
    return f"{dev.type}:{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def _atomic_write_text(path: Path, text: str) -> None:
    _files.atomic_write(path, text)


def default_ckpt_every(steps: int) -> int:
    """Checkpoint interval of a replication: a quarter of the steps, at most 1000, so a killed quick
    run resumes too (a budget's or arm's ``train={"ckpt_every": ...}`` overrides it)."""
    return max(1, min(1000, int(steps) // 4))


def _ways_out(out) -> str:
    return (f"write to another folder (srlearn replicate ... --out OTHER_DIR, or run(..., out=OTHER_DIR)), "
            f"or train again from scratch with --restart (run(..., restart=True)), which replaces the "
            f"checkpoints in {str(out)!r}")


#: The one precedence rule of a run's settings, lowest first; a later layer wins. It holds for the model's
#: keyword arguments and for the training configuration alike.
PRECEDENCE = ("defaults", "budget", "arm", "budget[arm]", "command line")


@dataclass
class RunSpec:
    """Everything one arm and seed trains with, resolved from (experiment, arm, mode, command line) by
    :func:`resolve_spec` under :data:`PRECEDENCE`: the package's defaults (the preset, ``TrainConfig``'s
    fields) < the mode's ``Budget`` (every arm) < the ``Arm`` < the mode's entry for that arm
    (``Budget.overrides`` / ``Budget.arm_train``) < the command line (``srlearn replicate --set``).

    ``sources`` says which layer set each key; :meth:`flat` is the printable form (``srlearn replicate NAME
    --show-spec``), written into ``results.json``; the checkpoint records the same settings as the run's
    identity, so a re-run with a different spec cannot reuse it.
    """
    experiment: str
    arm: str
    mode: str
    seed: int
    model: str
    preset: str
    model_kwargs: dict          # keyword overrides on top of the preset (the preset's own values are not repeated)
    train: dict                 # TrainConfig fields that differ from TrainConfig's defaults, and those always set
    sources: dict               # "model.KEY" / "train.KEY" -> the layer of PRECEDENCE that set it
    ckpt_path: str | None = None

    def config(self, progress: bool = True, device: str = "cpu") -> TrainConfig:
        extra = {"progress": progress, "device": device}
        if self.ckpt_path is not None:
            extra["ckpt_path"] = self.ckpt_path
        return TrainConfig.from_dict({**self.train, **extra})   # an unknown field: an error listing the valid ones

    def identity(self) -> dict:
        """The entries besides the model spec and the config that the checkpoint records."""
        return {"experiment": self.experiment, "arm": self.arm, "seed": self.seed, "mode": self.mode}

    def flat(self) -> dict:
        out = {"experiment": self.experiment, "arm": self.arm, "mode": self.mode, "seed": self.seed,
               "model.name": self.model, "model.preset": self.preset}
        out.update({f"model.{k}": v for k, v in self.model_kwargs.items()})
        out.update({f"train.{k}": v for k, v in self.train.items()})
        return out

    def to_text(self) -> str:
        width = max(len(k) for k in self.flat())
        return "\n".join(f"{k:{width}s} = {v!r}" + (f"   ({self.sources[k]})" if k in self.sources else "")
                         for k, v in self.flat().items())


def _parse_sets(sets) -> dict:
    """``["train.lr=1e-3", "model.n_feats=64"]`` (or a dict) -> ``{"model": {...}, "train": {...}}``."""
    import ast
    out: dict = {"model": {}, "train": {}}
    if isinstance(sets, dict):
        items = list(sets.items())
    else:
        items = []
        for text in sets or ():
            if "=" not in text:
                raise ValueError(f"--set {text!r}: write KEY=VALUE, e.g. --set train.lr=1e-3 or --set model.n_feats=64")
            key, value = text.split("=", 1)
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                pass                      # a bare word: a string (e.g. --set train.schedule=cosine)
            items.append((key.strip(), value))
    for key, value in items:
        where, _, name = key.partition(".")
        if where not in out or not name:
            raise ValueError(f"--set {key}=...: the key must start with 'model.' or 'train.' "
                             f"(e.g. model.attention=se, train.lr=1e-3)")
        out[where][name] = value
    return out


def resolve_spec(exp: Experiment, arm: Arm | str, seed: int, mode: str, out=None, budget: Budget | None = None,
                 sets=None) -> RunSpec:
    """The :class:`RunSpec` of one arm and seed in ``mode`` (``budget`` replaces the mode's budget, as the
    campaign does; ``sets`` are command-line overrides ``["train.lr=1e-3", ...]``)."""
    arm = exp.arm(arm) if isinstance(arm, str) else arm
    budget = budget if budget is not None else exp.budgets[mode]
    cli = _parse_sets(sets)
    sources: dict = {}

    def layer(target: dict, values: dict, prefix: str, name: str) -> None:
        for k, v in values.items():
            target[k] = v
            sources[f"{prefix}.{k}"] = name

    cli_preset = cli["model"].pop("preset", None)
    preset = cli_preset or budget.preset or arm.preset
    sources["model.preset"] = "command line" if cli_preset else "budget" if budget.preset else "arm"
    model_kwargs: dict = {}
    layer(model_kwargs, arm.overrides, "model", "arm")
    layer(model_kwargs, budget.overrides.get(arm.name, {}), "model", "budget[arm]")
    layer(model_kwargs, cli["model"], "model", "command line")
    train: dict = {}
    layer(train, {"steps": budget.steps, "batch_size": budget.batch_size, "val_every": budget.val_every,
                  "ckpt_every": default_ckpt_every(budget.steps)}, "train", "budget")
    layer(train, {"seed": seed}, "train", "run")
    layer(train, budget.train, "train", "budget")
    layer(train, arm.train, "train", "arm")
    layer(train, budget.arm_train.get(arm.name, {}), "train", "budget[arm]")
    layer(train, cli["train"], "train", "command line")
    ckpt = None
    if out is not None:
        ckpt = str(Path(out) / "checkpoints" / f"{arm.name}-seed{seed}.pt")
    return RunSpec(exp.name, arm.name, mode, int(seed), arm.model, preset, model_kwargs, train, sources, ckpt)


def _arm_setup(exp: Experiment, arm: Arm, seed: int, mode: str, out, dev, progress: bool,
               budget: Budget | None = None, sets=None):
    """What one arm and seed trains: preset, model overrides, TrainConfig, checkpoint path, identity."""
    spec = resolve_spec(exp, arm, seed, mode, out, budget, sets)
    ckpt = None
    if spec.ckpt_path is not None:
        ckpt = Path(spec.ckpt_path)
        ckpt.parent.mkdir(parents=True, exist_ok=True)
    return spec.preset, spec.model_kwargs, spec.config(progress, str(dev)), ckpt, spec.identity()


def check_arm_checkpoint(exp: Experiment, arm: Arm, seed: int, mode: str, out, device=None,
                         budget: Budget | None = None, sets=None) -> dict | None:
    """Load ``out``'s checkpoint of this arm and seed and check that this run made it; None if there is
    none. Raises ``CheckpointMismatch`` (both values, and the ways out) when another run made it."""
    dev = _env.device(device) if not isinstance(device, torch.device) else device
    preset, overrides, config, ckpt, ident = _arm_setup(exp, arm, seed, mode, out, dev, False, budget, sets)
    if ckpt is None or not ckpt.exists():
        return None
    spec = build(arm.model, preset, scale=exp.scale, **overrides).srlearn_spec
    state = load_checkpoint(ckpt)
    check_identity(state, run_identity(config, spec, **ident), ckpt, ways_out=_ways_out(out))
    return state


def run_arm(exp: Experiment, arm: Arm, seed: int, mode: str, out: Path | None = None, device=None,
            progress: bool = True, train_images=None, val_pairs=None, restart: bool = False,
            budget: Budget | None = None, sets=None) -> dict:
    """Train one arm for one seed (or reuse its finished checkpoint) and evaluate it on the held-out pairs.

    The run's settings are :func:`resolve_spec`'s (``budget`` replaces the mode's budget, e.g. the
    campaign's steps sized to a time budget; ``sets`` are command-line overrides). A checkpoint in ``out``
    is reused (finished) or resumed (unfinished) only if this run made it (see
    :func:`check_arm_checkpoint`); ``restart=True`` trains from scratch and replaces it.
    """
    budget = budget if budget is not None else exp.budgets[mode]
    dev = _env.device(device) if not isinstance(device, torch.device) else device
    spec = resolve_spec(exp, arm, seed, mode, out, budget, sets)
    preset, overrides, config, ckpt, ident = _arm_setup(exp, arm, seed, mode, out, dev, progress, budget, sets)
    _env.seed_everything(seed)
    model = build(arm.model, preset, scale=exp.scale, **overrides)
    if exp.make_train_data is not None:
        data = exp.make_train_data(exp, budget, seed)
    else:
        data = sr_train_data(exp, budget, seed, train_images)
    pairs = val_pairs if val_pairs is not None else _val_data(exp, budget)
    t0 = time.perf_counter()
    history = None
    resume = False
    if ckpt is not None and ckpt.exists() and not restart:
        state = load_checkpoint(ckpt)
        check_identity(state, run_identity(config, model.srlearn_spec, **ident), ckpt, ways_out=_ways_out(out))
        if int(state.get("step", 0)) >= config.steps:   # finished earlier by this same run: reuse
            model.load_state_dict(state.get("ema") or state["model"])
            history = state.get("history")
        else:
            resume = True
    if history is None:
        hist = train(model, data, config, val_data=pairs, resume=resume, identity=ident, protocol=exp.scoring)
        history = hist.to_dict()
        if ckpt is not None:   # validate with the EMA weights if they were used in training
            state = load_checkpoint(ckpt)
            model.load_state_dict(state.get("ema") or state["model"])
    model.to(dev)
    ev = evaluate_model(model, pairs, device=dev, protocol=exp.scoring)
    return {"arm": arm.name, "seed": seed, "model": arm.model, "preset": preset,
            "overrides": overrides, "params": count_parameters(model), "spec": spec.flat(),
            "psnr": ev["mean"]["psnr"], "ssim": ev["mean"]["ssim"], "images": ev["images"],
            "train_seconds": time.perf_counter() - t0, "history": history}


OFFLINE_TRAIN = "the offline images (8 scikit-image samples, matplotlib's grace_hopper, 6 procedural textures)"
OFFLINE_TEST = "the offline held-out images (stereo_motorcycle, texture:stripes:1, texture:glyphs:1)"


def mode_of(exp: Experiment, budget: Budget) -> str | None:
    """The mode whose budget ``budget`` is (by identity), or None for a budget of one's own."""
    return next((m for m, b in exp.budgets.items() if b is budget), None)


def data_sources(exp: Experiment, mode: str | None, budget: Budget | None = None) -> dict:
    """What ``exp`` trains and tests on in ``mode``: ``{"train_paths": [DIV2K PNGs] | None, "test_root":
    benchmark folder | None, "test_sets": [...], "train_data": text, "test_data": text}``.

    The field's data only for ``field_data`` experiments in full mode, and only when on this machine; a
    full-mode run without it warns and names the variable that would supply it. Never downloads.
    """
    budget = budget or exp.budgets.get(mode or "")
    use_field = bool(exp.field_data and mode == "full")
    out = {"train_paths": None, "test_root": None, "test_sets": []}
    if exp.make_train_data is not None and not exp.field_data:   # the hook's own data
        out["train_data"] = exp.train_data_desc or "the experiment's own training data (make_train_data)"
    elif use_field and (div2k := _field.div2k_train_dir()) is not None:
        limit = budget.max_train_images if budget is not None else None
        out["train_paths"] = _field.div2k_train_images(div2k, limit)
        out["train_data"] = (f"DIV2K train HR ({len(out['train_paths'])} images; LR patches by MATLAB bicubic "
                             f"×{exp.scale})")
    else:
        out["train_data"] = OFFLINE_TRAIN
        if use_field:
            out["train_data"] += " — no DIV2K here (set SRLEARN_DIV2K=DIR)"
            warnings.warn(f"{exp.name}: full mode without DIV2K: training on {OFFLINE_TRAIN}; set SRLEARN_DIV2K=DIR "
                          f"(DIR/DIV2K_train_HR/0001.png ...) to train on the field's data", stacklevel=3)
    if exp.make_val_data is not None:
        out["test_data"] = exp.test_data_desc or "the experiment's own held-out data (make_val_data)"
    elif use_field and (bench := _field.benchmark_dir()) is not None and _field.benchmark_sets(bench):
        out["test_root"], out["test_sets"] = bench, _field.benchmark_sets(bench)
        out["test_data"] = (f"{', '.join(out['test_sets'])} (whole images; LR by MATLAB uint8 bicubic "
                            f"×{exp.scale})")
    else:
        out["test_data"] = OFFLINE_TEST
        if use_field:
            out["test_data"] += " — no benchmark sets here (set SRLEARN_BENCHMARK=DIR)"
            warnings.warn(f"{exp.name}: full mode without the benchmark sets: testing on {OFFLINE_TEST}; set "
                          f"SRLEARN_BENCHMARK=DIR (DIR/Set5/HR/baby.png ...) to test on Set5/Set14/B100/Urban100",
                          stacklevel=3)
    return out


def sr_train_data(exp: Experiment, budget: Budget, seed: int, names=None):
    """Single-image SR training patches for one seed: DIV2K HR patches in full mode when DIV2K is here
    (:class:`srlearn.data.HRPatchDataset`), else the offline images (``names``, default
    ``list_images(exp.train_images)``). Items are RGB ``(lr, hr)`` float tensors, a pure function of (seed, i)."""
    length = budget.steps * budget.batch_size
    with warnings.catch_warnings():   # run() already warned once about a missing DIV2K
        warnings.simplefilter("ignore")
        src = data_sources(exp, mode_of(exp, budget), budget)
    if src["train_paths"]:
        return _field.HRPatchDataset(src["train_paths"], exp.scale, lr_patch=budget.lr_patch, length=length,
                                         seed=seed)
    names = tuple(names if names is not None else list_images(exp.train_images))
    if all(isinstance(n, str) for n in names):   # one dataset (LR made once) serves every arm of a seed
        return _offline_patches(names, exp.scale, budget.lr_patch, length, seed)
    return PairedPatchDataset(list(names), scale=exp.scale, lr_patch=budget.lr_patch, length=length, seed=seed)


@functools.lru_cache(maxsize=4)
def _offline_patches(names: tuple, scale: int, lr_patch: int, length: int, seed: int) -> PairedPatchDataset:
    return PairedPatchDataset(list(names), scale=scale, lr_patch=lr_patch, length=length, seed=seed)


def _val_data(exp: Experiment, budget: Budget) -> list:
    if exp.make_val_data is not None:
        return exp.make_val_data(exp, budget)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = data_sources(exp, mode_of(exp, budget), budget)
    if src["test_root"] is not None:   # the protocol scores whole images: val_max_size does not apply
        return _field.benchmark_pairs(exp.scale, src["test_root"], src["test_sets"])
    return validation_pairs(exp.scale, max_size=budget.val_max_size)


def _baseline_model(exp: Experiment) -> torch.nn.Module:
    return exp.baseline_model(exp) if exp.baseline_model is not None else build("bicubic", scale=exp.scale)


def verdict(rows: list[dict], comparison: Comparison, baseline: str | None = None,
            min_detectable: float = MIN_DETECTABLE_DB) -> dict:
    """Compare two arms over seeds, never saying more than the runs show. In this order:

    1. fewer than two runs of either arm: ``"1 seed: no noise estimate, no verdict"``;
    2. ``|Δ| < min_detectable`` (the experiment's minimum detectable difference, dB): ``"no measurable
       difference"``;
    3. ``baseline`` given (the name of the baseline's rows, e.g. ``"bicubic"``), neither arm is the
       baseline and both arms' means are below it: ``"not testable: neither arm beats BASELINE"`` — two
       networks that have not learned the task say nothing about the paper's claim;
    4. the seed-noise test: the standard error of the difference of means (sample std over seeds); a
       gap within two standard errors is ``"within seed noise"``, otherwise ``"reproduced"`` (the
       claimed direction) or ``"not reproduced (reversed)"``.

    Returns the claim, ``delta_psnr`` (better − worse), ``stderr`` (nan with one seed), ``n``,
    ``min_detectable``, ``tested`` (True only when step 4 ran) and ``verdict``.
    """
    a = np.array([r["psnr"] for r in rows if r["arm"] == comparison.better], dtype=float)
    b = np.array([r["psnr"] for r in rows if r["arm"] == comparison.worse], dtype=float)
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"comparison {comparison} names an arm with no results")
    if not (isinstance(min_detectable, (int, float)) and min_detectable >= 0):
        raise ValueError(f"min_detectable must be a number of dB >= 0, got {min_detectable!r}")
    diff = float(a.mean() - b.mean())
    se = (float(math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))) if len(a) > 1 and len(b) > 1
          else float("nan"))
    tested = False
    base = None
    if baseline is not None and baseline not in (comparison.better, comparison.worse):
        base_values = [r["psnr"] for r in rows if r["arm"] == baseline]
        if not base_values:
            raise ValueError(f"baseline {baseline!r} has no rows; pass its rows or baseline=None")
        base = float(np.mean(base_values))
    if math.isnan(se):
        word = ONE_SEED
    elif abs(diff) < min_detectable:
        word = NO_DIFFERENCE
    elif base is not None and a.mean() < base and b.mean() < base:
        word = f"not testable: neither arm beats {baseline}"
    else:
        tested = True
        if abs(diff) <= 2 * se:
            word = "within seed noise"
        else:
            word = "reproduced" if diff > 0 else "not reproduced (reversed)"
    return {"better": comparison.better, "worse": comparison.worse, "claim": comparison.claim,
            "delta_psnr": diff, "stderr": se, "n": [int(len(a)), int(len(b))],
            "min_detectable": float(min_detectable), "tested": tested, "verdict": word}


def _prepare_out(out_dir: Path) -> None:
    """Create ``out_dir`` and make sure files can be written in it, with an error that says what is wrong."""
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"the output folder {str(out_dir)!r} is a file, not a folder: choose another "
                                 f"--out (out=...) or move the file away")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f"{_files.temp_prefix('write-probe')}tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OSError(e.errno, f"cannot write in the output folder {str(out_dir)!r} ({e.strerror or e}): choose "
                               f"a folder you can write with --out (out=...)") from e
    for folder in (out_dir, out_dir / "checkpoints"):
        _files.remove_orphans(folder, None, ".tmp")


def _check_results_owner(out_dir: Path, name: str, mode: str) -> None:
    """Refuse to mix: a results.json in ``out_dir`` written by another experiment or mode."""
    path = out_dir / "results.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return      # unreadable: it will be replaced atomically at the end
    old_exp, old_mode = old.get("experiment"), old.get("mode")
    if (old_exp, old_mode) != (name, mode):
        raise CheckpointMismatch(f"{str(out_dir)!r} holds the results of experiment {old_exp!r} in mode "
                                 f"{old_mode!r}, but this run is experiment {name!r} in mode {mode!r}; "
                                 f"its results.json and checkpoints are neither reused nor overwritten. "
                                 f"Either {_ways_out(out_dir)}.")


def run(name: str, mode: str | None = None, seeds: int | None = None, out: str | os.PathLike | None = None,
        device=None, progress: bool = True, arms: list[str] | None = None, restart: bool = False,
        budget: Budget | None = None, sets=None) -> dict:
    """Run experiment ``name`` in ``mode`` (default: :func:`srlearn.mode`) and return the results dict.

    With ``out``, results.json / report.md / checkpoints are written there, and a re-run reuses or
    resumes the checkpoints this same run made (anything else is a ``CheckpointMismatch``, checked before
    anything trains). ``restart=True`` trains every chosen arm again from scratch, replacing them.
    ``budget`` replaces the mode's budget (``srlearn campaign`` passes the mode's budget with its steps
    sized to the time it has); ``sets`` are command-line overrides (``["train.lr=1e-3"]``, see
    :func:`resolve_spec`). ``results.json`` records the budget and each run's resolved spec.
    """
    exp = get_experiment(name)
    mode = _env.mode(mode)
    if mode not in exp.budgets:
        raise ValueError(f"experiment {name!r} has no {mode!r} budget; modes: {list(exp.budgets)}")
    budget = budget if budget is not None else exp.budgets[mode]
    if seeds is None:
        seeds = budget.seeds
    if isinstance(seeds, bool) or not isinstance(seeds, numbers.Integral) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1 (the number of seeds per arm), got {seeds!r}")
    n_seeds = int(seeds)
    dev = _env.device(device)
    out_dir = Path(out) if out is not None else None
    chosen = [exp.arm(a) for a in arms] if arms else exp.arms
    if out_dir is not None:
        _prepare_out(out_dir)
        if not restart:
            _check_results_owner(out_dir, exp.name, mode)
            for arm in chosen:           # every checkpoint first: a mismatch costs seconds, not hours
                for seed in range(n_seeds):
                    check_arm_checkpoint(exp, arm, seed, mode, out_dir, dev, budget, sets)
    t0 = time.perf_counter()
    sources = data_sources(exp, mode, budget)   # warns once when full mode falls back to the offline images
    pairs = _val_data(exp, budget)
    train_names = list_images(exp.train_images) if exp.make_train_data is None else None
    baseline = evaluate_model(_baseline_model(exp), pairs, device=torch.device("cpu"), protocol=exp.scoring)
    rows = [run_arm(exp, arm, seed, mode, out_dir, dev, progress, train_names, pairs, restart=restart,
                    budget=budget, sets=sets)
            for arm in chosen for seed in range(n_seeds)]
    # the baseline is deterministic: one row per seed with zero spread, so verdicts against it work
    base_rows = [{"arm": exp.baseline_name, "seed": s, "psnr": baseline["mean"]["psnr"], "ssim": baseline["mean"]["ssim"],
                  "params": 0} for s in range(n_seeds)]
    results = {
        "version": RESULTS_VERSION, "experiment": exp.name, "description": exp.description,
        "mode": mode, "scale": exp.scale, "seeds": n_seeds, "budget": _budget_record(budget, rows), "precedence": list(PRECEDENCE),
        "device": device_name(dev), "torch": torch.__version__, "commit": _commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "protocol": str(exp.scoring), "scoring": exp.scoring.to_dict(), "validation_images": [p[0] for p in pairs],
        "min_detectable_db": exp.min_detectable_db,
        "train_data": sources["train_data"], "test_data": sources["test_data"], "test_sets": sources["test_sets"],
        "published": exp.published,
        "baseline": {"arm": exp.baseline_name, "psnr": baseline["mean"]["psnr"], "ssim": baseline["mean"]["ssim"],
                     "images": baseline["images"]},
        "runs": rows,
        "verdicts": [verdict(rows + base_rows, c, baseline=exp.baseline_name, min_detectable=exp.min_detectable_db)
                     for c in exp.comparisons
                     if {c.better, c.worse} <= {r["arm"] for r in rows + base_rows}],
    }
    results["wall_seconds"] = time.perf_counter() - t0
    if out_dir is not None:
        _atomic_write_text(out_dir / "results.json", json.dumps(results, indent=1, default=float))
        from .report import write_report
        write_report(results, out_dir)
    return results


def _budget_record(budget: Budget, rows: list[dict]) -> dict:
    """The budget as results.json records it, with the steps the runs' specs actually set (``--set train.steps``)."""
    record = asdict(budget)
    steps = {r["spec"]["train.steps"] for r in rows if "spec" in r}
    if len(steps) == 1 and steps != {budget.steps}:
        record["steps"], record["steps_from"] = steps.pop(), "the runs' spec (command line)"
    return record


def load_results(path: str | os.PathLike) -> dict:
    """Read a ``results.json`` written by :func:`run` (a directory or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.exists():
        raise FileNotFoundError(f"no results at {p}; run `srlearn replicate NAME --out {p.parent}` first")
    return json.loads(p.read_text())
