"""Instructions per HTTP/2 request, in process, under valgrind's callgrind (deterministic).

A real :class:`asgi_worker.server.Server` takes one h2c prior-knowledge connection through the
HTTP/1.1 protocol that accepts every socket (as the worker does), which hands it to the HTTP/2
connection; that connection is then fed N requests, ``--batch`` streams per read (as
``h2load -m 10`` sends them), answered by benchmarks/apps.py. The client's bytes are encoded
beforehand in this (parent) process with h2, so only the worker's side is counted. The driver
runs twice, with N1 and N2 requests; (instructions(N2) - instructions(N1)) / (N2 - N1) is the
cost of one request with start-up and imports cancelled out::

    .venv/bin/python benchmarks/count_h2.py                    # hello and json
    .venv/bin/python benchmarks/count_h2.py --scenarios hello --counts 500 1500
    .venv/bin/python benchmarks/count_h2.py --build compiled pure

``--build pure`` sets ``ASGI_WORKER_PURE=1``, so a compiled install runs its ``.py`` sources;
``compiled`` (the default) runs the install as it is, and each line says which of the
package's modules ran compiled (none for a pure install).

Needs valgrind and h2 (``pip install -e '.[http2]'``); about two minutes per scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCENARIOS = {"hello": "/", "json": "/json"}
_COLLECTED = re.compile(rb"Collected\s*:\s*(\d+)")
_COMPILED = re.compile(rb"^compiled: (.*)$", re.M)


def encode_requests(path: str, count: int, batch: int) -> list[bytes]:
    """The client's bytes: the preface and SETTINGS, then ``count`` GETs, ``batch`` per chunk
    (with h2load's request headers)."""
    import h2.config
    import h2.connection

    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    client.increment_flow_control_window(2**30)  # as h2load does: responses never wait
    chunks = [client.data_to_send()]
    headers = [(b":method", b"GET"), (b":path", path.encode()), (b":scheme", b"http"),
               (b":authority", b"127.0.0.1:8000"), (b"user-agent", b"h2load nghttp2/1.59.0"),
               (b"accept", b"*/*")]
    for _ in range(count // batch):
        for _ in range(batch):
            client.send_headers(client.get_next_available_stream_id(), headers,
                                end_stream=True)
        chunks.append(client.data_to_send())
    return chunks


# -- the driver (runs under valgrind) ---------------------------------------------------------


class Transport(asyncio.Transport):
    """Keeps nothing; counts bytes so the driver knows the responses went out."""

    def __init__(self) -> None:
        super().__init__()
        self.out = 0
        self.protocol: Any = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default)

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def write(self, data: Any) -> None:
        self.out += len(data)

    def writelines(self, data: Any) -> None:
        self.out += sum(map(len, data))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    abort = close

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Log:
    """Gunicorn's logger, silent."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


async def drive(chunks: list[bytes], count: int) -> None:
    from asgi_worker.http.httptools_protocol import HttpToolsProtocol
    from asgi_worker.server import Server
    from asgi_worker.settings import Settings

    sys.path.insert(0, str(HERE))
    from apps import app  # benchmarks/apps.py

    settings = Settings(http_protocols=("h2", "h1"), http2_cleartext="prior-knowledge",
                        keepalive=75)
    server = Server(app=app, settings=settings, log=Log(), sockets=[], state={},
                    heartbeat=lambda: None, protocol_factory=HttpToolsProtocol)
    server._update_date()
    transport = Transport()
    first = HttpToolsProtocol(server)
    first.connection_made(transport)
    first.data_received(chunks[0])
    conn = transport.protocol
    assert conn is not None and conn is not first, "the connection was not handed to HTTP/2"
    for chunk in chunks[1:]:
        conn.data_received(chunk)
        for _ in range(3):  # the request tasks (3.11) and the flush run here
            await asyncio.sleep(0)
    assert server.requests == count, (server.requests, count)
    assert transport.out > 30 * count, transport.out
    from asgi_worker._build import compiled_modules

    print("compiled:", " ".join(compiled_modules("asgi_worker")) or "-", file=sys.stderr)


def run_driver(request_file: str, count: int) -> None:
    import uvloop

    with open(request_file, "rb") as f:
        chunks = pickle.load(f)
    uvloop.run(drive(chunks, count))


# -- the parent: encode, run callgrind twice, divide ------------------------------------------


def callgrind(python: str, request_file: str, count: int, out_dir: str,
              pure: bool) -> tuple[int, str]:
    """Instructions of one driver run, and the modules that ran compiled."""
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(REPO))
    env.pop("ASGI_WORKER_PURE", None)
    if pure:
        env["ASGI_WORKER_PURE"] = "1"
    build = "pure" if pure else "compiled"
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind",
         f"--callgrind-out-file={out_dir}/cg.{build}.{count}.out",
         python, str(Path(__file__).resolve()), "--driver", request_file, str(count)],
        capture_output=True, env=env, cwd=REPO)
    match = _COLLECTED.search(proc.stderr)
    compiled = _COMPILED.search(proc.stderr)
    if proc.returncode or match is None or compiled is None:
        sys.exit(f"driver failed ({proc.returncode}):\n{proc.stderr.decode()[-3000:]}")
    names = compiled.group(1).decode().split()
    if names == ["-"]:
        return int(match.group(1)), "none"
    http2 = [name.rpartition(".")[2] for name in names if ".http2." in name]
    return int(match.group(1)), f"{len(names)} (http2: {', '.join(http2) or 'none'})"


def main(argv: list[str]) -> None:
    if argv[:1] == ["--driver"]:
        run_driver(argv[1], int(argv[2]))
        return
    p = argparse.ArgumentParser(description="instructions per HTTP/2 request (callgrind)")
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    p.add_argument("--counts", nargs=2, type=int, default=[500, 1500], metavar=("N1", "N2"))
    p.add_argument("--batch", type=int, default=10, help="streams per read (h2load -m)")
    p.add_argument("--python", default=sys.executable, help="interpreter with asgi_worker")
    p.add_argument("--build", nargs="+", default=["compiled"], choices=["compiled", "pure"],
                   help="compiled: the install as it is; pure: ASGI_WORKER_PURE=1")
    p.add_argument("--keep", metavar="DIR", help="keep the callgrind files in DIR")
    args = p.parse_args(argv)
    n1, n2 = args.counts
    if n1 % args.batch or n2 % args.batch or n2 <= n1:
        p.error("--counts: two multiples of --batch, the second larger")
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.keep or tmp
        for scenario in args.scenarios:
            request_files = []
            for n in (n1, n2):
                request_file = os.path.join(tmp, f"{scenario}.{n}.pickle")
                with open(request_file, "wb") as f:
                    pickle.dump(encode_requests(SCENARIOS[scenario], n, args.batch), f)
                request_files.append(request_file)
            for build in args.build:
                counts = []
                for n, request_file in zip((n1, n2), request_files, strict=True):
                    count, compiled = callgrind(args.python, request_file, n,
                                                out_dir, build == "pure")
                    counts.append(count)
                per = (counts[1] - counts[0]) / (n2 - n1)
                print(f"{scenario} {build}: {per:,.0f} instructions per HTTP/2 request "
                      f"({counts[0]:,} for {n1}, {counts[1]:,} for {n2}); "
                      f"compiled modules: {compiled}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
