"""Figures for the notebooks and reports: images side by side, the LR/bicubic/SR/HR comparison with a
zoomed inset, a grid of feature maps, and learning curves.

Every function returns a ``matplotlib.figure.Figure`` built *without* pyplot (a ``NotebookFigure``):
nothing piles up in pyplot's list of open figures, and a notebook cell shows the figure once, when it
is the cell's last expression (or through ``display(fig)``), whether or not pyplot was ever imported.
Save one with ``fig.savefig("name.png")``. Images may be
uint8 ``HxWx3`` arrays or float ``CxHxW`` tensors in [0, 1] (see ``srlearn.viz._images``).
"""
from __future__ import annotations

import io
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ._images import to_display

#: Where the zoomed inset sits inside each panel, as (left, bottom) fractions of the axes.
_CORNERS = {"lower right": (1, 0), "lower left": (0, 0), "upper right": (1, 1), "upper left": (0, 1)}
_BOX_COLOUR = "#ff7f0e"
#: The gid of the rectangle that marks the zoomed region (tests and style sheets find it by this).
ZOOM_BOX_GID = "srlearn-zoom-box"


class NotebookFigure(Figure):
    """A plain matplotlib ``Figure`` that also shows itself as a PNG in Jupyter.

    IPython only learns to draw figures once pyplot's inline backend is loaded; a figure made without
    pyplot would otherwise print as ``<Figure size ...>``. ``_repr_png_`` closes that gap (when the
    inline backend is loaded, its own formatter is used instead, with the same result).
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


# ----------------------------------------------------------------------------------------- images

def show_images(images, titles=None, *, ncols: int | None = None, size: float = 3.0,
                cmap: str = "gray", suptitle: str | None = None, true_size: bool = False) -> Figure:
    """Show images side by side (wrapping after ``ncols``), one axes per image, axes hidden.

    ``images`` is a list, or a dict ``title -> image`` (then the keys are the titles). Each image is
    drawn with nearest-neighbour interpolation, so pixels stay visible; by default every image fills its
    panel. ``true_size=True`` draws all panels at one pixel scale instead (the largest image's), so an
    LR image appears smaller than its HR image, in the top-left corner of its panel.
    """
    panels = _as_panels(images, titles)
    n = len(panels)
    ncols = min(ncols or n, n)
    nrows = math.ceil(n / ncols)
    h, w = next(iter(panels.values())).shape[:2]
    if true_size:
        max_h, max_w = max(p.shape[0] for p in panels.values()), max(p.shape[1] for p in panels.values())
        h, w = max_h, max_w
    fig = NotebookFigure(figsize=(size * ncols, size * nrows * h / w + 0.4 * nrows), layout="constrained")
    for k, (title, img) in enumerate(panels.items()):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        if true_size:
            ax.set_xlim(-0.5, max_w - 0.5)
            ax.set_ylim(max_h - 0.5, -0.5)
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def compare_sr(lr, bicubic=None, sr=None, hr=None, box=None, zoom_loc: str | None = "auto",
               psnr=None, *, size: float = 3.0, inset_size: float = 0.42) -> Figure:
    """LR / bicubic / SR / HR side by side, each with a zoomed inset of the same region.

    Args:
        lr, bicubic, sr, hr: the four images (any may be ``None`` and is then left out); or pass one
            dict ``name -> image`` as ``lr`` to show any number of arms, e.g.
            ``{"LR": lr, "bicubic": b, "EDSR": sr, "HR": hr}``.
        box: the zoomed region ``(y, x, h, w)`` in the coordinates of the largest image (the HR).
            ``None`` picks the square, a quarter of the image's side, with the most detail (largest
            mean gradient) in the HR image, or the largest image when there is no ``"HR"``.
        zoom_loc: the panel corner for the inset: ``"lower right"``, ``"lower left"``,
            ``"upper right"``, ``"upper left"``; ``"auto"`` takes the corner farthest from the box;
            ``None`` draws no inset (the box is still outlined).
        psnr: scores for the titles: a dict ``name -> dB`` or a list in panel order (``None`` entries
            are skipped).
        size: width of each panel in inches; ``inset_size``: the inset's side as a fraction of it.

    Smaller images (the LR) are stretched over the HR canvas with nearest-neighbour interpolation, so
    each LR pixel shows as a visible ``scale x scale`` block and ``box`` means the same region in every
    panel. Their titles give their true size.
    """
    panels = _sr_panels(lr, bicubic, sr, hr)
    names = list(panels)
    ref = max(panels.values(), key=lambda im: im.shape[0] * im.shape[1])
    height, width = ref.shape[:2]
    detail = panels.get("HR", ref)
    box = _auto_box(detail) if box is None else _check_box(box, height, width)
    scores = _scores(psnr, names)
    corner = _pick_corner(box, height, width) if zoom_loc == "auto" else zoom_loc
    if corner is not None and corner not in _CORNERS:
        raise ValueError(f"zoom_loc={zoom_loc!r} is not a corner; use one of {list(_CORNERS)}, 'auto' or None")

    fig = NotebookFigure(figsize=(size * len(panels), size * height / width + 0.6), layout="constrained")
    for k, name in enumerate(names):
        ax = fig.add_subplot(1, len(panels), k + 1)
        img = panels[name]
        _draw_on_canvas(ax, img, height, width)
        ax.add_patch(Rectangle((box[1], box[0]), box[3], box[2], fill=False, edgecolor=_BOX_COLOUR,
                               linewidth=1.5, gid=ZOOM_BOX_GID))
        if corner is not None:
            _add_inset(ax, img, height, width, box, corner, inset_size)
        ax.set_title(_panel_title(name, img, height, width, scores[k]), fontsize=10)
    return fig


def _as_panels(images, titles=None) -> "OrderedDict[str, np.ndarray]":
    """A dict or list of images as an ordered ``title -> display array`` mapping."""
    if isinstance(images, Mapping):
        if titles is not None:
            raise ValueError("titles were given twice: as the dict's keys and as titles=; pass one")
        items = list(images.items())
    else:
        if isinstance(images, (np.ndarray, torch.Tensor)) or not isinstance(images, Sequence):
            raise TypeError("images must be a list or a dict of images; for a single image use [image]")
        titles = list(titles) if titles is not None else [""] * len(images)
        if len(titles) != len(images):
            raise ValueError(f"{len(images)} images but {len(titles)} titles")
        items = list(zip(titles, images))
    if not items:
        raise ValueError("no images to show")
    return OrderedDict((str(t), to_display(im)) for t, im in items)


def _sr_panels(lr, bicubic, sr, hr) -> "OrderedDict[str, np.ndarray]":
    """compare_sr's panels: the dict form, or the named non-None positional images."""
    if isinstance(lr, Mapping):
        if any(v is not None for v in (bicubic, sr, hr)):
            raise ValueError("pass either one dict of named images or the images lr, bicubic, sr, hr; not both")
        return _as_panels(lr)
    named = {"LR": lr, "bicubic": bicubic, "SR": sr, "HR": hr}
    return _as_panels({k: v for k, v in named.items() if v is not None})


def _draw_on_canvas(ax, img: np.ndarray, height: int, width: int) -> None:
    """Draw ``img`` stretched over a ``height x width`` canvas (pixel edges at integers), no ticks."""
    ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest", extent=(0, width, height, 0))
    ax.set_xticks([])
    ax.set_yticks([])


def _add_inset(ax, img, height, width, box, corner, inset_size) -> None:
    """An inset axes in ``corner`` of ``ax`` showing ``box`` of ``img`` magnified, framed in the box colour."""
    fx, fy = _CORNERS[corner]
    inset = ax.inset_axes([fx * (1 - inset_size), fy * (1 - inset_size), inset_size, inset_size])
    _draw_on_canvas(inset, img, height, width)
    y, x, h, w = box
    inset.set_xlim(x, x + w)
    inset.set_ylim(y + h, y)
    for spine in inset.spines.values():
        spine.set_edgecolor(_BOX_COLOUR)
        spine.set_linewidth(1.5)


def _panel_title(name, img, height, width, score) -> str:
    """The panel's name, its true size when it was stretched, and its PSNR when given."""
    title = name
    if img.shape[:2] != (height, width):
        title += f" ({img.shape[0]}×{img.shape[1]}, nearest)"
    if score is not None:
        title += f"\n{float(score):.2f} dB"
    return title


def _scores(psnr, names: list[str]) -> list:
    """PSNR values aligned with the panels (``None`` where there is none)."""
    if psnr is None:
        return [None] * len(names)
    if isinstance(psnr, Mapping):
        unknown = set(psnr) - set(names)
        if unknown:
            raise ValueError(f"psnr has values for {sorted(unknown)} but the panels are {names}")
        return [psnr.get(n) for n in names]
    psnr = list(psnr)
    if len(psnr) != len(names):
        raise ValueError(f"psnr has {len(psnr)} values for {len(names)} panels ({names}); "
                         f"pass one per panel (None to skip) or a dict name -> value")
    return psnr


def _check_box(box, height: int, width: int) -> tuple[int, int, int, int]:
    """Validate ``(y, x, h, w)``: four numbers, positive size, inside the ``height x width`` canvas."""
    if len(box) != 4:
        raise ValueError(f"box must be (y, x, h, w), got {box!r}")
    y, x, h, w = (int(v) for v in box)
    if h <= 0 or w <= 0 or y < 0 or x < 0 or y + h > height or x + w > width:
        raise ValueError(f"box (y, x, h, w) = {(y, x, h, w)} does not fit inside the {height}x{width} "
                         f"HR image; give it in HR pixel coordinates")
    return y, x, h, w


def _auto_box(img: np.ndarray) -> tuple[int, int, int, int]:
    """The square (side = a quarter of the shorter side) with the largest mean gradient magnitude."""
    grey = img.mean(axis=-1) if img.ndim == 3 else img
    height, width = grey.shape
    side = max(1, min(height, width) // 4)
    gy, gx = np.gradient(grey.astype(np.float64)) if min(height, width) > 1 else (grey * 0, grey * 0)
    energy = np.pad(np.hypot(gy, gx), ((1, 0), (1, 0))).cumsum(0).cumsum(1)  # integral image
    stride = max(1, side // 2)
    best, best_box = -1.0, (0, 0, side, side)
    for y in range(0, height - side + 1, stride):
        for x in range(0, width - side + 1, stride):
            total = energy[y + side, x + side] - energy[y, x + side] - energy[y + side, x] + energy[y, x]
            if total > best:
                best, best_box = total, (y, x, side, side)
    return best_box


def _pick_corner(box, height: int, width: int) -> str:
    """The panel corner farthest from the centre of ``box`` (so the inset does not hide it)."""
    cy, cx = box[0] + box[2] / 2, box[1] + box[3] / 2
    vertical = "upper" if cy > height / 2 else "lower"
    horizontal = "left" if cx > width / 2 else "right"
    return f"{vertical} {horizontal}"


# ----------------------------------------------------------------------------------- feature maps

def feature_grid(features, max_channels: int = 16, ncols: int = 8, shared_scale: bool = False, *,
                 channels=None, cmap: str = "viridis", size: float = 1.4, title: str | None = None) -> Figure:
    """A grid of the channel maps of one feature tensor, each titled with its channel index.

    Args:
        features: a ``CxHxW`` or ``1xCxHxW`` tensor or array (e.g. an entry of ``capture``); ``HxW`` is
            one channel.
        max_channels: show channels ``0 .. max_channels-1`` (ignored when ``channels`` is given).
        ncols: maps per row.
        shared_scale: ``False`` (default) stretches each map to its own min..max, which shows every
            map's pattern; ``True`` uses one colour scale for all and adds a colour bar, which shows
            which channels are strong and which are nearly dead.
        channels: an explicit list of channel indices to show.

    The figure has one axes per shown channel, plus the colour bar's axes when ``shared_scale``.
    """
    maps = _as_maps(features)
    idx = list(range(min(len(maps), max_channels))) if channels is None else [int(c) for c in channels]
    bad = [c for c in idx if not 0 <= c < len(maps)]
    if bad or not idx:
        raise ValueError(f"channels {bad or idx} are not in 0..{len(maps) - 1} (the tensor has "
                         f"{len(maps)} channels)")
    ncols = max(1, min(ncols, len(idx)))
    nrows = math.ceil(len(idx) / ncols)
    h, w = maps.shape[1:]
    width = size * ncols + (0.8 if shared_scale else 0)  # room for the colour bar
    fig = NotebookFigure(figsize=(width, size * nrows * h / w + 0.3 * nrows + 0.3), layout="constrained")
    vmin, vmax = (float(maps[idx].min()), float(maps[idx].max())) if shared_scale else (None, None)
    for k, c in enumerate(idx):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        image = ax.imshow(maps[c], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(str(c), fontsize=8)
        ax.set_axis_off()
    if shared_scale:
        fig.colorbar(image, ax=fig.axes, shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def _as_maps(features) -> np.ndarray:
    """A ``CxHxW`` float32 array from a ``CxHxW`` / ``1xCxHxW`` / ``HxW`` tensor or array."""
    if isinstance(features, (list, tuple)):
        raise TypeError("feature_grid takes one tensor; this module ran several times (capture stored a "
                        "list of its outputs): pick one, e.g. feats[name][0]")
    if isinstance(features, torch.Tensor):
        arr = features.detach().cpu().float().numpy()
    else:
        arr = np.asarray(features, dtype=np.float32)
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise ValueError(f"got a batch of {arr.shape[0]} feature maps (shape {arr.shape}); "
                             f"pass one, e.g. f[0]")
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"feature maps must be CxHxW or 1xCxHxW, got shape {arr.shape}")
    return arr


# --------------------------------------------------------------------------------- learning curves

_YLABELS = {"loss": "training loss", "val_psnr": "validation PSNR (dB)", "lr": "learning rate"}


def plot_history(histories, metric: str = "loss", ax=None, baseline: float | None = None, *,
                 baseline_label: str = "bicubic", smooth: float | None = None, band: str = "minmax",
                 logy: bool = False, title: str | None = None, ylabel: str | None = None) -> Figure:
    """Learning curves of one or several runs.

    Args:
        histories: one history; a dict ``label -> history``; or a dict ``label -> [history, ...]``
            (several seeds of one arm: drawn as the mean line with a band). A list of histories is one
            unlabelled arm with several seeds. A history is ``History.to_dict()`` of ``srlearn.train``
            (lists ``step``, ``loss``, ``lr``, ``val_step``, ``val_psnr``) or any object with ``.to_dict()``.
        metric: a key of the history; metrics named ``val_*`` are plotted against ``val_step``, the
            others against ``step``.
        ax: draw into this axes instead of a new figure.
        baseline: a value to draw as a dashed horizontal line (the bicubic PSNR), labelled ``baseline_label``.
        smooth: exponential moving average weight in [0, 1) (TensorBoard's smoothing); ``None`` means
            0.6 for ``"loss"`` (noisy per-step values) and none for the rest. A single smoothed run also
            shows its raw curve faintly.
        band: ``"minmax"`` (default: the band spans the seeds' min and max) or ``"std"`` (mean ± sample
            standard deviation). Seeds logged at different steps are interpolated onto a common grid.
        ylabel: the y-axis label; default by metric. A curve of a run scored by a
            ``srlearn.metrics.Protocol`` passes ``"validation " + protocol.metric_label``.

    Returns:
        The figure that holds the axes.
    """
    if band not in ("minmax", "std"):
        raise ValueError(f"band={band!r}: use 'minmax' or 'std'")
    weight = (0.6 if metric == "loss" else 0.0) if smooth is None else float(smooth)
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smooth={smooth} must be in [0, 1) (0 = no smoothing)")
    if ax is None:
        fig = NotebookFigure(figsize=(6, 3.6), layout="constrained")
        ax = fig.add_subplot()
    for k, (label, runs) in enumerate(_history_groups(histories).items()):
        curves = [_curve(run, metric) for run in runs]
        _plot_group(ax, curves, label, f"C{k}", weight, band)
    if baseline is not None:
        ax.axhline(float(baseline), linestyle="--", color="0.3", linewidth=1, label=baseline_label)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel or _YLABELS.get(metric, metric))
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return ax.figure


def _plot_group(ax, curves, label, colour, weight, band) -> None:
    """One arm: a line for one run; the mean line and a band for several seeds."""
    if len(curves) == 1:
        x, y = curves[0]
        if weight:
            ax.plot(x, y, color=colour, alpha=0.25, linewidth=1)
        ax.plot(x, _ema(y, weight), color=colour, label=label)
        return
    x, ys = _align(curves)
    ys = np.stack([_ema(y, weight) for y in ys])
    mean = ys.mean(axis=0)
    if band == "minmax":
        low, high = ys.min(axis=0), ys.max(axis=0)
    else:
        std = ys.std(axis=0, ddof=1)
        low, high = mean - std, mean + std
    ax.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)
    name = f"{label} " if label else ""
    ax.plot(x, mean, color=colour, label=f"{name}(mean of {len(curves)} seeds, {band} band)")


def _is_history(obj) -> bool:
    """A history: has ``.to_dict()``, or is a dict with a ``step`` or ``val_step`` list."""
    return hasattr(obj, "to_dict") or (isinstance(obj, Mapping) and ("step" in obj or "val_step" in obj))


def _as_history(obj) -> dict:
    return obj.to_dict() if hasattr(obj, "to_dict") else obj


def _history_groups(histories) -> "OrderedDict[str | None, list[dict]]":
    """Normalise the accepted forms to ``label -> list of history dicts``."""
    if _is_history(histories):
        return OrderedDict([(None, [_as_history(histories)])])
    if isinstance(histories, Sequence) and histories and all(_is_history(h) for h in histories):
        return OrderedDict([(None, [_as_history(h) for h in histories])])
    if not isinstance(histories, Mapping) or not histories:
        raise TypeError("histories must be a history (dict with 'step', or an object with .to_dict()), "
                        "a dict label -> history, or a dict label -> list of histories")
    groups: OrderedDict = OrderedDict()
    for label, value in histories.items():
        runs = [value] if _is_history(value) else list(value) if isinstance(value, Sequence) else []
        if not runs or not all(_is_history(r) for r in runs):
            raise TypeError(f"histories[{label!r}] is not a history or a list of histories "
                            f"(a history has a 'step' list or a .to_dict() method)")
        groups[str(label)] = [_as_history(r) for r in runs]
    return groups


def _curve(history: dict, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` arrays of ``metric`` and its step key from one history dict."""
    xkey = "val_step" if metric.startswith("val_") else "step"
    if metric not in history or xkey not in history:
        raise KeyError(f"the history has no {metric!r} (with {xkey!r}); its keys are {sorted(history)}")
    x = np.asarray(history[xkey], dtype=np.float64)
    y = np.asarray(history[metric], dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"history has {len(x)} {xkey!r} values but {len(y)} {metric!r} values")
    if len(y) == 0:
        hint = " (was validation run? see the trainer's validation interval)" if xkey == "val_step" else ""
        raise ValueError(f"the history has no {metric!r} values yet{hint}")
    return x, y


def _align(curves) -> tuple[np.ndarray, list[np.ndarray]]:
    """Put several runs on one x grid: as they are when their steps agree, else interpolated onto the
    steps of the run with the fewest points, within the range every run covers."""
    xs = [c[0] for c in curves]
    if all(len(x) == len(xs[0]) and np.array_equal(x, xs[0]) for x in xs):
        return xs[0], [c[1] for c in curves]
    start, stop = max(x[0] for x in xs), min(x[-1] for x in xs)
    grid = min(xs, key=len)
    grid = grid[(grid >= start) & (grid <= stop)]
    if len(grid) == 0:
        raise ValueError("the runs' steps do not overlap, so they cannot be averaged; "
                         "plot them under separate labels")
    return grid, [np.interp(grid, x, y) for x, y in curves]


def _ema(y: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average ``s_t = w s_{t-1} + (1 - w) y_t``, started at the first value;
    NaNs are skipped (the average carries on over them)."""
    if weight == 0.0:
        return y
    out = np.empty_like(y)
    state = np.nan
    for i, v in enumerate(y):
        if np.isfinite(v):
            state = v if np.isnan(state) else weight * state + (1 - weight) * v
        out[i] = state
    return out
