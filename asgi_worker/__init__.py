"""asgi_worker: a Gunicorn worker class that serves ASGI applications.

Use it with ``gunicorn -k asgi_worker.Worker myproject.main:app`` (httptools parser) or
``-k asgi_worker.H11Worker`` (pure-Python h11 parser).
"""

from .worker import H11Worker, Worker

__version__ = "0.1.0"

__all__ = ["H11Worker", "Worker", "__version__"]
