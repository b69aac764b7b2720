"""Looking inside models, and showing results: hooks, figures, tables and ipywidgets explorers.

- ``capture``: record the outputs of named submodules during a forward pass (the hook API for
  feature maps, attention weights, fusion weights and deformable offsets).
- ``show_images``, ``compare_sr``, ``feature_grid``, ``plot_history``: matplotlib figures, built
  without pyplot (display one by making it a cell's last expression; save with ``fig.savefig``).
- ``summarise``, ``results_table``: mean ± std over seeds per arm, with the bicubic baseline and Δ;
  ``verdict_table``: the verdicts with the rules they follow.
- ``FeatureExplorer``: a layer dropdown × channel slider over a model's feature maps; ``Explorer``: any
  figure function behind sliders and dropdowns (the notebooks' look-inside explorers).

``viz`` may import any part of srlearn; only notebooks, ``srlearn.experiments`` and the CLI import ``viz``.
"""
from .hooks import UnknownModuleError, capture
from .plots import compare_sr, feature_grid, plot_history, show_images
from .tables import ResultsTable, VerdictTable, results_table, summarise, verdict_table

__all__ = ["capture", "UnknownModuleError", "show_images", "compare_sr", "feature_grid", "plot_history",
           "summarise", "results_table", "ResultsTable", "verdict_table", "VerdictTable", "FeatureExplorer",
           "Explorer"]


def __getattr__(name):  # PEP 562: ipywidgets is imported only when an explorer is asked for, so that the
    # figures and tables work on a machine without Jupyter (e.g. `python -m srlearn campaign` on a GPU box)
    if name in ("FeatureExplorer", "Explorer", "widgets"):
        import importlib
        widgets = importlib.import_module(f"{__name__}.widgets")
        return widgets if name == "widgets" else getattr(widgets, name)
    raise AttributeError(f"module 'srlearn.viz' has no attribute {name!r}")
