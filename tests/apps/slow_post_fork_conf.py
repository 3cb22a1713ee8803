"""A gunicorn.conf.py whose post_fork hook sleeps: the worker process exists, still with the
arbiter's signal handlers, for a second before the worker class runs any code of its own."""

import time


def post_fork(server, worker):
    time.sleep(1.0)
