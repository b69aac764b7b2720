"""The model registry, the bicubic baseline and EDSR."""
import numpy as np
import pytest
import torch

from srlearn import models
from srlearn.nn import MeanShift, Upsampler, count_parameters


def test_registry_lists_and_builds():
    assert {"bicubic", "edsr"} <= set(models.list_models())
    m = models.build("edsr", "mini", scale=3)
    assert m.scale == 3 and m.srlearn_spec == {"name": "edsr", "preset": "mini",
                                               "kwargs": {**models.get_spec("edsr").presets["mini"], "scale": 3}}
    again = models.build_from_spec(m.srlearn_spec)
    assert count_parameters(again) == count_parameters(m)


def test_registry_errors_name_the_choices():
    with pytest.raises(KeyError, match="did you mean .edsr.*registered: .*edsr"):
        models.build("edrs")
    with pytest.raises(KeyError, match="presets: paper, baseline, mini"):
        models.build("edsr", "tiny")


def _edsr_count(n_blocks, c, scale):
    conv = lambda i, o, k=3: i * o * k * k + o
    ups = conv(c, 4 * c) * int(np.log2(scale)) if scale in (2, 4) else conv(c, 9 * c)
    return conv(3, c) + n_blocks * 2 * conv(c, c) + conv(c, c) + ups + conv(c, 3)


@pytest.mark.parametrize("preset,blocks,ch", [("paper", 32, 256), ("baseline", 16, 64), ("mini", 4, 32)])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_parameter_counts(preset, blocks, ch, scale):
    """Counted by hand from the architecture; EDSR's paper quotes 43 M at ×4 and the baseline 1.5 M."""
    n = count_parameters(models.build("edsr", preset, scale=scale))
    assert n == _edsr_count(blocks, ch, scale)
    if preset == "paper" and scale == 4:
        assert round(n / 1e6) == 43
    if preset == "baseline" and scale == 4:
        assert round(n / 1e5) == 15


def test_mean_shift_is_a_buffer_not_a_parameter():
    m = models.build("edsr", "mini")
    assert not any("mean" in n for n, _ in m.named_parameters())
    assert "sub_mean.mean" in dict(m.named_buffers())
    x = torch.rand(1, 3, 4, 4)
    assert torch.allclose(MeanShift(sign=1)(MeanShift(sign=-1)(x)), x)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_forward_shapes_and_upsampler(scale):
    m = models.build("edsr", "mini", scale=scale)
    y = m(torch.rand(2, 3, 7, 9))
    assert y.shape == (2, 3, 7 * scale, 9 * scale)
    with pytest.raises(ValueError, match="powers of two"):
        Upsampler(5, 8)


def test_bicubic_model_equals_imresize():
    from srlearn.data import imresize
    rng = np.random.default_rng(0)
    img = rng.random((12, 10, 3))
    out = models.build("bicubic", scale=2)(torch.from_numpy(img).permute(2, 0, 1)[None])
    ref = imresize(img, 2, mode="float")
    np.testing.assert_allclose(out[0].permute(1, 2, 0).numpy(), ref, atol=1e-10)
    assert count_parameters(models.build("bicubic")) == 0


def test_edsr_mini_learns():
    torch.manual_seed(0)
    m = models.build("edsr", "mini")
    hr = torch.nn.functional.avg_pool2d(torch.rand(4, 3, 32, 32), 3, 1, 1)
    lr = torch.nn.functional.avg_pool2d(hr, 2)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    losses = []
    for _ in range(25):
        loss = (m(lr) - hr).abs().mean()
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
