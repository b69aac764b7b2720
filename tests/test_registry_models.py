"""Every registered model, every preset, without a test file of its own: it builds, its parameter count
equals the figure its registration states, it runs forward on a tiny input with the output size its
scale implies, and a checkpoint round trip rebuilds it with identical outputs. A new model registered
with ``@register(name, presets, params=...)`` is tested here for free."""
from __future__ import annotations

import pytest
import torch

from srlearn.models import build
from srlearn.models.registry import MODELS
from srlearn.nn import count_parameters
from srlearn.train import load_model, save_checkpoint

CASES = [(name, preset) for name in MODELS.names() for preset in MODELS[name].presets]
BIG = 10_000_000   # presets above this many parameters are built and counted, but run forward on CPU only once


def _inputs(name: str, model, size: int = 16):
    """One random image per forward argument: ``lr`` at ``size``, ``ref`` (a reference) at the HR size."""
    g = torch.Generator().manual_seed(0)
    channels = getattr(model, "in_channels", 3)
    scale = model.srlearn_spec["kwargs"].get("scale", 1)
    sizes = {"lr": size, "ref": size * scale}
    return [torch.rand(1, channels, sizes[k], sizes[k], generator=g) for k in MODELS.info[name]["inputs"]]


def test_every_model_states_the_parameter_count_of_every_preset():
    missing = [(n, p) for n, p in CASES if p not in MODELS.info[n]["params"]]
    assert not missing, f"register(..., params={{preset: count}}) is missing for {missing}"


@pytest.mark.parametrize("name,preset", CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_preset_builds_with_its_stated_count_and_runs(name, preset, tmp_path):
    torch.manual_seed(0)
    model = build(name, preset)
    n = count_parameters(model)
    assert n == MODELS.info[name]["params"][preset], f"{name}/{preset}: {n:,} parameters"
    if n > BIG:
        return   # paper presets of the big models: counted above; their blocks run in the mini presets
    model.eval()
    x = _inputs(name, model)
    with torch.no_grad():
        y = model(*x)
    scale = model.srlearn_spec["kwargs"].get("scale", 1)
    assert y.shape[-2:] == (16 * scale, 16 * scale) and torch.isfinite(y).all()
    path = save_checkpoint(tmp_path / "m.pt", model=model.state_dict(), model_spec=model.srlearn_spec)
    again = load_model(path)
    assert again.srlearn_spec == model.srlearn_spec
    with torch.no_grad():
        torch.testing.assert_close(again(*x), y)
