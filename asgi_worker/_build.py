"""Which build of the package runs: the modules mypyc compiled, or their ``.py`` sources.

A compiled install holds both; Python imports an extension module before a source file of the
same name. ``ASGI_WORKER_PURE=1`` in the environment (set before ``asgi_worker`` is imported,
so before Gunicorn starts) makes every ``asgi_worker`` module load from its ``.py`` file
instead: the pure-Python build, for debugging with full tracebacks and monkeypatching, or to
compare. This module is never compiled.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.machinery import (
    EXTENSION_SUFFIXES,
    SOURCE_SUFFIXES,
    FileFinder,
    ModuleSpec,
    SourceFileLoader,
)
from types import ModuleType

PURE_ENV = "ASGI_WORKER_PURE"


def pure_requested() -> bool:
    return os.environ.get(PURE_ENV, "").strip().lower() not in ("", "0", "false", "no")


class PureSourceFinder:
    """A meta-path finder that gives ``asgi_worker.*`` modules from their ``.py`` sources."""

    def __init__(self, package: str) -> None:
        self.prefix = package + "."

    def find_spec(self, name: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if path is None or not name.startswith(self.prefix):
            return None
        for entry in path:
            spec = FileFinder(entry, (SourceFileLoader, SOURCE_SUFFIXES)).find_spec(name)
            if spec is not None:
                return spec
        return None


def use_pure_sources(package: str) -> None:
    """Load the rest of ``package`` from source when ``ASGI_WORKER_PURE`` asks for it."""
    if pure_requested() and not any(isinstance(f, PureSourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, PureSourceFinder(package))


def compiled_modules(package: str) -> list[str]:
    """The modules of ``package`` imported so far that are compiled extension modules."""
    prefix = package + "."
    return sorted(name for name, module in list(sys.modules.items())
                  if name.startswith(prefix) and not name.endswith("__mypyc")
                  and str(getattr(module, "__file__", "") or "").endswith(
                      tuple(EXTENSION_SUFFIXES)))


def describe(package: str) -> str:
    """The build that runs, as the worker's ready line says it."""
    if compiled_modules(package):
        return "compiled (mypyc)"
    return f"pure Python ({PURE_ENV}=1)" if pure_requested() else "pure Python"
