"""The argument checks the whole package shares: one wording for one kind of mistake.

Each check returns the value in its canonical form (an ``int`` for an integer argument) or raises an error
that names the argument, what it must be, and what it got. Below every other floor: imports nothing from
srlearn.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["is_number", "integer", "positive", "positive_int", "scale", "uint8_image", "batch"]


def is_number(x) -> bool:
    """A finite real number (``bool`` is not a number here)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def integer(name: str, value, minimum: int) -> int:
    """``value`` as an ``int`` >= ``minimum``; ``ValueError`` otherwise (``True`` is not an integer here)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def positive_int(name: str, value) -> int:
    """``value`` as an ``int`` >= 1."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def positive(name: str, value) -> float:
    """A finite number > 0."""
    if not (is_number(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return value


def scale(value) -> int:
    """An up-sampling factor: an integer >= 1 (``2.0`` is accepted as 2, ``2.5`` is not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"scale must be an integer >= 1, got {type(value).__name__}")
    if value != int(value):
        raise ValueError(f"scale must be an integer >= 1 (2, 3, 4, ...), got {value}")
    if value < 1:
        raise ValueError(f"scale must be >= 1, got {value}")
    return int(value)


def uint8_image(img, what: str) -> None:
    """A uint8 NumPy ``HxW`` or ``HxWxC`` image."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise TypeError(f"{what} must be a uint8 numpy HxW or HxWxC image, got "
                        f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}")


def batch(x, channels: int, who: str, what: str = "batch in [0, 1]", fix: str = "") -> None:
    """A 4-D ``(B, channels, H, W)`` tensor; ``what`` says what kind ("batch in [0, 1]", "feature map")."""
    shape = tuple(getattr(x, "shape", ()))
    if getattr(x, "dim", lambda: -1)() != 4 or shape[1] != channels:
        raise ValueError(f"{who} expects a (B, {channels}, H, W) {what}, got shape {shape}{fix}")
