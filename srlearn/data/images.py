"""Images: reading and writing them, mod-cropping, tensor conversion, and the images srlearn trains on.

Conventions: an *image* is a numpy ``HxWx3`` ``uint8`` array in RGB order (what benchmark PNGs hold); a
*tensor* is ``float32`` ``CxHxW`` (or ``NxCxHxW``) in [0, 1], which every srlearn model takes.

The images need no network: the RGB sample images stored inside the scikit-image wheel, matplotlib's
``grace_hopper.jpg``, and procedurally generated textures (``texture``). ``list_images(split)`` names
them; ``get_image(name)`` returns one. DIV2K and the benchmark sets are in ``srlearn.data.registry``.
"""
from __future__ import annotations

import functools
import numbers
import os
import warnings

import numpy as np
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError

from .. import _checks, _files

__all__ = ["load_image", "save_image", "modcrop", "to_tensor", "to_uint8",
           "texture", "TEXTURE_KINDS", "list_images", "get_image"]


# --------------------------------------------------------------------------- files

def load_image(path) -> np.ndarray:
    """Read an image file as ``HxWx3`` ``uint8`` RGB.

    Grey (``L``, 1-bit) is replicated to 3 channels, as the RCAN/SAN scripts do before resizing
    [sr-protocol.md §1.1]; an alpha channel is dropped with a warning (it is not composited onto a
    background); 16-bit grey images are scaled to 8 bits with ``round(v * 255 / 65535)`` (half up). 16-bit
    *colour* files are reduced to 8 bits by Pillow itself, which keeps the high byte (``v // 256``), so
    they come with a warning. Palette images are expanded to RGB. Other modes (CMYK, float, ...) raise
    ``ValueError``: convert them to RGB first.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no image file at {path!r}")
    try:
        with Image.open(path) as im:
            rawmodes = " ".join(str(t[3]) for t in (im.tile or []))
            im.load()
            mode = im.mode
            if mode in ("RGB", "RGBA") and ";16" in rawmodes:
                warnings.warn(f"{path!r}: 16-bit colour image; Pillow decodes it to 8 bits by keeping the high "
                              f"byte (truncation: up to 1 level below rounding)", stacklevel=2)
            if mode == "P":                     # palette: expand, keeping transparency if it has any
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                mode = im.mode
            elif mode == "PA":
                im = im.convert("RGBA")
                mode = "RGBA"
            if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
                arr = np.asarray(im).astype(np.float64)
                if arr.min() < 0 or arr.max() > 65535:
                    raise ValueError(f"{path!r}: 32-bit integer image with values outside 0..65535; "
                                     f"convert it to 8-bit RGB first")
                arr = np.floor(arr * (255.0 / 65535.0) + 0.5).astype(np.uint8)
            elif mode in ("1", "L", "LA", "RGB", "RGBA"):
                arr = np.asarray(im.convert("L") if mode == "1" else im)
            else:
                raise ValueError(f"{path!r}: unsupported image mode {mode!r}; convert it to RGB (e.g. with "
                                 f"Pillow: Image.open(p).convert('RGB').save(...))")
    except UnidentifiedImageError:
        raise ValueError(f"{path!r} is not an image file Pillow can read (PNG, JPEG, BMP, TIFF, ...)") from None
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        warnings.warn(f"{path!r}: alpha channel dropped (not composited)", stacklevel=2)
        arr = arr[:, :, :-1]
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr, dtype=np.uint8)


def save_image(path, img: np.ndarray) -> None:
    """Write a ``uint8`` ``HxW`` or ``HxWx3`` image as PNG, atomically (temporary file + ``os.replace``)."""
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        raise ValueError(f"save_image writes PNG (lossless); give the path a .png suffix, got {path!r}")
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise TypeError(f"save_image needs a uint8 numpy array; got "
                        f"{getattr(img, 'dtype', type(img).__name__)} - use to_uint8(tensor) for tensors")
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)) or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"save_image needs an HxW or HxWx3 image, got shape {img.shape}")
    _files.atomic_write(path, lambda f: Image.fromarray(np.ascontiguousarray(img)).save(f, format="PNG"))


# --------------------------------------------------------------------------- arrays

def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop height and width down to multiples of ``scale``, removing rows at the bottom and columns at
    the right (the RCAN/SAN ``modcrop``; never resizes) [sr-protocol.md §1.7]. Works on ``HxW`` and
    ``HxWxC`` arrays; returns a view."""
    scale = _checks.scale(scale)
    if not hasattr(img, "shape") or img.ndim not in (2, 3):
        raise ValueError(f"modcrop takes an HxW or HxWxC array, got shape {getattr(img, 'shape', None)}")
    h, w = img.shape[:2]
    if h < scale or w < scale:
        raise ValueError(f"image of {h}x{w} is smaller than scale={scale}: nothing would be left after modcrop")
    return img[: h - h % scale, : w - w % scale]


def to_tensor(img) -> torch.Tensor:
    """``uint8`` image(s) -> ``float32`` tensor in [0, 1]: ``HxWxC`` -> ``CxHxW`` (``HxW`` -> ``1xHxW``);
    ``NxHxWxC`` or a list of equal-shape ``HxWxC`` images -> ``NxCxHxW``. Values are ``v / 255``."""
    if isinstance(img, (list, tuple)):
        if not img:
            raise ValueError("to_tensor got an empty list")
        shapes = {getattr(a, "shape", None) for a in img}
        if len(shapes) != 1:
            raise ValueError(f"to_tensor needs images of one shape to stack, got {sorted(map(str, shapes))}")
        img = np.stack(img)
        if img.ndim != 4:
            raise ValueError(f"to_tensor stacks HxWxC images; got items of shape {img.shape[1:]}")
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise TypeError(f"to_tensor takes uint8 numpy images, got "
                        f"{getattr(img, 'dtype', type(img).__name__)}; float images are ambiguous "
                        f"([0, 1] or [0, 255]?): convert them yourself with torch.from_numpy")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim == 3:
        arr = img.transpose(2, 0, 1)
    elif img.ndim == 4:
        arr = img.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"to_tensor takes HxW, HxWxC or NxHxWxC arrays, got shape {img.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32).div_(255.0)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """Tensor in [0, 1] -> ``uint8`` image: clamp to [0, 1], multiply by 255, round half *up*
    (``floor(255 x + 0.5)``, in float64). ``CxHxW`` or ``1xCxHxW`` -> ``HxWxC``; ``NxCxHxW`` with N > 1
    -> ``NxHxWxC``.

    Half up, not ``torch.round``: ``torch.round`` (like ``numpy.round``) rounds ties to even, 2.5 -> 2,
    while MATLAB's double -> uint8 conversion rounds ties away from zero, 2.5 -> 3 [sr-protocol.md §1.3,
    §8 item 10]. After the clamp all values are >= 0, where half up equals half away from zero. The rules
    differ only on exact ties, which float outputs of a network rarely hit; fixing one makes tests exact.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"to_uint8 takes a torch tensor (CxHxW or NxCxHxW), got {type(t).__name__}")
    if t.ndim not in (3, 4):
        raise ValueError(f"to_uint8 takes CxHxW or NxCxHxW tensors, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"to_uint8 needs a floating-point tensor in [0, 1], got {t.dtype}")
    x = t.detach().to("cpu", torch.float64)
    if torch.isnan(x).any():
        raise ValueError("to_uint8 got NaN values (a diverged model?); there is no pixel value for NaN")
    x = x.clamp(0.0, 1.0)
    x = torch.floor(x * 255.0 + 0.5).to(torch.uint8)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    arr = x.permute(1, 2, 0) if x.ndim == 3 else x.permute(0, 2, 3, 1)
    return np.ascontiguousarray(arr.numpy())


# --------------------------------------------------------------------------- textures

#: The procedural texture kinds, in a fixed order (the order seeds the generator: append, never reorder).
TEXTURE_KINDS = ("stripes", "checker", "zoneplate", "noise", "blobs", "glyphs")


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(x * 255.0 + 0.5), 0, 255).astype(np.uint8)


def _colours(rng, n):
    return rng.uniform(0.05, 0.95, size=(n, 3))


def texture(kind: str, size: int = 256, seed: int = 0) -> np.ndarray:
    """A deterministic procedural RGB texture, ``size x size x 3`` ``uint8``, made for super-resolution:
    each kind puts energy where bicubic up-sampling fails (high frequencies, sharp edges).

    * ``stripes``: two colour gratings whose frequency sweeps linearly (a chirp) from 0.02 to 0.4
      cycles/px along a random direction - from easy to close to Nyquist;
    * ``checker``: a rotated two-colour checkerboard with a random cell size (sharp edges at all angles);
    * ``zoneplate``: cos(pi r^2 / size) per channel with random phases and centre: every frequency from
      0 up to the Nyquist limit (reached at r = size/2), in every orientation;
    * ``noise``: band-limited colour noise (white noise filtered to a random annulus in the spectrum);
    * ``blobs``: a dead-leaves image - overlapping opaque discs with power-law radii, the classical
      model of natural-image edge statistics;
    * ``glyphs``: dark strokes on a light page on a character grid, like text (where MATLAB's clipping
      matters most, sr-protocol.md §1.3).

    The same ``(kind, size, seed)`` always gives the same image (``numpy.random.default_rng``).
    """
    if kind not in TEXTURE_KINDS:
        raise ValueError(f"unknown texture kind {kind!r}; choose one of {TEXTURE_KINDS}")
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 16:
        raise ValueError(f"size must be an integer >= 16, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    size, seed = int(size), int(seed)
    rng = np.random.default_rng([int(seed), TEXTURE_KINDS.index(kind), size])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)

    if kind == "stripes":
        out = np.zeros((size, size, 3))
        for amp in (0.6, 0.4):
            theta = rng.uniform(0, np.pi)
            p = xx * np.cos(theta) + yy * np.sin(theta)
            p = p - p.min()
            length = p.max()
            f0, f1 = 0.02, 0.4                       # cycles per pixel at p = 0 and p = length
            phase = 2 * np.pi * (f0 * p + (f1 - f0) * p * p / (2 * length))
            out += amp * (0.5 + 0.5 * np.sin(phase + rng.uniform(0, 2 * np.pi)))[..., None] * _colours(rng, 1)
        return _to_u8(out / out.max())

    if kind == "checker":
        cell = rng.uniform(4, 24)
        theta = rng.uniform(0, np.pi / 2)
        a = (xx * np.cos(theta) + yy * np.sin(theta)) / cell
        b = (-xx * np.sin(theta) + yy * np.cos(theta)) / cell
        mask = ((np.floor(a) + np.floor(b)) % 2).astype(bool)
        c = _colours(rng, 2)
        return _to_u8(np.where(mask[..., None], c[0], c[1]))

    if kind == "zoneplate":
        cy, cx = rng.uniform(0.3, 0.7, size=2) * size
        r2 = (yy - cy) ** 2 + (xx - cx) ** 2
        phases = rng.uniform(0, 2 * np.pi, size=3)
        # local frequency r/size cycles/px: 0.5 (Nyquist) at r = size/2; further out the pattern aliases
        return _to_u8(0.5 + 0.5 * np.cos(np.pi * r2[..., None] / size + phases))

    if kind == "noise":
        fy = np.fft.fftfreq(size)[:, None]
        fx = np.fft.fftfreq(size)[None, :]
        f = np.hypot(fy, fx)
        lo = rng.uniform(0.02, 0.12)
        hi = rng.uniform(lo + 0.1, 0.45)
        band = (f >= lo) & (f <= hi)
        white = rng.standard_normal((3, size, size))
        chans = np.real(np.fft.ifft2(np.fft.fft2(white) * band))
        chans = chans / (4 * chans.std(axis=(1, 2), keepdims=True)) + 0.5
        return _to_u8(chans.transpose(1, 2, 0))

    if kind == "blobs":
        out = np.full((size, size, 3), rng.uniform(0.2, 0.8))
        covered = np.zeros((size, size), dtype=bool)
        rmin, rmax = 2.0, size / 4
        for i in range(4000):                        # dead leaves: each new disc lies *under* the earlier ones
            r = rmin * (rmax / rmin) ** rng.uniform()  # log-uniform radii, many small and few large
            cy, cx = rng.uniform(-r, size + r, size=2)
            colour = _colours(rng, 1)[0]
            y0, y1 = max(0, int(cy - r)), min(size, int(cy + r) + 2)
            x0, x1 = max(0, int(cx - r)), min(size, int(cx + r) + 2)
            if y0 >= y1 or x0 >= x1:
                continue
            box = (slice(y0, y1), slice(x0, x1))
            disc = ((yy[box] - cy) ** 2 + (xx[box] - cx) ** 2 <= r * r) & ~covered[box]
            out[box][disc] = colour
            covered[box] |= disc
            if i % 100 == 99 and covered.all():
                break
        return _to_u8(out)

    # glyphs
    page = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(page)
    cell = int(rng.integers(10, 20))
    for top in range(2, size - cell, cell + 2):
        for left in range(2, size - cell, cell):
            if rng.uniform() < 0.15:                 # word gaps
                continue
            pts = [(left + cell * fx, top + cell * fy) for fy in (0.1, 0.5, 0.9) for fx in (0.15, 0.5, 0.85)]
            for _ in range(int(rng.integers(2, 5))):
                i, j = rng.choice(9, size=2, replace=False)
                draw.line([pts[i], pts[j]], fill=int(rng.integers(0, 60)), width=int(rng.integers(1, 3)))
    ink = np.asarray(page, dtype=np.float64) / 255.0
    paper, pen = _colours(rng, 2)
    paper = 0.75 + 0.25 * paper
    pen = 0.3 * pen
    return _to_u8(ink[..., None] * paper + (1 - ink[..., None]) * pen)


# --------------------------------------------------------------------------- the image set

# RGB (or grey) sample images stored inside the scikit-image 0.26 wheel and matplotlib, checked to load with
# no network. Not used: skimage.data.eagle, kidney, lily, cells3d, skin - pooch downloads them on demand.
_SKIMAGE_TRAIN = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                  "immunohistochemistry", "retina", "colorwheel")
_TRAIN = (*_SKIMAGE_TRAIN, "grace_hopper", *(f"texture:{k}:0" for k in TEXTURE_KINDS))
# Held out: the left view of skimage's stereo_motorcycle (in the wheel), and two textures with other seeds.
_VALID = ("stereo_motorcycle", "texture:stripes:1", "texture:glyphs:1")


def list_images(split: str = "train") -> list[str]:
    """Names of the offline images: ``"train"`` (8 scikit-image samples, matplotlib's grace_hopper and one
    texture of each kind), ``"valid"`` (held out: skimage's stereo_motorcycle and two textures of other
    seeds) or ``"all"``. Any ``"texture:KIND:SEED"`` name (256², or ``"texture:KIND:SEED:SIZE"``) also works
    with ``get_image``."""
    if split == "train":
        return list(_TRAIN)
    if split == "valid":
        return list(_VALID)
    if split == "all":
        return list(_TRAIN) + list(_VALID)
    raise ValueError(f"split must be 'train', 'valid' or 'all', got {split!r}")


@functools.lru_cache(maxsize=16)
def _load(name: str) -> np.ndarray:
    if name.startswith("texture:"):
        parts = name.split(":")
        if len(parts) not in (3, 4) or not all(p.isdigit() for p in parts[2:]):
            raise ValueError(f"texture names look like 'texture:KIND:SEED' or 'texture:KIND:SEED:SIZE' (e.g. "
                             f"'texture:stripes:0', 'texture:stripes:1:512'; size 256 by default), got {name!r}")
        img = texture(parts[1], size=int(parts[3]) if len(parts) == 4 else 256, seed=int(parts[2]))
    elif name == "grace_hopper":
        from matplotlib import cbook
        img = load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    elif name == "stereo_motorcycle":
        import skimage.data
        img = skimage.data.stereo_motorcycle()[0]
    elif name in _SKIMAGE_TRAIN:
        import skimage.data
        img = getattr(skimage.data, name)()
    else:
        raise ValueError(f"unknown image {name!r}; known: {', '.join(list_images('all'))} "
                         f"or 'texture:KIND:SEED' with KIND in {TEXTURE_KINDS}")
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise RuntimeError(f"image {name!r} did not load as HxWx3 uint8 (got {img.dtype} {img.shape})")
    img = np.ascontiguousarray(img)
    img.flags.writeable = False
    return img


def get_image(name: str) -> np.ndarray:
    """The image called ``name`` (see ``list_images``) as ``HxWx3`` ``uint8`` (grey replicated). Loaded
    images are kept in a small in-memory LRU cache; each call returns a fresh, writable copy."""
    if not isinstance(name, str):
        raise TypeError(f"image names are strings (see list_images()), got {type(name).__name__}")
    return _load(name).copy()
