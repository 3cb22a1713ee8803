"""The deployment examples are true: each file parses, says what the docs say it says, and the
gunicorn command line it contains starts the example app and serves it locally.

Docker, Kubernetes and nginx cannot run here, so their files are checked statically and the
gunicorn arguments they carry are run as a plain process.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import GUNICORN_MAJOR, NO_CONTROL_SOCKET, GunicornServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DOCKER_DEFAULT_STOP_TIMEOUT = 10  # seconds `docker stop` waits before SIGKILL
# Example modules and the framework each needs.
EXAMPLE_APPS = {
    "hello.py": None,
    "fastapi_app.py": "fastapi",
    "starlette_app.py": "starlette",
    "litestar_app.py": "litestar",
    "quart_app.py": "quart",
    "django_project/mysite/asgi.py": "django",
}


def option(args: list[str], *names: str) -> str:
    """The value following the first of ``names`` in an argument list."""
    for index, arg in enumerate(args):
        if arg in names:
            return args[index + 1]
    raise AssertionError(f"none of {names} in {args}")


def local_args(args: list[str]) -> list[str]:
    """Gunicorn arguments as a deployment file has them, rebound to a free loopback port."""
    args = list(args)
    for index, arg in enumerate(args):
        if arg in ("-b", "--bind"):
            args[index + 1] = "127.0.0.1:0"
            return args
    return ["-b", "127.0.0.1:0", *args]


_STARTED: list[GunicornServer] = []


@pytest.fixture(autouse=True)
def _stop_servers() -> Iterator[None]:
    """Every server a test started with serve() is stopped when the test ends."""
    yield
    while _STARTED:
        _STARTED.pop().stop()


def serve(args: list[str], tmp_path: Path, env: dict[str, str] | None = None,
          workers: int = 1) -> GunicornServer:
    server = GunicornServer(args, tmp_path, env={"DJANGO_SECRET_KEY": "test", **(env or {})},
                            workers=workers, wait_ready=False)
    _STARTED.append(server)
    server.wait_ready(workers)
    return server


# -- every example has a run command that works ------------------------------------------------


def docstring_command(path: Path) -> list[str]:
    """The ``gunicorn ...`` command in a module docstring, as an argument list."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    flat = re.sub(r"\s*\n\s*", " ", doc)
    match = re.search(r"(gunicorn -k asgi_worker\.\w+[^`\n]*?\w+(?:\.\w+)*:\w+)", flat)
    assert match, f"{path.relative_to(ROOT)}: no `gunicorn -k asgi_worker...` run command"
    return shlex.split(match.group(1))


@pytest.mark.parametrize("name", sorted(EXAMPLE_APPS))
def test_example_docstring_command_serves(name: str, tmp_path: Path) -> None:
    framework = EXAMPLE_APPS[name]
    if framework:
        pytest.importorskip(framework)
    command = docstring_command(EXAMPLES / name)
    assert command[0] == "gunicorn"
    args = local_args(command[1:])
    srv = serve(args, tmp_path, workers=int(option(args, "-w")) if "-w" in args else 1)
    response = httpx.get(srv.url + "/")
    assert response.status_code == 200, response.text
    srv.stop()


# -- gunicorn.conf.py --------------------------------------------------------------------------


def test_gunicorn_conf_checks_out() -> None:
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "examples/gunicorn.conf.py",
                             "--check-config"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gunicorn_conf_loads_and_serves(tmp_path: Path) -> None:
    srv = serve(["-c", "examples/gunicorn.conf.py", "-b", "127.0.0.1:0"], tmp_path,
                env={"WEB_CONCURRENCY": "2"}, workers=2)
    response = httpx.get(srv.url + "/")
    assert response.text == "Hello, world!\n"
    log = srv.wait_for_log(r'"GET / HTTP/1.1" 200 14 ')  # accesslog = "-"
    assert "gunicorn.conf.py loaded: 2 worker(s) of asgi_worker.Worker" in log
    assert "cannot start" not in log and "WARNING" not in log


def test_gunicorn_conf_names_every_worker_option() -> None:
    from asgi_worker.settings import ENV_PREFIX, KNOWN_ENV

    text = (EXAMPLES / "gunicorn.conf.py").read_text()
    named = set(re.findall(rf"{ENV_PREFIX}(\w+)=", text))
    assert named == set(KNOWN_ENV)


# -- Dockerfile --------------------------------------------------------------------------------


def dockerfile() -> dict[str, list[str]]:
    """Instructions of examples/Dockerfile (continuation lines joined), by keyword."""
    instructions: dict[str, list[str]] = {}
    text = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", (EXAMPLES / "Dockerfile").read_text())
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.setdefault(keyword.upper(), []).append(rest.strip())
    return instructions


def test_dockerfile_static_checks() -> None:
    docker = dockerfile()
    assert docker["FROM"] == ["python:3.11-slim"]
    assert docker["STOPSIGNAL"] == ["SIGTERM"]
    user = docker["USER"][-1]
    assert user not in ("root", "0") and not user.startswith("0:")
    cmd = json.loads(docker["CMD"][-1])  # exec form, so gunicorn is PID 1 and gets the signal
    assert cmd[:3] == ["gunicorn", "-k", "asgi_worker.Worker"]
    graceful = float(option(cmd, "--graceful-timeout"))
    assert graceful < DOCKER_DEFAULT_STOP_TIMEOUT
    assert float(option(cmd, "--timeout")) > 0
    # Everything the image copies exists in the build context (the repository root).
    for copy in docker["COPY"]:
        *sources, _ = copy.split()
        for source in sources:
            assert (ROOT / source).exists(), source


def test_dockerfile_cmd_serves_the_example(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    docker = dockerfile()
    env = dict(shlex.split(item)[0].split("=", 1) for entry in docker["ENV"]
               for item in shlex.split(entry, posix=False))
    cmd = json.loads(docker["CMD"][-1])
    srv = serve(local_args(cmd[1:]), tmp_path, env=env, workers=int(env["WEB_CONCURRENCY"]))
    assert httpx.get(srv.url + "/items/3").json() == {"item_id": 3, "q": None}
    # HEALTHCHECK's probe, run the way the image runs it
    probe = json.loads(docker["HEALTHCHECK"][-1].split("CMD", 1)[1])
    probe_code = probe[2].replace("127.0.0.1:8000", f"127.0.0.1:{srv.port}")
    assert subprocess.run([sys.executable, "-c", probe_code], timeout=10).returncode == 0
    assert srv.stop() == 0


# -- systemd ------------------------------------------------------------------------------------


def unit(name: str) -> dict[str, list[str]]:
    text = re.sub(r"\\\n\s*", " ", (EXAMPLES / "systemd" / name).read_text())
    keys: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def test_systemd_units_static_checks() -> None:
    service = unit("asgi-worker.service")
    socket_unit = unit("asgi-worker.socket")
    exec_start = shlex.split(service["ExecStart"][0])
    assert exec_start[1:3] == ["-k", "asgi_worker.Worker"]
    assert float(service["TimeoutStopSec"][0]) > float(option(exec_start, "--graceful-timeout"))
    assert service["KillMode"] == ["mixed"] and service["KillSignal"] == ["SIGTERM"]
    assert service["Type"] == ["notify"]
    assert service["ExecReload"] == ["/bin/kill -s HUP $MAINPID"]
    assert "asgi-worker.socket" in service["Requires"][0]
    assert socket_unit["ListenStream"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_units_verify(tmp_path: Path) -> None:
    gunicorn = Path(sys.executable).parent / "gunicorn"
    for name in ("asgi-worker.service", "asgi-worker.socket"):
        text = (EXAMPLES / "systemd" / name).read_text()
        (tmp_path / name).write_text(text.replace("/srv/app/.venv/bin/gunicorn", str(gunicorn)))
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "asgi-worker.socket"),
                             str(tmp_path / "asgi-worker.service")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate missing")
def test_systemd_socket_activation_serves(tmp_path: Path) -> None:
    """The unit's ExecStart, started the way the .socket unit starts it: on the first
    connection, with the listening socket inherited as fd 3 (LISTEN_FDS)."""
    exec_start = shlex.split(unit("asgi-worker.service")["ExecStart"][0])
    args = [*exec_start[1:-1], "examples.hello:app"]
    args[args.index("--workers") + 1] = "2"
    args.extend(NO_CONTROL_SOCKET)
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", f"127.0.0.1:{port}",
             "-E", f"PYTHONPATH={ROOT}", "-E", f"HOME={home}",
             sys.executable, "-m", "gunicorn", *args],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while b"Listening on" not in log_path.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)
        # The first connection starts gunicorn; it waits in the backlog until a worker accepts.
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=20).text == "Hello, world!\n"
        assert f"Listening at: http://127.0.0.1:{port}" in log_path.read_text()
        # Both workers up before SIGTERM (a worker still booting would delay the stop).
        while log_path.read_text().count("asgi_worker ready") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.terminate()
        returncode = proc.wait(20)
    assert returncode == 0, log_path.read_text()


# -- Kubernetes ---------------------------------------------------------------------------------


def kubernetes_documents() -> list[dict]:  # type: ignore[type-arg]
    yaml = pytest.importorskip("yaml")
    text = (EXAMPLES / "kubernetes" / "deployment.yaml").read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


def deployment_container() -> tuple[dict, dict]:  # type: ignore[type-arg]
    deployment = next(d for d in kubernetes_documents() if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


def test_kubernetes_shutdown_budget_and_probes() -> None:
    pod, container = deployment_container()
    args = container["args"]
    assert container["command"] == ["gunicorn"] and args[:2] == ["-k", "asgi_worker.Worker"]
    graceful = float(option(args, "--graceful-timeout"))
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > float(pre_stop[1]) + graceful
    assert container["readinessProbe"]["httpGet"]["port"] == "http"
    assert "livenessProbe" in container
    assert pod["securityContext"]["runAsNonRoot"] is True
    kinds = {doc["kind"] for doc in kubernetes_documents()}
    assert kinds == {"Deployment", "Service", "PodDisruptionBudget"}


def test_kubernetes_container_serves_its_probes(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    _, container = deployment_container()
    env = {item["name"]: item["value"] for item in container["env"]}
    env["XDG_RUNTIME_DIR"] = str(tmp_path)
    if GUNICORN_MAJOR < 25:  # networks in forwarded_allow_ips are Gunicorn 25+, as commented
        env["FORWARDED_ALLOW_IPS"] = "127.0.0.1"
    args = local_args(container["args"])
    srv = serve(args, tmp_path, env=env, workers=int(option(args, "--workers")))
    for probe in ("readinessProbe", "startupProbe"):
        path = container[probe]["httpGet"]["path"]
        assert httpx.get(srv.url + path).status_code == 200
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5):
        pass  # livenessProbe: tcpSocket
    assert srv.stop() == 0


# -- nginx --------------------------------------------------------------------------------------


def test_nginx_sends_what_gunicorn_trusts(start_server) -> None:  # type: ignore[no-untyped-def]
    conf = (EXAMPLES / "nginx" / "asgi-worker.conf").read_text()
    headers = dict(re.findall(r"proxy_set_header\s+(\S+)\s+([^;]+);", conf))
    assert headers["X-Forwarded-For"] == "$proxy_add_x_forwarded_for"
    assert headers["X-Forwarded-Proto"] == "$scheme"
    assert headers["Upgrade"] == "$http_upgrade"
    assert headers["Connection"] == "$connection_upgrade"
    assert "proxy_http_version 1.1;" in conf
    # What those headers do, from a trusted peer (nginx on the same host = 127.0.0.1).
    srv = start_server("tests.apps.basic:app")
    sent = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
            "SCRIPT_NAME": headers["SCRIPT_NAME"]}
    scope = httpx.get(srv.url + "/api/scope", headers=sent).json()
    assert scope["client"][0] == "203.0.113.7"
    assert scope["scheme"] == "https"
    assert scope["root_path"] == "/api" and scope["path"] == "/api/scope"


# -- docs/configuration.md stays true --------------------------------------------------------------


def configuration_table() -> dict[str, str]:
    """``ASGI_WORKER_*`` name -> the Default cell of the options table in configuration.md."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    rows = re.findall(r"^\| `ASGI_WORKER_(\w+)` \| ([^|]+) \|", text, flags=re.MULTILINE)
    return {name: default.strip() for name, default in rows}


def test_configuration_doc_lists_every_option_with_its_default() -> None:
    from asgi_worker.settings import KNOWN_ENV, Settings

    table = configuration_table()
    assert set(table) == set(KNOWN_ENV)
    defaults = Settings()
    numbers = {"HEADER_TIMEOUT": defaults.header_timeout, "BODY_TIMEOUT": defaults.body_timeout,
               "SEND_TIMEOUT": defaults.send_timeout, "MAX_BODY_SIZE": defaults.max_body_size,
               "WS_PING_INTERVAL": defaults.ws_ping_interval,
               "WS_PING_TIMEOUT": defaults.ws_ping_timeout,
               "WS_MAX_MESSAGE_SIZE": defaults.ws_max_message_size}
    for name, value in numbers.items():
        documented = re.match(r"`([\d.]+)`", table[name])
        assert documented and float(documented.group(1)) == value, name
    switches = {"WS": defaults.ws_enabled,
                "WS_PER_MESSAGE_DEFLATE": defaults.ws_per_message_deflate}
    for name, on in switches.items():
        assert table[name].startswith("`on`" if on else "`off`"), name
    assert table["LOOP"].startswith(f"`{defaults.loop}`")
    assert table["LIFESPAN"].startswith(f"`{defaults.lifespan}`")


@pytest.mark.parametrize("assignment", [
    "ASGI_WORKER_WS_PING_INTERVAL=soon", "ASGI_WORKER_LOOP=trio", "ASGI_WORKER_WS=maybe",
    "ASGI_WORKER_HEADER_TIMEOUT=0", "ASGI_WORKER_MAX_BODY_SIZE=-1",
])
def test_configuration_doc_error_messages_are_real(assignment: str, tmp_path: Path) -> None:
    name, _, value = assignment.partition("=")
    documented = next(line.strip() for line in (ROOT / "docs" / "configuration.md")
                      .read_text().splitlines() if f"{name}='{value}'" in line)
    documented = documented.split("] ", 1)[-1]  # drop a log prefix where the doc shows one
    srv = GunicornServer(["-k", "asgi_worker.Worker", "-b", "127.0.0.1:0", "-e", assignment,
                          "examples.hello:app"], tmp_path, wait_ready=False)
    assert srv.proc.wait(30) == 3  # Gunicorn's "worker failed to boot" exit status
    assert documented in srv.log()
