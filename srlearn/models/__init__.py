"""One file per architecture, all registered in one place: ``build(name, preset, **overrides)``."""
from .registry import build, build_from_spec, get_spec, list_models, register
from . import bicubic as _bicubic  # noqa: F401  (registers "bicubic")
from . import edsr as _edsr  # noqa: F401  (registers "edsr")
from . import rcan as _rcan  # noqa: F401  (registers "rcan")
from . import san as _san  # noqa: F401  (registers "san")
from . import ssen as _ssen  # noqa: F401  (registers "ssen")
from . import srdensenet as _srdensenet  # noqa: F401  (registers "srdensenet", "residual-sr")
from . import mirnet as _mirnet  # noqa: F401  (registers "mirnet")

__all__ = ["build", "build_from_spec", "get_spec", "list_models", "register"]
