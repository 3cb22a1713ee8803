"""Build asgi_worker: the request path compiled with mypyc, or the same sources as pure Python.

``pip install .``, ``pip wheel .`` and ``python -m build`` compile the modules in ``COMPILED``
into C extensions when mypyc and a C compiler are available, and build the pure-Python package
(with a one-line notice) when they are not or when compiling fails. The compiled wheel still
holds every ``.py`` file: the package falls back to them at run time with ``ASGI_WORKER_PURE=1``.

``ASGI_WORKER_BUILD`` chooses:

* ``auto`` (default): compiled if possible, else pure with a notice;
* ``pure``: never compile (the package is complete and correct without a compiler);
* ``compiled``: compile or fail the build (release wheels and CI use this, so a broken compile
  is an error there, never a silently pure wheel).

``ASGI_WORKER_MYPYC_MODULES`` (paths separated by spaces) replaces ``COMPILED`` for one build:
for measuring a different selection (benchmarks/instructions.py) or finding the module that
stops mypyc (build one module at a time). The rules compiled code follows are in
docs/architecture.md ("Compiled and pure").
"""

from __future__ import annotations

import os
import sys
import sysconfig
import tempfile

from setuptools import setup
from setuptools.command.build_ext import build_ext

# The modules compiled with mypyc, chosen by instructions per request (docs/architecture.md,
# "Compiled and pure", has the measurements). Everything else stays interpreted: the Worker
# classes users subclass, start-up code, and modules whose cost is per worker, not per request.
COMPILED = [
    "asgi_worker/http/connection.py",
    "asgi_worker/http/cycle.py",
    "asgi_worker/http/errors.py",
    "asgi_worker/http/extensions.py",
    "asgi_worker/http/h1_framing.py",
    "asgi_worker/http/h11_protocol.py",
    "asgi_worker/http/httptools_protocol.py",
    "asgi_worker/http/negotiate.py",
    "asgi_worker/http2/connection.py",
    "asgi_worker/http2/fastpath.py",
    "asgi_worker/http2/request.py",
    "asgi_worker/http2/stream.py",
    "asgi_worker/accessformat.py",
    "asgi_worker/accesslog.py",
    "asgi_worker/hooks.py",
    "asgi_worker/proxy.py",
    "asgi_worker/server.py",
    "asgi_worker/websocket/frames.py",
    "asgi_worker/websocket/session.py",
]

MODES = ("auto", "pure", "compiled")
# setup.py also runs for metadata and the sdist (egg_info, dist_info, sdist): mypyc's type
# check and C generation are only worth their time for commands that build extensions.
BUILDS_EXTENSIONS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "install", "develop",
                     "bdist_egg"}


def notice(message: str) -> None:
    print(f"asgi_worker build: {message}", file=sys.stderr, flush=True)


def build_mode() -> str:
    mode = os.environ.get("ASGI_WORKER_BUILD", "auto").strip().lower() or "auto"
    if mode not in MODES:
        sys.exit(f"asgi_worker build: ASGI_WORKER_BUILD={mode!r}; use one of {', '.join(MODES)}")
    return mode


def compiler_works() -> str | None:
    """None if a C compiler can build against this Python's headers, else why not."""
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as file:
            file.write("#include <Python.h>\nint probe(void) { return PY_MAJOR_VERSION; }\n")
        try:
            compiler.compile([source], output_dir=tmp,
                             include_dirs=[sysconfig.get_paths()["include"]])
        except Exception:  # CompileError, a missing compiler, missing headers
            cc = (getattr(compiler, "compiler_so", None) or ["cc"])[0]
            return f"no working C compiler or Python headers ({cc} cannot build with Python.h)"
    return None


def mypyc_extensions(mode: str) -> list:  # type: ignore[type-arg]
    """The extensions mypyc generates, or [] (with a notice saying why) for the pure build."""
    if mode == "pure":
        notice("pure-Python build (ASGI_WORKER_BUILD=pure)")
        return []
    why = None
    if sys.implementation.name != "cpython":
        why = f"mypyc compiles for CPython only, not {sys.implementation.name}"
    else:
        try:
            from mypyc.build import mypycify
        except ImportError:
            why = "mypyc (the mypy package) is not installed"
        else:
            why = compiler_works()
    if why is None:
        selected = os.environ.get("ASGI_WORKER_MYPYC_MODULES", "").split() or COMPILED
        try:
            return mypycify(selected, opt_level="3", debug_level="1",
                            group_name="asgi_worker._compiled")
        except (Exception, SystemExit) as exc:  # mypycify exits on type errors it printed
            why = f"mypyc failed ({exc or 'type errors above'})"
    if mode == "compiled":
        sys.exit(f"asgi_worker build: ASGI_WORKER_BUILD=compiled but {why}")
    notice(f"pure-Python build: {why}")
    return []


class BuildExt(build_ext):
    """Compile the extensions; in ``auto`` mode, a compiler error leaves the pure package."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            if build_mode() == "compiled":
                raise
            notice(f"pure-Python build: compiling failed ({str(exc).strip()[:160]})")
            self.extensions = []
            self.distribution.ext_modules = []


builds_extensions = not BUILDS_EXTENSIONS.isdisjoint(sys.argv[1:])
setup(ext_modules=mypyc_extensions(build_mode()) if builds_extensions else [],
      cmdclass={"build_ext": BuildExt})
