"""srlearn._checks: the argument checks the package shares, one wording per kind of mistake."""
import numpy as np
import pytest
import torch

from srlearn import _checks


def test_numbers_and_integers():
    assert _checks.integer("steps", 3, 1) == 3 and type(_checks.integer("steps", np.int64(3), 1)) is int
    for bad in (0, 2.0, True, "3"):
        with pytest.raises(ValueError, match=r"steps must be an integer >= 1, got"):
            _checks.integer("steps", bad, 1)
    assert _checks.positive_int("k", 2) == 2
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        _checks.positive_int("k", 0)
    assert _checks.positive("lr", 1e-3) == 1e-3
    for bad in (0, -1, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="lr must be a positive number"):
            _checks.positive("lr", bad)


def test_scale_images_and_batches():
    assert _checks.scale(2) == 2 and _checks.scale(4.0) == 4
    with pytest.raises(ValueError, match=r"integer >= 1 \(2, 3, 4, ...\), got 2.5"):
        _checks.scale(2.5)
    with pytest.raises(TypeError):
        _checks.scale(True)
    _checks.uint8_image(np.zeros((4, 4, 3), np.uint8), "hr")
    with pytest.raises(TypeError, match="hr must be a uint8 numpy"):
        _checks.uint8_image(np.zeros((4, 4, 3)), "hr")
    _checks.batch(torch.zeros(1, 3, 4, 4), 3, "net")
    with pytest.raises(ValueError, match=r"net expects a \(B, 3, H, W\) batch in \[0, 1\], got shape \(1, 1, 4, 4\)"):
        _checks.batch(torch.zeros(1, 1, 4, 4), 3, "net")
    with pytest.raises(ValueError, match=r"feature map, got shape \(3, 4, 4\); do this"):
        _checks.batch(torch.zeros(3, 4, 4), 3, "SE", "feature map", "; do this")
