"""`srlearn convert`: the authors' released SAN/RCAN/MIRNet files -> srlearn checkpoints.

No official file is downloaded here (srlearn does not redistribute them). Instead, small networks are
built in the official layout — module names, registration order and shapes as in daitao/SAN
``TrainCode/model/san.py`` and yulunzhang/RCAN ``RCAN_TrainCode/code/model/rcan.py`` (EDSR-PyTorch style),
written here from their structure — with trained-looking (non-identity) mean-shift layers, run at
[0, 255], and compared with the converted srlearn checkpoint run at [0, 1].
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srlearn.cli import main
from srlearn.convert import convert_official
from srlearn.models import official
from srlearn.models.official import convert_official_rcan, convert_official_san
from srlearn.nn.attention import SOCA
from srlearn.train import load_checkpoint, load_model

MEAN = (0.4488, 0.4371, 0.4040)


# ------------------------------------------------------------------ official-layout reference networks

def _conv(cin, cout, k=3):
    return nn.Conv2d(cin, cout, k, padding=k // 2)


def _mean_shift(sign):
    """EDSR-PyTorch's MeanShift (a 1x1 conv at rgb_range 255), then 'trained': no longer I and ∓255·mean."""
    m = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        m.weight.copy_((torch.eye(3) + 0.05 * torch.randn(3, 3)).view(3, 3, 1, 1))
        m.bias.copy_(sign * 255 * torch.tensor(MEAN) + 3 * torch.randn(3))
    return m


def _upsampler(scale, c):
    layers = []
    if scale & (scale - 1) == 0:
        for _ in range(int(math.log2(scale))):
            layers += [_conv(c, 4 * c), nn.PixelShuffle(2)]
    else:
        layers += [_conv(c, 9 * c), nn.PixelShuffle(3)]
    return nn.Sequential(*layers)


class _CA(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(nn.Conv2d(c, c // r, 1), nn.ReLU(), nn.Conv2d(c // r, c, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.conv_du(self.avg_pool(x))


class _Res(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x) + x


class OfficialRCAN(nn.Module):
    """RCAN in the official layout: sub_mean, head.0, body.G.body.B.body.{0,2,3.conv_du}, tail, add_mean."""

    def __init__(self, scale=2, groups=2, blocks=2, c=16, r=4):
        super().__init__()
        self.sub_mean = _mean_shift(-1)
        rg = [_Res(nn.Sequential(*[_Res(nn.Sequential(_conv(c, c), nn.ReLU(), _conv(c, c), _CA(c, r)))
                                   for _ in range(blocks)], _conv(c, c))) for _ in range(groups)]
        self.add_mean = _mean_shift(+1)
        self.head = nn.Sequential(_conv(3, c))
        self.body = nn.Sequential(*rg, _conv(c, c))
        self.tail = nn.Sequential(_upsampler(scale, c), _conv(c, 3))

    def forward(self, x):                      # x in [0, 255]
        x = self.head(self.sub_mean(x))
        return self.add_mean(self.tail(self.body(x) + x))


class _NonLocal(nn.Module):
    """Official ``_NonLocalBlockND`` as SAN builds it: registered g, W, theta, phi; g and phi max-pooled."""

    def __init__(self, c, inter):
        super().__init__()
        self.inter = inter
        self.g = nn.Conv2d(c, inter, 1)
        self.W = nn.Conv2d(inter, c, 1)
        self.theta = nn.Conv2d(c, inter, 1)
        self.phi = nn.Conv2d(c, inter, 1)
        self.g = nn.Sequential(self.g, nn.MaxPool2d(2))          # re-assigned: keeps its place, as officially
        self.phi = nn.Sequential(self.phi, nn.MaxPool2d(2))

    def forward(self, x):
        b, _, h, w = x.shape
        g = self.g(x).view(b, self.inter, -1).permute(0, 2, 1)
        t = self.theta(x).view(b, self.inter, -1).permute(0, 2, 1)
        p = self.phi(x).view(b, self.inter, -1)
        y = (F.softmax(t @ p, dim=-1) @ g).permute(0, 2, 1).reshape(b, self.inter, h, w)
        return self.W(y) + x


class _NonlocalCA(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.soca = SOCA(c, reduction=8)                          # created, never used (as officially)
        self.non_local = _NonLocal(c, c // 8)

    def forward(self, x):
        h1, w1 = x.shape[2] // 2, x.shape[3] // 2
        out = torch.zeros_like(x)
        for ys in (slice(None, h1), slice(h1, None)):
            for xs in (slice(None, w1), slice(w1, None)):
                out[:, :, ys, xs] = self.non_local(x[:, :, ys, xs])
        return out


class _RB(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv_first = nn.Sequential(_conv(c, c), nn.ReLU(), _conv(c, c))

    def forward(self, x):
        return self.conv_first(x) + x


class _LSRAG(nn.Module):
    def __init__(self, c, blocks, r):
        super().__init__()
        self.rcab = nn.ModuleList([_RB(c) for _ in range(blocks)])
        self.soca = SOCA(c, reduction=r)
        self.conv_last = _conv(c, c)
        self.gamma = nn.Parameter(torch.zeros(1))                 # unused by the forward

    def forward(self, x):
        y = x
        for rb in self.rcab:
            y = rb(y)
        return self.conv_last(self.soca(y)) + x


class OfficialSAN(nn.Module):
    """SAN in the official layout (names and registration order of daitao/SAN's ``SAN``)."""

    def __init__(self, scale=2, groups=2, blocks=2, c=16, r=4):
        super().__init__()
        self.sub_mean = _mean_shift(-1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.RG = nn.ModuleList([_LSRAG(c, blocks, r) for _ in range(groups)])
        self.conv_last = _conv(c, c)                                # unused by the forward
        self.add_mean = _mean_shift(+1)
        self.non_local = _NonlocalCA(c)
        self.head = nn.Sequential(_conv(3, c))
        self.tail = nn.Sequential(_upsampler(scale, c), _conv(c, 3))

    def forward(self, x):                      # x in [0, 255]
        x = self.head(self.sub_mean(x))
        xx = self.non_local(x)
        residual = xx
        for group in self.RG:
            xx = group(xx) + self.gamma * residual
        return self.add_mean(self.tail(self.non_local(xx) + x))


def _trained_looking(model):
    """Default init leaves the non-local W and the gammas at zero; make every tensor matter."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma") or ".W." in name:
                p.copy_(0.2 * torch.randn_like(p))
    return model.eval()


@pytest.fixture
def official_san():
    torch.manual_seed(0)
    return _trained_looking(OfficialSAN(scale=3))


@pytest.fixture
def official_rcan():
    torch.manual_seed(0)
    return _trained_looking(OfficialRCAN(scale=4))


def _image(h=12, w=14):
    g = torch.Generator().manual_seed(7)
    return F.interpolate(torch.rand(1, 3, h // 2, w // 2, generator=g), size=(h, w), mode="bilinear")


def _same_as_official(official_model, converted, x):
    with torch.no_grad():
        want = official_model(255 * x) / 255
        got = converted(x)
    return (got - want).abs().max().item(), want.abs().max().item()


# ------------------------------------------------------------------ the layout the tests rely on

def test_official_layout_of_the_reference_networks():
    san = list(OfficialSAN().state_dict())
    assert san[:3] == ["gamma", "sub_mean.weight", "sub_mean.bias"]
    nl = [k for k in san if k.startswith("non_local.non_local.")]
    assert nl == ["non_local.non_local.g.0.weight", "non_local.non_local.g.0.bias",
                  "non_local.non_local.W.weight", "non_local.non_local.W.bias",
                  "non_local.non_local.theta.weight", "non_local.non_local.theta.bias",
                  "non_local.non_local.phi.0.weight", "non_local.non_local.phi.0.bias"]
    assert "RG.0.rcab.1.conv_first.2.weight" in san and "RG.1.soca.conv_du.2.bias" in san
    rcan = OfficialRCAN(scale=4).state_dict()
    assert "body.1.body.1.body.3.conv_du.2.weight" in rcan and "body.2.weight" in rcan
    assert {"tail.0.0.weight", "tail.0.2.weight", "tail.1.weight", "head.0.weight"} <= set(rcan)


# ------------------------------------------------------------------ RCAN

def test_rcan_converts_to_the_same_function_on_0_1_images(official_rcan):
    weights, kwargs = convert_official_rcan(official_rcan.state_dict())
    assert kwargs == {"scale": 4, "n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": 4}
    from srlearn.models import build
    model = build("rcan", "paper", **kwargs)
    model.load_state_dict(weights, strict=True)
    err, size = _same_as_official(official_rcan, model.eval(), _image())
    assert size > 0.1 and err < 1e-5 * max(size, 1), (err, size)


def test_rcan_mean_shift_is_read_from_the_file_not_assumed(official_rcan):
    state = official_rcan.state_dict()
    weights, _ = convert_official_rcan(state)
    default = torch.tensor(MEAN).view(1, 3, 1, 1)
    assert not torch.allclose(weights["sub_mean.mean"], default, atol=1e-3)   # the trained values, not DIV2K's
    # with the official defaults (I, ∓255·mean) the buffers are exactly the DIV2K mean
    for name, sign in (("sub_mean", -1), ("add_mean", 1)):
        state[f"{name}.weight"] = torch.eye(3).view(3, 3, 1, 1)
        state[f"{name}.bias"] = sign * 255 * torch.tensor(MEAN)
    weights, _ = convert_official_rcan(state)
    torch.testing.assert_close(weights["sub_mean.mean"], default)
    torch.testing.assert_close(weights["add_mean.mean"], default)
    torch.testing.assert_close(weights["head.weight"], 255 * state["head.0.weight"])
    torch.testing.assert_close(weights["tail.1.weight"], state["tail.1.weight"] / 255)


def test_rcan_accepts_dataparallel_and_wrapped_files(official_rcan):
    state = {"state_dict": {"module." + k: v for k, v in official_rcan.state_dict().items()}, "epoch": 3}
    weights, kwargs = convert_official_rcan(state)
    assert kwargs["scale"] == 4 and "head.weight" in weights


# ------------------------------------------------------------------ SAN

def test_san_converts_to_the_same_function_on_0_1_images(official_san):
    weights, kwargs = convert_official_san(official_san.state_dict())
    assert kwargs == {"scale": 3, "n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": 4}
    from srlearn.models import build
    model = build("san", "paper", **kwargs)
    model.load_state_dict(weights, strict=True)
    for h, w in ((12, 14), (9, 11)):           # even and odd sizes (unequal non-local regions)
        err, size = _same_as_official(official_san, model.eval(), _image(h, w))
        assert size > 0.1 and err < 1e-5 * max(size, 1), (h, w, err, size)


def test_san_non_local_is_matched_by_name_not_by_order(official_san):
    state = official_san.state_dict()
    weights, _ = convert_official_san(state)
    for ours, theirs in (("theta", "theta"), ("phi", "phi.0"), ("g", "g.0"), ("W", "W")):
        torch.testing.assert_close(weights[f"non_local.block.{ours}.weight"],
                                   state[f"non_local.non_local.{theirs}.weight"], rtol=0, atol=0)
    # theta, phi and g have one shape: matched by order they would be silently swapped
    shapes = {tuple(state[f"non_local.non_local.{n}.weight"].shape) for n in ("theta", "phi.0", "g.0")}
    assert len(shapes) == 1
    official_order = [k for k in state if k.startswith("non_local.non_local.") and k.endswith("weight")]
    from srlearn.models import build
    ours_order = [k for k in build("san", "mini").state_dict() if k.startswith("non_local.block.")
                  and k.endswith("weight")]
    by_order = dict(zip(ours_order, official_order))
    assert by_order["non_local.block.theta.weight"] == "non_local.non_local.g.0.weight"   # the trap


def test_a_swapped_mapping_would_be_caught(official_san, monkeypatch):
    """Mutation check: the end-to-end comparison fails if the converter swapped g and theta."""
    swap = {"non_local.block.g.": "non_local.block.theta.", "non_local.block.theta.": "non_local.block.g."}
    rules = [(p, next((r.replace(a, b) for a, b in swap.items() if r.startswith(a)), r))
             for p, r in official._SAN_RULES]
    assert sum(r.startswith("non_local.block.theta.") for _, r in rules) == 1
    monkeypatch.setattr(official, "_SAN_RULES", tuple(rules))
    weights, kwargs = convert_official_san(official_san.state_dict())      # shapes agree: no error...
    from srlearn.models import build
    model = build("san", "paper", **kwargs)
    model.load_state_dict(weights, strict=True)
    err, size = _same_as_official(official_san, model.eval(), _image())
    assert err > 1e-3 * size                                                  # ...but the outputs differ


def test_san_unused_parameters_are_dropped_and_unknown_keys_refused(official_san):
    state = official_san.state_dict()
    weights, _ = convert_official_san(state)
    assert not any(k.startswith("conv_last") or "soca" in k and k.startswith("non_local") for k in weights)
    bad = dict(state, **{"RG.0.extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="no counterpart.*RG.0.extra.weight"):
        convert_official_san(bad)
    missing = {k: v for k, v in state.items() if not k.startswith("non_local.non_local.theta")}
    with pytest.raises(ValueError, match="missing.*theta"):
        convert_official_san(missing)


def test_wrong_architecture_is_a_clear_error(official_san, official_rcan):
    with pytest.raises(ValueError, match="not an official SAN"):
        convert_official_san(official_rcan.state_dict())
    with pytest.raises(ValueError, match="official-san"):
        convert_official_rcan(official_san.state_dict())


def test_singular_mean_shift_is_refused(official_rcan):
    state = official_rcan.state_dict()
    state["sub_mean.weight"] = torch.zeros(3, 3, 1, 1)
    with pytest.raises(ValueError, match="singular"):
        convert_official_rcan(state)


# ------------------------------------------------------------------ files and the command

@pytest.mark.parametrize("source", ["official-san", "official-rcan"])
def test_convert_command_writes_a_checkpoint_load_model_reads(tmp_path, source, official_san, official_rcan,
                                                              capsys):
    ref = official_san if source == "official-san" else official_rcan
    src = tmp_path / "released.pt"
    # the 2018/2019 files predate PyTorch 1.6's zip format: write SAN's the old way, RCAN's the new way
    torch.save(ref.state_dict(), src, _use_new_zipfile_serialization=source == "official-rcan")
    assert src.read_bytes()[:2] == (b"PK" if source == "official-rcan" else b"\x80\x02")
    out = tmp_path / "converted.pt"
    assert main(["convert", "--from", source, str(src), "--out", str(out)]) == 0
    assert "does not redistribute" in capsys.readouterr().out
    model = load_model(out)
    err, size = _same_as_official(ref, model, _image())
    assert err < 1e-5 * max(size, 1)
    meta = load_checkpoint(out)["converted_from"]
    assert meta["source"] == source and len(meta["sha256"]) == 64 and "github.com" in meta["published"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted.pt", "released.pt"]   # no temp files left


def test_convert_mirnet(tmp_path):
    from test_mirnet import _official_names

    from srlearn.models import build
    torch.manual_seed(0)
    src = build("mirnet", "tiny", n_mrb=2)
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = tmp_path / "model_denoising.pth"
    torch.save({"epoch": 60, "state_dict": {"module." + k: v for k, v in
                                            _official_names(src.state_dict(), width=2).items()}}, path)
    out = convert_official("official-mirnet", path, tmp_path / "m.pt")
    model = load_model(out)
    assert model.srlearn_spec["kwargs"]["n_mrb"] == 2 and model.srlearn_spec["kwargs"]["n_feat"] == 8
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), src.eval()(x), rtol=0, atol=0)


def test_convert_errors(tmp_path, official_rcan, capsys):
    with pytest.raises(FileNotFoundError, match="does not redistribute"):
        convert_official("official-san", tmp_path / "nope.pt", tmp_path / "o.pt")
    junk = tmp_path / "page.pt"
    junk.write_text("<html>Google Drive - virus scan warning</html>")
    with pytest.raises(ValueError, match="cannot be read"):
        convert_official("official-rcan", junk, tmp_path / "o.pt")
    with pytest.raises(ValueError, match="unknown source"):
        convert_official("official-edsr", junk, tmp_path / "o.pt")
    src = tmp_path / "rcan.pt"
    torch.save(official_rcan.state_dict(), src)
    assert main(["convert", "--from", "official-san", str(src), "--out", str(tmp_path / "o.pt")]) == 2
    assert not (tmp_path / "o.pt").exists()
    assert "not an official SAN" in capsys.readouterr().err
