"""Profile one server's worker under load with py-spy: ``python3 benchmarks/profile_worker.py``.

Starts the server as the harness does (1 worker on CPU 0, wrk on CPU 1), loads it for a
warm-up, then samples the worker process with ``py-spy record`` while wrk keeps it saturated.
Writes the collapsed stacks (``py-spy --format raw``: load them into speedscope or
flamegraph.pl) and a markdown summary of where the samples fell, by function:

    benchmarks/results/<date>-profile-<server>-<scenario>[-<tag>].txt / .md

py-spy reads the worker's memory without stopping it (``--nonblocking``): stopping the
process for every sample put most samples at system-call boundaries here (a blocking run of
the hello scenario found 3% of the samples in Python code that takes half the CPU). A stack
read while the worker runs may miss its outer frames (its innermost frame, which the "self"
column counts, is read first). Python frames only: py-spy unwinds C frames (``--native``)
only of a stopped process, and then nearly every sample lands in read(), write() or a futex.
Time the event loop spends in its own C code and in system calls (uvloop, libuv, the
kernel's socket work) has no Python frame of its own: it is counted under the Python frame
that runs the loop (the worker's ``run``), shown as "self".
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import run, setup_env
from benchmarks.paths import REPO, RESULTS, VENV_BIN, VENV_PYTHON, WORK

# scenario -> (request path, access log on)
SCENARIOS = {"hello": ("/", False), "json": ("/json", False), "accesslog": ("/", True)}
TOP = 25
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def parse_args(argv: list[str]) -> argparse.Namespace:
    from benchmarks.servers import SERVERS

    p = argparse.ArgumentParser(description="profile a server's worker under wrk with py-spy")
    p.add_argument("--python", help="interpreter of the peers venv (as for run.py)")
    p.add_argument("--server", default="ours", choices=sorted(SERVERS), help="default: ours")
    p.add_argument("--scenario", default="hello", choices=list(SCENARIOS), help="default: hello")
    p.add_argument("--seconds", type=run.positive, default=10.0, help="sampling time (10)")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second (250)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    p.add_argument("--out", type=Path, default=RESULTS, help="directory (benchmarks/results)")
    p.add_argument("--tag", default="", help="suffix for the file names")
    return p.parse_args(argv)


def ensure_py_spy() -> Path:
    """py-spy in the peers venv (installed on first use; it is not needed by run.py)."""
    py_spy = VENV_BIN / "py-spy"
    if not py_spy.exists():
        print("[setup] pip install py-spy", flush=True)
        subprocess.run([str(VENV_PYTHON), "-m", "pip", "install", "-q", "py-spy"], check=True)
    return py_spy


def short_frame(frame: str) -> str:
    """``run (/repo/asgi_worker/http/cycle.py:120)`` -> ``run (asgi_worker/http/cycle.py)``:
    no line number, and site-packages and the repository left off the path."""
    match = FRAME.match(frame)
    if match is None:
        return frame
    path = match["file"]
    for marker in ("site-packages/", f"{REPO}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['func']} ({path})"


def summarize(
    collapsed: str,
) -> tuple[int, collections.Counter[str], collections.Counter[str], list[str]]:
    """Of py-spy raw output: (samples, self samples per function, total samples per function,
    the frames every whole stack starts with). Those common frames (the process's start-up down
    to the frame that runs the event loop) are left out of the totals, where they would top
    the table at ~100%."""
    stacks: list[tuple[list[str], int]] = []
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [short_frame(f) for f in stack.split(";")]
        # (with --threads, py-spy starts each stack with the thread)
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if frames:
            stacks.append((frames, int(count_text)))
    whole = [frames for frames, _ in stacks if frames[0].startswith("<module>")]
    prefix = whole[0] if whole else []
    for frames in whole[1:]:
        size = 0
        while size < min(len(prefix), len(frames)) and prefix[size] == frames[size]:
            size += 1
        prefix = prefix[:size]
    common = set(prefix)
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for frames, count in stacks:
        samples += count
        own[frames[-1]] += count
        for func in set(frames) - common:
            total[func] += count
    return samples, own, total, prefix


def report(
    args: argparse.Namespace,
    samples: int,
    own: collections.Counter[str],
    total: collections.Counter[str],
    prefix: list[str],
    rps: float,
    command: list[str],
    raw_name: str,
) -> str:
    def rows(counter: collections.Counter[str]) -> list[str]:
        return [f"| {100 * n / samples:.1f}% | `{func}` |" for func, n in counter.most_common(TOP)]

    interp = f"Python {sys.version.split()[0]} ({sys.executable})"
    return "\n".join(
        [
            f"# py-spy profile: {args.server}, {args.scenario}, {dt.date.today().isoformat()}",
            "",
            f"- load: wrk -c{args.connections} on CPU 1, server on CPU 0, 1 worker; "
            f"{rps:,.0f} req/s while sampled",
            f"- {interp}; commit {run_commit()}",
            f"- `{' '.join(command)}`; {samples:,} samples; stacks in `{raw_name}`",
            "- The event loop's own C code and its system calls have no Python frame: they count",
            "  as self time of the frame that runs the loop (or, for a write, of the frame that",
            "  called `transport.write`). A stack read while the worker ran may lack its outer",
            "  frames (py-spy --nonblocking), so totals can be a little low.",
            "",
            "## Self (the innermost Python frame of a sample)",
            "",
            "| share | function |",
            "|---|---|",
            *rows(own),
            "",
            "## Total (the function is anywhere on the stack)",
            "",
            f"Left out: the frames every whole stack starts with, down to `{prefix[-1]}`."
            if prefix
            else "",
            "",
            "| share | function |",
            "|---|---|",
            *rows(total),
            "",
        ]
    )


def run_commit() -> str:
    from benchmarks.harness import _git_commit

    return _git_commit()


def profile(args: argparse.Namespace) -> int:
    from benchmarks.servers import SERVERS, ServerOptions, start
    from benchmarks.wrk import LOAD_CPU, WrkResult, run_wrk

    py_spy = ensure_py_spy()
    path, access_log = SCENARIOS[args.scenario]
    WORK.mkdir(parents=True, exist_ok=True)
    log_file = WORK / "profile-access.log" if access_log else None
    server = start(SERVERS[args.server], ServerOptions(access_log=log_file))
    try:
        url = f"http://127.0.0.1:{server.port}{path}"
        run_wrk(url, 2, args.connections)  # warm-up: caches, specialization, connections
        pid = server.worker_pid()
        stamp = dt.date.today().isoformat()
        name = f"{stamp}-profile-{args.server}-{args.scenario}"
        name += f"-{args.tag}" if args.tag else ""
        args.out.mkdir(parents=True, exist_ok=True)
        raw_path = args.out / f"{name}.txt"
        command = [
            "taskset",
            "-c",
            LOAD_CPU,
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(args.rate),
            "--duration",
            str(round(args.seconds)),
            "--format",
            "raw",
            "--output",
            str(raw_path),
            "--nonblocking",
        ]
        load: list[WrkResult] = []
        loader = threading.Thread(
            target=lambda: load.append(run_wrk(url, args.seconds + 2, args.connections))
        )
        loader.start()
        time.sleep(1.0)
        spy = subprocess.run(command, capture_output=True, text=True, timeout=args.seconds + 60)
        loader.join(args.seconds + 60)
        if spy.returncode != 0 or not raw_path.exists():
            print(f"py-spy failed ({spy.returncode}):\n{spy.stderr or spy.stdout}", file=sys.stderr)
            return 1
    finally:
        server.stop()
        if log_file is not None:
            log_file.unlink(missing_ok=True)
    samples, own, total, prefix = summarize(raw_path.read_text())
    if not samples:
        print("py-spy recorded no samples of Python code", file=sys.stderr)
        return 1
    rps = load[0].rps if load else 0.0
    shown = ["py-spy", *command[4:]]
    md_path = args.out / f"{name}.md"
    md_path.write_text(report(args, samples, own, total, prefix, rps, shown, raw_path.name))
    print(f"wrote {raw_path}\nwrote {md_path}")
    return 0


def main() -> int:
    argv = sys.argv[1:]
    run.enter_venv(argv, __file__)
    args = parse_args(argv)
    if not setup_env.ensure_wrk():
        return 2
    return profile(args)


if __name__ == "__main__":
    sys.exit(main())
