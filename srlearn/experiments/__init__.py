"""Replications: arms × seeds × budget (quick | full), ``results.json`` and ``report.md``."""
from .core import (Arm, Budget, Comparison, Experiment, evaluate_model, get_experiment, list_experiments,
                   load_results, register_experiment, run, run_arm, super_resolve, verdict)
from . import sr_basics as _sr_basics  # noqa: F401  (registers "sr-basics")
from . import san as _san  # noqa: F401  (registers "san-attention", "san-ablation", "san-schedule")
from . import srdensenet as _srdensenet  # noqa: F401  (registers "srdensenet-variants")
from . import mirnet as _mirnet  # noqa: F401  (registers "mirnet-fusion", "mirnet-fusion-sr")
from . import ssen as _ssen  # noqa: F401  (registers "ssen-refsr")

__all__ = ["Arm", "Budget", "Comparison", "Experiment", "evaluate_model", "get_experiment", "list_experiments",
           "load_results", "register_experiment", "run", "run_arm", "super_resolve", "verdict"]
