"""Gunicorn config: the first worker gets a SIGTERM after its signal handlers are installed and
before its event loop runs (post_worker_init runs between the two). Later workers do not."""

from __future__ import annotations

import os
import signal
from typing import Any


def post_worker_init(worker: Any) -> None:
    marker = os.environ["TERM_MARKER"]
    if not os.path.exists(marker):
        with open(marker, "w") as file:
            file.write(f"{os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGTERM)
