"""Paired LR/HR training patches: the benchmark degradation, aligned random crops, dihedral augmentation.

The training recipe shared by EDSR, RCAN, SAN and BasicSR [sr-protocol.md §4]: the LR image is the
bicubic ("BI") degradation of a mod-cropped HR image; a training pair is a random ``p x p`` LR crop and
the ``(p*s) x (p*s)`` HR crop at the *same place* (LR corner times the scale, §8 item 16), both put
through the same one of the 8 dihedral transforms (hflip, vflip, transpose each with probability 1/2,
§8 item 17).
"""
from __future__ import annotations

import numbers

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import _checks
from .images import get_image, list_images, modcrop, to_tensor
from .resize import imresize

__all__ = ["dihedral", "dihedral_inverse", "make_lr", "paired_crop", "PairedPatchDataset", "validation_pairs",
           "draw_crop", "draw_dihedral"]


def _axes(img):
    """(H axis, W axis) of a numpy HxW / HxWxC array or a torch (..., H, W) tensor."""
    if isinstance(img, torch.Tensor):
        if img.ndim < 2:
            raise ValueError(f"dihedral needs a tensor with at least 2 dimensions (..., H, W), got {tuple(img.shape)}")
        return img.ndim - 2, img.ndim - 1
    if isinstance(img, np.ndarray):
        if img.ndim not in (2, 3):
            raise ValueError(f"dihedral takes numpy HxW or HxWxC images, got shape {img.shape}")
        return 0, 1
    raise TypeError(f"dihedral takes a numpy image or a torch tensor, got {type(img).__name__}")


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 0 <= k <= 7:
        raise ValueError(f"k must be an integer in 0..7 (bit 0: hflip, bit 1: vflip, bit 2: transpose), got {k!r}")
    return int(k)


def _flip(img, axis):
    return torch.flip(img, dims=(axis,)) if isinstance(img, torch.Tensor) else np.flip(img, axis=axis)


def _transpose(img, h, w):
    return img.transpose(h, w) if isinstance(img, torch.Tensor) else np.swapaxes(img, h, w)


def dihedral(img, k: int):
    """The k-th of the 8 dihedral transforms (EDSR/BasicSR augmentation order): with
    ``hflip = k & 1``, ``vflip = k & 2``, ``transpose = k & 4``, apply the horizontal flip (W axis), then
    the vertical flip (H axis), then swap H and W. ``k = 0`` is the identity, ``k = 5`` (hflip then
    transpose) a 90-degree rotation. Numpy ``HxW``/``HxWxC`` (returns a view) or torch ``(..., H, W)``."""
    k = _check_k(k)
    h, w = _axes(img)
    if k & 1:
        img = _flip(img, w)
    if k & 2:
        img = _flip(img, h)
    if k & 4:
        img = _transpose(img, h, w)
    return img


def dihedral_inverse(img, k: int):
    """Undo ``dihedral(., k)``: the same three involutions in reverse order (transpose, vflip, hflip)."""
    k = _check_k(k)
    h, w = _axes(img)
    if k & 4:
        img = _transpose(img, h, w)
    if k & 2:
        img = _flip(img, h)
    if k & 1:
        img = _flip(img, w)
    return img


def make_lr(hr: np.ndarray, scale: int, mode: str = "uint8"):
    """The benchmark "BI" degradation: ``(modcrop(hr, scale), LR)``, both ``uint8``.

    ``LR = imresize(modcrop(hr, scale), 1/scale, mode)`` [papers.md §0; sr-protocol.md §1.1, §8 items
    4 and 6]. ``mode="uint8"`` is MATLAB on a uint8 image (rounded and clipped after each pass: the classic
    benchmark LR files); ``mode="float"`` is the double path, rounded once at the end (half up) and
    clipped. ``LR.shape * scale == HR.shape`` holds by construction and is checked.
    """
    _checks.uint8_image(hr, "hr")
    scale = _checks.scale(scale)
    if mode not in ("uint8", "float"):
        raise ValueError(f"mode must be 'uint8' or 'float', got {mode!r}")
    hr = modcrop(hr, scale)
    lr = imresize(hr, 1.0 / scale, mode=mode)
    if mode == "float":
        lr = np.clip(np.floor(lr + 0.5), 0, 255).astype(np.uint8)
    if lr.shape[0] * scale != hr.shape[0] or lr.shape[1] * scale != hr.shape[1]:
        raise RuntimeError(f"LR {lr.shape} x {scale} does not match HR {hr.shape}")  # cannot happen: a bug
    return hr, lr


def draw_crop(seed: int, i, length: int, sizes, patch: int, margin: int = 0):
    """The patch sampler every training dataset shares: item ``i`` of a dataset of ``length`` items drawn
    from images of ``sizes`` (``[(h, w), ...]``, in the grid the corner is chosen in, e.g. LR pixels).

    All randomness comes from ``numpy.random.default_rng([seed, i])``, in this order: the image, uniformly
    (not by area, so one large photograph does not dominate small textures); the corner, uniformly among
    positions that keep a ``patch`` square ``margin`` pixels inside the image. An item therefore depends
    only on ``(seed, i)``: the same in every epoch, DataLoader worker and process. Returns
    ``(rng, {"image", "top", "left"})``; the caller draws what else it needs from ``rng`` (a reference
    level, noise) and then the dihedral transform with :func:`draw_dihedral`.
    """
    if isinstance(i, bool) or not isinstance(i, numbers.Integral):
        raise TypeError(f"dataset indices are integers, got {type(i).__name__}")
    if not -length <= i < length:
        raise IndexError(f"index {i} out of range for a dataset of length {length}")
    rng = np.random.default_rng([seed, int(i) % length])
    j = int(rng.integers(len(sizes)))
    h, w = sizes[j]
    top = int(rng.integers(margin, h - patch - margin + 1))
    left = int(rng.integers(margin, w - patch - margin + 1))
    return rng, {"image": j, "top": top, "left": left}


def draw_dihedral(rng: np.random.Generator, augment: bool) -> int:
    """The dihedral transform of an item (one of 8, uniformly), or 0 (identity) without augmentation."""
    return int(rng.integers(8)) if augment else 0


def paired_crop(lr: np.ndarray, hr: np.ndarray, top: int, left: int, lr_patch: int, scale: int):
    """The LR crop ``lr[top:top+p, left:left+p]`` and the HR crop at the same place,
    ``hr[s*top : s*(top+p), s*left : s*(left+p)]``: the corner is chosen in LR and multiplied by the scale
    (BasicSR ``paired_random_crop``; sr-protocol.md §8 item 16). Returns views."""
    p, s = int(lr_patch), int(scale)
    if hr.shape[0] != lr.shape[0] * s or hr.shape[1] != lr.shape[1] * s:
        raise ValueError(f"HR {hr.shape[:2]} is not LR {lr.shape[:2]} x scale {s}: mod-crop the HR first "
                         f"(crop, never resize, a mismatched GT)")
    if not (0 <= top <= lr.shape[0] - p and 0 <= left <= lr.shape[1] - p):
        raise ValueError(f"crop at ({top}, {left}) of size {p} does not fit in LR {lr.shape[:2]}")
    return (lr[top:top + p, left:left + p],
            hr[s * top:s * (top + p), s * left:s * (left + p)])


class PairedPatchDataset(Dataset):
    """Random aligned ``(lr, hr)`` patches from a few images, as float32 ``CxHxW`` tensors in [0, 1].

    ``images``: HxWx3 uint8 arrays and/or names from ``list_images``. For each image the HR is mod-cropped
    and its LR made once, here (``imresize(hr, 1/scale, lr_mode)``). With ``quantize_lr=True`` a float LR
    is rounded (half up) to uint8 levels, as it would be if saved as an LR PNG - the network then sees
    the same kind of input at training and at test time; ``quantize_lr=False`` keeps the exact float LR
    (useful to check alignment: ``imresize(hr_patch, 1/scale) == lr_patch`` away from the patch border).
    ``lr_mode="uint8"`` is MATLAB's uint8 path (already quantised).

    Item ``i``: an image chosen *uniformly* among the images (not by area, so that one large photograph,
    e.g. ``retina`` at 1411x1411, does not dominate the textures), an LR corner uniform among valid
    positions, the HR corner = LR corner x scale, and, with ``augment``, one of the 8 dihedral transforms
    applied to both. All randomness comes from ``numpy.random.default_rng([seed, i])``: an item depends
    only on ``(seed, i)``, so it is the same in every epoch, every DataLoader worker and every process.
    ``len()`` is ``length``; ``crop_params(i)`` says where item ``i`` came from.
    """

    def __init__(self, images, scale: int, lr_patch: int = 48, length: int = 1000, seed: int = 0,
                 augment: bool = True, lr_mode: str = "float", quantize_lr: bool = True):
        self.scale = _checks.scale(scale)
        for name, v, lo in (("lr_patch", lr_patch, 1), ("length", length, 1), ("seed", seed, 0)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if lr_mode not in ("float", "uint8"):
            raise ValueError(f"lr_mode must be 'float' or 'uint8', got {lr_mode!r}")
        if isinstance(images, (str, np.ndarray)) or not len(images):
            raise ValueError("images must be a non-empty list of HxWx3 uint8 arrays or image names "
                             "(e.g. list_images('train'))")
        self.lr_patch, self.length, self.seed = int(lr_patch), int(length), int(seed)
        self.hr_patch = self.lr_patch * self.scale
        self.augment, self.lr_mode, self.quantize_lr = bool(augment), lr_mode, bool(quantize_lr)
        self.names, self.hr, self.lr = [], [], []
        for j, item in enumerate(images):
            name, img = (item, get_image(item)) if isinstance(item, str) else (f"images[{j}]", item)
            _checks.uint8_image(img, name)
            if img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f"{name} must be HxWx3 RGB, got shape {img.shape}")
            h, w = img.shape[:2]
            if min(h, w) < self.hr_patch:
                raise ValueError(f"{name} ({h}x{w}) is too small for {self.hr_patch}x{self.hr_patch} HR patches "
                                 f"(lr_patch={self.lr_patch} x scale={self.scale}); lower lr_patch or drop it")
            if lr_mode == "uint8" or quantize_lr:
                hr, lr = make_lr(img, self.scale, mode=lr_mode)
            else:
                hr = modcrop(img, self.scale)
                lr = (imresize(hr, 1.0 / self.scale, mode="float") / 255.0).astype(np.float32)
            self.names.append(name)
            self.hr.append(np.ascontiguousarray(hr))
            self.lr.append(np.ascontiguousarray(lr))

    def __len__(self) -> int:
        return self.length

    def crop_params(self, i: int) -> dict:
        """Where item ``i`` comes from: ``{"image", "name", "top", "left", "k"}`` (LR corner, dihedral k)."""
        rng, c = draw_crop(self.seed, i, self.length, [lr.shape[:2] for lr in self.lr], self.lr_patch)
        return {**c, "name": self.names[c["image"]], "k": draw_dihedral(rng, self.augment)}

    def __getitem__(self, i: int):
        c = self.crop_params(i)
        lr, hr = paired_crop(self.lr[c["image"]], self.hr[c["image"]], c["top"], c["left"],
                             self.lr_patch, self.scale)
        lr, hr = dihedral(lr, c["k"]), dihedral(hr, c["k"])
        if lr.dtype == np.uint8:
            lr_t = to_tensor(lr)
        else:
            lr_t = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1)))
        return lr_t, to_tensor(hr)


def _center_crop(img: np.ndarray, max_size: int) -> np.ndarray:
    h, w = img.shape[:2]
    th, tw = min(h, max_size), min(w, max_size)
    top, left = (h - th) // 2, (w - tw) // 2
    return img[top:top + th, left:left + tw]


def validation_pairs(scale: int, names=None, max_size: int | None = None):
    """``[(name, lr_uint8, hr_uint8), ...]`` for held-out images (default: ``list_images("valid")``), made
    with ``make_lr(..., mode="uint8")`` - the benchmark degradation. ``max_size`` (HR pixels) first
    centre-crops each image to at most ``max_size x max_size`` to keep CPU validation fast."""
    scale = _checks.scale(scale)
    if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, numbers.Integral)
                                 or max_size < scale):
        raise ValueError(f"max_size must be an integer >= scale ({scale}) or None, got {max_size!r}")
    names = list_images("valid") if names is None else list(names)
    out = []
    for name in names:
        img = get_image(name)
        if max_size is not None:
            img = _center_crop(img, int(max_size))
        hr, lr = make_lr(img, scale, mode="uint8")
        out.append((name, lr, hr))
    return out
