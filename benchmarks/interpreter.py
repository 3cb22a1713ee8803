"""What the harness records about the Python it runs on (the peers venv's base interpreter).

PGO and LTO leave no mark in the binary, so this reads what the build recorded in sysconfig:
``CONFIG_ARGS`` (``--enable-optimizations``, ``--with-lto``) and the ``*_NODIST`` compiler and
linker flags (``-fprofile-use``, ``-flto``). That record can belong to a different build than
the executable: Debian/Ubuntu build ``/usr/bin/pythonX.Y`` separately, with libpython linked in
statically, while sysconfig describes their ``libpythonX.Y.so`` build. When the recorded
``Py_ENABLE_SHARED`` disagrees with how the running executable actually gets libpython (read
from ``/proc/self/maps``), a missing flag proves nothing and the answer is "unknown".
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shlex
import sys
import sysconfig
from pathlib import Path
from typing import Any

from benchmarks.paths import REPO

FLAG_VARS = ("PY_CFLAGS_NODIST", "PY_LDFLAGS_NODIST", "CFLAGS_NODIST", "LDFLAGS_NODIST")
# (configure option, compiler/linker flag prefixes) that prove the optimization was used
PGO_EVIDENCE = ("--enable-optimizations", ("-fprofile-use", "-fprofile-instr-use"))
LTO_EVIDENCE = ("--with-lto", ("-flto",))


def _var(name: str) -> str:
    value = sysconfig.get_config_var(name)
    return "" if value is None else str(value)


def _tokens(config_args: str, flags: list[str]) -> list[str]:
    """Words of CONFIG_ARGS and the flag variables; ``CFLAGS=-O2 -flto`` -> ``-O2``, ``-flto``."""
    try:
        words = shlex.split(config_args)
    except ValueError:
        words = config_args.split()
    tokens = []
    for word in [*words, *flags]:
        for token in word.split():
            tokens.append(re.sub(r"^[A-Z_]+=", "", token))
    return tokens


def _enabled(option: str, prefixes: tuple[str, ...], tokens: list[str]) -> bool:
    for token in tokens:
        name, _, val = token.partition("=")
        if name == option and val.lower() not in ("no", "false"):
            return True
        if token.startswith(prefixes):
            return True
    return False


def libpython_linkage() -> tuple[str, str]:
    """("shared", path of the mapped libpython) / ("static", "") / ("unknown", "")."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "unknown", ""
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and os.path.basename(fields[5]).startswith("libpython"):
            return "shared", fields[5].strip()
    return "static", ""


def _verdict(
    evidence: tuple[str, tuple[str, ...]], tokens: list[str], this_build: bool, complete: bool
) -> str:
    """yes / no / unknown; ``this_build``: sysconfig describes the running executable."""
    if not this_build:
        return "unknown"
    if _enabled(*evidence, tokens):
        return "yes"
    return "no" if complete else "unknown"


def describe(given: str) -> dict[str, Any]:
    """JSON-ready description of the running interpreter; ``given`` is the --python path."""
    config_args = _var("CONFIG_ARGS")
    flags = {name: _var(name) for name in FLAG_VARS}
    tokens = _tokens(config_args, list(flags.values()))
    linkage, libpython = libpython_linkage()
    shared_cfg = bool(sysconfig.get_config_var("Py_ENABLE_SHARED"))
    consistent = linkage != "unknown" and (linkage == "shared") == shared_cfg
    realpath = os.path.realpath(sys.executable)
    if linkage == "unknown":
        note = "cannot tell how the executable gets libpython (/proc/self/maps unreadable)"
    elif not consistent:
        how = "linked in statically" if linkage == "static" else "as a shared library"
        note = (
            f"sysconfig describes a {'shared' if shared_cfg else 'static'}-libpython build but "
            f"this executable has libpython {how}, so it was built separately and its compiler "
            "flags are not recorded"
        )
        debian = os.path.exists("/etc/debian_version") and realpath.startswith("/usr/bin/")
        if debian and platform.machine() == "x86_64":
            note += (
                "; Debian/Ubuntu's packaging builds this executable with PGO and LTO on amd64, "
                "which cannot be verified from the installed files"
            )
    elif not config_args:
        note = "sysconfig has no CONFIG_ARGS: the configure options are not recorded"
    else:
        note = "from sysconfig CONFIG_ARGS and PY_CFLAGS_NODIST/PY_LDFLAGS_NODIST"
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "path": given,
        "realpath": realpath,
        "venv": _relative(sys.prefix) if sys.prefix != sys.base_prefix else "",
        "build": platform.python_build()[0],
        "build_date": platform.python_build()[1],
        "compiler": platform.python_compiler(),
        "pgo": _verdict(PGO_EVIDENCE, tokens, consistent, bool(config_args)),
        "lto": _verdict(LTO_EVIDENCE, tokens, consistent, bool(config_args)),
        "libpython": linkage,
        "libpython_path": libpython,
        "Py_ENABLE_SHARED": shared_cfg,
        "free_threading": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "build_note": note,
        "CONFIG_ARGS": config_args,
        **flags,
    }


def _relative(path: str) -> str:
    with contextlib.suppress(ValueError):
        return str(Path(path).resolve().relative_to(REPO))
    return path
