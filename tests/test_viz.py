"""srlearn.viz: the capture hooks, the figures, the results tables and the feature explorer."""
from __future__ import annotations

import math
import statistics

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from torch import nn  # noqa: E402

import srlearn  # noqa: E402
from srlearn import viz  # noqa: E402
from srlearn.viz._images import to_display  # noqa: E402
from srlearn.viz.plots import ZOOM_BOX_GID  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return srlearn.models.build("edsr", "mini")


@pytest.fixture(scope="module")
def lr_image():
    return torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(1))


def _all_hooks(model):
    """Every forward (pre-)hook still registered anywhere in ``model``, except the input check that
    ``srlearn.models.build`` gives every model it builds."""
    from srlearn.models.registry import _check_input
    return [h for m in model.modules() for h in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())
            if h is not _check_input]


def _leaf_names(model):
    return [n for n, m in model.named_modules() if next(m.children(), None) is None]


# ------------------------------------------------------------------------------------------ capture

def test_capture_all_leaves_shapes_and_values(model, lr_image):
    x = lr_image[None]
    with viz.capture(model) as feats:
        out = model(x)
    assert list(feats) == _leaf_names(model)  # every leaf ran once, in definition = execution order
    assert feats["head"].shape == (1, 32, 12, 12)
    assert feats["tail.0.0"].shape == (1, 128, 12, 12)  # conv to 4*C before the pixel shuffle
    assert feats["tail.1"].shape == (1, 3, 24, 24)
    torch.testing.assert_close(feats["add_mean"], out)
    torch.testing.assert_close(feats["head"], model.head(model.sub_mean(x)))
    # the conv before ReLU(inplace=True) must be a copy, not the tensor the ReLU then overwrote
    assert (feats["body.0.body.0"] < 0).any()
    assert not feats["head"].requires_grad
    assert _all_hooks(model) == []


def test_capture_removes_hooks_after_an_exception(model, lr_image):
    with pytest.raises(RuntimeError, match="boom"):
        with viz.capture(model, ["head", "body.*"]):
            model(lr_image[None])
            assert _all_hooks(model)  # attached while inside
            raise RuntimeError("boom")
    assert _all_hooks(model) == []


def test_capture_unknown_name_suggests_close_matches(model):
    with pytest.raises(KeyError, match=r"'bdy\.0'.*close matches: 'body\.0'"):
        with viz.capture(model, ["head", "bdy.0"]):
            pass
    with pytest.raises(KeyError, match="pattern 'boddy.*' matches no submodule"):
        with viz.capture(model, "boddy.*"):
            pass
    assert _all_hooks(model) == []


def test_capture_glob_patterns_match_dot_segments(model, lr_image):
    with viz.capture(model, "body.*") as feats:
        model(lr_image[None])
    assert list(feats) == [f"body.{i}" for i in range(5)]
    with viz.capture(model, "**.body.0") as feats:
        model(lr_image[None])
    assert set(feats) == {"body.0"} | {f"body.{i}.body.0" for i in range(4)}
    with viz.capture(model, "tail.?.1") as feats:
        model(lr_image[None])
    assert list(feats) == ["tail.0.1"]


class _Twice(nn.Module):
    """One conv applied twice per forward: capture must keep both outputs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(self.conv(x) + 1.0)


def test_capture_keeps_a_list_for_a_module_run_twice_and_resets_per_forward():
    net, x = _Twice(), torch.rand(1, 3, 5, 5)
    with viz.capture(net, "conv", detach=False) as feats:
        net(x)
        net(x)  # a second forward replaces the first one's record
    assert isinstance(feats["conv"], list) and len(feats["conv"]) == 2
    first, second = feats["conv"]
    torch.testing.assert_close(first, net.conv(x))
    torch.testing.assert_close(second, net(x))
    assert second.requires_grad  # detach=False keeps the graph
    assert _all_hooks(net) == []


# ------------------------------------------------------------------------------------- the converter

def test_uint8_arrays_and_float_tensors_display_the_same():
    arr = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    tensor = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    np.testing.assert_allclose(to_display(arr), to_display(tensor[None]), atol=1e-6)
    assert to_display(tensor[:1]).shape == (6, 7)
    with pytest.raises(ValueError, match="channels-first"):
        to_display(arr.transpose(2, 0, 1))
    with pytest.raises(ValueError, match="batch of 2"):
        to_display(torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="divide it by 255"):
        to_display(arr.astype(np.float32))


# ---------------------------------------------------------------------------------------- figures

def _sr_images():
    g = torch.Generator().manual_seed(2)
    hr = torch.rand(3, 32, 32, generator=g)
    lr = hr[:, ::2, ::2]
    return lr, hr.clamp(0.1, 0.9), (hr * 255).round().byte().permute(1, 2, 0).numpy(), hr


def test_compare_sr_panels_insets_and_box():
    lr, bic, sr, hr = _sr_images()
    box = (4, 6, 8, 10)
    fig = viz.compare_sr(lr, bic, sr, hr, box=box, zoom_loc="lower right", psnr=[None, 27.5, 30.25, None])
    main = [ax for ax in fig.axes if ax.child_axes]
    assert len(main) == 4
    for ax in main:
        assert len(ax.images) == 1 and len(ax.child_axes) == 1
        boxes = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid() == ZOOM_BOX_GID]
        assert len(boxes) == 1
        assert (boxes[0].get_y(), boxes[0].get_x(), boxes[0].get_height(), boxes[0].get_width()) == box
        inset = ax.child_axes[0]
        assert tuple(inset.get_xlim()) == (6, 16) and tuple(inset.get_ylim()) == (12, 4)
        assert ax.images[0].get_extent() == [0, 32, 32, 0]  # every panel on the HR canvas
    assert main[0].images[0].get_array().shape[:2] == (16, 16)  # LR drawn as is, pixels stretched
    titles = [ax.get_title() for ax in main]
    assert titles == ["LR (16×16, nearest)", "bicubic\n27.50 dB", "SR\n30.25 dB", "HR"]


def test_compare_sr_accepts_named_arms_and_picks_a_box():
    lr, bic, sr, hr = _sr_images()
    flat = torch.full_like(hr, 0.5)
    flat[:, 20:28, 2:10] = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(3))  # the only detail
    arms = {"LR": lr, "bicubic": bic, "EDSR": sr, "SAN": bic, "HR": flat}
    fig = viz.compare_sr(arms, psnr={"EDSR": 30.0})
    assert [ax.get_title().split("\n")[0].split(" ")[0] for ax in fig.axes if ax.child_axes] == list(arms)
    box = next(p for p in fig.axes[0].patches if p.get_gid() == ZOOM_BOX_GID)
    y, x, h, w = box.get_y(), box.get_x(), box.get_height(), box.get_width()
    assert (h, w) == (8, 8) and 16 <= y <= 24 and 0 <= x <= 8  # the auto box sits on the detailed patch
    with pytest.raises(ValueError, match="does not fit"):
        viz.compare_sr(arms, box=(30, 30, 8, 8))
    with pytest.raises(ValueError, match="5 panels"):
        viz.compare_sr(arms, psnr=[1.0, 2.0])


def test_show_images_one_axes_per_image():
    imgs = {"a": np.zeros((8, 8, 3), np.uint8), "b": torch.ones(1, 8, 8), "c": torch.rand(3, 8, 8)}
    fig = viz.show_images(imgs, ncols=2)
    assert len(fig.axes) == 3 and [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
    assert all(len(ax.images) == 1 for ax in fig.axes)
    assert fig._repr_png_().startswith(b"\x89PNG")  # shows itself in Jupyter without pyplot


def test_feature_grid_axes_titles_and_shared_scale():
    feats = torch.randn(1, 20, 6, 6, generator=torch.Generator().manual_seed(4))
    fig = viz.feature_grid(feats, max_channels=12, ncols=5)
    assert len(fig.axes) == 12
    assert [ax.get_title() for ax in fig.axes] == [str(i) for i in range(12)]
    np.testing.assert_allclose(fig.axes[7].images[0].get_array(), feats[0, 7].numpy())
    shared = viz.feature_grid(feats[0], channels=[3, 19], shared_scale=True)
    assert len(shared.axes) == 3  # two maps and the colour bar
    clims = {ax.images[0].get_clim() for ax in shared.axes[:2]}
    assert clims == {(float(feats[0, [3, 19]].min()), float(feats[0, [3, 19]].max()))}
    with pytest.raises(ValueError, match="not in 0..19"):
        viz.feature_grid(feats, channels=[20])


# ------------------------------------------------------------------------------------ plot_history

def _history(seed, n=20):
    rng = np.random.default_rng(seed)
    return {"step": list(range(n)), "loss": list(1.0 / (1 + np.arange(n)) + rng.random(n) * 0.1),
            "lr": [1e-3] * n, "val_step": [0, 10, 19], "val_psnr": list(25 + rng.random(3) * 3)}


class _HasToDict:
    def __init__(self, d):
        self.d = d

    def to_dict(self):
        return self.d


def test_plot_history_seeds_draw_a_mean_line_and_a_band():
    seeds = [_history(s) for s in range(3)]
    fig = viz.plot_history({"edsr": seeds, "other": _HasToDict(_history(9))}, metric="val_psnr", baseline=26.0)
    ax = fig.axes[0]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1  # only the arm with several seeds has a band
    ys = np.array([h["val_psnr"] for h in seeds])
    verts = bands[0].get_paths()[0].vertices
    assert verts[:, 1].min() == pytest.approx(ys.min()) and verts[:, 1].max() == pytest.approx(ys.max())
    mean_line = next(line for line in ax.lines if line.get_label().startswith("edsr"))
    np.testing.assert_allclose(mean_line.get_ydata(), ys.mean(axis=0))
    baseline = next(line for line in ax.lines if line.get_label() == "bicubic")
    assert baseline.get_linestyle() == "--" and baseline.get_ydata()[0] == 26.0


def test_plot_history_single_run_smoothing_and_errors():
    h = _history(0)
    fig = viz.plot_history(h, metric="loss", smooth=0.5)
    raw, smoothed = fig.axes[0].lines
    np.testing.assert_allclose(raw.get_ydata(), h["loss"])
    expected = [h["loss"][0]]
    for v in h["loss"][1:]:
        expected.append(0.5 * expected[-1] + 0.5 * v)
    np.testing.assert_allclose(smoothed.get_ydata(), expected)
    assert not [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    with pytest.raises(KeyError, match="no 'val_ssim'"):
        viz.plot_history(h, metric="val_ssim")
    fig2, ax = plt.subplots()
    assert viz.plot_history(h, ax=ax) is fig2
    plt.close(fig2)


# ----------------------------------------------------------------------------------------- tables

ROWS = [
    {"arm": "bicubic", "seed": 0, "psnr": 26.0, "ssim": 0.80, "params": 0},
    {"arm": "edsr-mini", "seed": 0, "psnr": 30.0, "ssim": 0.90, "params": 120000, "time": 1.0},
    {"arm": "edsr-mini", "seed": 1, "psnr": 31.0, "ssim": 0.92, "params": 120000, "time": 2.0},
    {"arm": "edsr-mini", "seed": 2, "psnr": 32.5, "ssim": 0.91, "params": 120000, "time": 1.5},
]


def test_summarise_against_a_hand_computation():
    summary = {s["arm"]: s for s in viz.summarise(ROWS)}
    edsr = summary["edsr-mini"]
    assert edsr["n"] == 3
    assert edsr["psnr_mean"] == pytest.approx((30.0 + 31.0 + 32.5) / 3)
    assert edsr["psnr_std"] == pytest.approx(1.2583057, abs=1e-6)  # sqrt(3.1666667 / 2), by hand
    assert edsr["ssim_std"] == pytest.approx(statistics.stdev([0.90, 0.92, 0.91]))
    assert edsr["params"] == 120000 and "seed" not in edsr and "time" not in edsr  # time varies
    assert summary["bicubic"]["n"] == 1 and math.isnan(summary["bicubic"]["psnr_std"])
    with pytest.raises(ValueError, match="no value for \\['ssim'\\]"):
        viz.summarise([{"arm": "a", "psnr": 1.0}])


def test_results_table_markdown_and_html():
    table = viz.results_table(ROWS[::-1], paper={"edsr-mini": "EDSR > bicubic <by a lot>"},
                              protocol="Set5 ×2, Y channel, shave 2")
    md = table.to_markdown()
    lines = md.splitlines()
    assert "Δ PSNR vs bicubic" in lines[0] and "paper says" in lines[0]
    assert lines[2].startswith("| bicubic | 26.00 |")  # the baseline comes first
    delta = (30.0 + 31.0 + 32.5) / 3 - 26.0
    edsr_line = next(line for line in lines if line.startswith("| edsr-mini"))
    assert f"+{delta:.2f}" in edsr_line and "31.17 ± 1.26" in edsr_line and "120,000" in edsr_line
    assert "Set5 ×2, Y channel, shave 2" in md
    assert table._repr_markdown_() == md
    page = table._repr_html_()
    assert page.count("<tr>") == 3 and "<caption>" in page and "&lt;by a lot&gt;" in page
    assert "bicubic" in page and f"+{delta:.2f}" in page
    with pytest.raises(ValueError, match="baseline arm 'bicubic' is not in the results"):
        viz.results_table(ROWS[1:])
    assert "Δ" not in viz.results_table(ROWS[1:], baseline=None).to_markdown()


# --------------------------------------------------------------------------------------- explorer

def _image_widgets(box):
    """All ipywidgets.Image widgets anywhere inside ``box``."""
    import ipywidgets as widgets
    found = []
    for child in getattr(box, "children", ()):
        found += [child] if isinstance(child, widgets.Image) else _image_widgets(child)
    return found


def test_feature_explorer_slider_and_dropdown_drive_the_picture(model, lr_image):
    before = plt.get_fignums()
    model.train()
    explorer = viz.FeatureExplorer(model, lr_image)
    assert model.training  # restored after the eval-mode capture
    with torch.no_grad(), viz.capture(model) as feats:
        model.eval()
        model(lr_image[None])
    model.train()
    assert list(explorer.layer_dropdown.options) == list(feats)
    slider = explorer.channel_slider
    assert "srlearn-main" in slider._dom_classes
    assert explorer.feature_image in _image_widgets(explorer.widget)
    assert slider in explorer.widget.children[0].children

    explorer.layer_dropdown.value = "head"
    assert slider.max == 31
    shown, png = explorer.current_map.copy(), explorer.feature_image.value
    slider.value = 5
    assert explorer.current == ("head", 5)
    assert not np.array_equal(explorer.current_map, shown) and explorer.feature_image.value != png
    np.testing.assert_allclose(explorer.current_map, feats["head"][0, 5].numpy(), rtol=1e-5, atol=1e-6)

    explorer.layer_dropdown.value = "tail.1"  # 3 channels: the slider shrinks and its value follows
    assert (slider.max, slider.value) == (2, 2) and explorer.current == ("tail.1", 2)
    explorer.show("body.4", 7)
    assert (explorer.layer_dropdown.value, slider.value) == ("body.4", 7)
    with pytest.raises(KeyError, match="close matches"):
        explorer.show("body.44", 0)
    assert plt.get_fignums() == before


def test_feature_explorer_layers_and_max_channels(model, lr_image):
    array_image = (lr_image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    explorer = viz.FeatureExplorer(model, array_image, layers="body.*", max_channels=4)
    assert explorer.layers == [f"body.{i}" for i in range(5)]
    assert explorer.channel_slider.max == 3
    with pytest.raises(ValueError, match="out of range"):
        explorer.show("body.0", 4)


def test_feature_explorer_lists_each_call_of_a_module_run_twice():
    explorer = viz.FeatureExplorer(_Twice(), torch.rand(3, 6, 6), layers="conv")
    assert explorer.layers == ["conv[0]", "conv[1]"]
    assert not np.array_equal(explorer.features["conv[0]"], explorer.features["conv[1]"])


def test_explorer_redraws_when_a_control_moves():
    from matplotlib.figure import Figure

    from srlearn.viz import Explorer
    from srlearn.viz.widgets import MAIN_CLASS
    calls = []

    def draw(row, gain, kind):
        calls.append((row, gain, kind))
        fig = Figure(figsize=(1, 1), dpi=20)
        fig.add_subplot().plot([0, row], [0, gain])
        return fig

    ex = Explorer(draw, row=(0, 9, 3), gain=(0.0, 2.0, 1.0), kind=["a", "b"])
    assert calls == [(3, 1.0, "a")] and ex.png.startswith(b"\x89PNG") and ex.image.value == ex.png
    assert MAIN_CLASS in ex.controls["row"]._dom_classes and MAIN_CLASS not in ex.controls["kind"]._dom_classes
    first = ex.png
    ex.controls["row"].value = 7                       # moving a control redraws once
    assert calls[-1] == (7, 1.0, "a") and len(calls) == 2 and ex.png != first
    ex.show(kind="b", gain=2.0)                        # show() moves several controls, one redraw
    assert calls[-1] == (7, 2.0, "b") and len(calls) == 3
    with pytest.raises(KeyError, match="no control named"):
        ex.show(colour=1)
    with pytest.raises(ValueError, match="outside"):
        Explorer(draw, row=(0, 9, 12))
    with pytest.raises(ValueError, match="give \\(lo, hi"):
        Explorer(draw, row="wide")
    with pytest.raises(TypeError, match="Figure or PNG bytes"):
        Explorer(lambda row: 3, row=(0, 1))


def test_results_table_caption_names_the_data():
    table = viz.results_table(ROWS, protocol="Y, shave 2", data="trained on DIV2K HR; tested on Set5, Set14")
    md = table.to_markdown()
    assert md.splitlines()[-1] == ("*Protocol: Y, shave 2. Trained on DIV2K HR; tested on Set5, Set14. "
                                   "Mean ± sample std over seeds (n per row).*")
    assert "Trained on DIV2K HR" in table._repr_html_()
    assert "Trained on" not in viz.results_table(ROWS, protocol="Y").to_markdown()


def test_verdict_table_prints_the_verdict_strings_and_the_rules():
    from srlearn.experiments import Comparison, verdict
    rows = [{"arm": a, "seed": s, "psnr": p} for a, ps in (("a", [31.0, 31.1, 31.2]), ("b", [30.0, 30.1, 30.2]),
                                                            ("bicubic", [30.5] * 3)) for s, p in enumerate(ps)]
    vs = [verdict(rows, Comparison("a", "b", "a | b"), baseline="bicubic", min_detectable=0.07),
          verdict(rows[:1] + rows[3:4], Comparison("a", "b", "one seed"))]
    table = viz.verdict_table(vs, baseline="bicubic", data="tested on Set5")
    md = table.to_markdown()
    assert "| a \\| b | a | b | +1.000 | 0.082 | 3/3 | reproduced |" in md
    assert "| one seed | a | b | +1.000 | — | 1/1 | 1 seed: no noise estimate, no verdict |" in md
    assert "minimum detectable difference (0.07 dB)" not in md     # two thresholds given: not one to state
    single = viz.verdict_table(vs[:1], baseline="bicubic").to_markdown()
    assert "minimum detectable difference (0.07 dB)" in single and "below bicubic are not testable" in single
    assert "Tested on Set5." in md and "<caption>" in table._repr_html_()
    assert viz.verdict_table([]).to_markdown() == "(no comparisons registered)"
    with pytest.raises(ValueError, match="lacks"):
        viz.verdict_table([{"better": "a"}])


def test_tables_from_results_rows_name_the_data_without_being_told():
    from srlearn.experiments.report import results_rows
    res = {"baseline": {"arm": "bicubic", "psnr": 30.0, "ssim": 0.9}, "train_data": "DIV2K train HR (800 images)",
           "test_data": "Set5", "runs": [{"arm": "a", "seed": 0, "psnr": 31.0, "ssim": 0.91, "params": 5}]}
    md = viz.results_table(results_rows(res), protocol="Y").to_markdown()
    assert "Trained on DIV2K train HR (800 images); tested on Set5." in md
    older = {k: v for k, v in res.items() if k not in ("train_data", "test_data")}   # results.json before the keys
    assert "data not recorded" in viz.results_table(results_rows(older), protocol="Y").to_markdown()


def test_show_images_true_size_draws_smaller_images_smaller():
    big, small = np.zeros((64, 64, 3)), np.ones((32, 32, 3))
    fig = viz.show_images({"HR": big, "LR": small}, true_size=True)
    lr_ax = fig.axes[1]
    assert lr_ax.get_xlim() == (-0.5, 63.5) and lr_ax.get_ylim() == (63.5, -0.5)
    stretched = viz.show_images({"HR": big, "LR": small})
    assert stretched.axes[1].get_xlim() == (-0.5, 31.5)
    plt.close("all")
