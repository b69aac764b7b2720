"""Super-resolve your own images: no high-resolution original needed (``srlearn upscale``).

    from srlearn.upscale import upscale_image
    out = upscale_image("run/model.pt", "photo.jpg", scale=4)        # or a model, or "EXPERIMENT/ARM"
    out.sr, out.bicubic, out.lr                                      # uint8 HxWx3 arrays
    srlearn.viz.compare_sr(out.lr, out.bicubic, out.sr)              # in a notebook

``evaluate`` shrinks an HR image and scores the model against it; here the input *is* the low-resolution
image, so there is nothing to score against: the output is the enlarged image, shown beside MATLAB-bicubic
enlargement of the same input (the baseline every SR table starts from).

Large images: ``tile=N`` runs the network on N×N-pixel pieces of the input, each read with ``overlap``
pixels of context on every side that is then cut away, so memory is bounded by the tile, not the image
(the EDSR/RCAN "chop" idea). For a network whose receptive field fits in the overlap, tiled and untiled
outputs are the same up to float rounding (within one grey level; ``tests/test_upscale.py``). Layers
that look at the whole input (channel attention's global pooling in RCAN/SAN, SOCA's covariance, SAN's
region non-local split, SSEN's deformable offsets) see one tile instead, so for those networks tiling is
an approximation: use the largest tile that fits.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

__all__ = ["Upscaled", "load_upscaler", "upscale_image", "upscale_tensor", "side_by_side", "upscale_files"]

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".tar")


class Upscaled(NamedTuple):
    """The result of :func:`upscale_image`: uint8 HxWx3 arrays (``sr`` and ``bicubic`` are ``scale``× ``lr``)."""
    sr: np.ndarray
    bicubic: np.ndarray
    lr: np.ndarray


# ------------------------------------------------------------------------------------------- models

def load_upscaler(weights, device=None) -> nn.Module:
    """A model in eval mode on ``device``, from a model, a checkpoint path, or ``"EXPERIMENT/ARM"``.

    A string that names an existing file (or ends in .pt/.pth/.ckpt) is an srlearn checkpoint
    (``srlearn.train.load_model``; ``srlearn convert`` makes one from the authors' released files);
    ``"EXPERIMENT/ARM"`` asks for srlearn's shipped weights (``srlearn.load_pretrained``).
    """
    from . import _env
    if isinstance(weights, nn.Module):             # a model stays where it is unless a device is named
        return (weights if device is None else weights.to(_env.device(str(device)))).eval()
    dev = device if isinstance(device, torch.device) else _env.device(device)
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"weights must be a model, a checkpoint path or 'EXPERIMENT/ARM', got {type(weights).__name__}")
    text = os.fspath(weights)
    path = Path(text)
    if path.is_dir():
        raise ValueError(f"--weights {text!r} is a folder: pass the checkpoint file inside it (e.g. "
                         f"{text.rstrip('/')}/checkpoints/NAME.pt)")
    if path.is_file() or path.suffix.lower() in CHECKPOINT_SUFFIXES:
        from .train import load_model
        return load_model(path, map_location="cpu").to(dev).eval()
    parts = text.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"--weights {text!r} is neither a checkpoint file nor EXPERIMENT/ARM (e.g. "
                         f"'san-ablation/soca'): check the path, or name shipped weights as EXPERIMENT/ARM")
    try:
        from .weights import load_pretrained
    except ModuleNotFoundError as e:
        if e.name not in (f"{__package__}.weights", "srlearn.weights"):
            raise
        raise RuntimeError(f"shipped weights are not available in this installation of srlearn (no "
                           f"srlearn.weights), so {text!r} cannot be loaded: pass a checkpoint file instead "
                           f"(one written by training, or by `srlearn convert` from the authors' files)") from None
    model = load_pretrained(parts[0], parts[1])
    if isinstance(model, (tuple, list)):
        model = next((m for m in model if isinstance(m, nn.Module)), None)
    if not isinstance(model, nn.Module):
        raise TypeError(f"load_pretrained({parts[0]!r}, {parts[1]!r}) returned {type(model).__name__}, not a model")
    return model.to(dev).eval()


def _needs_reference(model: nn.Module) -> bool | None:
    """True: the model needs a reference; False: it takes one optionally (SSEN self-similarity / no branch);
    None: it takes no reference argument at all."""
    from .models.ssen import SSENNet
    if not isinstance(model, SSENNet):
        return None
    return model.n_deform > 0 and not model.self_similarity


def _check_scale(model: nn.Module, scale) -> int:
    have = getattr(model, "scale", None)
    if scale is None:
        if have is None:
            raise ValueError("this model does not say its scale (no .scale): pass scale=S (--scale S)")
        return int(have)
    if isinstance(scale, bool) or int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    scale = int(scale)
    if have is not None and int(have) != scale:
        kind = "reference-based" if _needs_reference(model) is not None else "reference-free"
        hint = (" It is a same-size (x1) restoration model: run it with --scale 1 on an image you have already "
                "enlarged." if int(have) == 1 else "")
        raise ValueError(f"the model is a {kind} x{have} network, but x{scale} was asked for: its up-sampler "
                         f"is built for x{have} only. Use --scale {have}, or weights trained for x{scale}.{hint}")
    return scale


# ------------------------------------------------------------------------------------------- tiling

def _splits(n: int, tile: int) -> list[tuple[int, int]]:
    """``ceil(n / tile)`` pieces of [0, n) of near-equal length, each at most ``tile`` long."""
    k = max(1, math.ceil(n / tile))
    bounds = [round(i * n / k) for i in range(k + 1)]
    return list(zip(bounds, bounds[1:]))


def _tiles(h: int, w: int, tile: int, overlap: int, align: int) -> list[tuple[tuple[int, int, int, int],
                                                                             tuple[int, int, int, int]]]:
    """(core, read) windows ``(y0, y1, x0, x1)``: the cores partition the image; each read window is its core
    grown by ``overlap`` (clipped to the image), its start rounded down to a multiple of ``align``."""
    out = []
    for y0, y1 in _splits(h, tile):
        for x0, x1 in _splits(w, tile):
            ry0, rx0 = max(0, y0 - overlap), max(0, x0 - overlap)
            ry0, rx0 = ry0 - ry0 % align, rx0 - rx0 % align
            out.append(((y0, y1, x0, x1), (ry0, min(h, y1 + overlap), rx0, min(w, x1 + overlap))))
    return out


def _progress(total: int, enabled: bool, desc: str, leave: bool = True):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="tile", leave=leave)


@torch.inference_mode()
def upscale_tensor(model: nn.Module, x: torch.Tensor, scale: int, ref: torch.Tensor | None = None,
                   tile: int | None = None, overlap: int = 16, progress: bool = False) -> np.ndarray:
    """Run ``model`` on the ``1x3xHxW`` [0, 1] tensor ``x`` (on the model's device), whole or in tiles;
    return the ``uint8`` ``(sH)x(sW)x3`` result (each tile rounded as :func:`srlearn.data.to_uint8` does).

    ``ref``: the ``1x3x(sH)x(sW)`` reference of a reference-based model (cropped with each tile).
    ``tile``: the core size in input pixels (``None`` or 0: the whole image at once); ``overlap``: the
    context read on each side of a core and then discarded.
    """
    from .data import to_uint8
    if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"x must be a 1x3xHxW RGB tensor in [0, 1], got shape {tuple(x.shape)}")
    if tile is not None and (isinstance(tile, bool) or int(tile) != tile or tile < 0):
        raise ValueError(f"tile must be a positive number of pixels (or 0/None for no tiling), got {tile!r}")
    if isinstance(overlap, bool) or int(overlap) != overlap or overlap < 0:
        raise ValueError(f"overlap must be a number of pixels >= 0, got {overlap!r}")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    h, w = x.shape[-2:]
    tile = int(tile) if tile else max(h, w)
    align = int(getattr(model, "multiple", 1) or 1)   # MIRNet halves the map twice: keep its grid in step
    windows = _tiles(h, w, tile, int(overlap), align)
    out = np.empty((h * scale, w * scale, 3), dtype=np.uint8)
    bar = _progress(len(windows), progress and len(windows) > 1, "tiles", leave=False)
    try:
        for (y0, y1, x0, x1), (ry0, ry1, rx0, rx1) in windows:
            piece = x[..., ry0:ry1, rx0:rx1].to(device)
            if ref is None:
                y = model(piece)
            else:
                y = model(piece, ref[..., ry0 * scale:ry1 * scale, rx0 * scale:rx1 * scale].to(device))
            want = ((ry1 - ry0) * scale, (rx1 - rx0) * scale)
            if tuple(y.shape[-2:]) != want:
                raise ValueError(f"the model turned a {ry1 - ry0}x{rx1 - rx0} input into {tuple(y.shape[-2:])}, not "
                                 f"{want}: it is not a x{scale} network")
            core = y[..., (y0 - ry0) * scale:(y1 - ry0) * scale, (x0 - rx0) * scale:(x1 - rx0) * scale]
            out[y0 * scale:y1 * scale, x0 * scale:x1 * scale] = to_uint8(core.float().cpu())
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out


def bicubic_enlarge(lr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-bicubic enlargement of a uint8 image (``imresize``'s double path, rounded once), one channel at
    a time so that an 8K result needs a few hundred MB, not gigabytes."""
    from .data import imresize
    if scale == 1:
        return lr.copy()
    out = None
    for c in range(lr.shape[2]):
        chan = np.floor(imresize(lr[..., c], scale, mode="float") + 0.5)
        if out is None:
            out = np.empty(chan.shape + (lr.shape[2],), dtype=np.uint8)
        out[..., c] = np.clip(chan, 0, 255)
    return out


def _as_image(image, what: str = "image") -> np.ndarray:
    from .data import load_image
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, (bytes, bytearray, memoryview)):   # an uploaded file's content (notebook widget)
        import tempfile
        fd, tmp = tempfile.mkstemp(prefix="srlearn-upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(bytes(image))
            return load_image(tmp)
        finally:
            os.unlink(tmp)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{what} must be a uint8 HxWx3 RGB array (or a file path), got "
                             f"{image.dtype} {image.shape}")
        return image
    raise TypeError(f"{what} must be a file path, a file's bytes or a uint8 HxWx3 array, got "
                    f"{type(image).__name__}")


def upscale_image(model_or_weights, image, scale: int | None = None, *, reference=None, tile: int | None = None,
                  overlap: int = 16, device=None, progress: bool = False) -> Upscaled:
    """Super-resolve one image; return :class:`Upscaled` ``(sr, bicubic, lr)``, all uint8 HxWx3.

    Args:
        model_or_weights: a model, an srlearn checkpoint path, or ``"EXPERIMENT/ARM"`` (shipped weights);
            see :func:`load_upscaler`.
        image: a file path, the bytes of an image file (e.g. from an upload widget) or a uint8 HxWx3 RGB
            array: the low-resolution input, used as it is.
        scale: the factor; ``None`` takes the model's. A different factor than the model's is an error.
        reference: for SSEN, the reference image (path or array); brought to ``scale``× the input's size
            by cropping/zero-padding at the bottom/right (``srlearn.data.fit_reference``).
        tile, overlap: see :func:`upscale_tensor` (``tile=None``: the whole image at once).
        device: ``"cpu"``, ``"cuda"``, ... (default: ``srlearn._env.device()``).
    """
    from .data import fit_reference, to_tensor
    model = load_upscaler(model_or_weights, device)
    scale = _check_scale(model, scale)
    lr = _as_image(image)
    needs = _needs_reference(model)
    ref_t = None
    if reference is not None:
        if needs is None:
            raise ValueError("a reference was given, but this model takes none (only SSEN models do): drop "
                             "--reference")
        ref = _as_image(reference, "reference")
        ref_t = to_tensor(fit_reference(ref, (lr.shape[0] * scale, lr.shape[1] * scale)))[None]
    elif needs:
        raise ValueError("this SSEN model needs a reference image (--reference IMAGE / reference=...): a photo "
                         "of similar content; it was not trained for self-similarity mode")
    sr = upscale_tensor(model, to_tensor(lr)[None], scale, ref_t, tile, overlap, progress)
    return Upscaled(sr, bicubic_enlarge(lr, scale), lr)


# ------------------------------------------------------------------------------------------- output

def side_by_side(left: np.ndarray, right: np.ndarray, labels=("bicubic", "srlearn"), gap: int = 8) -> np.ndarray:
    """Two equal-size uint8 HxWx3 images next to each other, a white gap between, each labelled in its
    top-left corner (white text on a black box)."""
    from PIL import Image, ImageDraw
    if left.shape != right.shape:
        raise ValueError(f"side_by_side needs images of one shape, got {left.shape} and {right.shape}")
    h, w = left.shape[:2]
    canvas = np.full((h, 2 * w + gap, 3), 255, dtype=np.uint8)
    canvas[:, :w], canvas[:, w + gap:] = left, right
    if labels:
        im = Image.fromarray(canvas)
        draw = ImageDraw.Draw(im)
        for x, text in zip((0, w + gap), labels):
            box = draw.textbbox((x + 4, 4), text)
            draw.rectangle((box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3), fill=(0, 0, 0))
            draw.text((x + 4, 4), text, fill=(255, 255, 255))
        canvas = np.asarray(im)
    return canvas


def upscale_files(images, weights, out, scale: int | None = None, *, reference=None, tile: int | None = None,
                  overlap: int = 16, device=None, progress: bool = True) -> list[dict]:
    """Upscale each image file into ``out``: ``STEM_xS.png`` (the SR image) and ``STEM_xS_vs_bicubic.png``
    (bicubic | SR), both written atomically. Returns one dict per image (paths and sizes)."""
    from .data import save_image
    images = [Path(p) for p in images]
    if not images:
        raise ValueError("no images to upscale")
    for p in images:
        if not p.is_file():
            raise FileNotFoundError(f"no image file at {str(p)!r}")
    stems = [p.stem for p in images]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise ValueError(f"several inputs share the name(s) {dupes}: their outputs would overwrite each other; "
                         f"rename them or run them into different --out folders")
    model = load_upscaler(weights, device)
    scale = _check_scale(model, scale)
    spec = getattr(model, "srlearn_spec", None) or {}
    labels = ("bicubic" if scale > 1 else "input", f"{spec.get('name', 'model')} x{scale}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    bar = None
    if progress and len(images) > 1:
        from tqdm.auto import tqdm
        bar = tqdm(images, desc="images", unit="image")
    try:
        for p in images:
            try:
                res = upscale_image(model, p, scale, reference=reference, tile=tile, overlap=overlap,
                                    progress=progress)
            except ValueError as e:
                raise ValueError(f"{p.name}: {e}") from e
            except RuntimeError as e:
                hint = (" - process it in pieces: --tile 256 (tile=256), or smaller" if "out of memory" in str(e)
                        else "")
                raise RuntimeError(f"{p.name}: {e}{hint}") from e
            sr_path, pair_path = out / f"{p.stem}_x{scale}.png", out / f"{p.stem}_x{scale}_vs_bicubic.png"
            save_image(sr_path, res.sr)
            save_image(pair_path, side_by_side(res.bicubic, res.sr, labels=labels))
            rows.append({"image": str(p), "sr": str(sr_path), "side_by_side": str(pair_path),
                         "lr_size": res.lr.shape[:2], "sr_size": res.sr.shape[:2]})
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return rows
