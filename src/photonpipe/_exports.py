"""Lazy top-level exports of photonpipe's packages (PEP 562).

``from photonpipe.sky import SkyModel`` works, but ``import photonpipe.sky`` (as the command
does to register settings) does not import astropy, SciPy or the application's modules: each
name is imported from its module on first use.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Mapping
from typing import Any


class _LazyPackage(types.ModuleType):
    """A package whose exported names win over its sub-modules of the same name.

    Importing sub-module ``photonpipe.lightcurves.extract`` makes Python set the package's
    attribute ``extract`` to that module; the package exports the *function* ``extract``, as
    it did when its names were imported eagerly, so that assignment is not kept.
    """

    _photonpipe_exports: Mapping[str, str]

    def __setattr__(self, name: str, value: Any) -> None:
        exports = self.__dict__.get("_photonpipe_exports", {})
        if name in exports and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


def install_lazy_exports(package: str, exports: Mapping[str, str]) -> None:
    """Give a package a ``__getattr__`` and ``__dir__`` that import its exports on first use.

    Call it at the end of the package's ``__init__.py``; list the names in ``__all__`` and
    import them under ``if TYPE_CHECKING:`` for type checkers.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : mapping
        Exported name → module defining it, relative to ``package`` (e.g. ``".session"``).
    """
    module = sys.modules[package]
    if sorted(getattr(module, "__all__", ())) != sorted(exports):
        raise ValueError(f"{package}.__all__ must list exactly the lazy exports")

    def get_export(name: str) -> Any:
        try:
            where = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(where, package), name)
        module.__dict__[name] = value  # later look-ups do not come here again
        return value

    def list_names() -> list[str]:
        return sorted(set(module.__dict__) | set(exports))

    module.__dict__.update(
        __getattr__=get_export, __dir__=list_names, _photonpipe_exports=dict(exports)
    )
    module.__class__ = _LazyPackage
