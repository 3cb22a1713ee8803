"""Instructions per request of our worker, counted in-process under valgrind's callgrind.

A real :class:`asgi_worker.server.Server` and a real connection protocol (httptools by default)
are fed wrk's keep-alive request one at a time through a transport that keeps nothing; the app
is benchmarks/apps.py. The count is deterministic on a shared machine, unlike timings: each
scenario runs twice under callgrind, with ``--warmup + N1`` and ``--warmup + N2`` requests, and
(instructions(N2) - instructions(N1)) / (N2 - N1) is the cost of one request with start-up,
imports and warm-up cancelled out.

    python3 benchmarks/instructions.py                           # this checkout's venv python
    python3 benchmarks/instructions.py --python /tmp/v/bin/python --build compiled pure
    python3 benchmarks/instructions.py --scenarios hello --parser h11

``--python`` is an interpreter with asgi_worker installed (a wheel in its own venv measures the
build a user gets; the default is ``.venv/bin/python`` of this checkout, an editable install).
``--build pure`` sets ``ASGI_WORKER_PURE=1`` so the same install runs its ``.py`` sources. The
driver runs from this directory, so the checkout's ``asgi_worker`` never shadows the installed
one (``--python`` with an editable install measures the checkout, compiled where ``.so`` files
sit beside the sources). Needs valgrind; takes about 10-30 s per scenario and build.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCENARIOS = {
    # scenario: (path, access log on)
    "hello": ("/", False),
    "json": ("/json", False),
    "accesslog": ("/", True),
}
# What wrk sends (its default request, as in the benchmarks).
REQUEST = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
FLUSH_EVERY = 1000
_COLLECTED = re.compile(rb"Collected\s*:\s*(\d+)")


# -- the driver (runs under valgrind, in the interpreter being measured) ----------------------


class NullTransport(asyncio.Transport):
    """Keeps nothing; counts writes so the driver knows a response went out."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data: Any) -> None:
        self.writes += 1

    def writelines(self, data: Any) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    abort = close

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def drive(scenario: str, parser: str, count: int, log_dir: str) -> dict[str, Any]:
    import asgi_worker
    from asgi_worker import accesslog
    from asgi_worker import settings as settings_module
    from asgi_worker.server import Server
    from asgi_worker.worker import _access_logger, _protocol_factory
    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    sys.path.insert(0, str(HERE))
    from apps import app  # benchmarks/apps.py, without importing the checkout as a package

    path, logged = SCENARIOS[scenario]
    # The access log is written in batches every FLUSH_DELAY seconds of wall time, which under
    # valgrind would be every few requests, and never the same ones twice: the driver writes a
    # batch every FLUSH_EVERY requests instead (at 50k requests/s a 20 ms batch holds 1,000).
    accesslog.FLUSH_DELAY = 3600.0
    cfg = Config()
    if logged:
        cfg.set("accesslog", os.path.join(log_dir, "access.log"))
    log = Logger(cfg)
    settings = settings_module.from_cfg(cfg, parser=parser, max_requests=0, log=log)
    server = Server(
        app=app,
        settings=settings,
        log=log,
        sockets=[],
        state={},
        heartbeat=lambda: None,
        protocol_factory=_protocol_factory(parser),
        access_logger=_access_logger(settings, log),
    )
    server._update_date()
    conn = server.protocol_factory(server)
    transport = NullTransport()
    conn.connection_made(transport)
    request = REQUEST % path.encode()
    access_logger = server.access_logger
    for done in range(1, count + 1):
        before = transport.writes
        conn.data_received(request)
        while transport.writes == before:
            await asyncio.sleep(0)
        if access_logger is not None and done % FLUSH_EVERY == 0:
            access_logger.flush()
    assert not transport.closing, "the connection closed: not a keep-alive run"
    if server.access_logger is not None:
        server.access_logger.flush()
    return {
        "compiled": getattr(asgi_worker, "COMPILED", False),  # older versions: pure
        "file": asgi_worker.__file__,
        "modules": getattr(asgi_worker, "COMPILED_MODULES", []),
        "requests": server.requests,
    }


def run_driver(args: argparse.Namespace) -> None:
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory() as log_dir:
        info = loop.run_until_complete(drive(args.drive, args.parser, args.count, log_dir))
    loop.close()
    print("DRIVER " + json.dumps(info), flush=True)


# -- the runner (starts valgrind, computes the per-request figure) ----------------------------


def count_instructions(
    python: str, scenario: str, parser: str, requests: int, pure: bool, source: str | None = None
) -> tuple[int, dict[str, Any]]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("ASGI_WORKER_PURE", None)
    env["PYTHONHASHSEED"] = "0"  # the same dict and set layouts in both runs of a pair
    if source:
        env["PYTHONPATH"] = source
    if pure:
        env["ASGI_WORKER_PURE"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={tmp}/cg.out",
            python,
            str(Path(__file__).resolve()),
            "--drive",
            scenario,
            "--parser",
            parser,
            "--count",
            str(requests),
        ]
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, check=False)
    match = _COLLECTED.search(proc.stderr)
    driver = [line for line in proc.stdout.splitlines() if line.startswith(b"DRIVER ")]
    if proc.returncode != 0 or match is None or not driver:
        sys.exit(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n"
            f"{proc.stdout.decode(errors='replace')[-2000:]}\n"
            f"{proc.stderr.decode(errors='replace')[-3000:]}"
        )
    return int(match.group(1)), json.loads(driver[-1][len(b"DRIVER ") :])


def measure(
    python: str,
    scenario: str,
    parser: str,
    warmup: int,
    low: int,
    high: int,
    pure: bool,
    source: str | None = None,
) -> dict[str, Any]:
    first, info = count_instructions(python, scenario, parser, warmup + low, pure, source)
    second, _ = count_instructions(python, scenario, parser, warmup + high, pure, source)
    return {
        "scenario": scenario,
        "parser": parser,
        "build": "pure" if pure else "compiled",
        "compiled": info["compiled"],
        "compiled_modules": info["modules"],
        "asgi_worker": info["file"],
        "instructions_per_request": round((second - first) / (high - low)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--python",
        default=str(REPO / ".venv" / "bin" / "python"),
        help="interpreter with asgi_worker installed (default: .venv/bin/python)",
    )
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument(
        "--build",
        nargs="+",
        default=["compiled", "pure"],
        choices=["compiled", "pure"],
        help="compiled: the install as it is; pure: ASGI_WORKER_PURE=1",
    )
    parser.add_argument("--parser", default="httptools", choices=["httptools", "h11"])
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument(
        "--requests",
        type=int,
        nargs=2,
        default=[1000, 2000],
        metavar=("N1", "N2"),
        help="the two counts measured after warm-up",
    )
    parser.add_argument(
        "--source",
        metavar="DIR",
        help="import asgi_worker from this tree (PYTHONPATH), e.g. a copy built "
        "in place with setup.py build_ext --inplace",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    parser.add_argument("--drive", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        run_driver(args)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    results = []
    print(f"{'scenario':<10} {'build':<9} {'instructions/request':>21}  modules compiled")
    for scenario in args.scenarios:
        for build in args.build:
            result = measure(
                args.python,
                scenario,
                args.parser,
                args.warmup,
                *args.requests,
                pure=build == "pure",
                source=args.source,
            )
            if build == "compiled" and not result["compiled"]:
                result["build"] = "pure (no compiled modules installed)"
            results.append(result)
            print(
                f"{scenario:<10} {result['build']:<9} "
                f"{result['instructions_per_request']:>21,}  "
                f"{len(result['compiled_modules'])}",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
