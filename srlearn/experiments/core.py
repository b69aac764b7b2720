"""Replications: an experiment is arms × seeds × budget, run the same way by the CLI and the notebooks.

``run(name, mode="quick" | "full", seeds=None, out=DIR)`` trains every arm for every seed with the one
training loop (:func:`srlearn.train.train`), evaluates each on the held-out images with the field's
protocol (uint8 MATLAB LR, Y-channel PSNR/SSIM, shave = scale), adds the bicubic baseline, and writes

* ``DIR/results.json``: experiment, mode, device, torch version, commit, wall time, protocol, the
  baseline, and per arm and seed the metrics, parameter count and learning curve;
* ``DIR/report.md`` with the results table, the verdicts and the figures (``DIR/*.png``);
* ``DIR/checkpoints/ARM-seedK.pt`` (atomic; a run that finds a finished checkpoint reuses it, and an
  unfinished one is resumed exactly).
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import _env
from ..data import PairedPatchDataset, list_images, to_tensor, to_uint8, validation_pairs
from ..metrics import protocol, psnr, ssim
from ..models import build
from ..nn import count_parameters
from ..train import TrainConfig, load_checkpoint, train

RESULTS_VERSION = 1


@dataclass
class Arm:
    """One configuration to train: a registered model, a preset and keyword overrides."""
    name: str
    model: str
    preset: str = "mini"
    overrides: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)  # TrainConfig overrides for this arm only


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

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(f"experiment {self.name!r} has no arm {name!r}; arms: {[a.name for a in self.arms]}")


_EXPERIMENTS: dict[str, Experiment] = {}


def register_experiment(exp: Experiment) -> Experiment:
    if exp.name in _EXPERIMENTS:
        raise ValueError(f"experiment {exp.name!r} registered twice")
    _EXPERIMENTS[exp.name] = exp
    return exp


def list_experiments() -> list[str]:
    return sorted(_EXPERIMENTS)


def get_experiment(name: str) -> Experiment:
    try:
        return _EXPERIMENTS[name]
    except KeyError:
        raise KeyError(f"unknown experiment {name!r}; registered: {', '.join(list_experiments())}") from None


# --------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def super_resolve(model: torch.nn.Module, lr_uint8: np.ndarray, *extra_uint8, device=None) -> np.ndarray:
    """Run ``model`` on one uint8 HxWx3 LR image (and any extra uint8 inputs, e.g. a reference);
    return the uint8 SR image (clamped, rounded half up)."""
    device = device or next((p.device for p in model.parameters()), torch.device("cpu"))
    model.eval()
    inputs = [to_tensor(np.asarray(a)).unsqueeze(0).to(device) for a in (lr_uint8, *extra_uint8)]
    return to_uint8(model(*inputs)[0].float().cpu())


def evaluate_model(model: torch.nn.Module, pairs, scale: int, device=None, crop: int | None = None,
                   y_only: bool = True) -> dict:
    """Y-PSNR / SSIM of ``model`` on ``(name, lr, hr, *extra)`` uint8 items: per image and mean.

    ``crop`` (the shaved border) defaults to ``scale``, the SR protocol; a same-size task such as
    denoising passes ``scale=1`` and chooses its crop (0 by its own protocol).
    """
    crop = scale if crop is None else crop
    images = []
    for name, lr, hr, *extra in pairs:
        sr = super_resolve(model, lr, *extra, device=device)
        if sr.shape != hr.shape:
            raise ValueError(f"{name}: SR shape {sr.shape} != HR shape {hr.shape}; is the model's scale {scale}?")
        images.append({"name": name, "psnr": psnr(sr, hr, crop=crop, y_only=y_only),
                       "ssim": ssim(sr, hr, crop=crop, y_only=y_only)})
    mean = {k: float(np.mean([im[k] for im in images])) for k in ("psnr", "ssim")}
    return {"images": images, "mean": mean, "protocol": protocol(scale, y_only=y_only)}


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
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_arm(exp: Experiment, arm: Arm, seed: int, mode: str, out: Path | None = None, device=None,
            progress: bool = True, train_images=None, val_pairs=None, budget: Budget | None = None) -> dict:
    """Train one arm for one seed (or reuse its finished checkpoint) and evaluate it on the held-out pairs.

    ``budget`` replaces ``exp.budgets[mode]`` (e.g. the campaign's steps sized to a time budget)."""
    budget = budget if budget is not None else exp.budgets[mode]
    dev = _env.device(device) if not isinstance(device, torch.device) else device
    _env.seed_everything(seed)
    preset = budget.preset or arm.preset
    overrides = {**arm.overrides, **budget.overrides.get(arm.name, {})}
    model = build(arm.model, preset, scale=exp.scale, **overrides)
    if exp.make_train_data is not None:
        data = exp.make_train_data(exp, budget, seed)
    else:
        names = train_images if train_images is not None else list_images(exp.train_images)
        data = PairedPatchDataset(names, scale=exp.scale, lr_patch=budget.lr_patch,
                                  length=budget.steps * budget.batch_size, seed=seed)
    pairs = val_pairs if val_pairs is not None else _val_data(exp, budget)
    cfg_kwargs = {"steps": budget.steps, "batch_size": budget.batch_size, "seed": seed,
                  "val_every": budget.val_every, "progress": progress, "device": str(dev),
                  **budget.train, **arm.train}
    ckpt = None
    if out is not None:
        ckpt = Path(out) / "checkpoints" / f"{arm.name}-seed{seed}.pt"
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        cfg_kwargs["ckpt_path"] = str(ckpt)
    config = TrainConfig(**cfg_kwargs)
    t0 = time.perf_counter()
    history = None
    if ckpt is not None and ckpt.exists():
        state = load_checkpoint(ckpt)
        if int(state.get("step", 0)) >= budget.steps:   # finished earlier: reuse, don't retrain
            model.load_state_dict(state.get("ema") or state["model"])
            history = state.get("history")
    if history is None:
        hist = train(model, data, config, val_data=pairs, resume=bool(ckpt is not None and ckpt.exists()))
        history = hist.to_dict()
        if ckpt is not None:   # validate with the EMA weights if they were used in training
            state = load_checkpoint(ckpt)
            model.load_state_dict(state.get("ema") or state["model"])
    model.to(dev)
    ev = evaluate_model(model, pairs, exp.scale, dev, crop=exp.crop, y_only=exp.y_only)
    return {"arm": arm.name, "seed": seed, "model": arm.model, "preset": preset,
            "overrides": overrides, "params": count_parameters(model),
            "psnr": ev["mean"]["psnr"], "ssim": ev["mean"]["ssim"], "images": ev["images"],
            "train_seconds": time.perf_counter() - t0, "history": history}


def _val_data(exp: Experiment, budget: Budget) -> list:
    if exp.make_val_data is not None:
        return exp.make_val_data(exp, budget)
    return validation_pairs(exp.scale, max_size=budget.val_max_size)


def _baseline_model(exp: Experiment) -> torch.nn.Module:
    return exp.baseline_model(exp) if exp.baseline_model is not None else build("bicubic", scale=exp.scale)


def verdict(rows: list[dict], comparison: Comparison) -> dict:
    """Compare two arms over seeds: the paper's direction reproduced, not reproduced, or within noise.

    The noise is the standard error of the difference of means (sample std over seeds); a gap within
    two standard errors is "within seed noise". With one seed there is no noise estimate and the
    verdict says so.
    """
    a = np.array([r["psnr"] for r in rows if r["arm"] == comparison.better], dtype=float)
    b = np.array([r["psnr"] for r in rows if r["arm"] == comparison.worse], dtype=float)
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"comparison {comparison} names an arm with no results")
    diff = float(a.mean() - b.mean())
    if len(a) > 1 and len(b) > 1:
        se = float(math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
        if abs(diff) <= 2 * se:
            word = "within seed noise"
        else:
            word = "reproduced" if diff > 0 else "not reproduced (reversed)"
    else:
        se = float("nan")
        word = ("direction reproduced" if diff > 0 else "direction not reproduced") + " (1 seed: no noise estimate)"
    return {"better": comparison.better, "worse": comparison.worse, "claim": comparison.claim,
            "delta_psnr": diff, "stderr": se, "n": [int(len(a)), int(len(b))], "verdict": word}


def run(name: str, mode: str | None = None, seeds: int | None = None, out: str | os.PathLike | None = None,
        device=None, progress: bool = True, arms: list[str] | None = None, budget: Budget | None = None) -> dict:
    """Run experiment ``name`` in ``mode`` (default: :func:`srlearn.mode`) and return the results dict.

    With ``out``, results.json / report.md / checkpoints are written there (reused on a re-run).
    ``budget`` replaces the mode's budget (``srlearn campaign`` passes the mode's budget with its steps
    sized to the time it has); ``results.json`` records the budget that was used.
    """
    exp = get_experiment(name)
    mode = _env.mode(mode)
    if mode not in exp.budgets:
        raise ValueError(f"experiment {name!r} has no {mode!r} budget; modes: {list(exp.budgets)}")
    budget = budget if budget is not None else exp.budgets[mode]
    n_seeds = int(seeds or budget.seeds)
    if n_seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    dev = _env.device(device)
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pairs = _val_data(exp, budget)
    train_names = list_images(exp.train_images) if exp.make_train_data is None else None
    baseline = evaluate_model(_baseline_model(exp), pairs, exp.scale, torch.device("cpu"), crop=exp.crop,
                              y_only=exp.y_only)
    chosen = [exp.arm(a) for a in arms] if arms else exp.arms
    rows = [run_arm(exp, arm, seed, mode, out_dir, dev, progress, train_names, pairs, budget=budget)
            for arm in chosen for seed in range(n_seeds)]
    # the baseline is deterministic: one row per seed with zero spread, so verdicts against it work
    base_rows = [{"arm": exp.baseline_name, "seed": s, "psnr": baseline["mean"]["psnr"], "ssim": baseline["mean"]["ssim"],
                  "params": 0} for s in range(n_seeds)]
    results = {
        "version": RESULTS_VERSION, "experiment": exp.name, "description": exp.description,
        "mode": mode, "scale": exp.scale, "seeds": n_seeds, "budget": asdict(budget),
        "device": device_name(dev), "torch": torch.__version__, "commit": _commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "protocol": exp.protocol or protocol(exp.scale, y_only=exp.y_only), "validation_images": [p[0] for p in pairs],
        "baseline": {"arm": exp.baseline_name, "psnr": baseline["mean"]["psnr"], "ssim": baseline["mean"]["ssim"],
                     "images": baseline["images"]},
        "runs": rows,
        "verdicts": [verdict(rows + base_rows, c) for c in exp.comparisons
                     if {c.better, c.worse} <= {r["arm"] for r in rows + base_rows}],
    }
    results["wall_seconds"] = time.perf_counter() - t0
    if out_dir is not None:
        _atomic_write_text(out_dir / "results.json", json.dumps(results, indent=1, default=float))
        from .report import write_report
        write_report(results, out_dir)
    return results


def load_results(path: str | os.PathLike) -> dict:
    """Read a ``results.json`` written by :func:`run` (a directory or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.exists():
        raise FileNotFoundError(f"no results at {p}; run `srlearn replicate NAME --out {p.parent}` first")
    return json.loads(p.read_text())
