"""asgi_worker: a Gunicorn worker class that serves ASGI applications."""

__version__ = "0.1.0"
