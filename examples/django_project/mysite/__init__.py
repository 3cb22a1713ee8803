"""A minimal Django project served over ASGI by asgi_worker (no database needed)."""
