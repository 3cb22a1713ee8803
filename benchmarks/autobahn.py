"""Run the Autobahn|Testsuite fuzzing client against a real gunicorn with each worker class.

    .venv/bin/python benchmarks/autobahn.py [--wstest PATH] [--cases 1.* 2.* ...]
        [--workers asgi_worker.Worker asgi_worker.H11Worker] [--keep-reports DIR]

Autobahn|Testsuite is not a dependency of this project (it is Python 2 software, or an
unofficial Python 3 port): install it in a virtualenv of its own and point ``--wstest`` (or
``$AUTOBAHN_WSTEST``) at its ``wstest``; see docs/websocket.md. Without it the script says so
and exits 0. Each worker class serves ``tests/apps/ws.py`` (an echo app) with default settings
on a free port of 127.0.0.1; the script prints the count of each outcome per worker class and
every case that is not OK or INFORMATIONAL, and exits 1 if any case FAILED or was NON-STRICT.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP = "tests.apps.ws:app"
# Sections 1-10 (there is no section 8); 12 and 13 negotiate compression and take ~10 minutes.
DEFAULT_CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
DEFAULT_WORKERS = ["asgi_worker.Worker", "asgi_worker.H11Worker"]
_LISTENING = re.compile(r"Listening at: \S+?://[^\s:]+:(\d+)")


def find_wstest(given: str | None) -> str | None:
    candidate = given or os.environ.get("AUTOBAHN_WSTEST") or shutil.which("wstest")
    if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
        return candidate
    return None


def start_gunicorn(worker: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    log_path = workdir / f"gunicorn-{worker}.log"
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(home), PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-k", worker, "-w", "1", "-b", "127.0.0.1:0",
             "--graceful-timeout", "5", APP], cwd=str(REPO), env=env, stdout=log,
            stderr=subprocess.STDOUT)
    # Other worker classes (for comparison) are given a second after they boot.
    ours = worker.startswith("asgi_worker")
    ready = "asgi_worker ready" if ours else "Booting worker"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        match = _LISTENING.search(text)
        if match and ready in text:
            if not ours:
                time.sleep(1.0)
            return proc, int(match.group(1)), log_path
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"gunicorn -k {worker} did not start:\n{log_path.read_text()[-2000:]}")


def run_suite(wstest: str, worker: str, cases: list[str], workdir: Path,
              timeout: float) -> dict[str, dict[str, str]]:
    proc, port, _log = start_gunicorn(worker, workdir)
    try:
        agent = worker.replace(".", "_")
        outdir = workdir / f"reports-{agent}"
        spec = {
            "outdir": str(outdir),
            "servers": [{"agent": agent, "url": f"ws://127.0.0.1:{port}/echo"}],
            "cases": cases,
            "exclude-cases": [],
            "exclude-agent-cases": {},
        }
        spec_path = workdir / f"spec-{agent}.json"
        spec_path.write_text(json.dumps(spec))
        subprocess.run([wstest, "-m", "fuzzingclient", "-s", str(spec_path)], cwd=str(workdir),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout,
                       check=True)
        index = json.loads((outdir / "index.json").read_text())
        return dict(index[agent])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def case_key(case: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case.split("."))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wstest", help="the wstest executable (default: $AUTOBAHN_WSTEST, PATH)")
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES)
    parser.add_argument("--workers", nargs="+", default=DEFAULT_WORKERS)
    parser.add_argument("--keep-reports", type=Path, help="copy the HTML/JSON reports here")
    parser.add_argument("--timeout", type=float, default=3600,
                        help="seconds one worker class's run may take (default 3600; sections "
                             "12-13 need more than 1800 on a busy 2-core machine)")
    args = parser.parse_args(argv)
    wstest = find_wstest(args.wstest)
    if wstest is None:
        print("Autobahn|Testsuite's wstest not found (--wstest or $AUTOBAHN_WSTEST): skipped")
        return 0
    bad = 0
    with tempfile.TemporaryDirectory(prefix="autobahn-") as tmp:
        workdir = Path(tmp)
        for worker in args.workers:
            results = run_suite(wstest, worker, args.cases, workdir, args.timeout)
            counts = Counter(result["behavior"] for result in results.values())
            summary = ", ".join(f"{counts[name]} {name}" for name in
                                ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
                                if counts[name])
            print(f"{worker}: {len(results)} cases: {summary}")
            for case in sorted(results, key=case_key):
                result = results[case]
                if result["behavior"] not in ("OK", "INFORMATIONAL"):
                    print(f"  {case}: {result['behavior']} (close: {result['behaviorClose']}, "
                          f"code {result.get('remoteCloseCode')})")
            bad += counts["NON-STRICT"] + counts["FAILED"]
        if args.keep_reports:
            shutil.copytree(workdir, args.keep_reports, dirs_exist_ok=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
