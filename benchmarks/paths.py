"""Filesystem locations shared by the harness modules."""

from __future__ import annotations

from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS = BENCH / ".peers"
VENV = PEERS / "venv"
VENV_BIN = VENV / "bin"
VENV_PYTHON = VENV_BIN / "python"
WORK = BENCH / ".work"
RESULTS = BENCH / "results"
LUA = BENCH / "lua"
