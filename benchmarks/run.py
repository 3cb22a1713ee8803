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
from benchmarks.paths import REPO

# The --python path as given, handed from the bootstrap process to the one in the venv (whose
# own sys.executable is the venv's python).
PYTHON_ENV = "ASGI_BENCH_PYTHON"

DEFAULT_SERVERS = [
    "ours", "ours-pure", "uvicorn-worker", "gunicorn-asgi", "granian", "hypercorn", "raw",
]  # fmt: skip
QUICK_SERVERS = ["ours", "ours-pure", "uvicorn-worker", "granian", "raw"]
QUICK_OPT_IN = ["soak"]  # too long for --quick unless named in --scenarios


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    from benchmarks.scenarios import SCENARIOS
    from benchmarks.servers import SERVERS

    p = argparse.ArgumentParser(description="asgi_worker benchmark harness")
    p.add_argument(
        "--quick",
        action="store_true",
        help="1 round, short runs, 4 servers (<2 min); soak only if named in --scenarios",
    )
    p.add_argument("--servers", nargs="+", choices=sorted(SERVERS), help="servers to run")
    p.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), help="scenarios to run")
    p.add_argument("--rounds", type=int, help="rounds (median is reported); default 3, quick 1")
    p.add_argument("--duration", type=float, help="seconds per measurement; default 3, quick 2")
    p.add_argument("--warmup", type=float, help="warm-up seconds; default 1")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument(
        "--soak-duration",
        type=positive,
        help="seconds of mixed load in the soak scenario (default 120, quick 20; whole seconds)",
    )
    p.add_argument(
        "--soak-interval",
        type=positive,
        help="seconds between the soak's VmRSS samples (default 5, quick 2)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        help="max seconds to wait for an idle machine before each measurement (default 5, quick 0)",
    )
    p.add_argument("--out", type=Path, help="results directory (default benchmarks/results)")
    p.add_argument("--tag", default="", help="suffix for result file names")
    p.add_argument("--upgrade", action="store_true", help="pip install -U the peers first")
    p.add_argument(
        "--python",
        metavar="PATH",
        help="interpreter to benchmark on (gets its own peers venv); default: the one running "
        "run.py. With it, the default --tag includes the Python version",
    )
    return p.parse_args(argv)


def requested_python(argv: list[str]) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--python")
    known, _ = pre.parse_known_args(argv)
    return str(known.python or os.environ.get(PYTHON_ENV) or sys.executable)


def bootstrap(argv: list[str], script: str = __file__) -> setup_env.Interpreter:
    """Make sure the interpreter's peers venv exists, then continue ``script`` inside it."""
    interp = setup_env.probe(requested_python(argv))
    venv = setup_env.venv_dir(interp)
    if Path(sys.prefix).resolve() == venv.resolve():
        os.environ.pop(PYTHON_ENV, None)  # not for the servers and clients we start
        return interp
    setup_env.ensure_venv(interp, venv, upgrade="--upgrade" in argv)
    print(f"[setup] Python {interp.version} ({interp.given}), venv {venv}", flush=True)
    python = str(venv / "bin" / "python")
    script = str(Path(script).resolve())
    env = {**os.environ, "PYTHONPATH": str(REPO), PYTHON_ENV: interp.given}
    os.execve(python, [python, script, *argv], env)


def enter_venv(argv: list[str], script: str = __file__) -> setup_env.Interpreter | None:
    """:func:`bootstrap`, unless only ``--help`` is asked for; exits with status 2 if it fails."""
    if "-h" in argv or "--help" in argv:
        return None
    try:
        interp = bootstrap(argv, script)
        setup_env.ensure_ours(interp, setup_env.venv_dir(interp))
        return interp
    except setup_env.SetupError as exc:
        print(f"[setup] ERROR: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def default_tag(args: argparse.Namespace, interp: setup_env.Interpreter | None) -> str:
    """``quick`` for --quick, plus ``py<version>`` when --python was given."""
    parts = ["quick"] if args.quick else []
    if args.python and interp is not None:
        parts.append(interp.tag)
    return "-".join(parts)


def main() -> int:
    argv = sys.argv[1:]
    interp = enter_venv(argv)
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
        soak_duration_s=args.soak_duration or (20.0 if args.quick else 120.0),
        soak_interval_s=args.soak_interval or (2.0 if args.quick else 5.0),
    )
    default_scenarios = [s for s in SCENARIOS if not (args.quick and s in QUICK_OPT_IN)]
    plan = Plan(
        servers=args.servers or (QUICK_SERVERS if args.quick else DEFAULT_SERVERS),
        scenarios=args.scenarios or default_scenarios,
        settings=settings,
        quick=args.quick,
        python=interp.given if interp else sys.executable,
    )
    started = time.monotonic()
    results = run_plan(plan)
    results["duration_s"] = round(time.monotonic() - started, 1)
    for path in write_reports(results, args.out, args.tag or default_tag(args, interp)):
        print(f"wrote {path}")
    print(f"total {results['duration_s']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
