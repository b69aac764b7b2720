"""Shipped weights: trained networks stored in ``data/weights/`` and loaded by name.

    model = srlearn.load_pretrained("san-attention", "soca")     # ready to run: eval mode, float32
    model.pretrained_info                                        # its manifest entry (steps, device, PSNR ...)

Layout (``weights_dir()``: ``$SRLEARN_WEIGHTS`` if set, else ``data/weights`` of the checkout)::

    data/weights/manifest.json            one entry per (experiment, arm): see export_weights
    data/weights/EXPERIMENT/ARM.pt        {"format": "srlearn-weights", "model_spec", "state_dict", "dtype"}

A weights file holds only tensors and plain containers (read with ``torch.load(weights_only=True)``) and
the model's spec, so it rebuilds without the code that trained it. Each file's SHA-256 is in the manifest
and checked on every load. Floating-point tensors are stored as float16 when that moves the held-out
mean PSNR by at most ``FP16_TOLERANCE_DB`` (checked per file at export: ``fp16_delta_psnr`` in the
manifest), else as float32; they are loaded back as float32.

``export_weights(results_dirs, dest)`` writes the seed-0 weights (the EMA weights where training kept
them) of every arm of the given ``results.json`` folders, with their checkpoints, and the manifest;
``srlearn weights export RESULTS ...`` and ``srlearn campaign --export-weights DIR`` call it.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

WEIGHTS_FORMAT = "srlearn-weights"
WEIGHTS_VERSION = 1
MANIFEST = "manifest.json"
#: the largest change of the reported mean PSNR (dB) that float16 storage may cause
FP16_TOLERANCE_DB = 0.01
#: the most the shipped weights may weigh together (issue 13)
MAX_TOTAL_BYTES = 25 * 10**6

__all__ = ["load_pretrained", "weights_dir", "read_manifest", "save_weights", "load_weights_file",
           "export_weights", "fp16_delta", "sha256", "FP16_TOLERANCE_DB", "MAX_TOTAL_BYTES",
           "describe", "pretrained_or", "shipped_results", "FALLBACK"]


def weights_dir() -> Path:
    """Where shipped weights live: ``$SRLEARN_WEIGHTS``, else ``data/weights`` beside the package."""
    env = os.environ.get("SRLEARN_WEIGHTS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "data" / "weights"


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_FIX = ("restore the shipped files (`git checkout -- data/weights`; an installed srlearn has none: point "
        "SRLEARN_WEIGHTS at a checkout's data/weights), or make new ones: "
        "`srlearn campaign --device cuda --budget-seconds 480 --out results --export-weights data/weights` "
        "(or `srlearn weights export results/EXPERIMENT ... --out data/weights`)")


def read_manifest(directory: str | os.PathLike | None = None) -> dict:
    """The manifest of ``directory`` (default :func:`weights_dir`); a clear error when there is none."""
    d = Path(directory) if directory is not None else weights_dir()
    path = d / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no weights manifest at {path}: {_FIX}")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}): {_FIX}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path} is not an srlearn weights manifest (no format={WEIGHTS_FORMAT!r}): {_FIX}")
    return manifest


def _entry(manifest: dict, experiment: str, arm: str, where) -> dict:
    for e in manifest.get("weights", []):
        if e["experiment"] == experiment and e["arm"] == arm:
            return e
    have = sorted(f"{e['experiment']}/{e['arm']}" for e in manifest.get("weights", []))
    raise KeyError(f"no shipped weights for {experiment}/{arm} in {where}; available: {', '.join(have) or 'none'}")


def load_pretrained(experiment: str, arm: str, directory: str | os.PathLike | None = None,
                    device="cpu") -> nn.Module:
    """The trained ``arm`` of ``experiment`` from the shipped weights, in eval mode on ``device``.

    The file's SHA-256 is checked against the manifest first. ``model.pretrained_info`` holds the manifest
    entry (steps, device, data, held-out PSNR/SSIM and protocol) so a notebook can say what it loaded.
    """
    d = Path(directory) if directory is not None else weights_dir()
    entry = _entry(read_manifest(d), experiment, arm, d / MANIFEST)
    path = d / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"the manifest lists {experiment}/{arm} as {path}, but that file is missing: {_FIX}")
    digest = sha256(path)
    if digest != entry["sha256"]:
        raise ValueError(f"checksum mismatch for {path}: SHA-256 {digest[:16]}..., the manifest says "
                         f"{entry['sha256'][:16]}... (changed or truncated file): {_FIX}")
    model = load_weights_file(path, device=device)
    model.pretrained_info = dict(entry)
    return model


# -------------------------------------------------------------------------------------------- notebooks
#: how the one line that :func:`pretrained_or` prints starts when it falls back (tests look for it)
FALLBACK = "no shipped weights for"


def describe(info: dict) -> str:
    """One line saying what a manifest entry (``model.pretrained_info``) is: steps, device, data, score."""
    base = info.get("baseline") or {}
    return (f"shipped weights {info['experiment']}/{info['arm']}: {info.get('model')} {info.get('preset')}, "
            f"{info.get('steps')} steps on {info.get('device')} ({info.get('mode')} mode, seed {info.get('seed')}), "
            f"trained on {info.get('train_data')}; held-out {info['psnr']:.2f} dB "
            f"({base.get('name', 'baseline')} {base.get('psnr', float('nan')):.2f} dB)")


def pretrained_or(experiment: str, arm: str, fallback, what: str = "the model trained in this notebook",
                  directory: str | os.PathLike | None = None, device="cpu", scale: int | None = None) -> nn.Module:
    """The shipped weights of ``experiment``/``arm`` (:func:`load_pretrained`), or ``fallback`` when they
    cannot be loaded (no manifest, no entry, a missing or changed file); prints one line saying which.

    ``fallback`` is a model or a function returning one (called only when needed); ``what`` names it in
    the printed line. ``scale``: the factor the caller needs; shipped weights of another factor fall back
    too. The returned model is in eval mode; its ``pretrained_info`` is the manifest entry, or ``None``
    for the fall-back.
    """
    try:
        model = load_pretrained(experiment, arm, directory=directory, device=device)
        have = model.pretrained_info.get("scale")
        if scale is not None and have is not None and int(have) != int(scale):
            raise ValueError(f"they are x{have} weights: this notebook runs x{scale}")
    except (FileNotFoundError, KeyError, ValueError) as err:
        model = fallback if isinstance(fallback, nn.Module) else fallback()
        if not isinstance(model, nn.Module):
            raise TypeError(f"fallback must be a model or a function returning one, got {type(model).__name__}") from err
        reason = str(err.args[0] if err.args else err).split(": ")[0]
        print(f"{FALLBACK} {experiment}/{arm} ({type(err).__name__}: {reason}); using {what} instead")
        model.pretrained_info = None
        return model.eval()
    print(describe(model.pretrained_info))
    return model


def shipped_results(experiment: str, directory: str | os.PathLike | None = None) -> dict:
    """The shipped weights' held-out results of ``experiment`` as a results dict (the keys of
    :func:`srlearn.experiments.run` that tables and verdicts read: runs, baseline, verdicts, protocol,
    train_data, test_data, mode, device, seeds), built from the manifest; the verdicts come from
    :func:`srlearn.experiments.core.verdict`, so one seed says so. A clear error when there are none."""
    from .experiments import core

    d = Path(directory) if directory is not None else weights_dir()
    entries = [e for e in read_manifest(d).get("weights", []) if e["experiment"] == experiment]
    if not entries:
        raise KeyError(f"no shipped weights for experiment {experiment!r} in {d / MANIFEST}: {_FIX}")
    exp = core.get_experiment(experiment)
    first = entries[0]
    rows = [{"arm": e["arm"], "seed": e["seed"], "psnr": e["psnr"], "ssim": e["ssim"], "params": e.get("params"),
             "steps": e.get("steps"), "device": e.get("device")} for e in entries]
    base = first["baseline"]
    base_rows = [{"arm": exp.baseline_name, "seed": e["seed"], "psnr": base["psnr"], "ssim": base["ssim"], "params": 0}
                 for e in entries[:1]]
    arms = {r["arm"] for r in rows + base_rows}
    return {"experiment": experiment, "mode": first.get("mode"), "device": first.get("device"),
            "seeds": first.get("seeds_in_results"), "steps": sorted({e.get("steps") for e in entries}, key=str),
            "protocol": first.get("protocol"), "train_data": first.get("train_data"),
            "test_data": first.get("test_data"), "note": first.get("note", ""),
            "baseline": {"arm": exp.baseline_name, "psnr": base["psnr"], "ssim": base["ssim"]},
            "runs": rows,
            "verdicts": [core.verdict(rows + base_rows, c, baseline=exp.baseline_name,
                                      min_detectable=exp.min_detectable_db)
                         for c in exp.comparisons if {c.better, c.worse} <= arms]}


# ------------------------------------------------------------------------------------------------ files
def _as_float(state: dict) -> dict:
    return {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in state.items()}


def _rounded_fp16(state: dict) -> dict:
    return {k: (v.half().float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in state.items()}


def save_weights(model: nn.Module, path: str | os.PathLike, dtype: str = "float16", info: dict | None = None) -> Path:
    """Write ``model``'s weights (``dtype``: ``"float16"`` or ``"float32"``) and its spec to ``path``, atomically."""
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
    spec = getattr(model, "srlearn_spec", None)
    if not spec:
        raise ValueError("the model has no srlearn_spec: build it with srlearn.models.build so it can be rebuilt")
    cast = torch.float16 if dtype == "float16" else torch.float32
    state = {k: (v.detach().cpu().to(cast) if v.is_floating_point() else v.detach().cpu())
             for k, v in model.state_dict().items()}
    doc = {"format": WEIGHTS_FORMAT, "version": WEIGHTS_VERSION, "model_spec": spec, "dtype": dtype,
           "state_dict": state, "info": info or {}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(doc, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_weights_file(path: str | os.PathLike, device="cpu") -> nn.Module:
    """Rebuild the model of a weights file written by :func:`save_weights` (float32, eval mode)."""
    from .models import build_from_spec   # lazy: `import srlearn` stays cheap

    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, pickle refusal, ...
        raise ValueError(f"{path} cannot be read as srlearn weights ({type(e).__name__}: {e}): {_FIX}") from e
    if not isinstance(doc, dict) or doc.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path} is not an srlearn weights file (no format={WEIGHTS_FORMAT!r}): {_FIX}")
    model = build_from_spec(doc["model_spec"])
    model.load_state_dict(_as_float(doc["state_dict"]))
    return model.to(device).eval()


def fp16_delta(model: nn.Module, pairs, scale: int, crop: int | None = None, y_only: bool = True) -> dict:
    """Held-out mean PSNR/SSIM of ``model`` as is and with its weights rounded to float16 (computed in
    float32 either way): ``{"psnr", "ssim", "psnr_fp16", "ssim_fp16", "delta_psnr"}``."""
    import copy

    from .experiments import evaluate_model

    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    full = evaluate_model(model, pairs, scale, dev, crop=crop, y_only=y_only)["mean"]
    half = copy.deepcopy(model)
    half.load_state_dict(_rounded_fp16(model.state_dict()))
    rounded = evaluate_model(half, pairs, scale, dev, crop=crop, y_only=y_only)["mean"]
    return {"psnr": full["psnr"], "ssim": full["ssim"], "psnr_fp16": rounded["psnr"], "ssim_fp16": rounded["ssim"],
            "delta_psnr": rounded["psnr"] - full["psnr"]}


# ----------------------------------------------------------------------------------------------- export
def export_weights(results_dirs, dest: str | os.PathLike, seed: int = 0, max_total_bytes: int = MAX_TOTAL_BYTES,
                   tolerance_db: float = FP16_TOLERANCE_DB, device="cpu", note: str = "") -> dict:
    """Write the seed-``seed`` weights of every arm found in ``results_dirs`` into ``dest`` with a manifest.

    Each folder holds a ``results.json`` written by :func:`srlearn.experiments.run` (or the campaign) and its
    ``checkpoints/ARM-seedK.pt``. Each model is scored on the experiment's held-out images as the results
    were (same budget, hence the same validation crops); float16 storage is used where it moves that mean
    PSNR by at most ``tolerance_db``. The files and ``manifest.json`` together must stay within
    ``max_total_bytes``, else nothing is replaced and a ValueError says what weighed what.
    Entries of experiments not exported now are kept from an existing manifest in ``dest``.
    """
    from dataclasses import fields

    from .experiments import core
    from .train import load_model

    dest = Path(dest)
    entries, staged = [], []
    stage = Path(tempfile.mkdtemp(prefix=".export-", dir=_existing_parent(dest)))
    try:
        for rdir in [Path(p) for p in results_dirs]:
            res = core.load_results(rdir)
            exp = core.get_experiment(res["experiment"])
            known = {f.name for f in fields(core.Budget)}
            budget = core.Budget(**{k: v for k, v in res["budget"].items() if k in known})
            pairs = core._val_data(exp, budget)
            rows = [r for r in res["runs"] if int(r["seed"]) == int(seed)]
            if not rows:
                raise ValueError(f"{rdir}/results.json has no runs of seed {seed}")
            for row in rows:
                ckpt = rdir / "checkpoints" / f"{row['arm']}-seed{seed}.pt"
                model = load_model(ckpt).to(device)
                check = fp16_delta(model, pairs, exp.scale, crop=exp.crop, y_only=exp.y_only)
                dtype = "float16" if abs(check["delta_psnr"]) <= tolerance_db else "float32"
                rel = f"{exp.name}/{row['arm']}.pt"
                hist = row.get("history") or {}
                entry = {
                    "experiment": exp.name, "arm": row["arm"], "seed": int(seed), "model": row.get("model"),
                    "preset": row.get("preset"), "overrides": row.get("overrides", {}),
                    "params": row.get("params"), "steps": hist.get("last_step"),
                    "stopped_by": hist.get("stopped_by"), "train_seconds": hist.get("train_time"),
                    "wall_seconds": hist.get("wall_time"), "mode": res.get("mode"),
                    "device": res.get("device"), "torch": res.get("torch"), "commit": res.get("commit"),
                    "created": res.get("created"), "scale": exp.scale,
                    "train_data": res.get("train_data", f"offline images ({exp.train_images!r} split)"),
                    "test_data": res.get("test_data", ", ".join(res.get("validation_images", [])) + (
                        f" (centre crops of at most {budget.val_max_size} px)" if budget.val_max_size else "")),
                    "budget": {k: res["budget"].get(k) for k in ("steps", "batch_size", "lr_patch", "val_max_size")},
                    "seeds_in_results": res.get("seeds"),
                    "protocol": res.get("protocol"), "psnr": check["psnr"], "ssim": check["ssim"],
                    "baseline": {"name": res["baseline"].get("arm"), "psnr": res["baseline"]["psnr"],
                                 "ssim": res["baseline"]["ssim"]},
                    "beats_baseline": bool(check["psnr"] > res["baseline"]["psnr"]),
                    "dtype": dtype, "fp16_delta_psnr": check["delta_psnr"],
                    "ema": bool(_has_ema(ckpt)), "file": rel, "note": note,
                }
                out = save_weights(model, stage / rel, dtype=dtype,
                                   info={k: entry[k] for k in ("experiment", "arm", "seed", "steps", "device")})
                entry["bytes"] = out.stat().st_size
                entry["sha256"] = sha256(out)
                entries.append(entry)
                staged.append(rel)
        done = {(e["experiment"], e["arm"]) for e in entries}
        exported = {e["experiment"] for e in entries}
        old = []
        if (dest / MANIFEST).is_file():
            old = [e for e in read_manifest(dest).get("weights", [])
                   if e["experiment"] not in exported and (e["experiment"], e["arm"]) not in done
                   and (dest / e["file"]).is_file()]
        manifest = {"format": WEIGHTS_FORMAT, "version": WEIGHTS_VERSION,
                    "fp16_tolerance_db": tolerance_db,
                    "weights": sorted(old + entries, key=lambda e: (e["experiment"], e["arm"]))}
        text = json.dumps(manifest, indent=1, default=float)
        total = sum(e["bytes"] for e in manifest["weights"]) + len(text.encode())
        manifest_total = total
        if total > max_total_bytes:
            big = sorted(manifest["weights"], key=lambda e: -e["bytes"])[:5]
            raise ValueError(f"the weights would weigh {total / 1e6:.1f} MB, over the {max_total_bytes / 1e6:.1f} MB "
                             f"limit; largest: " + ", ".join(f"{e['experiment']}/{e['arm']} {e['bytes'] / 1e6:.1f} MB"
                                                             for e in big)
                             + ". Train smaller presets (the campaign's default) or export fewer experiments.")
        for rel in staged:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / rel, target)
        tmp = dest / f".{MANIFEST}.tmp{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, dest / MANIFEST)
        manifest["total_bytes"] = manifest_total
        return manifest
    finally:
        import shutil
        shutil.rmtree(stage, ignore_errors=True)


def _existing_parent(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    return dest


def _has_ema(ckpt: Path) -> bool:
    from .train import load_checkpoint
    return load_checkpoint(ckpt).get("ema") is not None
