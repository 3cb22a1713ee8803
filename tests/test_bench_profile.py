"""The py-spy summary of benchmarks/profile_worker.py (a pure function of py-spy's raw output)."""

from __future__ import annotations

import sys

import pytest

if sys.version_info < (3, 11):
    # The harness needs 3.11 (tomllib; benchmarks/setup_env.py MIN_PYTHON); the worker does not.
    pytest.skip("benchmarks/ runs on Python 3.11 and newer", allow_module_level=True)

from benchmarks.profile_worker import short_frame, summarize

REPO_RUN = "Worker.run (/repo/asgi_worker/worker.py:117)"
START = "<module> (/venv/bin/gunicorn:8);Arbiter.run (/venv/site-packages/gunicorn/arbiter.py:9)"


def test_short_frame_drops_line_numbers_and_site_packages() -> None:
    frame = "send (/v/lib/python3.11/site-packages/uvicorn/x.py:12)"
    assert short_frame(frame) == "send (uvicorn/x.py)"
    assert short_frame("odd frame") == "odd frame"


def test_self_total_and_the_common_start_left_out() -> None:
    raw = "\n".join([
        f"{START};{REPO_RUN};send (/repo/cycle.py:3);_write (/repo/cycle.py:9) 6",
        f"{START};{REPO_RUN};send (/repo/cycle.py:4) 3",
        f"{START};{REPO_RUN} 5",
        # a stack read while the worker ran, missing its outer frames
        "send (/repo/cycle.py:3);_write (/repo/cycle.py:10) 2",
        "thread (0x7f);send (/repo/cycle.py:5) 1",
        "not a sample line",
    ])
    samples, own, total, prefix = summarize(raw)
    assert samples == 17
    assert own["_write (/repo/cycle.py)"] == 8
    assert own["send (/repo/cycle.py)"] == 4
    assert own["Worker.run (/repo/asgi_worker/worker.py)"] == 5
    # whole stacks all start with the process's start-up down to the worker's run
    assert prefix[-1] == "Worker.run (/repo/asgi_worker/worker.py)"
    assert "Worker.run (/repo/asgi_worker/worker.py)" not in total
    assert total["send (/repo/cycle.py)"] == 12  # counted once per sample, partial stacks too
    assert total["_write (/repo/cycle.py)"] == 8
