"""A gunicorn.conf.py whose hooks append their names to the file in $HOOK_LOG."""

import os


def _record(line: str) -> None:
    with open(os.environ["HOOK_LOG"], "a") as file:
        file.write(line + "\n")


def post_worker_init(worker):
    _record(f"post_worker_init {worker.pid}")


def worker_int(worker):
    _record(f"worker_int {worker.pid}")


def worker_abort(worker):
    _record(f"worker_abort {worker.pid}")


def worker_exit(server, worker):
    _record(f"worker_exit {worker.pid}")


def pre_request(worker, req):
    _record(f"pre_request {req.method} {req.path}")


def post_request(worker, req, environ, resp):
    _record(f"post_request {req.method} {req.path} {resp.status}")
