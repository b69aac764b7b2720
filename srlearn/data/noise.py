"""Colour Gaussian denoising data: noisy/clean patches for training and held-out pairs for validation.

The synthetic task MIRNet's small-scale replication uses (papers.md §6.3): additive white Gaussian
noise of standard deviation σ (in 8-bit grey levels, σ = 25 by default), drawn independently for every
pixel and channel, added to the clean uint8 image; the noisy image is then clipped to [0, 255] and
rounded half up to uint8, as it would be if saved as a PNG. The network sees the same kind of input at
training and at test time, and the evaluation pipeline (which takes uint8 inputs) scores the noisy image
itself as the "noisy input" baseline. Clipping makes the noise slightly non-Gaussian in near-black and
near-white regions; the classical AWGN benchmarks (e.g. DnCNN's) keep the unclipped float noisy image,
so absolute PSNRs are not comparable with theirs.

Every draw comes from ``numpy.random.default_rng([seed, i, ...])``: a training item depends only on
``(seed, i)`` and a validation image only on ``(seed, its name)``.
"""
from __future__ import annotations

import numbers
import zlib

import numpy as np
from torch.utils.data import Dataset

from .images import get_image, list_images, to_tensor
from .patches import _center_crop, dihedral, draw_crop, draw_dihedral

__all__ = ["add_gaussian_noise", "NoisyPatchDataset", "noisy_validation_pairs"]


def _check_sigma(sigma) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not 0 <= sigma <= 255:
        raise ValueError(f"sigma is the noise standard deviation in grey levels (0..255, e.g. 25), got {sigma!r}")
    return float(sigma)


def add_gaussian_noise(img: np.ndarray, sigma: float = 25.0, rng=None) -> np.ndarray:
    """``uint8(clip(round_half_up(img + σ·n), 0, 255))`` with n ~ N(0, 1) per pixel and channel.

    ``img``: uint8 HxWx3 (or HxW); ``rng``: a ``numpy.random.Generator`` or a seed (default 0).
    """
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise TypeError(f"add_gaussian_noise takes a uint8 image, got {getattr(img, 'dtype', type(img).__name__)}")
    sigma = _check_sigma(sigma)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(0 if rng is None else rng)
    noisy = img.astype(np.float64) + sigma * rng.standard_normal(img.shape)
    return np.clip(np.floor(noisy + 0.5), 0, 255).astype(np.uint8)


class NoisyPatchDataset(Dataset):
    """Random ``(noisy, clean)`` patches, float32 ``3xPxP`` tensors in [0, 1], from a few images.

    ``images``: names from ``list_images`` and/or uint8 HxWx3 arrays (default: the training split).
    Item ``i``: an image chosen uniformly, a uniform ``patch x patch`` crop, with ``augment`` one of the
    8 dihedral transforms, then fresh noise of ``sigma`` grey levels (``add_gaussian_noise``). All of it
    from ``numpy.random.default_rng([seed, i])``, so an item is the same in every epoch and worker, and
    two seeds see different crops *and* different noise. ``crop_params(i)`` says where item i came from.
    """

    def __init__(self, images=None, patch: int = 64, length: int = 1000, sigma: float = 25.0, seed: int = 0,
                 augment: bool = True):
        for name, v, lo in (("patch", patch, 1), ("length", length, 1), ("seed", seed, 0)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        self.patch, self.length, self.seed, self.augment = int(patch), int(length), int(seed), bool(augment)
        self.sigma = _check_sigma(sigma)
        images = list_images("train") if images is None else images
        if isinstance(images, (str, np.ndarray)) or not len(images):
            raise ValueError("images must be a non-empty list of image names or uint8 HxWx3 arrays")
        self.names, self.images = [], []
        for j, item in enumerate(images):
            name, img = (item, get_image(item)) if isinstance(item, str) else (f"images[{j}]", item)
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f"{name} must be a uint8 HxWx3 image, got {getattr(img, 'dtype', '?')} "
                                 f"{getattr(img, 'shape', '')}")
            if min(img.shape[:2]) < self.patch:
                raise ValueError(f"{name} ({img.shape[0]}x{img.shape[1]}) is smaller than the {self.patch}-pixel patch")
            self.names.append(name)
            self.images.append(np.ascontiguousarray(img))

    def __len__(self) -> int:
        return self.length

    def crop_params(self, i: int) -> dict:
        """``{"image", "name", "top", "left", "k"}`` of item ``i`` (k: the dihedral transform)."""
        params, _ = self._draw(i)
        return params

    def _draw(self, i: int):
        """Item ``i``'s crop parameters and its generator, positioned to draw the noise next."""
        rng, c = draw_crop(self.seed, i, self.length, [im.shape[:2] for im in self.images], self.patch)
        return {**c, "name": self.names[c["image"]], "k": draw_dihedral(rng, self.augment)}, rng

    def __getitem__(self, i: int):
        c, rng = self._draw(i)
        clean = self.images[c["image"]][c["top"]:c["top"] + self.patch, c["left"]:c["left"] + self.patch]
        clean = np.ascontiguousarray(dihedral(clean, c["k"]))
        noisy = add_gaussian_noise(clean, self.sigma, rng)   # the same generator, continued
        return to_tensor(noisy), to_tensor(clean)


def noisy_validation_pairs(sigma: float = 25.0, names=None, max_size: int | None = None, seed: int = 0):
    """``[(name, noisy_uint8, clean_uint8), ...]`` for held-out images (default ``list_images("valid")``),
    each centre-cropped to at most ``max_size`` pixels a side first; the noise of image ``name`` comes
    from ``default_rng([seed, crc32(name)])``, so it is the same in every run and every process."""
    sigma = _check_sigma(sigma)
    names = list_images("valid") if names is None else list(names)
    out = []
    for name in names:
        clean = get_image(name)
        if max_size is not None:
            clean = np.ascontiguousarray(_center_crop(clean, int(max_size)))
        rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])
        out.append((name, add_gaussian_noise(clean, sigma, rng), clean))
    return out
