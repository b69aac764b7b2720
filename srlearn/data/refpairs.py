"""Reference pairs for reference-based SR (SSEN): made from the package's offline images, or read from CUFED5.

A RefSR item is ``(lr, hr, ref)``: the LR input, its HR ground truth and an HR *reference* image whose
content may or may not resemble the input. SSEN's claim is about how the gain depends on that
resemblance, so the references here come in five similarity levels, each made from the HR window
``W`` (size ``P``) around the input by removing one more thing the two share. The names follow CUFED5's
five references per input, ordered by decreasing similarity ("XH" ... "XL"; the names come from SRNTT's
protocol as recalled, papers.md §4.3 [M]); the recipes below are ours:

* ``"XH"`` very high: ``W`` itself shifted by ``(dy, dx)``, integers uniform in ``[-shift, shift]`` HR px
  (default 8 = 2 LR px at ×4): the same content, misaligned (papers.md §6.4's "relevant" reference);
* ``"H"`` high: the XH window rotated by ±(3..12)° and zoomed by a factor in [0.8, 1.25] about its
  centre (bicubic spline resampling): the same content, deformed;
* ``"M"`` medium: the H reference with its colours changed (per-channel gain in [0.6, 1.4] and gamma in
  [0.6, 1.6], then a random channel permutation): the same shapes in other colours;
* ``"L"`` low: another window of the *same* image that does not overlap ``W``: the same textures and
  colours, other content;
* ``"XL"`` very low: a window of *another* image (papers.md §6.4's "irrelevant" reference).

Degradation. The synthetic pairs use the package's MATLAB bicubic (``make_lr``: float path rounded once
for training, uint8 path for validation, like :mod:`srlearn.data.patches`), so their numbers carry
``protocol(scale)``. CUFED5 (:func:`cufed5_pairs`) is made as the RefSR literature makes it: LR with
**PIL bicubic**, not MATLAB (C2-Matching's ``bicubic_model: PIL``; sr-protocol.md §1.6) — label those
numbers ``protocol(4, degradation="PIL-BI")``.
"""
from __future__ import annotations

import functools
import math
import numbers
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from .. import _checks
from .images import get_image, list_images, load_image, modcrop, to_tensor
from .patches import dihedral, draw_crop, draw_dihedral, make_lr

__all__ = ["LEVELS", "LEVEL_NAMES", "make_reference", "RefPairDataset", "reference_pairs", "fit_reference",
           "pil_bicubic_down", "cufed5_pairs"]

LEVELS = ("XH", "H", "M", "L", "XL")
LEVEL_NAMES = {"XH": "very high", "H": "high", "M": "medium", "L": "low", "XL": "very low"}


def _check_level(level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"unknown similarity level {level!r}; levels are {LEVELS} "
                         f"({', '.join(f'{k}: {v}' for k, v in LEVEL_NAMES.items())})")
    return level


def _warp(img: np.ndarray, cy: float, cx: float, size: int, angle_deg: float, zoom: float) -> np.ndarray:
    """The ``size``² window centred at (cy, cx), rotated by ``angle_deg`` and zoomed by ``zoom`` (>1: closer).

    Output pixel u (centred coordinates) reads the source at ``c + R(angle)·u / zoom``; cubic spline
    interpolation on a local region (mirror outside the image), rounded to uint8.
    """
    from scipy import ndimage   # here, not at import time: `import srlearn.data` stays light
    h, w = img.shape[:2]
    half = (size - 1) / 2
    reach = int(math.ceil(half * math.sqrt(2) / zoom)) + 4
    y0, y1 = max(0, int(cy) - reach), min(h, int(cy) + reach + 2)
    x0, x1 = max(0, int(cx) - reach), min(w, int(cx) + reach + 2)
    region = img[y0:y1, x0:x1].astype(np.float64)
    v, u = np.mgrid[0:size, 0:size].astype(np.float64) - half
    a = math.radians(angle_deg)
    sy = cy - y0 + (math.cos(a) * v + math.sin(a) * u) / zoom
    sx = cx - x0 + (-math.sin(a) * v + math.cos(a) * u) / zoom
    out = np.stack([ndimage.map_coordinates(region[..., ch], [sy, sx], order=3, mode="mirror")
                    for ch in range(img.shape[2])], axis=-1)
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def _recolour(img: np.ndarray, gains, gammas, perm) -> np.ndarray:
    x = img.astype(np.float64) / 255.0
    x = np.clip(x * np.asarray(gains), 0, 1) ** np.asarray(gammas)
    return np.clip(np.floor(x[..., list(perm)] * 255 + 0.5), 0, 255).astype(np.uint8)


def _window_outside(rng, h: int, w: int, size: int, top: int, left: int):
    """A random size² window of an h×w image that does not overlap [top, top+size) × [left, left+size)."""
    for _ in range(200):
        t, l = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        if abs(t - top) >= size or abs(l - left) >= size:
            return t, l
    raise ValueError(f"a {h}x{w} image has no {size}x{size} window clear of the input window: it needs at least "
                     f"{2 * size} pixels along one side for the 'L' level")


def make_reference(image: np.ndarray, top: int, left: int, size: int, level: str, rng: np.random.Generator,
                   other: np.ndarray | None = None, shift: int = 8) -> tuple[np.ndarray, dict]:
    """The ``level`` reference for the HR window ``image[top:top+size, left:left+size]`` (see module docstring).

    ``rng`` draws the random parameters; ``other`` is the image an ``"XL"`` reference is cut from. The
    window must leave ``shift`` pixels of margin (the XH shift stays inside the image). Returns
    ``(reference uint8 size×size×3, params)``; ``params`` says what was drawn (e.g. ``dy``, ``dx``, ``angle``).
    """
    _check_level(level)
    h, w = image.shape[:2]
    if not (shift <= top <= h - size - shift and shift <= left <= w - size - shift):
        raise ValueError(f"window ({top}, {left}) of size {size} needs {shift} px of margin in a {h}x{w} image")
    params: dict = {"level": level}
    if level in ("XH", "H", "M"):
        dy, dx = (int(v) for v in rng.integers(-shift, shift + 1, size=2))
        params.update(dy=dy, dx=dx)
        if level == "XH":
            ref = image[top + dy:top + dy + size, left + dx:left + dx + size].copy()
        else:
            angle = float(rng.uniform(3, 12) * rng.choice([-1, 1]))
            zoom = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
            params.update(angle=angle, zoom=zoom)
            ref = _warp(image, top + dy + (size - 1) / 2, left + dx + (size - 1) / 2, size, angle, zoom)
            if level == "M":
                gains, gammas = rng.uniform(0.6, 1.4, 3), rng.uniform(0.6, 1.6, 3)
                perm = [int(p) for p in rng.permutation(3)]
                params.update(gains=gains.tolist(), gammas=gammas.tolist(), perm=perm)
                ref = _recolour(ref, gains, gammas, perm)
    elif level == "L":
        t, l = _window_outside(rng, h, w, size, top, left)
        params.update(top=t, left=l)
        ref = image[t:t + size, l:l + size].copy()
    else:
        if other is None:
            raise ValueError("an 'XL' reference is cut from another image: pass other=")
        oh, ow = other.shape[:2]
        if oh < size or ow < size:
            raise ValueError(f"the other image ({oh}x{ow}) is smaller than the {size}x{size} window")
        t, l = int(rng.integers(oh - size + 1)), int(rng.integers(ow - size + 1))
        params.update(top=t, left=l)
        ref = other[t:t + size, l:l + size].copy()
    return np.ascontiguousarray(ref), params


def _images(images) -> tuple[list[str], list[np.ndarray]]:
    if isinstance(images, (str, np.ndarray)) or not len(images):
        raise ValueError("images must be a non-empty list of HxWx3 uint8 arrays or image names (list_images())")
    names, arrays = [], []
    for j, item in enumerate(images):
        name, img = (item, get_image(item)) if isinstance(item, str) else (f"images[{j}]", np.asarray(item))
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"{name} must be an HxWx3 uint8 image, got {img.dtype} {img.shape}")
        names.append(name)
        arrays.append(img)
    return names, arrays


@functools.lru_cache(maxsize=32)
def _prepared(name: str, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(HR mod-cropped, LR) of a named image, float path rounded: made once per process (read-only)."""
    hr, lr = make_lr(get_image(name), scale, mode="float")
    hr, lr = np.ascontiguousarray(hr), np.ascontiguousarray(lr)
    hr.flags.writeable = lr.flags.writeable = False
    return hr, lr


def _int(name, v, lo):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


class RefPairDataset(Dataset):
    """Random ``(lr, hr, ref)`` training triples, float32 CHW in [0, 1]; ``ref`` is HR-sized (``scale``× ``lr``).

    Item ``i``: an image chosen uniformly, an LR window of ``lr_patch``² (the HR window is it × ``scale``,
    with ``shift`` HR px of margin), a similarity level drawn from ``levels`` with probabilities
    ``weights`` (default uniform), its reference (:func:`make_reference`; "XL" from another image of the
    list), and with ``augment`` one of the 8 dihedral transforms applied to all three (the geometry between
    input and reference is kept). LR = MATLAB bicubic of the mod-cropped image, float path rounded to uint8
    levels (:func:`~srlearn.data.patches.make_lr` with ``mode="float"``), computed once per image.

    All randomness comes from ``numpy.random.default_rng([seed, i])``: an item depends only on
    ``(seed, i)``, like :class:`~srlearn.data.patches.PairedPatchDataset`. ``params(i)`` tells what item
    ``i`` is made of (level, window, shift, ...).
    """

    def __init__(self, images=None, scale: int = 4, lr_patch: int = 16, length: int = 1000, seed: int = 0,
                 levels=LEVELS, weights=None, shift: int = 8, augment: bool = True):
        self.scale = _checks.scale(scale)
        self.lr_patch, self.length = _int("lr_patch", lr_patch, 1), _int("length", length, 1)
        self.seed, self.shift = _int("seed", seed, 0), _int("shift", shift, 0)
        self.levels = tuple(_check_level(v) for v in levels)
        if not self.levels:
            raise ValueError("levels must name at least one similarity level")
        if weights is None:
            weights = [1.0] * len(self.levels)
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(self.levels),) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"weights must be {len(self.levels)} non-negative numbers, not all zero; got {weights!r}")
        self.weights = weights / weights.sum()
        self.augment = bool(augment)
        images_in = list_images("train") if images is None else images
        self.names, images = _images(images_in)
        if "XL" in self.levels and len(images) < 2:
            raise ValueError("the 'XL' level cuts references from another image: give at least two images")
        self.hr_patch = self.lr_patch * self.scale
        self.hr, self.lr = [], []
        for item, name, img in zip(images_in, self.names, images):
            hr, lr = _prepared(item, self.scale) if isinstance(item, str) else make_lr(img, self.scale, mode="float")
            if min(hr.shape[:2]) < self.hr_patch + 2 * self.shift:
                raise ValueError(f"{name} ({hr.shape[0]}x{hr.shape[1]}) is too small for "
                                 f"{self.hr_patch}x{self.hr_patch} "
                                 f"HR windows with {self.shift} px of margin; lower lr_patch or shift")
            self.hr.append(np.ascontiguousarray(hr))
            self.lr.append(np.ascontiguousarray(lr))

    def __len__(self) -> int:
        return self.length

    def _draw(self, i: int):
        m = -(-self.shift // self.scale)                      # LR margin covering `shift` HR px
        rng, c = draw_crop(self.seed, i, self.length, [lr.shape[:2] for lr in self.lr], self.lr_patch, margin=m)
        j = c["image"]
        level = self.levels[int(rng.choice(len(self.levels), p=self.weights))]
        other = None
        if level == "XL":
            other = int(rng.integers(len(self.hr) - 1))
            other += other >= j                                # any image but j
        k = draw_dihedral(rng, self.augment)
        return rng, {**c, "name": self.names[j], "level": level, "other": other, "k": k}

    def params(self, i: int) -> dict:
        """What item ``i`` is made of: image, LR window, level, dihedral k, and the reference's parameters."""
        rng, p = self._draw(i)
        _, ref_params = self._reference(rng, p)
        return {**p, "ref": ref_params}

    def _reference(self, rng, p):
        s, size = self.scale, self.hr_patch
        other = self.hr[p["other"]] if p["other"] is not None else None
        return make_reference(self.hr[p["image"]], s * p["top"], s * p["left"], size, p["level"], rng, other,
                              self.shift)

    def __getitem__(self, i: int):
        rng, p = self._draw(i)
        ref, _ = self._reference(rng, p)
        s, t, l, n = self.scale, p["top"], p["left"], self.lr_patch
        lr = self.lr[p["image"]][t:t + n, l:l + n]
        hr = self.hr[p["image"]][s * t:s * (t + n), s * l:s * (l + n)]
        return tuple(to_tensor(np.ascontiguousarray(dihedral(a, p["k"]))) for a in (lr, hr, ref))


def reference_pairs(level: str, scale: int = 4, names=None, size: int = 96, crops: int = 1, seed: int = 0,
                    shift: int = 8) -> list[tuple]:
    """Held-out RefSR items ``[(name, lr_uint8, hr_uint8, ref_uint8), ...]`` at one similarity ``level``.

    For each image of ``names`` (default ``list_images("valid")``) and ``k < crops``: an HR window of
    ``size``² (a multiple of ``scale``) at a position drawn from ``default_rng([seed, image, k])``, its LR by
    the benchmark degradation (``make_lr(mode="uint8")``, MATLAB's uint8 path), and the ``level``
    reference; an "XL" reference comes from the next image of the list. The windows and the random
    parameters do not depend on ``level``, so the five levels share the same inputs: their scores differ
    only by the reference. Names are ``"LEVEL/image#k"``.
    """
    _check_level(level)
    scale = _checks.scale(scale)
    size, crops = _int("size", size, scale), _int("crops", crops, 1)
    if size % scale:
        raise ValueError(f"size must be a multiple of the scale ({scale}), got {size}")
    labels, images = _images(list_images("valid") if names is None else names)
    if level == "XL" and len(images) < 2:
        raise ValueError("the 'XL' level cuts references from another image: give at least two images")
    out = []
    for j, (label, img) in enumerate(zip(labels, images)):
        h, w = img.shape[:2]
        if min(h, w) < size + 2 * shift:
            raise ValueError(f"{label} ({h}x{w}) is too small for {size}x{size} windows with {shift} px of margin")
        for k in range(crops):
            rng = np.random.default_rng([seed, j, k])
            top, left = int(rng.integers(shift, h - size - shift + 1)), int(rng.integers(shift, w - size - shift + 1))
            ref_rng = np.random.default_rng([seed, j, k, 1])
            ref, _ = make_reference(img, top, left, size, level, ref_rng, images[(j + 1) % len(images)], shift)
            hr, lr = make_lr(img[top:top + size, left:left + size], scale, mode="uint8")
            out.append((f"{level}/{label}#{k}", lr, hr, ref))
    return out


def fit_reference(ref: np.ndarray, shape) -> np.ndarray:
    """Crop (bottom/right) or zero-pad (bottom/right) a reference image to ``shape`` = (H, W).

    SSEN's deformable layers align the reference *at the input's size*, so a reference of another size
    must be brought to it. C2-Matching zero-pads input and reference to a common size instead
    (sr-protocol.md §1.6), which its network accepts; ours needs the input's size, so we crop or pad
    the reference only and leave the input untouched.
    """
    h, w = int(shape[0]), int(shape[1])
    ref = np.asarray(ref)
    out = np.zeros((h, w) + ref.shape[2:], dtype=ref.dtype)
    hh, ww = min(h, ref.shape[0]), min(w, ref.shape[1])
    out[:hh, :ww] = ref[:hh, :ww]
    return out


def pil_bicubic_down(img: np.ndarray, scale: int) -> np.ndarray:
    """``img`` shrunk by ``scale`` with PIL's bicubic (``Image.BICUBIC``, antialiased): the RefSR LR."""
    scale = _checks.scale(scale)
    h, w = img.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"mod-crop the image to a multiple of {scale} first, got {h}x{w}")
    return np.asarray(Image.fromarray(img).resize((w // scale, h // scale), Image.BICUBIC))


def cufed5_pairs(folder, scale: int = 4, ref_index: int = 1, limit: int | None = None) -> list[tuple]:
    """CUFED5 as evaluation items ``[(id, lr_uint8, hr_uint8, ref_uint8), ...]`` for users who downloaded it.

    ``folder`` holds ``{id}_0.png`` (HR input) and ``{id}_1.png`` ... ``{id}_5.png`` (references by
    decreasing similarity; the standard protocol uses ``_1``, ``ref_index=1``) — paired by
    :func:`srlearn.data.registry.pair_cufed5`. HR is mod-cropped to ``scale``; LR is **PIL bicubic**, as
    the RefSR literature makes it (sr-protocol.md §1.6), not the MATLAB kernel of the SISR benchmarks; the
    reference is brought to the HR size with :func:`fit_reference`. srlearn never downloads CUFED5 (its
    host is Google Drive; see ``srlearn.data.registry.fetch("CUFED5")`` for the manual steps).
    """
    from .registry import pair_cufed5
    scale = _checks.scale(scale)
    if isinstance(ref_index, bool) or ref_index not in (1, 2, 3, 4, 5):
        raise ValueError(f"ref_index must be 1..5 (CUFED5's references, most similar first), got {ref_index!r}")
    groups = pair_cufed5(Path(folder), n_refs=ref_index)
    out = []
    for hr_path, refs in groups[:limit]:
        hr = np.ascontiguousarray(modcrop(load_image(hr_path), scale))
        ref = fit_reference(load_image(refs[ref_index - 1]), hr.shape[:2])
        out.append((hr_path.name[:-len("_0.png")], pil_bicubic_down(hr, scale), hr, ref))
    return out
