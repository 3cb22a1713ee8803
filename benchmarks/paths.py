"""Filesystem locations shared by the harness modules."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS = BENCH / ".peers"  # one peers venv per interpreter, see setup_env.venv_dir
LEGACY_VENV = PEERS / "venv"  # the single venv of earlier harness versions, still reused
# The peers venv this process runs in: run.py re-executes itself with the venv's Python before
# anything is measured, so inside the harness it is sys.prefix. (Meaningless in the bootstrap
# process, which only uses setup_env.)
VENV = Path(sys.prefix)
VENV_BIN = VENV / "bin"
VENV_PYTHON = VENV_BIN / "python"
WORK = BENCH / ".work"
# Our worker as a user installs it: a wheel built from this checkout, installed into a venv of
# its own beside the peers venv (setup_env.ensure_ours), and run from APPDIR, a directory that
# holds only benchmarks/apps.py, so the checkout's sources never shadow the installed package.
OURS_VENV = VENV.with_name(VENV.name + "-ours")
APPDIR = WORK / "appdir"
RESULTS = BENCH / "results"
LUA = BENCH / "lua"
