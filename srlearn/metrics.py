"""PSNR and SSIM by the super-resolution field's protocol, and the string that names it.

The protocol every SAN/RCAN/EDSR-era paper reports (the MATLAB ``Evaluate_PSNR_SSIM.m`` of RCAN/SAN,
sr-protocol.md §2.1):

1. SR and HR are 8-bit images (the model output was clamped to [0, 1], scaled by 255 and rounded);
2. both are converted to the luma Y of BT.601 studio swing (MATLAB ``rgb2ycbcr``), in float, unrounded;
3. ``scale`` pixels are shaved from every side;
4. PSNR = 10·log10(255² / MSE) with MSE in float64, peak 255 even though Y spans 16..235;
5. SSIM of Wang et al. (2004): 11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03, L = 255, only the
   'valid' part of the filtered maps, mean of the SSIM map; no down-sampling.

Gray images are replicated to three channels before Y, as the RCAN/SAN scripts do (§8.11); this lifts
their PSNR by exactly 20·log10(255/219) ≈ 1.3219 dB over PSNR on the raw gray values.

Every number srlearn reports carries the string of the protocol it was measured with (:func:`protocol`,
§8.12). The NTIRE-2017 DIV2K-validation protocol used by EDSR's code (RGB, shave = scale + 6) is a
different protocol and is only reachable through :func:`psnr_ntire`.

The NumPy functions (:func:`psnr`, :func:`ssim`) score 8-bit arrays and are what results tables use;
:func:`psnr_torch` and :func:`ssim_torch` score float NCHW batches in [0, 1] during training, after the
same quantisation, and agree with the NumPy functions to 1e-6 dB (tested).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["rgb_to_y", "psnr", "ssim", "psnr_ntire", "psnr_torch", "ssim_torch", "protocol", "PROTOCOL", "Protocol",
           "gaussian_window"]

#: BT.601 studio-swing RGB -> YCbCr for R, G, B in [0, 1], output in [0, 255]: rows Y, Cb, Cr, then the
#: offsets (MATLAB ``rgb2ycbcr``; BasicSR ``rgb2ycbcr``) [sr-protocol.md §2.1]. The package's one copy:
#: ``srlearn.models.ycbcr`` builds its tensors from it.
BT601 = ((65.481, 128.553, 24.966), (-37.797, -74.203, 112.0), (112.0, -93.786, -18.214))
BT601_OFFSET = (16.0, 128.0, 128.0)
#: The luma row: weights sum to 219 = 235 - 16.
Y_WEIGHTS = BT601[0]
#: SSIM constants of Wang et al. [sr-protocol.md §2.1]: window size, Gaussian sigma, K1, K2, dynamic range L.
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2, SSIM_L = 11, 1.5, 0.01, 0.03, 255.0

_FIX = ("quantise first: srlearn.data.images.to_uint8(t) for a [0, 1] tensor, or "
        "np.floor(np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8) for a [0, 1] array")


# ----------------------------------------------------------------------------------------- protocol names
def _protocol(shave: str, y_only: bool, degradation: str, suffix: str = "") -> str:
    return f"{'Y-BT601' if y_only else 'RGB'}/shave={shave}/uint8/{degradation}{suffix}"


def protocol(scale: int, y_only: bool = True, ntire: bool = False, degradation: str = "MATLAB-BI") -> str:
    """The protocol string that must accompany every reported number (sr-protocol.md §8.12).

    ``protocol(2)`` is ``"Y-BT601/shave=2/uint8/MATLAB-BI"``: Y channel (BT.601), ``scale`` pixels shaved,
    8-bit inputs, LR made by MATLAB bicubic ("BI"). ``y_only=False`` gives ``"RGB/..."``.
    ``ntire=True`` names the NTIRE-2017 DIV2K-validation protocol of EDSR's code,
    ``"RGB/shave={scale+6}/uint8/MATLAB-BI/NTIRE-DIV2K-val"``; that protocol is RGB by definition, so
    ``y_only`` is not consulted. ``degradation`` names how the LR was made, e.g. ``"PIL-BI"`` for the
    reference-based SR setting (CUFED5, sr-protocol.md §1.6).
    """
    if isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1:
        raise ValueError(f"scale must be a positive integer (2, 3, 4, ...), got {scale!r}")
    if not isinstance(degradation, str) or not degradation or "/" in degradation:
        raise ValueError(f"degradation must be a non-empty name without '/', e.g. 'MATLAB-BI', got {degradation!r}")
    if ntire:
        return _protocol(str(int(scale) + 6), False, degradation, "/NTIRE-DIV2K-val")
    return _protocol(str(int(scale)), bool(y_only), degradation)


#: The default protocol, scale-generic: Y (BT.601), shave = scale, 8-bit, MATLAB bicubic LR.
PROTOCOL = _protocol("s", True, "MATLAB-BI")


# ------------------------------------------------------------------------------------------------ colour
def rgb_to_y(rgb) -> np.ndarray:
    """BT.601 studio-swing luma of RGB values in [0, 255]: ``Y = 16 + (65.481 R + 128.553 G + 24.966 B)/255``.

    This is MATLAB ``rgb2ycbcr`` on ``im2double`` input, rescaled to [0, 255] (black -> 16,
    white -> 235), and BasicSR's ``rgb2ycbcr(y_only=True)`` [sr-protocol.md §2.1]. It is computed in
    float64 and never rounded: the MATLAB script keeps Y in float (single), whereas rounding Y to integers
    lowers Set5 bicubic PSNR by 0.013-0.034 dB [sr-protocol.md §2.3]. EDSR writes the same transform as
    (65.738, 129.057, 25.064)/256 on the SR-HR difference; those coefficients equal ours to ~4e-6
    relative (tested). OpenCV's ``COLOR_RGB2YCrCb`` is full-range JPEG YCbCr, not this Y.

    ``rgb``: array ``(..., 3)``, uint8 or float, channels last, RGB order. Returns float64 ``(...)``.
    """
    if isinstance(rgb, torch.Tensor):
        raise TypeError("rgb_to_y takes NumPy arrays (..., 3); for [0, 1] NCHW tensors use psnr_torch/ssim_torch")
    a = np.asarray(rgb)
    if a.dtype == bool or a.dtype.kind not in "uif":
        raise TypeError(f"rgb_to_y needs integer or float values in [0, 255], got dtype {a.dtype}")
    if a.ndim < 1 or a.shape[-1] != 3:
        raise ValueError(f"rgb_to_y needs channels last with 3 channels (..., 3), got shape {a.shape}; "
                         "for CHW arrays use np.moveaxis(x, 0, -1)")
    return 16.0 + (a.astype(np.float64) @ np.asarray(Y_WEIGHTS, dtype=np.float64)) / 255.0


# -------------------------------------------------------------------------------------- input checking
def _as_8bit_rgb(img, name: str, allow_float: bool) -> np.ndarray:
    """Validate one image of the protocol and return it as float64 HxWx3 (gray replicated)."""
    if isinstance(img, torch.Tensor):
        raise TypeError(f"{name} is a torch.Tensor; psnr/ssim score 8-bit NumPy images (HxWx3). For float "
                        "[0, 1] NCHW batches use psnr_torch/ssim_torch, or " + _FIX)
    a = np.asarray(img)
    if a.dtype == np.uint8:
        pass
    elif a.dtype.kind in "iu" and a.dtype != bool:
        if a.size and (a.min() < 0 or a.max() > 255):
            raise ValueError(f"{name} has integer values in [{a.min()}, {a.max()}]; the protocol scores 8-bit "
                             "images in [0, 255]: " + _FIX)
    elif a.dtype.kind == "f":
        if not allow_float:
            raise TypeError(f"{name} is {a.dtype}; the protocol scores 8-bit images, so a model output must be "
                            f"{_FIX}. If {name} already holds integral values in [0, 255], pass allow_float=True.")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinity; fix the model output, then {_FIX}")
        if a.size and (a.min() < 0 or a.max() > 255):
            raise ValueError(f"{name} has float values in [{a.min():.4g}, {a.max():.4g}], outside [0, 255]; "
                             + _FIX)
        if not np.array_equal(a, np.round(a)):
            hint = " (it looks like a [0, 1] image)" if a.size and a.max() <= 1 else ""
            raise ValueError(f"{name} has non-integral float values{hint}; metrics are computed on 8-bit "
                             "levels: " + _FIX)
    else:
        raise TypeError(f"{name} has dtype {a.dtype}; expected uint8 (or float with allow_float=True)")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:  # gray: replicated to 3 channels before Y, the RCAN/SAN convention (§8.11)
        a = np.repeat(a[..., None], 3, axis=2)
    elif not (a.ndim == 3 and a.shape[2] == 3):
        raise ValueError(f"{name} has shape {a.shape}; expected HxWx3 RGB or HxW gray, channels last "
                         "(drop an alpha channel; for CHW use np.moveaxis(x, 0, -1))")
    return a.astype(np.float64)


def _check_crop(crop, shape, min_size: int = 1) -> int:
    if isinstance(crop, bool) or not isinstance(crop, numbers.Integral) or crop < 0:
        raise ValueError(f"crop must be a non-negative integer number of pixels (usually the scale), got {crop!r}")
    crop = int(crop)
    h, w = shape
    if h - 2 * crop < min_size or w - 2 * crop < min_size:
        need = "anything" if min_size == 1 else f"the {min_size}x{min_size} SSIM window"
        raise ValueError(f"crop={crop} on all four sides of a {h}x{w} image leaves {max(h - 2 * crop, 0)}x"
                         f"{max(w - 2 * crop, 0)} pixels, too few for {need}; use a smaller crop or a larger image")
    return crop


def _pair(sr, hr, crop, allow_float, min_size: int = 1):
    x = _as_8bit_rgb(sr, "sr", allow_float)
    y = _as_8bit_rgb(hr, "hr", allow_float)
    if x.shape != y.shape:
        raise ValueError(f"sr is {x.shape[0]}x{x.shape[1]} but hr is {y.shape[0]}x{y.shape[1]}: mod-crop the HR "
                         "to the SR size (srlearn.data.images.modcrop(hr, scale)) - crop, never resize, the "
                         "ground truth")
    c = _check_crop(crop, x.shape[:2], min_size)
    if c:
        x, y = x[c:-c, c:-c], y[c:-c, c:-c]
    return x, y


# ------------------------------------------------------------------------------------------------- PSNR
def _psnr_from_mse(mse: float) -> float:
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))


def psnr(sr, hr, crop: int = 0, y_only: bool = True, allow_float: bool = False) -> float:
    """Peak signal-to-noise ratio in dB by the field's protocol (sr-protocol.md §2.1, §8.8).

    ``sr``, ``hr``: HxWx3 RGB or HxW gray (replicated to 3 channels) 8-bit arrays. Float arrays are
    refused unless ``allow_float=True``, and then must hold integral values in [0, 255]: a model output
    is clamped, scaled and rounded first (§8.10). ``crop`` pixels are removed from all four sides (use
    ``crop=scale``). ``y_only=True`` scores BT.601 Y (:func:`rgb_to_y`); ``False`` scores all RGB values.
    MSE in float64, peak 255, ``inf`` for identical images. Report it with :func:`protocol`.
    """
    x, y = _pair(sr, hr, crop, allow_float)
    if y_only:
        x, y = rgb_to_y(x), rgb_to_y(y)
    return _psnr_from_mse(float(np.mean((x - y) ** 2)))


def psnr_ntire(sr, hr, scale: int, allow_float: bool = False) -> float:
    """PSNR by the NTIRE-2017 DIV2K-validation protocol of EDSR's code: RGB, ``scale + 6`` pixels shaved.

    EDSR-PyTorch scores its DIV2K validation this way (``src/utility.py``), while its README says
    "scale + 2"; we follow the code, which produced the published numbers [sr-protocol.md §2.4].
    These numbers are not comparable with the benchmark (Y, shave = scale) protocol;
    label them ``protocol(scale, ntire=True)``.
    """
    if isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return psnr(sr, hr, crop=int(scale) + 6, y_only=False, allow_float=allow_float)


# ------------------------------------------------------------------------------------------------- SSIM
def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian ``g`` whose outer product ``g gᵀ`` is MATLAB ``fspecial('gaussian',
    size, sigma)``, the window of Wang et al.'s SSIM (both sum to 1, because the 2-D Gaussian factorises)."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(r ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(g gᵀ, img, 'valid')`` done separably: rows, then columns."""
    n = len(g)
    h, w = img.shape
    rows = sum(g[k] * img[k:h - n + 1 + k] for k in range(n))
    return sum(g[k] * rows[:, k:w - n + 1 + k] for k in range(n))


def _ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    g = gaussian_window()
    c1, c2 = (SSIM_K1 * SSIM_L) ** 2, (SSIM_K2 * SSIM_L) ** 2
    mx, my = _filter_valid(x, g), _filter_valid(y, g)
    sxx = _filter_valid(x * x, g) - mx * mx
    syy = _filter_valid(y * y, g) - my * my
    sxy = _filter_valid(x * y, g) - mx * my
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))


def ssim(sr, hr, crop: int = 0, y_only: bool = True, allow_float: bool = False) -> float:
    """Structural similarity of Wang et al. (2004) by the field's protocol (sr-protocol.md §2.1, §8.9).

    Inputs and ``crop``/``y_only``/``allow_float`` as in :func:`psnr`. After the crop, the local means,
    variances and covariance are Gaussian-weighted (11×11, σ = 1.5, normalised to sum 1) over the
    'valid' region only, so 5 more pixels per side drop out; K1 = 0.01, K2 = 0.03, L = 255; the result is
    the mean of the SSIM map (for RGB, the mean over the three channels). Population (not sample)
    moments, no down-sampling - unlike scikit-image's defaults (7×7 uniform window, sample covariance)
    and piq's ``downsample=True``, which both give higher values [sr-protocol.md §2.3]. It equals
    ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255)`` (tested).
    """
    x, y = _pair(sr, hr, crop, allow_float, min_size=SSIM_WINDOW)
    if y_only:
        return float(_ssim_map(rgb_to_y(x), rgb_to_y(y)).mean())
    return float(np.mean([_ssim_map(x[..., c], y[..., c]).mean() for c in range(3)]))


# ------------------------------------------------------------------------------------- torch, in training
def _quantise_batch(t, name: str) -> torch.Tensor:
    """Float NCHW in [0, 1] -> float64 8-bit levels (clamp, x255, round half up), gray replicated to RGB."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (float NCHW in [0, 1]); for 8-bit arrays use psnr/ssim")
    if not t.is_floating_point():
        raise TypeError(f"{name} has dtype {t.dtype}; psnr_torch/ssim_torch take float NCHW in [0, 1] "
                        "(for uint8 images use psnr/ssim)")
    if t.ndim != 4 or t.shape[1] not in (1, 3):
        raise ValueError(f"{name} has shape {tuple(t.shape)}; expected N x 3 x H x W (or N x 1 x H x W gray); "
                         "add a batch axis with x[None]")
    dev = torch.device("cpu") if t.device.type == "mps" else t.device  # MPS has no float64
    t = t.detach().to(dev, torch.float64)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinity")
    # floor(x + 0.5): round half up, which on non-negative values is MATLAB's round-half-away-from-zero
    # (sr-protocol.md §8.2); torch.round would send exact ties to even (§8.10).
    q = torch.floor(t.clamp(0.0, 1.0) * 255.0 + 0.5)
    return q.expand(-1, 3, -1, -1) if q.shape[1] == 1 else q


def _pair_torch(sr, hr, crop, min_size=1):
    x, y = _quantise_batch(sr, "sr"), _quantise_batch(hr, "hr")
    if x.shape != y.shape:
        raise ValueError(f"sr has shape {tuple(x.shape)} but hr has {tuple(y.shape)}: crop the HR to the SR "
                         "size (mod-crop), never resize it")
    if x.device != y.device:
        raise ValueError(f"sr is on {x.device} but hr is on {y.device}; move both to one device")
    c = _check_crop(crop, tuple(x.shape[-2:]), min_size)
    if c:
        x, y = x[..., c:-c, c:-c], y[..., c:-c, c:-c]
    return x, y


def _y_torch(q: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(Y_WEIGHTS, dtype=torch.float64, device=q.device)
    return (16.0 + torch.einsum("nchw,c->nhw", q, w) / 255.0)[:, None]


def psnr_torch(sr: torch.Tensor, hr: torch.Tensor, crop: int = 0, y_only: bool = True) -> torch.Tensor:
    """Per-image PSNR (dB, float64 tensor of shape (N,)) of float NCHW batches in [0, 1].

    Both batches are first quantised to 8-bit levels exactly as a saved PNG would be (clamp to [0, 1],
    ×255, ``floor(x + 0.5)``), then scored like :func:`psnr` (Y or RGB, ``crop`` px per side, float64,
    peak 255, ``inf`` for identical images). Unlike BasicSR's ``calculate_psnr_pt``, which does not round
    and caps at 80 dB [sr-protocol.md §2.2], this equals :func:`psnr` on the saved images. No gradient.
    """
    x, y = _pair_torch(sr, hr, crop)
    if y_only:
        x, y = _y_torch(x), _y_torch(y)
    mse = ((x - y) ** 2).mean(dim=(1, 2, 3))
    return torch.where(mse == 0, torch.full_like(mse, float("inf")), 10.0 * torch.log10(255.0 ** 2 / mse))


def ssim_torch(sr: torch.Tensor, hr: torch.Tensor, crop: int = 0, y_only: bool = True) -> torch.Tensor:
    """Per-image SSIM (float64 tensor of shape (N,)) of float NCHW batches in [0, 1], after the same
    quantisation as :func:`psnr_torch`; the same definition as :func:`ssim`, with the Gaussian window
    applied separably by ``conv2d`` without padding (the 'valid' region)."""
    x, y = _pair_torch(sr, hr, crop, min_size=SSIM_WINDOW)
    if y_only:
        x, y = _y_torch(x), _y_torch(y)
    ch = x.shape[1]
    g = torch.from_numpy(gaussian_window()).to(x.device)
    # the five local moments of every channel in one grouped, separable (rows, then columns) 'valid' conv
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    k = stack.shape[1]
    m = F.conv2d(F.conv2d(stack, g.view(1, 1, -1, 1).expand(k, 1, -1, 1), groups=k),
                 g.view(1, 1, 1, -1).expand(k, 1, 1, -1), groups=k)
    mx, my, exx, eyy, exy = m.split(ch, dim=1)
    c1, c2 = (SSIM_K1 * SSIM_L) ** 2, (SSIM_K2 * SSIM_L) ** 2
    sxx, syy, sxy = exx - mx * mx, eyy - my * my, exy - mx * my
    smap = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return smap.mean(dim=(2, 3)).mean(dim=1)


# ------------------------------------------------------------------------------------------ the protocol
@dataclass(frozen=True)
class Protocol:
    """How one task is scored: one object for training-time validation, evaluation, reports, figures and
    the CLI, so that a learning curve and a table of the same run always agree.

    * ``scale``: the model's up-sampling factor (1 for same-size restoration such as denoising);
    * ``crop``: pixels shaved from each side before scoring; ``None`` means ``scale`` (the SR protocol);
    * ``y_only``: score the BT.601 Y channel (SR papers) or all RGB channels (denoising papers);
    * ``degradation``: how the input was made, for the protocol's name ("MATLAB-BI", "PIL-BI", ...);
    * ``baseline``: the name of the parameter-free row every table starts with ("bicubic", "noisy input");
    * ``name``: a full protocol string when the default one does not describe the task (e.g.
      ``"RGB/shave=0/uint8/AWGN-sigma25-clipped"``); it must agree with ``crop`` and ``y_only``.

    ``str(p)`` is the protocol string every reported number carries (sr-protocol.md §8.12);
    ``p.score(sr, hr)`` gives ``{"psnr", "ssim"}`` of two 8-bit images; ``p.metric_label`` labels axes.
    """
    scale: int = 2
    crop: int | None = None
    y_only: bool = True
    degradation: str = "MATLAB-BI"
    baseline: str = "bicubic"
    name: str | None = None

    def __post_init__(self):
        if isinstance(self.scale, bool) or not isinstance(self.scale, numbers.Integral) or self.scale < 1:
            raise ValueError(f"scale must be a positive integer (1 = same-size restoration), got {self.scale!r}")
        if self.crop is not None and (isinstance(self.crop, bool) or not isinstance(self.crop, numbers.Integral)
                                      or self.crop < 0):
            raise ValueError(f"crop must be an integer >= 0 or None (= scale), got {self.crop!r}")
        if self.name is not None:
            colour = "Y-BT601/" if self.y_only else "RGB/"
            if not self.name.startswith(colour) or f"/shave={self.shave}/" not in self.name:
                raise ValueError(f"protocol name {self.name!r} disagrees with crop={self.shave}, "
                                 f"y_only={self.y_only}: it must start with {colour!r} and name shave={self.shave}")

    @property
    def shave(self) -> int:
        """Pixels shaved from each side: ``crop``, or ``scale`` when ``crop`` is None."""
        return int(self.scale if self.crop is None else self.crop)

    @property
    def string(self) -> str:
        return self.name or _protocol(str(self.shave), bool(self.y_only), self.degradation)

    def __str__(self) -> str:
        return self.string

    @property
    def metric_label(self) -> str:
        """``"Y-PSNR (dB)"`` or ``"RGB PSNR (dB)"``: the axis label of a curve scored by this protocol."""
        return "Y-PSNR (dB)" if self.y_only else "RGB PSNR (dB)"

    def psnr(self, sr, hr) -> float:
        return psnr(sr, hr, crop=self.shave, y_only=self.y_only)

    def ssim(self, sr, hr) -> float:
        return ssim(sr, hr, crop=self.shave, y_only=self.y_only)

    def score(self, sr, hr) -> dict:
        """``{"psnr", "ssim"}`` of 8-bit ``sr`` against ``hr`` by this protocol."""
        return {"psnr": self.psnr(sr, hr), "ssim": self.ssim(sr, hr)}

    def to_dict(self) -> dict:
        return {"scale": self.scale, "crop": self.shave, "y_only": self.y_only, "degradation": self.degradation,
                "baseline": self.baseline, "name": self.string}
