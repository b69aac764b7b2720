"""The field's data, when it is on this machine: DIV2K HR for training, Set5 / Set14 / B100 / Urban100 for testing.

Nothing here downloads. A folder is found, in this order:

* DIV2K training images: ``$SRLEARN_DIV2K`` (a folder holding ``DIV2K_train_HR/0001.png ...``, or the
  ``DIV2K_train_HR`` folder itself), else the registry's copy of ``DIV2K_train_HR``
  (:func:`srlearn.data.registry.local_copy`: a ``register_local`` folder or an extracted download);
* benchmark sets: ``$SRLEARN_BENCHMARK`` (EDSR's ``benchmark.tar`` layout: ``Set5/HR/baby.png``,
  ``Set14/HR/...``, ``B100/HR/...``, ``Urban100/HR/...``), else the registry's ``benchmark`` copy.

A variable that is set but names a folder without that layout is an error (the user asked for it); a
missing copy is not: :func:`div2k_train_dir` and :func:`benchmark_dir` return None and the caller falls
back to the offline images and says so.

Training patches (:class:`HRPatchDataset`) are cut from the HR images held in memory, and each LR patch
is made by the package's MATLAB-exact bicubic (``imresize``, the double path rounded once, as
:class:`~srlearn.data.patches.PairedPatchDataset`) of the HR region around the patch with a margin of
:data:`LR_MARGIN` LR pixels, which gives exactly the pixels of the whole image's LR (each LR pixel reads
HR pixels within 2 × scale of its centre; at an image border the region stops at the border, where both
mirror the same pixels). Test pairs (:func:`benchmark_pairs`) follow the protocol: HR mod-cropped, LR by
MATLAB's uint8 path (``make_lr(mode="uint8")``), named ``"SET/stem"``.
"""
from __future__ import annotations

import functools
import numbers
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from .. import _checks
from .images import load_image, to_tensor
from .patches import dihedral, draw_crop, draw_dihedral, make_lr
from .resize import imresize

__all__ = ["BENCHMARK_SETS", "LR_MARGIN", "div2k_train_dir", "div2k_train_images", "benchmark_dir",
           "benchmark_sets", "benchmark_pairs", "HRPatchDataset", "load_hr_images"]

#: The four test sets of the SR tables, in the order papers print them.
BENCHMARK_SETS = ("Set5", "Set14", "B100", "Urban100")
#: LR pixels of context around a training patch for its LR to equal the whole image's (kernel reach is 2).
LR_MARGIN = 3
_PNG_DIGITS = "[0-9][0-9][0-9][0-9].png"


def _env_dir(var: str) -> Path | None:
    value = os.environ.get(var, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{var}={value!r} is not a folder; point it at the folder that holds the data "
                                f"or unset it to use the offline images")
    return path


def div2k_train_dir() -> Path | None:
    """The folder of DIV2K training HR PNGs (``0001.png`` ...), or None when there is none on this machine."""
    root = _env_dir("SRLEARN_DIV2K")
    if root is not None:
        for cand in (root / "DIV2K_train_HR", root):
            if cand.is_dir() and any(cand.glob(_PNG_DIGITS)):
                return cand
        raise FileNotFoundError(f"SRLEARN_DIV2K={str(root)!r} holds no DIV2K_train_HR/0001.png ...: expected "
                                f"{root}/DIV2K_train_HR/0001.png (DIV2K_train_HR.zip unzipped there)")
    from . import registry
    return registry.local_copy("DIV2K_train_HR")


def div2k_train_images(folder=None, limit: int | None = None) -> list[Path]:
    """The DIV2K training PNGs of ``folder`` (default :func:`div2k_train_dir`), sorted; the first ``limit``."""
    folder = Path(folder) if folder is not None else div2k_train_dir()
    if folder is None:
        raise FileNotFoundError("no DIV2K training images on this machine: set SRLEARN_DIV2K=DIR (DIR/DIV2K_train_HR/"
                                "0001.png ...) or fetch them with srlearn.data.registry.fetch('DIV2K_train_HR')")
    files = sorted(folder.glob(_PNG_DIGITS))
    if not files:
        raise FileNotFoundError(f"no DIV2K PNGs (0001.png ...) in {folder}")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1:
            raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
        files = files[:int(limit)]
    return files


def benchmark_dir() -> Path | None:
    """The folder holding ``Set5/HR/*.png`` (and the other sets), or None when there is none on this machine."""
    root = _env_dir("SRLEARN_BENCHMARK")
    if root is not None:
        for cand in (root, root / "benchmark"):
            if any((cand / s / "HR").is_dir() for s in BENCHMARK_SETS):
                return cand
        raise FileNotFoundError(f"SRLEARN_BENCHMARK={str(root)!r} holds none of {', '.join(BENCHMARK_SETS)} in EDSR's "
                                f"layout: expected {root}/Set5/HR/baby.png, {root}/Set14/HR/..., {root}/B100/HR/..., "
                                f"{root}/Urban100/HR/... (benchmark.tar extracted there)")
    from . import registry
    return registry.local_copy("benchmark")


def benchmark_sets(root=None) -> list[str]:
    """Which of :data:`BENCHMARK_SETS` ``root`` (default :func:`benchmark_dir`) holds, in the papers' order."""
    root = Path(root) if root is not None else benchmark_dir()
    if root is None:
        return []
    return [s for s in BENCHMARK_SETS if (root / s / "HR").is_dir() and any((root / s / "HR").glob("*.png"))]


def benchmark_pairs(scale: int, root=None, sets=None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``[("SET/stem", lr_uint8, hr_uint8), ...]`` of the benchmark sets, by the protocol: the whole HR image
    mod-cropped to the scale, its LR by MATLAB's uint8 bicubic path (EDSR's LR files are not used: how they
    were made is not documented, sr-protocol.md §3.3). Grey images are replicated to RGB (``load_image``)."""
    scale = _checks.scale(scale)
    root = Path(root) if root is not None else benchmark_dir()
    if root is None:
        raise FileNotFoundError("no benchmark sets on this machine: set SRLEARN_BENCHMARK=DIR (DIR/Set5/HR/baby.png ...)")
    available = benchmark_sets(root)
    sets = available if sets is None else list(sets)
    missing = [s for s in sets if s not in available]
    if missing:
        raise FileNotFoundError(f"{root} has no {missing} (found: {available}); expected {root}/SET/HR/*.png")
    out = []
    for s in sets:
        for f in sorted((root / s / "HR").glob("*.png")):
            hr, lr = make_lr(load_image(f), scale, mode="uint8")
            out.append((f"{s}/{f.stem}", lr, hr))
    return out


def _read_readonly(path: Path) -> np.ndarray:
    img = load_image(path)
    img.flags.writeable = False
    return img


@functools.lru_cache(maxsize=2)
def _load_cached(paths: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:   # PNG decoding releases the GIL
        return tuple(pool.map(_read_readonly, [Path(p) for p in paths]))


def load_hr_images(paths) -> tuple[np.ndarray, ...]:
    """Decode ``paths`` (in parallel threads) into read-only uint8 arrays, once per process: the same list
    asked again (every arm and seed of a run) is served from memory. DIV2K's 800 images take ~6.6 GB."""
    paths = tuple(str(Path(p).resolve()) for p in paths)
    if not paths:
        raise ValueError("no image paths given")
    return _load_cached(paths)


class HRPatchDataset(Dataset):
    """Random aligned ``(lr, hr)`` float32 CHW patches of HR images held in memory (e.g. DIV2K), LR made per patch.

    Item ``i`` (all randomness from ``numpy.random.default_rng([seed, i])``, as
    :class:`~srlearn.data.patches.PairedPatchDataset`): an image chosen uniformly, an LR corner uniform over
    the mod-cropped image's LR grid, the HR patch at ``scale`` × that corner, its LR patch by
    ``imresize(·, 1/scale)`` of the surrounding region (the double path, rounded half up to uint8 levels:
    identical to cropping the whole image's LR, see the module docstring), and with ``augment`` one of the 8
    dihedral transforms applied to both. ``images``: uint8 HxWx3 arrays or image file paths (decoded once
    per process by :func:`load_hr_images`).
    """

    def __init__(self, images, scale: int, lr_patch: int = 48, length: int = 1000, seed: int = 0,
                 augment: bool = True, names=None):
        self.scale = _checks.scale(scale)
        for name, v, lo in (("lr_patch", lr_patch, 1), ("length", length, 1), ("seed", seed, 0)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        images = list(images)
        if not images:
            raise ValueError("images must be a non-empty list of HxWx3 uint8 arrays or image paths")
        if all(isinstance(x, (str, os.PathLike)) for x in images):
            self.names = [Path(x).stem for x in images] if names is None else list(names)
            images = list(load_hr_images(images))
        else:
            self.names = [f"images[{j}]" for j in range(len(images))] if names is None else list(names)
        self.lr_patch, self.length, self.seed, self.augment = int(lr_patch), int(length), int(seed), bool(augment)
        self.hr_patch = self.lr_patch * self.scale
        self.images = []
        for name, img in zip(self.names, images):
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f"{name} must be an HxWx3 uint8 image, got {getattr(img, 'dtype', type(img))} "
                                 f"{getattr(img, 'shape', '')}")
            if min(img.shape[:2]) // self.scale < self.lr_patch:
                raise ValueError(f"{name} ({img.shape[0]}x{img.shape[1]}) is too small for {self.hr_patch}² HR "
                                 f"patches (lr_patch={self.lr_patch} × scale={self.scale}); lower lr_patch or drop it")
            self.images.append(img)

    def __len__(self) -> int:
        return self.length

    def crop_params(self, i: int) -> dict:
        """Where item ``i`` comes from: ``{"image", "name", "top", "left", "k"}`` (LR corner, dihedral k)."""
        sizes = [(im.shape[0] // self.scale, im.shape[1] // self.scale) for im in self.images]   # the LR grid
        rng, c = draw_crop(self.seed, i, self.length, sizes, self.lr_patch)
        return {**c, "name": self.names[c["image"]], "k": draw_dihedral(rng, self.augment)}

    def patch(self, j: int, top: int, left: int) -> tuple[np.ndarray, np.ndarray]:
        """The uint8 ``(lr, hr)`` patch with LR corner ``(top, left)`` of image ``j`` (no augmentation)."""
        s, p, m = self.scale, self.lr_patch, LR_MARGIN
        img = self.images[j]
        h, w = (d // s for d in img.shape[:2])
        t0, l0 = max(0, top - m), max(0, left - m)
        t1, l1 = min(h, top + p + m), min(w, left + p + m)
        region = img[s * t0:s * t1, s * l0:s * l1]
        lr = np.clip(np.floor(imresize(region, 1.0 / s, mode="float") + 0.5), 0, 255).astype(np.uint8)
        lr = lr[top - t0:top - t0 + p, left - l0:left - l0 + p]
        hr = img[s * top:s * (top + p), s * left:s * (left + p)]
        return lr, hr

    def __getitem__(self, i: int):
        c = self.crop_params(i)
        lr, hr = self.patch(c["image"], c["top"], c["left"])
        return to_tensor(dihedral(lr, c["k"])), to_tensor(dihedral(hr, c["k"]))
