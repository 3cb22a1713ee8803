"""asgi_worker: a Gunicorn worker class that serves ASGI applications.

Use it with ``gunicorn -k asgi_worker.Worker myproject.main:app`` (httptools parser) or
``-k asgi_worker.H11Worker`` (pure-Python h11 parser).

``COMPILED`` tells whether the request path runs compiled by mypyc (the default wherever a
compiled wheel or a C compiler was available) or as pure Python (the fallback, or
``ASGI_WORKER_PURE=1``); ``COMPILED_MODULES`` names the compiled modules.
"""

from ._build import compiled_modules, use_pure_sources

use_pure_sources(__name__)

from .worker import H11Worker, Worker  # noqa: E402 - after the choice of build

__version__ = "0.1.0"

COMPILED_MODULES: list[str] = compiled_modules(__name__)
COMPILED: bool = bool(COMPILED_MODULES)

__all__ = ["COMPILED", "COMPILED_MODULES", "H11Worker", "Worker", "__version__"]
