"""The one registry mechanism: every kind of named thing (models, experiments, benchmarks, datasets,
attention kinds, fusion kinds) is a :class:`srlearn.registry.Registry`, and a new attention or fusion kind
is one decorator away from every model that uses that kind of block."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import srlearn.bench  # noqa: F401  (fills the benchmark registry on first listing)
import srlearn.data.registry as datasets
import srlearn.experiments as experiments
from srlearn.models import build
from srlearn.models.registry import MODELS
from srlearn.nn import ATTENTION, FUSION
from srlearn.registry import Registry, UnknownName, all_registries


def test_every_kind_of_named_thing_is_one_registry():
    srlearn.bench.list_benches()
    regs = all_registries()
    for key in ("models", "experiments", "benchmarks", "datasets", "attention", "fusion"):
        assert isinstance(regs[key], Registry), key
        assert len(regs[key]) > 0, f"registry {key} is empty"
    assert regs["models"] is MODELS and regs["attention"] is ATTENTION and regs["fusion"] is FUSION
    assert regs["datasets"] is datasets.DATASETS
    assert set(regs["experiments"]) == set(experiments.list_experiments())
    assert {"none", "se", "soca"} <= set(ATTENTION) and {"skff", "sum", "concat"} <= set(FUSION)


def test_registry_errors_name_the_choices():
    reg = Registry("widget", "widgets-under-test")
    try:
        reg.register("alpha", 1)

        @reg.register("beta", colour="blue")
        class Beta:
            """A beta widget."""

        with pytest.raises(ValueError, match="registered twice"):
            reg.register("alpha", 2)
        with pytest.raises(UnknownName, match=r"unknown widget 'alpah' \(did you mean 'alpha'\?\); registered: alpha, beta"):
            reg.get("alpah")
        with pytest.raises(KeyError):      # an UnknownName is a KeyError ...
            reg.get("gamma")
        with pytest.raises(ValueError):    # ... and a ValueError
            reg.get("gamma")
        assert reg.get("BETA") is Beta and reg.resolve("Alpha") == "alpha"
        assert reg.describe()["beta"] == {"doc": "A beta widget.", "colour": "blue"}
        with pytest.raises(ValueError, match="non-empty string"):
            reg.register("", 3)
    finally:
        from srlearn import registry as R
        R._ALL.pop("widgets-under-test", None)


class _HalfGate(nn.Module):
    """A made-up channel attention: every channel halved (learns nothing, easy to recognise)."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.channels = channels

    def forward(self, x):
        return 0.5 * x


@pytest.fixture
def half_gate():
    ATTENTION.register("half-gate", _HalfGate)
    yield "half-gate"
    ATTENTION.unregister("half-gate")


@pytest.mark.parametrize("model", ["san", "rcan"])
def test_a_registered_attention_kind_builds_in_san_and_rcan(half_gate, model):
    torch.manual_seed(0)
    m = build(model, "mini", attention=half_gate)
    gates = [mod for mod in m.modules() if isinstance(mod, _HalfGate)]
    assert gates, f"{model} built no {half_gate} layer"
    out = m(torch.rand(1, 3, 8, 8))
    assert out.shape == (1, 3, 16, 16)
    # and it is really used: removing the halving changes the output
    for g in gates:
        g.forward = lambda x: x
    assert not torch.allclose(m(torch.rand(1, 3, 8, 8)), out)


def test_san_passes_ns_iters_only_to_kinds_that_take_it(half_gate):
    soca = build("san", "mini", attention="soca", ns_iters=3)
    assert {mod.iters for mod in soca.modules() if hasattr(mod, "iters")} == {3}
    build("san", "mini", attention="se", ns_iters=3)      # SE has no iters: not an error
    build("san", "mini", attention=half_gate, ns_iters=3)


@pytest.mark.parametrize("model", ["san", "rcan"])
def test_an_unknown_attention_kind_lists_the_registered_ones(model):
    with pytest.raises(ValueError, match=r"unknown attention kind 'foca'.*none, se, soca"):
        build(model, "mini", attention="foca")


class _MaxFusion(nn.Module):
    """A made-up fusion: the element-wise maximum of the streams (no parameters)."""

    def __init__(self, channels, n_streams=3):
        super().__init__()
        self.n_streams = n_streams

    def forward(self, streams):
        return torch.stack(list(streams)).amax(dim=0)


def test_a_registered_fusion_kind_builds_in_mirnet():
    FUSION.register("max", _MaxFusion)
    try:
        m = build("mirnet", "tiny", fusion="max")
        assert sum(isinstance(mod, _MaxFusion) for mod in m.modules()) > 0
        assert m(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)
        with pytest.raises(ValueError, match=r"unknown fusion kind 'mean'.*concat, max, skff, sum"):
            build("mirnet", "tiny", fusion="mean")
    finally:
        FUSION.unregister("max")


def test_mirnet_channel_attention_is_se_without_biases():
    from srlearn.nn import SE, ChannelAttention
    ca = ChannelAttention(16, 8)
    assert all(layer.bias is None for layer in ca.conv_du if isinstance(layer, nn.Conv2d))
    plain = SE(16, 8, bias=False)
    plain.load_state_dict(ca.state_dict())
    x = torch.rand(2, 16, 5, 5)
    torch.testing.assert_close(plain(x), ca(x))
