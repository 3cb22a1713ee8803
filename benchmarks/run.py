"""Benchmark asgi_worker against its peers: ``python3 benchmarks/run.py [--quick] ...``.

See benchmarks/README.md. Creates/uses the peers venv, then re-executes itself in it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import setup_env
from benchmarks.paths import REPO, VENV, VENV_PYTHON

DEFAULT_SERVERS = ["ours", "uvicorn-worker", "gunicorn-asgi", "granian", "hypercorn", "raw"]
QUICK_SERVERS = ["ours", "uvicorn-worker", "granian", "raw"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    from benchmarks.scenarios import SCENARIOS
    from benchmarks.servers import SERVERS

    p = argparse.ArgumentParser(description="asgi_worker benchmark harness")
    p.add_argument("--quick", action="store_true", help="1 round, short runs, 4 servers (<2 min)")
    p.add_argument("--servers", nargs="+", choices=sorted(SERVERS), help="servers to run")
    p.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), help="scenarios to run")
    p.add_argument("--rounds", type=int, help="rounds (median is reported); default 3, quick 1")
    p.add_argument("--duration", type=float, help="seconds per measurement; default 3, quick 2")
    p.add_argument("--warmup", type=float, help="warm-up seconds; default 1")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument(
        "--quiet-wait",
        type=float,
        help="max seconds to wait for an idle machine before each measurement (default 5, quick 0)",
    )
    p.add_argument("--out", type=Path, help="results directory (default benchmarks/results)")
    p.add_argument("--tag", default="", help="suffix for result file names")
    p.add_argument("--upgrade", action="store_true", help="pip install -U the peers first")
    return p.parse_args(argv)


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def bootstrap(argv: list[str]) -> None:
    """Make sure the peers venv exists, then continue inside it."""
    setup_env.ensure_venv(upgrade="--upgrade" in argv)
    if not in_venv():
        script = str(Path(__file__).resolve())
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        os.execve(str(VENV_PYTHON), [str(VENV_PYTHON), script, *argv], env)


def main() -> int:
    argv = sys.argv[1:]
    if "-h" not in argv and "--help" not in argv:
        bootstrap(argv)
    args = parse_args(argv)
    if not setup_env.ensure_wrk():
        return 2
    from benchmarks.harness import Plan, run_plan
    from benchmarks.report import write_reports
    from benchmarks.scenarios import SCENARIOS, Settings

    settings = Settings(
        duration_s=args.duration or (2.0 if args.quick else 3.0),
        warmup_s=args.warmup if args.warmup is not None else 1.0,
        rounds=args.rounds or (1 if args.quick else 3),
        connections=args.connections,
        threads=args.threads,
        quiet_wait_s=args.quiet_wait if args.quiet_wait is not None else (0 if args.quick else 5),
    )
    plan = Plan(
        servers=args.servers or (QUICK_SERVERS if args.quick else DEFAULT_SERVERS),
        scenarios=args.scenarios or list(SCENARIOS),
        settings=settings,
        quick=args.quick,
    )
    started = time.monotonic()
    results = run_plan(plan)
    results["duration_s"] = round(time.monotonic() - started, 1)
    for path in write_reports(results, args.out, args.tag or ("quick" if args.quick else "")):
        print(f"wrote {path}")
    print(f"total {results['duration_s']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
