"""One private converter so every viz function accepts the same image forms.

Accepted: an ``HxW`` or ``HxWx3`` (or ``HxWx1``) NumPy array, ``uint8`` in [0, 255] or float in [0, 1];
a ``torch.Tensor`` ``CxHxW``, ``1xCxHxW`` or ``HxW`` (C = 1 or 3), float in [0, 1] or ``uint8``; and a
PIL image. Out comes a float32 NumPy array, ``HxW`` or ``HxWx3``, in [0, 1], ready for ``imshow``.
"""
from __future__ import annotations

import numpy as np
import torch

#: Float images a little outside [0, 1] (an SR network's raw output) are clipped for display; beyond
#: these limits the caller almost certainly passed a [0, 255] image, and we say so instead of clipping.
_FLOAT_RANGE = (-0.5, 1.5)


def to_display(image) -> np.ndarray:
    """Return ``image`` as a float32 ``HxW`` or ``HxWx3`` array in [0, 1] (see the module docstring)."""
    if isinstance(image, torch.Tensor):
        arr = _tensor_to_hwc(image)
    else:
        arr = np.asarray(image)  # NumPy arrays and PIL images
        if arr.ndim == 3 and arr.shape[-1] not in (1, 3) and arr.shape[0] in (1, 3):
            raise ValueError(f"NumPy image of shape {arr.shape} looks channels-first; NumPy images are "
                             f"HxWxC here: pass arr.transpose(1, 2, 0), or pass a torch tensor (CxHxW)")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
        raise ValueError(f"cannot show an image of shape {arr.shape}: expected HxW or HxWx3 (NumPy) or "
                         f"CxHxW / 1xCxHxW with C = 1 or 3 (tensor); for RGBA use img[..., :3]")
    return _to_unit_float(arr)


def _tensor_to_hwc(t: torch.Tensor) -> np.ndarray:
    """A CxHxW / 1xCxHxW / HxW tensor as an HxW(xC) NumPy array (dtype kept)."""
    t = t.detach().cpu()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"got a batch of {t.shape[0]} images (shape {tuple(t.shape)}); "
                             f"pass one image, e.g. x[0]")
        t = t[0]
    if t.ndim == 3:
        if t.shape[0] not in (1, 3):
            raise ValueError(f"tensor of shape {tuple(t.shape)} is not CxHxW with C = 1 or 3 (tensors are "
                             f"channels-first here); for a feature map use feature_grid")
        t = t.permute(1, 2, 0)
    if t.dtype == torch.bfloat16 or t.dtype == torch.float16:
        t = t.float()
    return t.numpy()


def _to_unit_float(arr: np.ndarray) -> np.ndarray:
    """uint8 -> /255; float -> checked and clipped to [0, 1]; anything else is an error."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"images must be uint8 in [0, 255] or float in [0, 1], got dtype {arr.dtype}; "
                        f"convert with arr.astype(np.uint8) or arr / 255")
    arr = arr.astype(np.float32)
    finite = arr[np.isfinite(arr)]
    if finite.size and (finite.min() < _FLOAT_RANGE[0] or finite.max() > _FLOAT_RANGE[1]):
        raise ValueError(f"float image values span [{finite.min():.3g}, {finite.max():.3g}] but float "
                         f"images must be in [0, 1]; if it is a [0, 255] image, divide it by 255")
    return np.clip(arr, 0.0, 1.0)


def to_model_input(image) -> torch.Tensor:
    """``image`` (any accepted form) as a 1x3xHxW float32 tensor in [0, 1]; grey images are repeated to RGB."""
    arr = to_display(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
