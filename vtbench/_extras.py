"""Optional dependencies: a clear error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import VtbenchError


class MissingExtra(VtbenchError, ImportError):
    """An optional dependency is not installed."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(f"{purpose} needs the Python package '{module.split('.')[0]}' "
                           f"({e}); install it with: pip install 'vtbench[{extra}]'") from None
