"""ipywidgets explorers: move through a model's layers and channels instead of reading a static grid.

The widgets draw into ``ipywidgets.Image`` widgets inside their own container, so the picture shows in
the cell's output area, and every update is a plain method (``show``) that tests call without a
browser. Pictures are rendered with a pyplot-free ``Figure`` to PNG bytes: nothing is left open.
"""
from __future__ import annotations

import difflib
import io
from collections import OrderedDict

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from ._images import to_display, to_model_input
from .hooks import capture

#: The CSS class of each explorer's main control (the browser test moves the control with this class).
MAIN_CLASS = "srlearn-main"


class FeatureExplorer:
    """Pick a layer and a channel; see that channel's feature map for one image, beside the image.

    The model runs once, in eval mode and without gradients, with ``capture`` recording the chosen
    layers; moving the controls only redraws. ``model.training`` is restored afterwards.

    Args:
        model: an ``nn.Module`` taking a 1x3xHxW image in [0, 1].
        image: the input image, any form ``srlearn.viz`` accepts (keep it small: every captured
            layer's features are kept in memory).
        layers: names or glob patterns as in ``capture``; ``None`` = every leaf module. Layers whose
            output is not a tensor are left out; a layer that ran several times appears once per call
            as ``name[k]``.
        max_channels: offer only channels ``0 .. max_channels-1`` of each layer.
        cmap, size: colour map and side (inches) of the feature picture.

    Attributes:
        widget: the container to display (an explorer also displays itself as the last expression of
            a cell).
        layer_dropdown, channel_slider: the controls; the slider carries the CSS class ``srlearn-main``.
        features: ``layer -> CxHxW`` float32 array of the captured features.
        current_map: the ``HxW`` array now displayed; ``current``: its ``(layer, channel)``.
    """

    def __init__(self, model: torch.nn.Module, image, layers=None, max_channels: int | None = None, *,
                 cmap: str = "viridis", size: float = 2.6):
        if max_channels is not None and max_channels < 1:
            raise ValueError(f"max_channels must be at least 1, got {max_channels}")
        self.features = _capture_features(model, image, layers)
        self.max_channels, self.cmap, self.size = max_channels, cmap, size
        self.current_map: np.ndarray | None = None
        self.current: tuple[str, int] | None = None
        self._syncing = False
        first = next(iter(self.features))
        self.layer_dropdown = widgets.Dropdown(options=list(self.features), value=first, description="layer")
        self.channel_slider = widgets.IntSlider(value=0, min=0, max=self._n_channels(first) - 1,
                                                description="channel")
        self.channel_slider.add_class(MAIN_CLASS)
        self.input_image = widgets.Image(value=_png_of_image(image, int(size * 80)), format="png")
        self.feature_image = widgets.Image(format="png")
        self.info = widgets.HTML()
        self._container = widgets.VBox([widgets.HBox([self.layer_dropdown, self.channel_slider]),
                                        widgets.HBox([self.input_image, self.feature_image]), self.info])
        self.layer_dropdown.observe(self._on_layer, names="value")
        self.channel_slider.observe(self._on_channel, names="value")
        self.show(first, 0)

    @property
    def widget(self) -> widgets.VBox:
        """The container: the controls above the input image and the feature map."""
        return self._container

    @property
    def layers(self) -> list[str]:
        """The layers offered in the dropdown, in the order the forward pass ran them."""
        return list(self.features)

    def show(self, layer: str | None = None, channel: int | None = None) -> None:
        """Display ``channel`` of ``layer`` (``None`` keeps the current choice) and move the controls to it."""
        layer = self.layer_dropdown.value if layer is None else layer
        if layer not in self.features:
            close = difflib.get_close_matches(str(layer), self.layers, n=3)
            raise KeyError(f"layer {layer!r} was not captured; close matches: {close}; "
                           f"all layers: .layers (pass layers= to FeatureExplorer to capture others)")
        n = self._n_channels(layer)
        channel = self.channel_slider.value if channel is None else int(channel)
        if not 0 <= channel < n:
            raise ValueError(f"channel {channel} is out of range for {layer!r}: use 0..{n - 1}")
        self._syncing = True  # moving the controls here must not trigger a second redraw
        try:
            self.layer_dropdown.value = layer
            self.channel_slider.max = n - 1
            self.channel_slider.value = channel
        finally:
            self._syncing = False
        self._render(layer, channel)

    def _n_channels(self, layer: str) -> int:
        """Channels offered for ``layer``: all of them, or at most ``max_channels``."""
        n = len(self.features[layer])
        return n if self.max_channels is None else min(n, self.max_channels)

    def _on_layer(self, change) -> None:
        if not self._syncing:
            self.show(change["new"], min(self.channel_slider.value, self._n_channels(change["new"]) - 1))

    def _on_channel(self, change) -> None:
        if not self._syncing:
            self.show(self.layer_dropdown.value, change["new"])

    def _render(self, layer: str, channel: int) -> None:
        """Draw the map into the feature Image widget and the statistics into the info line."""
        fmap = self.features[layer][channel]
        self.current_map, self.current = fmap, (layer, channel)
        self.feature_image.value = _png_of_map(fmap, f"{layer} · ch {channel}", self.cmap, self.size)
        c, h, w = self.features[layer].shape
        self.info.value = (f"<code>{layer}</code>: {c}×{h}×{w}; channel {channel}: min {fmap.min():.3g}, "
                           f"max {fmap.max():.3g}, mean {fmap.mean():.3g}")

    def _ipython_display_(self):
        from IPython.display import display
        display(self._container)


def _capture_features(model, image, layers) -> "OrderedDict[str, np.ndarray]":
    """Run ``model`` once on ``image`` (eval, no grad) and return the captured maps as CxHxW arrays."""
    param = next(model.parameters(), None)
    x = to_model_input(image)
    if param is not None:
        x = x.to(device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), capture(model, layers) as records:
            model(x)
    finally:
        model.train(was_training)
    features: OrderedDict = OrderedDict()
    for name, value in records.items():
        calls = value if isinstance(value, list) else [value]
        for k, out in enumerate(calls):
            maps = _as_channel_maps(out)
            if maps is not None:
                features[name if len(calls) == 1 else f"{name}[{k}]"] = maps
    if not features:
        raise ValueError(f"none of the captured layers ({list(records) or 'none ran'}) output a tensor "
                         f"with a spatial map; pass layers= naming modules that output NxCxHxW features")
    return features


def _as_channel_maps(out) -> np.ndarray | None:
    """A module output as ``CxHxW`` float32 (batch of one dropped), or ``None`` if it is no map."""
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        return None
    t = out.detach().float().cpu()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    elif t.ndim == 2:
        t = t[None]
    return t.numpy() if t.ndim == 3 else None


def _png_of_map(fmap: np.ndarray, title: str, cmap: str, size: float) -> bytes:
    """A small figure of one feature map with a colour bar, as PNG bytes (no pyplot, nothing left open)."""
    h, w = fmap.shape
    fig = Figure(figsize=(size * 1.35, size * h / w + 0.3), dpi=80)  # fixed axes: no layout engine (3x faster)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.02, 0.7, 0.86))
    image = ax.imshow(fmap, cmap=cmap, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()
    fig.colorbar(image, cax=fig.add_axes((0.76, 0.1, 0.04, 0.7))).ax.tick_params(labelsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _png_of_image(image, target: int) -> bytes:
    """The input image as PNG bytes, enlarged by an integer nearest-neighbour factor to about ``target`` px."""
    arr = np.round(to_display(image) * 255).astype(np.uint8)
    factor = max(1, target // max(arr.shape[:2]))
    pil = Image.fromarray(arr)
    pil = pil.resize((arr.shape[1] * factor, arr.shape[0] * factor), Image.NEAREST)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()


class Explorer:
    """Controls above one picture, redrawn when a control moves: the figure -> PNG -> slider pattern of
    the notebooks' look-inside cells, in one place.

    ``draw(**values)`` returns a matplotlib ``Figure`` (or PNG bytes) for the controls' current values.
    Each keyword of ``controls`` names one argument of ``draw`` and gives its control:

    * ``(lo, hi)`` or ``(lo, hi, value)`` of ints: an ``IntSlider``; of floats: a ``FloatSlider``
      (``(lo, hi, value, step)`` sets the step);
    * a list or tuple of options (strings, or ``(label, value)`` pairs): a ``Dropdown``;
    * an ipywidgets control: used as it is.

    The first control carries the CSS class ``srlearn-main`` (the browser test moves it). ``show(**values)``
    moves the controls and redraws (what tests call); ``png`` holds the bytes on display; the explorer
    displays itself as a cell's last expression. Example::

        viz.Explorer(lambda row, col: where_it_looks(row, col), row=(0, H - 1, 20), col=(0, W - 1, 40))
    """

    def __init__(self, draw, continuous_update: bool = False, **controls):
        if not callable(draw):
            raise TypeError(f"draw must be a function of the controls' values returning a Figure, got {draw!r}")
        if not controls:
            raise ValueError("give at least one control, e.g. Explorer(draw, channel=(0, 31))")
        self.draw = draw
        self.controls = OrderedDict((name, _control(name, spec, continuous_update)) for name, spec in controls.items())
        next(iter(self.controls.values())).add_class(MAIN_CLASS)
        self.image = widgets.Image(format="png")
        self.png: bytes = b""
        self._syncing = False
        self._container = widgets.VBox([widgets.HBox(list(self.controls.values())), self.image])
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.show()

    @property
    def widget(self) -> widgets.VBox:
        return self._container

    @property
    def values(self) -> dict:
        return {name: c.value for name, c in self.controls.items()}

    def show(self, **values) -> bytes:
        """Move the named controls to ``values`` (the others stay) and redraw; return the PNG bytes."""
        unknown = sorted(set(values) - set(self.controls))
        if unknown:
            raise KeyError(f"no control named {unknown}; the controls are {list(self.controls)}")
        self._syncing = True
        try:
            for name, value in values.items():
                self.controls[name].value = value
        finally:
            self._syncing = False
        out = self.draw(**self.values)
        self.png = out if isinstance(out, (bytes, bytearray)) else _figure_png(out)
        self.image.value = self.png
        return self.png

    def _on_change(self, change) -> None:
        if not self._syncing:
            self.show()

    def _ipython_display_(self):
        from IPython.display import display
        display(self._container)


def _control(name: str, spec, continuous_update: bool):
    if isinstance(spec, widgets.ValueWidget):
        return spec
    if isinstance(spec, list) or (isinstance(spec, tuple) and spec and not all(isinstance(v, (int, float)) for v in spec)):
        options = list(spec)
        if not options:
            raise ValueError(f"control {name!r}: a dropdown needs at least one option")
        return widgets.Dropdown(options=options, description=name)
    if isinstance(spec, tuple) and 2 <= len(spec) <= 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                             for v in spec):
        lo, hi = spec[0], spec[1]
        value = spec[2] if len(spec) > 2 else lo
        if not lo <= value <= hi:
            raise ValueError(f"control {name!r}: value {value} is outside [{lo}, {hi}]")
        if all(isinstance(v, int) for v in spec):
            return widgets.IntSlider(value=value, min=lo, max=hi, step=spec[3] if len(spec) > 3 else 1,
                                     description=name, continuous_update=continuous_update)
        step = spec[3] if len(spec) > 3 else (hi - lo) / 20
        return widgets.FloatSlider(value=value, min=lo, max=hi, step=step, description=name,
                                   continuous_update=continuous_update)
    raise ValueError(f"control {name!r}: give (lo, hi[, value[, step]]) for a slider, a list of options for a "
                     f"dropdown, or an ipywidgets control; got {spec!r}")


def _figure_png(fig) -> bytes:
    """A matplotlib Figure as PNG bytes (a pyplot-free Figure gets its Agg canvas here)."""
    if not hasattr(fig, "savefig"):
        raise TypeError(f"draw must return a matplotlib Figure or PNG bytes, got {type(fig).__name__}")
    if fig.canvas is None or type(fig.canvas).__name__ == "FigureCanvasBase":
        FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
